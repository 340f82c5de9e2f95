"""The HTTP gateway served on loopback, with the real worker and the Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.contact_workflow import ContactState
from models.db import session_factory
from models.journeys import JourneyState
from models.settings import Settings
from models.tables import ContactEvent, EventReceipt, Suppression
from rules.unsubscribe import sign_unsubscribe_token
from starter.api.events import unknown_contact
from starter.api.webhooks import SIGNATURE_HEADER, sign_webhook
from tests.factories import message_rows, rows_of
from tests.gateway import READ_ONLY_KEY, WEBHOOK_SECRET, Gateway, gateway_settings, serving_gateway
from tests.kit import enters_welcome_series


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


def new_id(prefix: str) -> str:
    """A fresh contact id whose sign-up enters the welcome series (the Day-0 subject test
    holds one sign-up in ten out: `tests/kit.py: enters_welcome_series`)."""
    while not enters_welcome_series(contact_id := f"{prefix}-{uuid.uuid4().hex[:8]}"):
        pass
    return contact_id


State = TypeVar("State", ContactState, JourneyState)


async def queried_state(
    client: Client, workflow_id: str, model: type[State], condition: Callable[[State], bool]
) -> State:
    """The workflow's `state` once `condition` holds (polled for up to 20 s)."""
    handle = client.get_workflow_handle(workflow_id)
    state: State | None = None
    for _ in range(200):
        try:
            state = await handle.query("state", result_type=model)
        except RPCError:
            state = None
        if state is not None and condition(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never reached the condition: {state}")


async def contact_state(
    client: Client, contact_id: str, condition: Callable[[ContactState], bool]
) -> ContactState:
    return await queried_state(client, f"contact-{contact_id}", ContactState, condition)


async def journey_state(
    client: Client, workflow_id: str, condition: Callable[[JourneyState], bool]
) -> JourneyState:
    return await queried_state(client, workflow_id, JourneyState, condition)


async def put_contact(gateway: Gateway, contact_id: str, **fields: Any) -> httpx.Response:
    body = {
        "email": f"{contact_id}@example.com",
        "email_consent": {"granted": True, "source": "form:test"},
        **fields,
    }
    response = await gateway.http.put(f"/v1/contacts/{contact_id}", json=body)
    assert response.status_code == 200, response.text
    return response


async def test_single_event_reaches_the_contact_workflow_and_a_retry_is_processed_once(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("single")
    event = {"event_id": "evt-1", "contact_id": contact_id, "type": "pricing_page_viewed"}

    first = await gateway.http.post("/v1/events", json=event)
    assert first.status_code == 202, first.text
    assert first.json()["results"] == [
        {
            "index": 0,
            "event_id": "evt-1",
            "status": "accepted",
            "workflow_id": f"contact-{contact_id}",
            "errors": [],
            "warnings": [unknown_contact(contact_id)],  # kept all the same
        }
    ]
    retry = await gateway.http.post("/v1/events", json=event)
    assert retry.status_code == 200
    assert retry.json()["results"][0]["status"] == "duplicate"

    state = await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted == 1)
    assert state.score == 10  # pricing page +10, once
    assert [row.event_id for row in await rows_of(engine, ContactEvent, contact_id)] == ["evt-1"]

    reused = await gateway.http.post("/v1/events", json={**event, "type": "demo_requested"})
    assert reused.status_code == 409
    assert "already used for a different event" in reused.json()["detail"]

    assigned = await gateway.http.post("/v1/events", json={"contact_id": contact_id, "type": "x"})
    assert assigned.status_code == 202
    assert assigned.json()["results"][0]["event_id"].startswith("evt_")
    await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted == 2)


async def test_a_contact_shows_its_total_fit_and_behaviour_scores(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    """The default profile (seed 000) has no fit rules: the total is all behaviour."""
    contact_id = new_id("scores")
    await put_contact(gateway, contact_id)
    event = {"contact_id": contact_id, "type": "pricing_page_viewed"}
    assert (await gateway.http.post("/v1/events", json=event)).status_code == 202
    await contact_state(dev_env.client, contact_id, lambda s: s.score == 10)
    for _ in range(100):  # the state query answers before the CRM write
        shown = (await gateway.http.get(f"/v1/contacts/{contact_id}")).json()
        if shown["lead_score"] == 10:
            break
        await asyncio.sleep(0.1)
    assert (shown["lead_score"], shown["fit_score"], shown["behavior_score"]) == (10, 0, 10)


async def test_batch_reports_each_event_and_loses_none_of_the_good_ones(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    ada, bob = new_id("batch-ada"), new_id("batch-bob")
    now = datetime.now(UTC)
    events: list[Any] = [
        {"event_id": "a1", "contact_id": ada, "type": "subscribed"},
        {"event_id": "a2", "contact_id": ada, "type": "content_downloaded",
         "occurred_at": (now - timedelta(hours=1)).isoformat()},
        {"event_id": "b1", "contact_id": bob, "type": "Not Snake"},
        {"event_id": "b2", "contact_id": bob, "type": "website_visited",
         "occurred_at": (now + timedelta(days=2)).isoformat()},
        {"event_id": "b3", "contact_id": bob, "type": "website_visited", "surprise": 1},
        "not an event",
        {"event_id": "a1", "contact_id": ada, "type": "subscribed"},  # repeated in the batch
        {"event_id": "b4", "contact_id": bob, "type": "webinar_attended"},
    ]  # fmt: skip
    response = await gateway.http.post("/v1/events", json={"events": events})

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (3, 1, 4)
    statuses = [(result["index"], result["status"]) for result in body["results"]]
    assert statuses == [
        (0, "accepted"), (1, "accepted"), (2, "rejected"), (3, "rejected"),
        (4, "rejected"), (5, "rejected"), (6, "duplicate"), (7, "accepted"),
    ]  # fmt: skip
    errors = {result["index"]: result["errors"] for result in body["results"]}
    assert errors[2][0]["loc"] == ["body", "events", 2, "type"]
    assert errors[3][0]["loc"] == ["body", "events", 3, "occurred_at"]
    assert "in the future" in errors[3][0]["msg"]
    assert errors[4][0]["loc"] == ["body", "events", 4, "surprise"]
    assert errors[4][0]["type"] == "extra_forbidden"

    await contact_state(dev_env.client, ada, lambda s: s.events_accepted == 2)
    await contact_state(dev_env.client, bob, lambda s: s.events_accepted == 1)
    assert sorted(row.event_id for row in await rows_of(engine, ContactEvent, ada)) == ["a1", "a2"]
    assert [row.event_id for row in await rows_of(engine, ContactEvent, bob)] == ["b4"]

    all_bad = await gateway.http.post("/v1/events", json={"events": [{"type": "x"}]})
    assert all_bad.status_code == 422
    assert all_bad.json()["rejected"] == 1


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'{"contact_id": "x", "type": ', 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"events": []}', 400, "non-empty list"),
        (b'{"events": [], "extra": 1}', 400, "unexpected: extra"),
        (b'{"contact_id": 42, "type": "subscribed"}', 422, "contact_id"),
        (b'{"contact_id": "x", "type": "subscribed", "occurred_at": "yesterday"}', 422,
         "occurred_at"),
        (b'{"contact_id": "x"}', 422, "type"),
        (b'{"contact_id": "x", "type": "subscribed", "properties": []}', 422, "properties"),
        (b'{"contact_id": "x", "type": "x", "event_id": "a\\u0000b"}', 422, "event_id"),
        (b'{"contact_id": "x", "type": "x", "properties": {"a": ' + b"[" * 20 + b"]" * 20
         + b"}}", 422, "deeper than 16 levels"),
        (b'{"contact_id": "x", "type": "x", "properties": {"a": ' + b"[" * 90_000
         + b"]" * 90_000 + b"}}", 400, "nests too deeply"),
        (b'{"contact_id": "x", "type": "x", "properties": {"a": "' + b"x" * 40_000 + b'"}}',
         422, "at most 32768"),
    ],
)  # fmt: skip
async def test_malformed_events_get_the_right_status_and_name_the_problem(
    gateway: Gateway, body: bytes, status: int, says: str
) -> None:
    response = await gateway.http.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert says in response.text


async def test_limits_batch_size_and_body_size(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    limited = gateway_settings(settings, api_max_batch_events=3, api_max_body_bytes=2048)
    async with serving_gateway(dev_env.client, limited, worker=False) as gateway:
        four = [{"contact_id": "lim", "type": "x"}] * 4
        too_many = await gateway.http.post("/v1/events", json={"events": four})
        assert too_many.status_code == 422
        assert "at most 3 events" in too_many.json()["detail"]

        big = {"contact_id": "lim", "type": "x", "properties": {"blob": "x" * 4000}}
        too_big = await gateway.http.post("/v1/events", json=big)
        assert too_big.status_code == 413
        assert "larger than 2048 bytes" in too_big.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(5):
                yield b" " * 1000

        streamed = await gateway.http.post(
            "/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413


async def test_keys_and_scopes(gateway: Gateway) -> None:
    contact_id = new_id("auth")
    await put_contact(gateway, contact_id)
    async with httpx.AsyncClient(base_url=gateway.url) as anonymous:
        missing = await anonymous.get(f"/v1/contacts/{contact_id}")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in missing.json()["detail"]
        wrong = await anonymous.get(
            f"/v1/contacts/{contact_id}", headers={"Authorization": "Bearer not-a-key"}
        )
        assert (wrong.status_code, wrong.json()["detail"]) == (401, "unknown API key")

        reader = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
        read = await anonymous.get(f"/v1/contacts/{contact_id}", headers=reader)
        assert read.status_code == 200
        write = await anonymous.post(
            "/v1/events", headers=reader, json={"contact_id": contact_id, "type": "x"}
        )
        assert write.status_code == 403
        assert "lacks the 'events:write' scope" in write.json()["detail"]
        catalogue = await anonymous.get("/v1/journeys", headers=reader)
        assert catalogue.status_code == 403
        assert "lacks the 'journeys:read' scope" in catalogue.json()["detail"]

        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        ready = await anonymous.get("/readyz")
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}
        cors = await anonymous.options(
            "/v1/events",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in cors.headers


async def test_contacts_upsert_read_and_erase(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("crm")
    consent_at = "2026-10-01T09:30:00+02:00"
    created = await put_contact(
        gateway, contact_id,
        email=" Kim.Lee@Example.COM ", first_name="Kim", timezone="Europe/Paris",
        email_consent={"granted": True, "source": "form:webinar", "at": consent_at},
        tags=["src_webinar"], attributes={"region": "EMEA"},
    )  # fmt: skip
    body = created.json()
    assert body["email"] == "kim.lee@example.com"
    assert body["email_consent"] == {
        "granted": True, "source": "form:webinar", "at": "2026-10-01T07:30:00Z",
    }  # fmt: skip
    updated = await gateway.http.put(
        f"/v1/contacts/{contact_id}", json={"tags": ["int_pricing"], "company": "Acme"}
    )
    assert updated.json()["tags"] == ["int_pricing", "src_webinar"]
    assert updated.json()["first_name"] == "Kim"  # kept
    fetched = await gateway.http.get(f"/v1/contacts/{contact_id}")
    assert fetched.json()["company"] == "Acme"

    for fields, field, says in [
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"email": "not-an-address"}, "email", "@"),
        ({"phone": "555-0100"}, "phone", "international format"),
        ({"phone": "+1000000"}, "phone", "not a valid phone number"),
        ({"email_consent": {"granted": True}}, "email_consent", "Field required"),
    ]:
        bad = await gateway.http.put(f"/v1/contacts/{contact_id}", json=fields)
        assert bad.status_code == 422, fields
        assert bad.json()["detail"][0]["loc"][:2] == ["body", field]
        assert says in bad.text
    other = new_id("other")  # a new lead with the address is merged (tests/test_dedupe.py)
    merged = await gateway.http.put(f"/v1/contacts/{other}", json={"email": "KIM.LEE@example.com"})
    assert merged.status_code == 200, merged.text
    assert (merged.json()["id"], merged.json()["merged_from"]) == (contact_id, other)
    third = new_id("third")
    await put_contact(gateway, third)
    taken = await gateway.http.put(f"/v1/contacts/{third}", json={"email": "KIM.LEE@example.com"})
    assert taken.status_code == 409
    assert contact_id in taken.json()["detail"]
    assert (await gateway.http.get("/v1/contacts/nobody-here")).status_code == 404
    assert (await gateway.http.get("/v1/contacts/bad%20id")).status_code == 422

    await gateway.http.post(
        "/v1/events", json={"contact_id": contact_id, "type": "subscribed", "event_id": "s1"}
    )
    await journey_state(
        dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
    )
    erased = await gateway.http.delete(f"/v1/contacts/{contact_id}")
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"contact_id": contact_id, "status": "erased"}
    gone = await gateway.http.get(f"/v1/contacts/{contact_id}")
    assert gone.status_code == 410
    assert "was erased" in gone.json()["detail"]
    assert await rows_of(engine, EventReceipt, contact_id) == []
    assert await message_rows(engine, contact_id) == []


async def test_enrol_list_steer_and_message_log(
    gateway: Gateway, dev_env: WorkflowEnvironment
) -> None:
    contact_id = new_id("enrol")
    await put_contact(gateway, contact_id, first_name="Eve")
    path = f"/v1/contacts/{contact_id}/journeys"

    unknown = await gateway.http.post(f"{path}/no-such-journey")
    assert unknown.status_code == 404
    assert "known: " in unknown.json()["detail"]
    stranger = await gateway.http.post("/v1/contacts/never-created/journeys/welcome-series")
    assert stranger.status_code == 404
    wrong_option = await gateway.http.post(
        f"{path}/welcome-series", json={"subscription_id": "sub-1"}
    )
    assert wrong_option.status_code == 422
    assert "does not take subscription_id" in wrong_option.json()["detail"]

    started = await gateway.http.post(f"{path}/welcome-series", json={"day_seconds": 2})
    assert started.status_code == 201, started.text
    workflow_id = started.json()["workflow_id"]
    assert workflow_id == f"welcome-series-{contact_id}"
    again = await gateway.http.post(f"{path}/welcome-series")
    assert again.status_code == 409
    assert "already enrolled" in again.json()["detail"]

    await journey_state(dev_env.client, workflow_id, lambda s: s.messages_sent == 1)
    paused = await gateway.http.post(f"{path}/welcome-series/pause")
    assert paused.json() == {"action": "pause", "workflow_ids": [workflow_id]}
    await journey_state(dev_env.client, workflow_id, lambda s: s.status == "paused")
    await gateway.http.post(f"{path}/welcome-series/resume")
    await journey_state(dev_env.client, workflow_id, lambda s: s.status == "running")
    exited = await gateway.http.post(
        f"{path}/welcome-series/exit", json={"reason": "bought offline"}
    )
    assert exited.status_code == 200
    final = await journey_state(dev_env.client, workflow_id, lambda s: s.status == "exited")
    assert final.exit_reason == "bought offline"
    await dev_env.client.get_workflow_handle(workflow_id).result()  # closed: nothing to exit
    gone = await gateway.http.post(f"{path}/welcome-series/exit")
    assert gone.status_code == 404

    runs: list[dict[str, Any]] = []
    for _ in range(50):  # visibility is eventually consistent
        runs = (await gateway.http.get(path)).json()
        if any(run["state"] and run["state"]["status"] == "exited" for run in runs):
            break
        await asyncio.sleep(0.1)
    welcome = next(run for run in runs if run["workflow_id"] == workflow_id)
    assert welcome["state"]["exit_reason"] == "bought offline"
    assert welcome["state"]["messages_sent"] >= 1

    messages = (await gateway.http.get(f"/v1/contacts/{contact_id}/messages")).json()
    assert messages[0]["journey"] == "welcome-series"
    assert (messages[0]["step"], messages[0]["status"]) == ("day0", "sent")
    only = await gateway.http.get(
        f"/v1/contacts/{contact_id}/messages", params={"journey": "nurture"}
    )
    assert only.json() == []


def unsubscribe_token(outbox_file: bytes) -> str:
    """The token of the one-click link in a sent email's List-Unsubscribe header."""
    header = "".join(str(message_from_bytes(outbox_file)["List-Unsubscribe"]).split())
    assert header.startswith("<http") and header.endswith(">"), header  # no encoded words
    return header.strip("<>").rsplit("/u/", 1)[1]


async def test_unsubscribe_link_round_trip(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("unsub")
    await put_contact(gateway, contact_id)
    await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    welcome = f"welcome-series-{contact_id}"
    await journey_state(dev_env.client, welcome, lambda s: s.messages_sent == 1)
    sent = (gateway.settings.outbox_dir / welcome / "day0.eml").read_bytes()
    token = unsubscribe_token(sent)

    async with httpx.AsyncClient(base_url=gateway.url) as browser:  # no API key: a link
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        for bad in (forged, "garbage", token.replace(".", "")):
            refused = await browser.post(f"/u/{bad}")
            assert refused.status_code == 400
            assert "Nothing was changed" in refused.text
        expired = sign_unsubscribe_token(
            contact_id, "email",
            secret=gateway.settings.unsubscribe_secret.get_secret_value(),
            issued_at=datetime.now(UTC) - timedelta(days=400),
        )  # fmt: skip
        assert "expired" in (await browser.get(f"/u/{expired}")).text
        assert await rows_of(engine, Suppression, contact_id) == []
        assert (await journey_state(dev_env.client, welcome, bool)).status == "running"

        page = await browser.get(f"/u/{token}")
        assert page.status_code == 200
        assert '<form method="post">' in page.text
        assert (await journey_state(dev_env.client, welcome, bool)).status == "running"

        for _ in range(2):  # a second click (or a mail client's retry) counts once
            done = await browser.post(
                f"/u/{token}",
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200
            assert "You are unsubscribed" in done.text

    exited = await journey_state(dev_env.client, welcome, lambda s: s.status == "exited")
    assert exited.exit_reason == "unsubscribed"
    assert {row.channel for row in await rows_of(engine, Suppression, contact_id)} == {"email"}
    events = await rows_of(engine, ContactEvent, contact_id)
    assert [(row.type, row.properties["source"]) for row in events] == [
        ("unsubscribed", "one-click")
    ]


async def test_signed_email_webhook_becomes_behaviour_events(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = new_id("hook")
    await put_contact(gateway, contact_id)
    await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
    await journey_state(
        dev_env.client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1
    )
    [row] = await message_rows(engine, contact_id)
    assert row.provider_message_id
    now = datetime.now(UTC).isoformat()
    payload = {
        "events": [
            {"id": "pe-1", "type": "opened", "message_id": row.provider_message_id,
             "occurred_at": now},
            {"id": "pe-2", "type": "clicked", "message_id": row.provider_message_id,
             "occurred_at": now, "url": "https://northwind.example/playbook"},
            {"id": "pe-3", "type": "opened", "message_id": "<unknown@elsewhere>",
             "occurred_at": now},
        ]
    }  # fmt: skip
    body = json.dumps(payload).encode()

    async def post(signature: str | bytes | None, content: bytes = body) -> httpx.Response:
        headers = {b"Content-Type": b"application/json"}
        if signature is not None:
            raw = signature if isinstance(signature, bytes) else signature.encode()
            headers[SIGNATURE_HEADER.encode()] = raw
        async with httpx.AsyncClient(base_url=gateway.url) as provider:
            return await provider.post("/webhooks/email", content=content, headers=headers)

    stamp = int(time.time())
    assert (await post(None)).status_code == 401
    wrong = await post(sign_webhook(body, "not-the-secret", timestamp=stamp))
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "webhook signature does not match")
    assert (await post(f"t={stamp},v1=\u00e9".encode("latin-1"))).status_code == 401
    stale = await post(sign_webhook(body, WEBHOOK_SECRET, timestamp=stamp - 3600))
    assert stale.json()["detail"] == "webhook signature has expired"
    tampered = await post(
        sign_webhook(body, WEBHOOK_SECRET, timestamp=stamp), body.replace(b"opened", b"bounced")
    )
    assert tampered.status_code == 401

    signed = sign_webhook(body, WEBHOOK_SECRET, timestamp=stamp)
    taken = await post(signed)
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"accepted": 2, "duplicate": 0, "unknown_messages": ["pe-3"]}
    redelivered = await post(signed)
    assert redelivered.json()["duplicate"] == 2

    state = await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted == 2)
    assert state.breakdown == {"email_opened": 1, "email_clicked": 3}
    async with session_factory(engine)() as session:
        clicked = (
            await session.exec(select(ContactEvent).where(ContactEvent.type == "email_clicked"))
        ).all()
    assert [event.properties["step"] for event in clicked if event.contact_id == contact_id] == [
        "day0"
    ]
