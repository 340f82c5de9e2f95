"""Resend: the adapter against a loopback Resend, and `/webhooks/resend` through the gateway.

The fake reproduces what these pages document:

- https://resend.com/docs/api-reference/emails/send-email (`POST /emails`, bearer key,
  body fields, `tags` names and values of ASCII letters, digits, `_` and `-`,
  answer `{"id": …}`);
- https://resend.com/docs/dashboard/emails/idempotency-keys (`Idempotency-Key`, up to
  256 characters; the same key and body answer the first id and send nothing; the
  same key with another body is `invalid_idempotent_request`);
- https://resend.com/docs/api-reference/errors (`{"statusCode", "name", "message"}`:
  `missing_api_key`, `validation_error` for a key or a field such as `to`,
  `invalid_idempotency_key`, `invalid_idempotent_request`,
  `concurrent_idempotent_requests`, `rate_limit_exceeded`, `daily_quota_exceeded`,
  `monthly_quota_exceeded`, `application_error`);
- https://resend.com/docs/api-reference/rate-limit (`retry-after`, `ratelimit-reset`);
- https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests and
  https://docs.svix.com/receiving/verifying-payloads/how-manual (the `svix-id`,
  `svix-timestamp`, `svix-signature` headers, `v1,<base64 HMAC-SHA256>` keyed with the
  base64 after `whsec_`), and the event pages https://resend.com/docs/webhooks/emails/bounced
  (… `/opened`, `/clicked`, `/delivered`, `/complained`: `type`, `created_at`,
  `data.email_id`, `data.bounce.type`, `data.click.link`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.providers import DeliveryError, ResendEmailProvider, email_provider_from_settings
from models.db import session_factory
from models.settings import Settings
from models.tables import ContactEvent
from starter.api.hooks.resend import sign
from tests.factories import message_rows, outgoing_email
from tests.fake_api import Reply
from tests.gateway import REAL_PROVIDER_LINKS, Gateway, gateway_settings, serving_gateway
from tests.provider_fake import ProviderFake, Request, with_unsubscribe
from tests.test_api import journey_state, new_id, put_contact
from tests.test_journey_qa import qa

API_KEY = "re_test_" + "k" * 24
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
_ADDRESS = re.compile(r"(?:[^<>@\s]+@[^<>@\s]+\.[a-z]+|[^<>]*<[^<>@\s]+@[^<>@\s]+\.[a-z]+>)")


BAD_KEY = "Idempotency keys, if present, must have between 1 and 256 characters."
OTHER_BODY = (
    "Same idempotency key used with a different request payload. "
    "Change your idempotency key or payload."
)
BAD_TO = (
    "Invalid `to` field. The email address needs to follow the `email@example.com` "
    "or `Name <email@example.com>` format."
)
BAD_TAG = "Tags should only contain ASCII letters, numbers, underscores, or dashes."
IN_PROGRESS = "Same idempotency key used while original request is still in progress."


def error(status: int, name: str, message: str, **headers: str) -> Reply:
    """An error answer in Resend's documented shape."""
    return Reply(status, {"statusCode": status, "name": name, "message": message}, headers)


class FakeResend(ProviderFake):
    """Resend's `POST /emails`, as documented: auth, fields, tags, idempotency keys."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self._keys: dict[str, tuple[bytes, str]] = {}
        super().__init__(self.respond)

    def respond(self, request: Request) -> Reply:
        if request.path != "/emails":
            return error(404, "not_found", "The requested endpoint does not exist.")
        authorization = request.headers.get("authorization")
        if authorization is None:
            return error(401, "missing_api_key", "Missing API key in the authorization header.")
        if authorization != f"Bearer {API_KEY}":
            return error(401, "validation_error", "API key is invalid")
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 256:
            return error(400, "invalid_idempotency_key", BAD_KEY)
        return self._idempotent(key, request) if key else self._send(request)

    def _idempotent(self, key: str, request: Request) -> Reply:
        if key in self._keys:
            body, email_id = self._keys[key]
            if body != request.raw:
                return error(409, "invalid_idempotent_request", OTHER_BODY)
            return Reply(200, {"id": email_id})
        reply = self._send(request)
        if reply.status == 200:
            self._keys[key] = (request.raw, reply.body["id"])
        return reply

    def _send(self, request: Request) -> Reply:
        body = request.json()
        missing = [field for field in ("from", "to", "subject") if not body.get(field)]
        if missing:
            return error(422, "missing_required_field", f"Missing `{missing[0]}` field.")
        if not all(_ADDRESS.fullmatch(to) for to in body["to"]):
            return error(422, "validation_error", BAD_TO)
        for tag in body.get("tags", []):
            if not (_TAG.fullmatch(tag["name"]) and _TAG.fullmatch(tag["value"])):
                return error(422, "validation_error", BAD_TAG)
        self.sent.append(body)
        self.answered.append(str(uuid.uuid4()))
        return Reply(200, {"id": self.answered[-1]})


@pytest.fixture
def resend() -> Iterator[FakeResend]:
    with FakeResend() as server:
        yield server


def provider(resend: FakeResend, *, key: str = API_KEY) -> ResendEmailProvider:
    return ResendEmailProvider(key, base_url=resend.url, timeout=5)


async def failure(resend: FakeResend, *replies: Reply, key: str = API_KEY) -> DeliveryError:
    resend.answer(*replies)
    with pytest.raises(DeliveryError) as caught:
        await provider(resend, key=key).deliver(outgoing_email())
    return caught.value


# --- sending -------------------------------------------------------------------------------


async def test_email_is_sent_with_key_auth_unsubscribe_headers_message_id_and_tags(
    resend: FakeResend,
) -> None:
    email = with_unsubscribe(outgoing_email())

    email_id = await provider(resend).deliver(email)

    [request] = resend.received
    assert request.headers["idempotency-key"] == "welcome-series-ada/day0"
    assert resend.sent == [
        {
            "from": "Grace from Acme <grace@acme.test>",
            "to": ["ada@example.com"],
            "reply_to": "hello@acme.test",
            "subject": "Welcome to Acme, Ada",
            "text": "Hi Ada, welcome aboard.",
            "html": "<p>Hi Ada, welcome aboard.</p>",
            "headers": {
                "X-Journey": "welcome-series",
                "X-Journey-Step": "day0",
                "List-Unsubscribe": "<https://journeys.example.test/u/tok>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Message-ID": email.message_id,
            },
            "tags": [
                {"name": "journey", "value": "welcome-series"},
                {"name": "step", "value": "day0"},
            ],
        }
    ]
    assert uuid.UUID(email_id)


async def test_a_retry_with_the_same_key_gets_the_first_id_and_sends_nothing(
    resend: FakeResend,
) -> None:
    first = await provider(resend).deliver(outgoing_email())
    again = await provider(resend).deliver(outgoing_email())

    assert again == first
    assert len(resend.sent) == 1


async def test_a_key_too_long_for_resend_is_sent_as_its_digest_the_same_on_every_retry(
    resend: FakeResend,
) -> None:
    long_key = "welcome-series-" + "c" * 300 + "/day0"

    first = await provider(resend).deliver(outgoing_email(long_key))
    again = await provider(resend).deliver(outgoing_email(long_key))

    assert again == first
    keys = {request.headers["idempotency-key"] for request in resend.received}
    assert [len(key) for key in keys] == [71]  # "sha256-" and 64 hex digits


async def test_tag_values_keep_to_resends_characters(resend: FakeResend) -> None:
    email = replace(
        outgoing_email(), headers={"X-Journey": "welcome-series", "X-Journey-Step": "day0@b"}
    )

    await provider(resend).deliver(email)

    assert resend.sent[0]["tags"] == [
        {"name": "journey", "value": "welcome-series"},
        {"name": "step", "value": "day0_b"},
    ]


async def test_an_invalid_to_address_is_an_invalid_recipient(resend: FakeResend) -> None:
    email = replace(outgoing_email(), to_address="ada at example")

    with pytest.raises(DeliveryError) as caught:
        await provider(resend).deliver(email)

    assert caught.value.permanent and caught.value.invalid_recipient
    assert caught.value.status_code == 422
    assert str(caught.value).startswith("Resend answered HTTP 422 validation_error: Invalid `to`")


async def test_a_wrong_key_fails_the_step_without_suppressing(resend: FakeResend) -> None:
    caught = await failure(resend, key="re_wrong")

    assert (caught.permanent, caught.invalid_recipient, caught.status_code) == (True, False, 401)
    assert "API key is invalid" in str(caught)


async def test_another_validation_error_fails_the_step_without_suppressing(
    resend: FakeResend,
) -> None:
    caught = await failure(resend, error(422, "invalid_from_address", "Invalid `from` field."))

    assert (caught.permanent, caught.invalid_recipient) == (True, False)


async def test_the_same_key_with_another_body_fails_the_step(resend: FakeResend) -> None:
    await provider(resend).deliver(outgoing_email())

    with pytest.raises(DeliveryError) as caught:
        await provider(resend).deliver(outgoing_email(text="Hi Ada, changed."))

    assert (caught.value.permanent, caught.value.status_code) == (True, 409)
    assert "invalid_idempotent_request" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (error(429, "rate_limit_exceeded", "Too many requests.", **{"retry-after": "3"}), 3),
        (error(429, "rate_limit_exceeded", "Too many requests.", **{"ratelimit-reset": "5"}), 5),
        (
            error(429, "daily_quota_exceeded", "You have reached your daily email sending quota."),
            None,
        ),  # fmt: skip
        (
            error(
                409,
                "concurrent_idempotent_requests",
                "Same idempotency key used while original request is still in progress.",
            ),
            None,
        ),  # fmt: skip
        (error(500, "application_error", "An unexpected error occurred."), None),
    ],
)
async def test_transient_errors_are_retried_after_the_delay_resend_asks(
    resend: FakeResend, reply: Reply, retry_after: int | None
) -> None:
    caught = await failure(resend, reply)

    assert not caught.permanent
    assert caught.retry_after == (None if retry_after is None else timedelta(seconds=retry_after))


async def test_the_monthly_quota_fails_the_step(resend: FakeResend) -> None:
    caught = await failure(
        resend,
        error(429, "monthly_quota_exceeded", "You have reached your monthly email sending quota."),
    )

    assert (caught.permanent, caught.invalid_recipient) == (True, False)


def test_the_factory_needs_the_api_key() -> None:
    with pytest.raises(ValueError, match="EMAIL_PROVIDER=resend needs RESEND_API_KEY"):
        email_provider_from_settings(Settings(email_provider="resend"))

    chosen = email_provider_from_settings(
        Settings(email_provider="resend", resend_api_key=SecretStr(API_KEY))
    )
    assert isinstance(chosen, ResendEmailProvider) and chosen.name == "resend"


def test_a_webhook_secret_that_is_not_whsec_base64_is_refused() -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        Settings(resend_webhook_secret=SecretStr("whsec_not base64!"))


async def test_test_send_goes_through_resend(settings: Settings, resend: FakeResend) -> None:
    done = await qa(
        settings,
        "test-send",
        "pricing-abandon/email",
        "--to",
        "me@example.com",
        EMAIL_PROVIDER="resend",
        RESEND_API_URL=resend.url,
        RESEND_API_KEY=API_KEY,
    )

    assert done.returncode == 0, done.stderr
    assert "through resend" in done.stdout
    [sent] = resend.sent
    assert sent["to"] == ["me@example.com"]
    assert sent["subject"] == "[TEST] Quick question about Northwind Campaigns"
    assert sent["headers"]["X-Journeys-Test"] == "1"


# --- the webhook ---------------------------------------------------------------------------


@pytest.fixture
async def gateway(
    dev_env: WorkflowEnvironment, settings: Settings, resend: FakeResend
) -> AsyncIterator[Gateway]:
    """The gateway and worker, sending through the fake Resend, taking its webhooks."""
    through_resend = gateway_settings(
        settings,
        email_provider="resend",
        resend_api_url=resend.url,
        resend_api_key=SecretStr(API_KEY),
        resend_webhook_secret=SecretStr(WEBHOOK_SECRET),
        **REAL_PROVIDER_LINKS,
    )
    async with serving_gateway(dev_env.client, through_resend) as served:
        yield served


def event(kind: str, email_id: str, **data: object) -> bytes:
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {"type": kind, "created_at": created, "data": {"email_id": email_id, **data}}
    return json.dumps(body).encode()


async def post(
    gateway: Gateway,
    body: bytes,
    *,
    svix_id: str,
    timestamp: int | None = None,
    secret: str = WEBHOOK_SECRET,
    signature: str | None = None,
) -> httpx.Response:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "svix-id": svix_id,
        "svix-timestamp": str(stamp),
        "svix-signature": signature or sign(body, secret, svix_id=svix_id, timestamp=stamp),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        return await client.post("/webhooks/resend", content=body, headers=headers)


async def events_of(engine: AsyncEngine, contact_id: str, count: int) -> list[ContactEvent]:
    """The contact's email events once there are `count` (polled for up to 20 s)."""
    rows: list[ContactEvent] = []
    for _ in range(200):
        async with session_factory(engine)() as session:
            found = await session.exec(
                select(ContactEvent).where(ContactEvent.contact_id == contact_id)
            )
            rows = [row for row in found.all() if row.type.startswith("email_")]
        if len(rows) >= count:
            return sorted(rows, key=lambda row: row.type)
        await asyncio.sleep(0.1)
    return rows


async def test_signed_resend_events_become_behaviour_events_once(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, resend: FakeResend
) -> None:
    contact_id = new_id("resend")
    await put_contact(gateway, contact_id)
    await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    await journey_state(
        dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
    )
    [row] = await message_rows(engine, contact_id)
    assert (row.provider, row.provider_message_id) == ("resend", resend.answered[0])
    email_id = resend.answered[0]
    opened = event("email.opened", email_id)
    stamp = int(time.time())

    # Refused, and nothing changes: unsigned, wrongly signed, stale, tampered.
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        unsigned = await client.post("/webhooks/resend", content=opened)
    assert unsigned.status_code == 401
    other_secret = "whsec_" + base64.b64encode(b"s" * 32).decode()
    wrong = await post(gateway, opened, svix_id="msg_1", secret=other_secret)
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "webhook signature does not match")
    stale = await post(gateway, opened, svix_id="msg_1", timestamp=stamp - 600)
    assert (stale.status_code, stale.json()["detail"]) == (401, "webhook signature has expired")
    good = sign(opened, WEBHOOK_SECRET, svix_id="msg_1", timestamp=stamp)
    tampered = await post(
        gateway, event("email.clicked", email_id), svix_id="msg_1", timestamp=stamp, signature=good
    )
    assert tampered.status_code == 401

    # Taken: one of several signatures matching is enough (a secret being rotated).
    taken = await post(
        gateway, opened, svix_id="msg_1", timestamp=stamp, signature=f"v1,b3RoZXI= {good}"
    )
    assert taken.json() == {"accepted": 1, "duplicate": 0, "unknown_messages": []}
    replayed = await post(gateway, opened, svix_id="msg_1", timestamp=stamp, signature=good)
    assert (replayed.status_code, replayed.json()["detail"]) == (
        401,
        "webhook request was replayed",
    )
    retried = await post(gateway, opened, svix_id="msg_1", timestamp=stamp + 1)  # Svix's retry
    assert retried.json() == {"accepted": 0, "duplicate": 1, "unknown_messages": []}

    link = "https://northwind.example/playbook"
    clicked_event = event("email.clicked", email_id, click={"link": link})
    clicked = await post(gateway, clicked_event, svix_id="msg_2")
    bounced_event = event("email.bounced", email_id, bounce={"type": "Permanent"})
    bounced = await post(gateway, bounced_event, svix_id="msg_3")
    delayed = await post(gateway, event("email.delivery_delayed", email_id), svix_id="msg_4")
    unknown = await post(gateway, event("email.opened", "not-ours"), svix_id="msg_5")
    delivered = await post(gateway, event("email.delivered", email_id), svix_id="msg_6")
    complained = await post(gateway, event("email.complained", email_id), svix_id="msg_7")
    answers = [r.json()["accepted"] for r in (clicked, bounced, delayed, delivered, complained)]
    assert answers == [1, 1, 0, 1, 1]
    assert unknown.json()["unknown_messages"] == ["msg_5"]

    rows = await events_of(engine, contact_id, 5)
    assert [(r.type, r.event_id) for r in rows] == [
        ("email_bounced", "resend-webhook-msg_3"),
        ("email_clicked", "resend-webhook-msg_2"),
        ("email_complained", "resend-webhook-msg_7"),
        ("email_delivered", "resend-webhook-msg_6"),
        ("email_opened", "resend-webhook-msg_1"),
    ]
    assert rows[0].properties["bounce_type"] == "hard"
    assert rows[1].properties["url"] == link
    assert rows[4].properties["step"] == "day0"


async def test_resend_webhook_is_off_without_its_secret(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as gw:
        response = await post(gw, event("email.opened", "x"), svix_id="msg_1")

    assert (response.status_code, response.json()["detail"]) == (
        404,
        "Resend webhooks are not configured",
    )
