"""Amazon SES v2 through boto3 against moto served on loopback, SES's errors, and SES events
through an SNS subscription (`/webhooks/ses`).

Reproduces:
- https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html
  (`POST /v2/email/outbound-emails`, raw content, `MessageId` answer; the errors
  and their HTTP statuses, reproduced by a loopback HTTP server that answers as
  SES does: status, `x-amzn-ErrorType` and a JSON `message`);
- RFC 6376 / RFC 8058: the raw message read back from moto carries a DKIM
  signature over List-Unsubscribe and List-Unsubscribe-Post that verifies
  against the key served by a loopback DNS server;
- https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
  (signed SNS messages, `tests/sns_fake.py`) and the subscription confirmation
  (a GET of `SubscribeURL`);
- https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html
  (the SES event records in the notifications' `Message`).
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_sesv2 import SESV2Client
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from activities.providers import DeliveryError, OutgoingEmail, SesEmailProvider
from activities.providers.factory import email_provider_from_settings
from models.settings import Settings
from models.tables import ContactEvent
from starter.api.hooks.ses import ses_notice
from starter.services.sns import MESSAGE_TYPE_HEADER, SnsMessage
from tests.cli import journeys
from tests.dkim_dns import dkim_dns, dkim_key, rsa_key, signed_headers
from tests.factories import message_rows, outgoing_email, rows_of
from tests.fake_api import FakeApi, Reply
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.sns_fake import HOST, TOPIC_ARN, SnsEndpoint, sign
from tests.test_api import contact_state, journey_state, new_id, put_contact
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


def ses_event(event_type: str, message_id: str, **detail: Any) -> str:
    """An SES event record (as SES publishes it to SNS) about the message `message_id`."""
    record = {
        "eventType": event_type,
        "mail": {
            "timestamp": "2026-03-04T09:30:00.000Z",
            "source": "Maya <maya@northwind.example>",
            "messageId": message_id,
            "destination": ["ada@example.com"],
            "tags": {"journey": ["welcome-series"], "step": ["day0"]},
        },
        **detail,
    }
    return json.dumps(record)


NOW = "2026-03-04T10:00:00.000Z"


@pytest.mark.parametrize(
    ("event_type", "detail", "expected"),
    [
        ("Delivery", {"delivery": {"timestamp": NOW, "recipients": ["ada@example.com"]}},
         ("delivered", None, None)),
        ("Bounce", {"bounce": {"bounceType": "Permanent", "timestamp": NOW,
                               "bouncedRecipients": [{"emailAddress": "a@x.test"},
                                                     {"emailAddress": "b@x.test"}]}},
         ("bounced", "hard", None)),
        ("Bounce", {"bounce": {"bounceType": "Transient", "timestamp": NOW}},
         ("bounced", "soft", None)),
        ("Bounce", {"bounce": {"bounceType": "Undetermined", "timestamp": NOW}},
         ("bounced", "soft", None)),
        ("Complaint", {"complaint": {"timestamp": NOW, "complainedRecipients": []}},
         ("complained", None, None)),
        ("Open", {"open": {"timestamp": NOW, "userAgent": "Mail"}}, ("opened", None, None)),
        ("Click", {"click": {"timestamp": NOW, "link": "https://northwind.example/playbook"}},
         ("clicked", None, "https://northwind.example/playbook")),
    ],
    ids=["delivery", "bounce-permanent", "bounce-transient", "bounce-undetermined", "complaint",
         "open", "click"],
)  # fmt: skip
def test_each_ses_event_becomes_one_notice(
    event_type: str, detail: dict[str, Any], expected: tuple[str, str | None, str | None]
) -> None:
    message = SnsMessage.model_validate(
        {"Type": "Notification", "MessageId": "sns-1", "TopicArn": TOPIC_ARN,
         "Message": ses_event(event_type, "ses-msg-1", **detail), "Timestamp": NOW,
         "SignatureVersion": "1", "Signature": "x", "SigningCertURL": "https://x/c.pem"}
    )  # fmt: skip

    notice = ses_notice(message)

    assert notice is not None
    assert (notice.kind, notice.bounce_type, notice.url) == expected
    assert (notice.event_id, notice.message_id) == ("sns-1", "ses-msg-1")
    assert notice.occurred_at == datetime(2026, 3, 4, 10, tzinfo=UTC)


def test_identity_notifications_name_their_type_notification_type() -> None:
    record = json.loads(ses_event("Bounce", "ses-msg-1", bounce={"bounceType": "Permanent",
                                                                 "timestamp": NOW}))  # fmt: skip
    record["notificationType"] = record.pop("eventType")
    message = SnsMessage.model_validate(
        {"Type": "Notification", "MessageId": "sns-2", "TopicArn": TOPIC_ARN,
         "Message": json.dumps(record), "Timestamp": NOW, "SignatureVersion": "2",
         "Signature": "x", "SigningCertURL": "https://x/c.pem"}
    )  # fmt: skip

    notice = ses_notice(message)

    assert notice is not None
    assert (notice.kind, notice.bounce_type) == ("bounced", "hard")


@pytest.fixture
def sns(tmp_path: Path) -> Iterator[SnsEndpoint]:
    with SnsEndpoint(tmp_path) as endpoint:
        yield endpoint


def ses_gateway_settings(settings: Settings, sns: SnsEndpoint) -> Settings:
    return gateway_settings(
        settings,
        ses_sns_topic_arns=[TOPIC_ARN],
        ses_sns_cert_hosts=[HOST],
        ses_sns_ca_bundle=sns.ca_bundle,
    )


async def post_sns(
    gateway: Gateway, fields: dict[str, str], *, header: str | None = None
) -> httpx.Response:
    """POST as SNS does: JSON (sent as text/plain) with the message type header."""
    headers = {"Content-Type": "text/plain; charset=UTF-8"}
    message_type = header if header is not None else fields.get("Type")
    if message_type:
        headers[MESSAGE_TYPE_HEADER] = message_type
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as aws:
        return await aws.post("/webhooks/ses", content=json.dumps(fields), headers=headers)


async def test_ses_events_through_sns_become_behaviour_events_once(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, sns: SnsEndpoint
) -> None:
    async with serving_gateway(dev_env.client, ses_gateway_settings(settings, sns)) as gateway:
        contact_id = new_id("ses")
        await put_contact(gateway, contact_id)
        await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
        await journey_state(
            dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
        )
        [row] = await message_rows(engine, contact_id)
        assert row.provider_message_id
        now = datetime.now(UTC)
        at = now.isoformat()
        opened = ses_event("Open", row.provider_message_id, open={"timestamp": at})

        for refused, status in [
            ({k: v for k, v in sns.message("Notification", opened).items() if k != "Signature"},
             400),
            ({**sns.message("Notification", opened), "Message": opened.replace("Open", "Click")},
             401),
            (sns.message("Notification", opened, timestamp=now - timedelta(hours=2)), 401),
            (sns.message("Notification", opened, topic=TOPIC_ARN + "-other"), 401),
            ({**sns.message("Notification", opened), "SigningCertURL": "http://" + HOST + "/x"},
             401),
            (sign({**sns.message("Notification", opened),
                   "SigningCertURL": "https://sns.eu-west-1.amazonaws.com.evil.test/c.pem"},
                  sns.signing_key), 401),
            (sign({**sns.message("Notification", opened), "SignatureVersion": "2"},
                  rsa_key()), 401),
        ]:  # fmt: skip
            answer = await post_sns(gateway, refused)
            assert answer.status_code == status, answer.text
        mismatched = await post_sns(gateway, sns.message("Notification", opened), header="x")
        assert mismatched.status_code == 400

        notifications = [
            sns.message("Notification", ses_event("Delivery", row.provider_message_id,
                                                  delivery={"timestamp": at})),
            sns.message("Notification", opened, version="2"),
            sns.message("Notification", ses_event("Click", row.provider_message_id,
                        click={"timestamp": at, "link": "https://northwind.example/playbook"})),
            sns.message("Notification", ses_event("Bounce", row.provider_message_id,
                        bounce={"timestamp": at, "bounceType": "Transient"})),
            sns.message("Notification", ses_event("Send", row.provider_message_id, send={})),
            sns.message("Notification", ses_event("Open", "ses-not-ours", open={"timestamp": at})),
        ]  # fmt: skip
        answers = [(await post_sns(gateway, message)).json() for message in notifications]
        assert answers == [
            {"accepted": 1, "duplicate": 0, "unknown_messages": []},
            {"accepted": 1, "duplicate": 0, "unknown_messages": []},
            {"accepted": 1, "duplicate": 0, "unknown_messages": []},
            {"accepted": 1, "duplicate": 0, "unknown_messages": []},
            {"accepted": 0, "duplicate": 0, "unknown_messages": []},
            {"accepted": 0, "duplicate": 0, "unknown_messages": [notifications[-1]["MessageId"]]},
        ]
        redelivered = await post_sns(gateway, notifications[1])
        assert redelivered.json() == {"accepted": 0, "duplicate": 1, "unknown_messages": []}

        await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted >= 4)
        events = {event.type: event for event in await rows_of(engine, ContactEvent, contact_id)}
        assert events["email_clicked"].properties["url"] == "https://northwind.example/playbook"
        assert events["email_bounced"].properties["bounce_type"] == "soft"
        assert events["email_opened"].event_id == f"ses-webhook-{notifications[1]['MessageId']}"
        assert "email_delivered" in events
        assert sns.requests.count("/cert.pem") == 1  # fetched once, then cached


async def test_a_subscription_is_confirmed_at_its_subscribe_url(
    dev_env: WorkflowEnvironment, settings: Settings, sns: SnsEndpoint
) -> None:
    confirm = f"/confirm?Action=ConfirmSubscription&TopicArn={TOPIC_ARN}&Token=tok-1"
    subscription = {"Token": "tok-1", "SubscribeURL": sns.url + confirm}
    elsewhere = {"Token": "tok-2", "SubscribeURL": "https://sns.evil.test/confirm?Token=tok-2"}
    served = serving_gateway(dev_env.client, ses_gateway_settings(settings, sns), worker=False)
    async with served as gateway:
        refused = await post_sns(
            gateway, sns.message("SubscriptionConfirmation", "c", extra=elsewhere)
        )
        forged = await post_sns(
            gateway,
            {**sns.message("SubscriptionConfirmation", "c", extra=subscription), "Token": "tok-3"},
        )
        taken = await post_sns(
            gateway, sns.message("SubscriptionConfirmation", "c", extra=subscription)
        )

    assert (refused.status_code, forged.status_code, taken.status_code) == (400, 401, 200)
    assert [path for path in sns.requests if path.startswith("/confirm")] == [confirm]


async def test_the_ses_webhook_is_not_found_until_its_topics_are_set(
    dev_env: WorkflowEnvironment, settings: Settings, sns: SnsEndpoint
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as gateway:
        answer = await post_sns(gateway, sns.message("Notification", "{}"))

    assert answer.status_code == 404
    assert sns.requests == []


def test_production_refuses_sns_certificates_from_outside_amazon() -> None:
    unsafe = Settings(production=True, ses_sns_cert_hosts=["sns.*.amazonaws.com", HOST])
    amazon = Settings(production=True)

    assert [line for line in unsafe.production_refusals() if "SES_SNS_CERT_HOSTS" in line] == [
        "SES_SNS_CERT_HOSTS ['127.0.0.1'] are not Amazon's: anyone serving a certificate there "
        "could forge SES notifications; leave SES_SNS_CERT_HOSTS unset (refused because "
        "PRODUCTION is on)"
    ]
    assert not [line for line in amazon.production_refusals() if "SES_SNS" in line]
