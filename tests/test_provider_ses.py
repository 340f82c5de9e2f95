"""Amazon SES v2 through boto3 against moto served on loopback, and SES's errors.

Reproduces:
- https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
  (`POST /v2/email/outbound-emails`, raw content, `MessageId` answer; the errors
  and their HTTP statuses, reproduced by a loopback HTTP server that answers as
  SES does: status, `x-amzn-ErrorType` and a JSON `message`);
- RFC 6376 / RFC 8058: the raw message read back from moto carries a DKIM
  signature over List-Unsubscribe and List-Unsubscribe-Post that verifies
  against the key served by a loopback DNS server.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_sesv2 import SESV2Client

from activities.providers import DeliveryError, OutgoingEmail, SesEmailProvider
from activities.providers.factory import email_provider_from_settings
from models.settings import Settings
from tests.cli import journeys
from tests.dkim_dns import dkim_dns, dkim_key, rsa_key, signed_headers
from tests.factories import outgoing_email
from tests.fake_api import FakeApi, Reply
from tests.test_journey_qa import cli_env
from tests.test_providers_smtp import free_port

REGION = "eu-west-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
"""The standard AWS chain, from the environment (moto takes any credentials)."""
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://journeys.acme.test/u/token-abc>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
KEY = rsa_key()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def ses_admin(moto_url: str) -> SESV2Client:
    """What an operator does in the console: identities, configuration sets."""
    return boto3.client("sesv2", region_name=REGION, endpoint_url=moto_url)


def sent_raw(moto_url: str, message_id: str) -> bytes:
    """The raw message moto's SES took under `message_id` (its `/moto-api/data.json`)."""
    with urllib.request.urlopen(f"{moto_url}/moto-api/data.json") as answer:
        data: dict[str, Any] = json.load(answer)
    [raw] = [sent["raw_data"] for sent in data["ses"]["RawMessage"] if sent["id"] == message_id]
    assert isinstance(raw, str)
    return raw.encode()


def marketing_email(sender: str = "grace@acme.test") -> OutgoingEmail:
    email = outgoing_email()
    return dataclasses.replace(email, from_address=sender, headers={**email.headers, **UNSUBSCRIBE})


async def test_sends_the_raw_message_dkim_signed_with_our_headers(moto_url: str) -> None:
    admin = ses_admin(moto_url)
    admin.create_email_identity(EmailIdentity="acme.test")
    admin.create_configuration_set(ConfigurationSetName="journeys")
    settings = Settings(
        email_provider="ses",
        ses_region=REGION,
        ses_endpoint_url=moto_url,
        ses_configuration_set="journeys",
        dkim_keys={"acme.test": dkim_key("ses2025", KEY)},
    )
    provider = email_provider_from_settings(settings)
    email = marketing_email()

    message_id = await provider.deliver(email)

    raw = sent_raw(moto_url, message_id)
    received = message_from_bytes(raw)
    assert received["Message-ID"] == email.message_id
    assert received["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["To"] == "ada@example.com"
    with dkim_dns() as dns:
        dns.zone.publish("ses2025", "acme.test", KEY)
        assert dns.verify(raw)
        assert {"list-unsubscribe", "list-unsubscribe-post", "message-id"} <= set(
            signed_headers(raw)
        )


async def test_without_a_dkim_key_the_message_goes_unsigned_for_ses_easy_dkim(
    moto_url: str,
) -> None:
    ses_admin(moto_url).create_email_identity(EmailIdentity="acme.test")
    provider = SesEmailProvider(region=REGION, endpoint_url=moto_url)

    raw = sent_raw(moto_url, await provider.deliver(marketing_email()))

    assert message_from_bytes(raw)["DKIM-Signature"] is None
    assert b"List-Unsubscribe: <https://journeys.acme.test/u/token-abc>\r\n" in raw


async def test_an_unverified_sender_is_a_permanent_message_rejected(moto_url: str) -> None:
    provider = SesEmailProvider(region=REGION, endpoint_url=moto_url)

    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(marketing_email("grace@stranger.test"))

    assert caught.value.permanent is True
    assert caught.value.invalid_recipient is False
    assert caught.value.status_code == 400
    assert str(caught.value).startswith("SES answered MessageRejected: ")
    assert "grace@stranger.test" not in str(caught.value)  # error texts reach logs and history


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (400, "MessageRejected", True),
        (400, "MailFromDomainNotVerifiedException", True),
        (400, "AccountSuspendedException", True),
        (400, "SendingPausedException", True),
        (400, "BadRequestException", True),
        (404, "NotFoundException", True),
        (429, "TooManyRequestsException", False),
        (400, "LimitExceededException", False),
        (500, "InternalFailure", False),
        (503, "ServiceUnavailable", False),
    ],
)
async def test_ses_errors_are_classified_and_never_retried_by_botocore(
    status: int, code: str, permanent: bool
) -> None:
    with FakeApi() as ses:
        ses.answer(
            Reply(
                status=status,
                body={"message": f"{code} for grace@acme.test"},
                headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/"},
            )
        )
        provider = SesEmailProvider(region=REGION, endpoint_url=ses.url)
        with pytest.raises(DeliveryError) as caught:
            await provider.deliver(marketing_email())

    assert caught.value.permanent is permanent
    assert caught.value.status_code == status
    assert str(caught.value).startswith(f"SES answered {code}: ")
    assert "grace@acme.test" not in str(caught.value)
    [request] = ses.received  # Temporal owns retries
    assert request.path == "/v2/email/outbound-emails"
    assert request.body["Destination"] == {"ToAddresses": ["ada@example.com"]}
    assert request.body["EmailTags"] == [
        {"Name": "journey", "Value": "welcome-series"},
        {"Name": "step", "Value": "day0"},
    ]
    assert request.headers["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=testing-key-id/"
    )


async def test_throttling_honours_retry_after() -> None:
    with FakeApi() as ses:
        ses.answer(
            Reply(
                status=429,
                body={"message": "Maximum sending rate exceeded."},
                headers={"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "7"},
            )
        )
        with pytest.raises(DeliveryError) as caught:
            await SesEmailProvider(region=REGION, endpoint_url=ses.url).deliver(marketing_email())

    assert caught.value.permanent is False
    assert caught.value.retry_after is not None
    assert caught.value.retry_after.total_seconds() == 7


async def test_an_unreachable_endpoint_is_transient() -> None:
    provider = SesEmailProvider(region=REGION, endpoint_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(marketing_email())

    assert caught.value.permanent is False
    assert "SES unreachable: EndpointConnectionError" in str(caught.value)


def test_a_missing_region_stops_the_worker_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="SES_REGION"):
        email_provider_from_settings(Settings(email_provider="ses"))


def test_the_region_may_come_from_the_aws_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("EMAIL_PROVIDER", "ses")

    provider = email_provider_from_settings(Settings())

    assert isinstance(provider, SesEmailProvider)
    assert (provider.name, provider.region) == ("ses", "us-west-2")


async def test_test_send_through_ses(moto_url: str, settings: Settings) -> None:
    ses_admin(moto_url).create_email_identity(EmailIdentity="northwind.example")
    env = cli_env(
        settings,
        EMAIL_PROVIDER="ses",
        SES_REGION=REGION,
        SES_ENDPOINT_URL=moto_url,
        **CREDENTIALS,
    )

    done = await journeys("test-send", "pricing-abandon/email", "--to", "me@example.com", env=env)

    assert done.returncode == 0, done.stderr
    assert "through ses" in done.stdout
    with urllib.request.urlopen(f"{moto_url}/moto-api/data.json") as answer:
        sent = json.load(answer)["ses"]["RawMessage"]
    [mine] = [message for message in sent if message["destinations"][0] == "me@example.com"]
    received = message_from_bytes(mine["raw_data"].encode())
    assert received["Subject"] == "[TEST] Quick question about Northwind Campaigns"
    assert received["X-Journeys-Test"] == "1"
