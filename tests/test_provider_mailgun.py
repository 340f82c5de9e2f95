"""Mailgun: the adapter against a loopback Mailgun, and `/webhooks/mailgun` through the gateway.

The fake reproduces what these pages document:

- https://documentation.mailgun.com/docs/mailgun/api-reference/openapi-final/tag/Messages/
  (`POST /v3/{domain}/messages`, form-encoded, basic auth `api:<key>`, fields `from`,
  `to`, `subject`, `text`, `html`, `h:<header>`, `v:<variable>`; answer `{"id":
  "<…>", "message": "Queued. Thank you."}`; errors `{"message": "…"}`, e.g. 400 `to
  parameter is not a valid address. please check documentation`, 401 `Forbidden`,
  404 for an unknown domain, 429 with `Retry-After`);
- https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/#securing-webhooks
  and https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
  (`signature`: `timestamp`, a 50-character `token`, the hex HMAC-SHA256 of timestamp
  and token keyed with the webhook signing key; cache tokens to refuse replays);
- https://documentation.mailgun.com/docs/mailgun/user-manual/events/ (`event-data`:
  `id`, `event`, `timestamp`, `severity` of `failed`, `url` of `clicked`,
  `message.headers.message-id` without angle brackets).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from activities.providers import DeliveryError, MailgunEmailProvider, email_provider_from_settings
from models.db import session_factory
from models.settings import Settings
from models.tables import ContactEvent
from tests.factories import message_rows, outgoing_email
from tests.fake_api import Reply
from tests.gateway import REAL_PROVIDER_LINKS, Gateway, gateway_settings, serving_gateway
from tests.provider_fake import UNSUBSCRIBE_URL, ProviderFake, Request, with_unsubscribe
from tests.test_api import journey_state, new_id, put_contact
from tests.test_journey_qa import qa

API_KEY = "key-" + "m" * 32
DOMAIN = "mg.acme.test"
SIGNING_KEY = secrets.token_hex(16)
INVALID_TO = "to parameter is not a valid address. please check documentation"
_ADDRESS = re.compile(r"(?:[^<>@\s]+@[^<>@\s]+\.[a-z]+|[^<>]*<[^<>@\s]+@[^<>@\s]+\.[a-z]+>)")


class FakeMailgun(ProviderFake):
    """Mailgun's `POST /v3/{domain}/messages`, as documented."""

    def __init__(self) -> None:
        self.sent: list[dict[str, list[str]]] = []
        self.answered: list[str] = []
        super().__init__(self.respond)

    def respond(self, request: Request) -> Reply:
        basic = base64.b64encode(f"api:{API_KEY}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return Reply(401, "Forbidden")
        if request.path != f"/v3/{DOMAIN}/messages":
            return Reply(404, {"message": "Domain not found"})
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return Reply(400, {"message": "'from' parameter is missing"})
        form = request.form()
        for field in ("from", "to", "subject"):
            if field not in form:
                return Reply(400, {"message": f"'{field}' parameter is missing"})
        if not all(_ADDRESS.fullmatch(to) for to in form["to"]):
            return Reply(400, {"message": INVALID_TO})
        self.sent.append(form)
        self.answered.append(f"<20250304093000.{len(self.sent)}.F00D@{DOMAIN}>")
        return Reply(200, {"id": self.answered[-1], "message": "Queued. Thank you."})


@pytest.fixture
def mailgun() -> Iterator[FakeMailgun]:
    with FakeMailgun() as server:
        yield server


def provider(mailgun: FakeMailgun, *, key: str = API_KEY) -> MailgunEmailProvider:
    return MailgunEmailProvider(key, domain=DOMAIN, base_url=mailgun.url, timeout=5)


async def failure(mailgun: FakeMailgun, *replies: Reply, key: str = API_KEY) -> DeliveryError:
    mailgun.answer(*replies)
    with pytest.raises(DeliveryError) as caught:
        await provider(mailgun, key=key).deliver(outgoing_email())
    return caught.value


# --- sending -------------------------------------------------------------------------------


async def test_email_is_posted_as_a_form_with_headers_variables_and_basic_auth(
    mailgun: FakeMailgun,
) -> None:
    email = with_unsubscribe(outgoing_email())

    message_id = await provider(mailgun).deliver(email)

    assert message_id == f"20250304093000.1.F00D@{DOMAIN}"  # as the webhooks name it
    assert mailgun.sent == [
        {
            "from": ["Grace from Acme <grace@acme.test>"],
            "to": ["ada@example.com"],
            "subject": ["Welcome to Acme, Ada"],
            "text": ["Hi Ada, welcome aboard."],
            "html": ["<p>Hi Ada, welcome aboard.</p>"],
            "h:Reply-To": ["hello@acme.test"],
            "h:Message-Id": [email.message_id],
            "h:X-Journey": ["welcome-series"],
            "h:X-Journey-Step": ["day0"],
            "h:List-Unsubscribe": [f"<{UNSUBSCRIBE_URL}>"],
            "h:List-Unsubscribe-Post": ["List-Unsubscribe=One-Click"],
            "v:idempotency-key": ["welcome-series-ada/day0"],
            "v:journey": ["welcome-series"],
            "v:step": ["day0"],
        }
    ]


async def test_an_invalid_to_address_is_an_invalid_recipient(mailgun: FakeMailgun) -> None:
    with pytest.raises(DeliveryError) as caught:
        await provider(mailgun).deliver(replace(outgoing_email(), to_address="ada at example"))

    assert caught.value.permanent and caught.value.invalid_recipient
    assert str(caught.value) == f"Mailgun answered HTTP 400: {INVALID_TO}"


async def test_another_invalid_address_fails_the_step_without_suppressing(
    mailgun: FakeMailgun,
) -> None:
    caught = await failure(
        mailgun, Reply(400, {"message": "from parameter is not a valid address"})
    )

    assert (caught.permanent, caught.invalid_recipient, caught.status_code) == (True, False, 400)


async def test_a_wrong_key_fails_the_step(mailgun: FakeMailgun) -> None:
    caught = await failure(mailgun, key="key-wrong")

    assert (caught.permanent, caught.invalid_recipient, caught.status_code) == (True, False, 401)
    assert str(caught) == "Mailgun answered HTTP 401: Forbidden"


async def test_an_unknown_domain_fails_the_step(mailgun: FakeMailgun) -> None:
    with pytest.raises(DeliveryError) as caught:
        await MailgunEmailProvider(API_KEY, domain="mg.other.test", base_url=mailgun.url).deliver(
            outgoing_email()
        )

    assert (caught.value.permanent, caught.value.status_code) == (True, 404)


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(429, {"message": "Too many requests"}, {"Retry-After": "4"}), 4),
        (Reply(500, {"message": "Internal error"}), None),
        (Reply(503, "Service Unavailable"), None),
    ],
)
async def test_rate_limits_and_server_errors_are_retried(
    mailgun: FakeMailgun, reply: Reply, retry_after: int | None
) -> None:
    caught = await failure(mailgun, reply)

    assert not caught.permanent
    assert caught.retry_after == (None if retry_after is None else timedelta(seconds=retry_after))


def test_the_factory_needs_key_and_domain_and_takes_the_eu_region() -> None:
    with pytest.raises(ValueError, match="EMAIL_PROVIDER=mailgun needs MAILGUN_API_KEY"):
        email_provider_from_settings(Settings(email_provider="mailgun", mailgun_domain=DOMAIN))
    with pytest.raises(ValueError, match="EMAIL_PROVIDER=mailgun needs MAILGUN_DOMAIN"):
        email_provider_from_settings(
            Settings(email_provider="mailgun", mailgun_api_key=SecretStr(API_KEY))
        )

    chosen = email_provider_from_settings(
        Settings(
            email_provider="mailgun",
            mailgun_api_key=SecretStr(API_KEY),
            mailgun_domain=DOMAIN,
            mailgun_api_url="https://api.eu.mailgun.net",
        )
    )
    assert isinstance(chosen, MailgunEmailProvider)
    assert (chosen.name, chosen.domain) == ("mailgun", DOMAIN)


# --- the webhook ---------------------------------------------------------------------------


@pytest.fixture
async def gateway(
    dev_env: WorkflowEnvironment, settings: Settings, mailgun: FakeMailgun
) -> AsyncIterator[Gateway]:
    """The gateway and worker, sending through the fake Mailgun, taking its webhooks."""
    through_mailgun = gateway_settings(
        settings,
        email_provider="mailgun",
        mailgun_api_url=mailgun.url,
        mailgun_api_key=SecretStr(API_KEY),
        mailgun_domain=DOMAIN,
        mailgun_webhook_signing_key=SecretStr(SIGNING_KEY),
        **REAL_PROVIDER_LINKS,
    )
    async with serving_gateway(dev_env.client, through_mailgun) as served:
        yield served


def signature(*, key: str = SIGNING_KEY, timestamp: int | None = None) -> dict[str, str]:
    """A `signature` object as Mailgun signs one: a fresh token, now."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = secrets.token_hex(25)
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def signed_body(event_data: dict[str, object]) -> dict[str, object]:
    return {"signature": signature(), "event-data": event_data}


def event(kind: str, message_id: str, event_id: str, **data: object) -> dict[str, object]:
    return {
        "id": event_id,
        "event": kind,
        "timestamp": time.time(),
        "recipient": "someone@example.com",
        "message": {"headers": {"message-id": message_id}},
        **data,
    }


async def post(gateway: Gateway, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        return await client.post(
            "/webhooks/mailgun", content=content, headers={"Content-Type": "application/json"}
        )


async def email_events(engine: AsyncEngine, contact_id: str, count: int) -> list[ContactEvent]:
    """The contact's email and unsubscribe events once there are `count` (up to 20 s)."""
    rows: list[ContactEvent] = []
    for _ in range(200):
        async with session_factory(engine)() as session:
            found = await session.exec(
                select(ContactEvent).where(ContactEvent.contact_id == contact_id)
            )
            rows = [row for row in found.all() if row.event_id.startswith("mailgun-")]
        if len(rows) >= count:
            return sorted(rows, key=lambda row: row.event_id)
        await asyncio.sleep(0.1)
    return rows


async def test_signed_mailgun_events_become_behaviour_events_once(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, mailgun: FakeMailgun
) -> None:
    contact_id = new_id("mailgun")
    await put_contact(gateway, contact_id)
    await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    await journey_state(
        dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
    )
    [row] = await message_rows(engine, contact_id)
    message_id = mailgun.answered[0].strip("<>")
    assert (row.provider, row.provider_message_id) == ("mailgun", message_id)
    opened = event("opened", message_id, "ev-1")

    # Refused, and nothing changes: malformed, unsigned, wrongly signed, stale, tampered.
    assert (await post(gateway, b"{not json")).status_code == 400
    assert (await post(gateway, {"event-data": opened})).status_code == 400
    wrong = await post(gateway, {"signature": signature(key="not-the-key"), "event-data": opened})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "webhook signature does not match")
    stale_signature = signature(timestamp=int(time.time()) - 600)
    stale = await post(gateway, {"signature": stale_signature, "event-data": opened})
    assert (stale.status_code, stale.json()["detail"]) == (401, "webhook signature has expired")
    forged = {**signature(), "token": secrets.token_hex(25)}
    assert (await post(gateway, {"signature": forged, "event-data": opened})).status_code == 401

    signed = signed_body(opened)
    taken = await post(gateway, signed)
    assert taken.json() == {"accepted": 1, "duplicate": 0, "unknown_messages": []}
    replayed = await post(gateway, signed)
    assert (replayed.status_code, replayed.json()["detail"]) == (401, "webhook token was replayed")
    resent = await post(gateway, signed_body(opened))  # Mailgun's retry: a new token
    assert resent.json() == {"accepted": 0, "duplicate": 1, "unknown_messages": []}

    link = "https://northwind.example/playbook"
    others = [
        event("clicked", message_id, "ev-2", url=link),
        event("failed", message_id, "ev-3", severity="temporary"),
        event("failed", f"<{message_id}>", "ev-4", severity="permanent"),
        event("unsubscribed", message_id, "ev-5"),
        event("delivered", message_id, "ev-6"),
        event("complained", message_id, "ev-7"),
        event("accepted", message_id, "ev-8"),
        event("opened", "elsewhere@mg.other.test", "ev-9"),
    ]
    answers = [(await post(gateway, signed_body(e))).json() for e in others]
    assert [answer["accepted"] for answer in answers] == [1, 1, 1, 1, 1, 1, 0, 0]
    assert answers[-1]["unknown_messages"] == ["ev-9"]

    rows = await email_events(engine, contact_id, 7)
    assert [(r.event_id, r.type) for r in rows] == [
        ("mailgun-webhook-ev-1", "email_opened"),
        ("mailgun-webhook-ev-2", "email_clicked"),
        ("mailgun-webhook-ev-3", "email_bounced"),
        ("mailgun-webhook-ev-4", "email_bounced"),
        ("mailgun-webhook-ev-5", "unsubscribed"),
        ("mailgun-webhook-ev-6", "email_delivered"),
        ("mailgun-webhook-ev-7", "email_complained"),
    ]
    assert rows[1].properties["url"] == link
    assert [rows[2].properties["bounce_type"], rows[3].properties["bounce_type"]] == [
        "soft",
        "hard",
    ]
    assert rows[4].properties["channel"] == "email"


async def test_mailgun_webhook_is_off_without_its_key(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    async with serving_gateway(dev_env.client, gateway_settings(settings), worker=False) as gw:
        response = await post(
            gw, {"signature": signature(), "event-data": event("opened", "x", "e")}
        )

    assert (response.status_code, response.json()["detail"]) == (
        404,
        "Mailgun webhooks are not configured",
    )


async def test_test_send_goes_through_mailgun(settings: Settings, mailgun: FakeMailgun) -> None:
    done = await qa(
        settings,
        "test-send",
        "welcome-series/day0",
        "--to",
        "me@example.com",
        EMAIL_PROVIDER="mailgun",
        MAILGUN_API_URL=mailgun.url,
        MAILGUN_API_KEY=API_KEY,
        MAILGUN_DOMAIN=DOMAIN,
    )

    assert done.returncode == 0, done.stderr
    assert "through mailgun" in done.stdout
    [form] = mailgun.sent
    assert form["to"] == ["me@example.com"]
    assert form["subject"][0].startswith("[TEST] ")
    assert form["h:X-Journeys-Test"] == ["1"]
