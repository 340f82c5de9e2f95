"""Postmark: the adapter against a fake of its Email API, and its webhooks through the gateway.

The fake (`tests/fake_postmark.py`) reproduces, and this module relies on:

- https://postmarkapp.com/developer/api/email-api (`POST /email`, its body, the
  `MessageID` answer) and https://postmarkapp.com/developer/user-guide/sending-with-api
  (`X-Postmark-Server-Token`);
- https://postmarkapp.com/developer/api/overview#error-codes (422 with `ErrorCode`
  300 and 406, 401 with 10, 429, 100 maintenance);
- https://postmarkapp.com/developer/webhooks/webhooks-overview (basic auth in the
  webhook URL), https://postmarkapp.com/developer/webhooks/delivery-webhook,
  https://postmarkapp.com/developer/webhooks/bounce-webhook (and the bounce types of
  https://postmarkapp.com/developer/api/bounce-api#bounce-types),
  https://postmarkapp.com/developer/webhooks/spam-complaint-webhook,
  https://postmarkapp.com/developer/webhooks/open-tracking-webhook,
  https://postmarkapp.com/developer/webhooks/click-webhook and
  https://postmarkapp.com/developer/webhooks/subscription-change-webhook (the records).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment

from activities.providers import (
    DeliveryError,
    PostmarkEmailProvider,
    email_provider_from_settings,
)
from models.db import session_factory
from models.settings import Settings
from models.tables import ContactEvent
from starter.api.hooks.postmark import PostmarkRecord, notice_of
from tests.factories import message_rows, outgoing_email
from tests.fake_api import Fault
from tests.fake_postmark import TOKEN, PostmarkApi
from tests.gateway import REAL_PROVIDER_LINKS, Gateway, gateway_settings, serving_gateway
from tests.test_api import contact_state, journey_state, new_id, put_contact

HOOK_USER = "postmark-hooks"
HOOK_PASSWORD = "tests-postmark-hook-password"
UNSUBSCRIBE = "<https://journeys.example.test/u/token>"


@pytest.fixture
def api() -> Iterator[PostmarkApi]:
    with PostmarkApi() as server:
        yield server


def provider(api: PostmarkApi, **options: Any) -> PostmarkEmailProvider:
    return PostmarkEmailProvider(TOKEN, base_url=api.url, timeout=5, **options)


def marketing_email() -> Any:
    email = outgoing_email()
    headers = {
        **email.headers,
        "List-Unsubscribe": UNSUBSCRIBE,
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return type(email)(**{**email.__dict__, "headers": headers})


async def refusal(provider: PostmarkEmailProvider, email: Any = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(email or outgoing_email())
    return caught.value


# --- sending ---------------------------------------------------------------------------


async def test_email_is_posted_as_postmark_documents_it(api: PostmarkApi) -> None:
    email = marketing_email()

    message_id = await provider(api).deliver(email)

    [body] = api.received
    assert message_id == api.deliveries[0].message_id
    assert body == {
        "From": "Grace from Acme <grace@acme.test>",
        "To": "ada@example.com",
        "ReplyTo": "hello@acme.test",
        "Subject": "Welcome to Acme, Ada",
        "TextBody": "Hi Ada, welcome aboard.",
        "HtmlBody": "<p>Hi Ada, welcome aboard.</p>",
        "Headers": [
            {"Name": "Message-ID", "Value": email.message_id},
            {"Name": "X-Journey", "Value": "welcome-series"},
            {"Name": "X-Journey-Step", "Value": "day0"},
            {"Name": "List-Unsubscribe", "Value": UNSUBSCRIBE},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
        "MessageStream": "outbound",
        "Metadata": {"idempotency_key": "welcome-series-ada/day0"},
    }


async def test_marketing_goes_to_the_broadcast_stream_when_one_is_set(api: PostmarkApi) -> None:
    postmark = provider(api, broadcast_stream="newsletters")

    await postmark.deliver(marketing_email())
    await postmark.deliver(outgoing_email())  # a service message: no List-Unsubscribe

    assert [body["MessageStream"] for body in api.received] == ["newsletters", "outbound"]


async def test_a_long_idempotency_key_goes_into_metadata_as_its_digest(api: PostmarkApi) -> None:
    await provider(api).deliver(outgoing_email(key="welcome-series-" + "x" * 100 + "/day0"))

    [body] = api.received
    assert len(body["Metadata"]["idempotency_key"]) == 64


async def test_an_inactive_recipient_is_invalid_and_its_address_never_in_the_error(
    api: PostmarkApi,
) -> None:
    api.inactive.add("ada@example.com")

    error = await refusal(provider(api))

    assert (error.permanent, error.invalid_recipient, error.status_code) == (True, True, 422)
    assert "ErrorCode 406" in str(error)
    assert "ada@example.com" not in str(error)
    assert api.deliveries == []


async def test_error_300_is_the_recipients_fault_only_when_it_names_to(api: PostmarkApi) -> None:
    bad_to = outgoing_email()
    bad_to = type(bad_to)(**{**bad_to.__dict__, "to_address": "ada.example.com"})
    bad_subject = outgoing_email()
    bad_subject = type(bad_subject)(**{**bad_subject.__dict__, "subject": ""})

    to_error = await refusal(provider(api), bad_to)
    subject_error = await refusal(provider(api), bad_subject)

    assert (to_error.permanent, to_error.invalid_recipient) == (True, True)
    assert "ErrorCode 300" in str(to_error)
    assert (subject_error.permanent, subject_error.invalid_recipient) == (True, False)
    assert "no 'Subject'" in str(subject_error)


async def test_a_wrong_server_token_fails_the_request(api: PostmarkApi) -> None:
    error = await refusal(PostmarkEmailProvider("not-the-token", base_url=api.url))

    assert (error.permanent, error.invalid_recipient, error.status_code) == (True, False, 401)
    assert "ErrorCode 10" in str(error)


@pytest.mark.parametrize(
    ("fault", "retry_after"),
    [
        (Fault(status=429, retry_after=9), timedelta(seconds=9)),
        (Fault(status=503), None),
        (Fault(status=500), None),
    ],
    ids=["429-retry-after", "503-maintenance", "500"],
)
async def test_rate_limits_and_server_errors_are_retried(
    api: PostmarkApi, fault: Fault, retry_after: timedelta | None
) -> None:
    api.fail_next(1, fault)
    postmark = provider(api)

    error = await refusal(postmark)
    assert (error.permanent, error.retry_after, error.status_code) == (
        False,
        retry_after,
        fault.status,
    )
    assert await postmark.deliver(outgoing_email()) == api.deliveries[0].message_id


async def test_no_answer_in_time_is_transient(api: PostmarkApi) -> None:
    api.fail_next(1, Fault(status=503, delay=1.0))

    with pytest.raises(DeliveryError) as caught:
        await PostmarkEmailProvider(TOKEN, base_url=api.url, timeout=0.3).deliver(outgoing_email())

    assert caught.value.permanent is False
    assert "unreachable" in str(caught.value)


def test_the_factory_needs_the_server_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="POSTMARK_SERVER_TOKEN"):
        email_provider_from_settings(Settings(email_provider="postmark"))
    monkeypatch.setenv("EMAIL_PROVIDER", "postmark")
    monkeypatch.setenv("POSTMARK_SERVER_TOKEN", "t")
    monkeypatch.setenv("POSTMARK_BROADCAST_STREAM", "broadcast")

    built = email_provider_from_settings(Settings())

    assert isinstance(built, PostmarkEmailProvider)
    assert (built.name, built.message_stream, built.broadcast_stream) == (
        "postmark",
        "outbound",
        "broadcast",
    )


# --- the records' meaning --------------------------------------------------------------

AT = "2025-03-04T09:30:00.1234567-05:00"


def record(record_type: str, **fields: Any) -> dict[str, Any]:
    return {"RecordType": record_type, "MessageID": "m-1", "ServerID": 23, **fields}


@pytest.mark.parametrize(
    ("posted", "kind", "bounce_type"),
    [
        (record("Delivery", DeliveredAt=AT), "delivered", None),
        (record("Open", ReceivedAt=AT, FirstOpen=True), "opened", None),
        (record("Click", ReceivedAt=AT, OriginalLink="https://x.test/a"), "clicked", None),
        (record("Bounce", ID=1, Type="HardBounce", TypeCode=1, BouncedAt=AT), "bounced", "hard"),
        (record("Bounce", ID=2, Type="BadEmailAddress", BouncedAt=AT), "bounced", "hard"),
        (record("Bounce", ID=3, Type="SoftBounce", TypeCode=4096, BouncedAt=AT), "bounced", "soft"),
        (record("Bounce", ID=4, Type="Blocked", BouncedAt=AT), "bounced", "soft"),
        (record("Bounce", ID=5, Type="DnsError", BouncedAt=AT), "bounced", "soft"),
        (record("Bounce", ID=6, Type="SpamComplaint", BouncedAt=AT), "complained", None),
        (record("SpamComplaint", ID=7, Type="SpamComplaint", BouncedAt=AT), "complained", None),
        (record("Bounce", ID=8, Type="Unsubscribe", BouncedAt=AT), "unsubscribed", None),
        (
            record(
                "SubscriptionChange",
                ChangedAt=AT,
                SuppressSending=True,
                SuppressionReason="ManualSuppression",
            ),
            "unsubscribed",
            None,
        ),
    ],
)
def test_records_become_notices(posted: dict[str, Any], kind: str, bounce_type: str | None) -> None:
    notice = notice_of(PostmarkRecord.model_validate(posted))

    assert notice is not None
    assert (notice.kind, notice.bounce_type, notice.message_id) == (kind, bounce_type, "m-1")
    assert notice.occurred_at == datetime(2025, 3, 4, 14, 30, 0, 123456, tzinfo=UTC)
    assert notice.url == posted.get("OriginalLink")


@pytest.mark.parametrize(
    "posted",
    [
        record("Bounce", ID=9, Type="Transient", TypeCode=2, BouncedAt=AT),
        record("Bounce", ID=10, Type="AutoResponder", BouncedAt=AT),
        record("SubscriptionChange", ChangedAt=AT, SuppressSending=False),
        record(
            "SubscriptionChange",
            ChangedAt=AT,
            SuppressSending=True,
            SuppressionReason="HardBounce",
        ),
        {**record("Delivery", DeliveredAt=AT), "MessageID": None},
        record("Inbound", ReceivedAt=AT),
    ],
    ids=["transient", "autoresponder", "reactivated", "suppressed-by-bounce", "no-id", "inbound"],
)
def test_records_that_are_ignored(posted: dict[str, Any]) -> None:
    assert notice_of(PostmarkRecord.model_validate(posted)) is None


def test_the_derived_event_id_is_stable_and_tells_records_apart() -> None:
    def event_id(**fields: Any) -> str:
        notice = notice_of(PostmarkRecord.model_validate(record("Click", **fields)))
        assert notice is not None
        return notice.event_id

    first = event_id(ReceivedAt=AT, OriginalLink="https://x.test/a")

    assert first == event_id(ReceivedAt=AT, OriginalLink="https://x.test/a", Platform="Mobile")
    assert first != event_id(ReceivedAt=AT, OriginalLink="https://x.test/b")
    assert first != event_id(
        ReceivedAt="2025-03-04T09:30:01-05:00", OriginalLink="https://x.test/a"
    )


# --- the webhook, through the gateway ----------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def post_record(
    gateway: Gateway, body: dict[str, Any] | bytes, authorization: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient(base_url=gateway.url) as postmark:
        if isinstance(body, bytes):
            return await postmark.post("/webhooks/postmark", content=body, headers=headers)
        return await postmark.post("/webhooks/postmark", json=body, headers=headers)


@pytest.fixture
async def postmark_gateway(
    dev_env: WorkflowEnvironment, settings: Settings, api: PostmarkApi
) -> AsyncIterator[Gateway]:
    """The gateway, with its worker sending through the Postmark fake."""
    configured = gateway_settings(
        settings,
        email_provider="postmark",
        postmark_api_url=api.url,
        postmark_server_token=SecretStr(TOKEN),
        postmark_webhook_username=SecretStr(HOOK_USER),
        postmark_webhook_password=SecretStr(HOOK_PASSWORD),
        **REAL_PROVIDER_LINKS,
    )
    async with serving_gateway(dev_env.client, configured) as gateway:
        yield gateway


async def test_postmark_webhook_records_become_behaviour_events_once(
    postmark_gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, api: PostmarkApi
) -> None:
    contact_id = new_id("postmark")
    await put_contact(postmark_gateway, contact_id)
    await postmark_gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    await journey_state(
        dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
    )
    [row] = await message_rows(engine, contact_id)
    [delivery] = api.deliveries
    assert row.provider_message_id == delivery.message_id
    [sent] = api.received
    assert {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"} in sent[
        "Headers"
    ]
    now = datetime.now(UTC).isoformat()
    message = {"MessageID": delivery.message_id, "Recipient": f"{contact_id}@example.com"}
    opened = {"RecordType": "Open", "ReceivedAt": now, "FirstOpen": True, **message}
    good = basic(HOOK_USER, HOOK_PASSWORD)

    for authorization in (
        None,
        basic(HOOK_USER, "not-the-password"),
        basic("someone-else", HOOK_PASSWORD),
        "Basic !!!not-base64",
        "Bearer " + HOOK_PASSWORD,
    ):
        refused = await post_record(postmark_gateway, opened, authorization)
        assert refused.status_code == 401, authorization
        assert refused.headers["www-authenticate"].startswith("Basic")
    assert (await post_record(postmark_gateway, b"{not json", good)).status_code == 400

    records: list[dict[str, Any]] = [
        {"RecordType": "Delivery", "DeliveredAt": now, "Details": "250 OK", **message},
        opened,
        {"RecordType": "Click", "ReceivedAt": now, "OriginalLink": "https://x.test/p", **message},
        {"RecordType": "Bounce", "Type": "Transient", "TypeCode": 2, "ID": 1, "BouncedAt": now,
         **message},
        {"RecordType": "Open", "ReceivedAt": now, "MessageID": "not-ours"},
    ]  # fmt: skip
    answers = [(await post_record(postmark_gateway, r, good)).json() for r in records]
    assert [a["accepted"] for a in answers] == [1, 1, 1, 0, 0]
    assert len(answers[-1]["unknown_messages"]) == 1
    again = await post_record(postmark_gateway, opened, good)
    assert again.json() == {"accepted": 0, "duplicate": 1, "unknown_messages": []}

    await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted == 3)
    async with session_factory(engine)() as session:
        events = (
            await session.exec(
                select(ContactEvent.type).where(col(ContactEvent.contact_id) == contact_id)
            )
        ).all()
    assert sorted(t for t in events if t.startswith("email_")) == [
        "email_clicked",
        "email_delivered",
        "email_opened",
    ]


async def test_postmark_webhook_is_off_without_its_credentials(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as gateway:
        response = await post_record(gateway, record("Delivery", DeliveredAt=AT), None)

    assert response.status_code == 404
    assert response.json()["detail"] == "Postmark webhooks are not configured"
