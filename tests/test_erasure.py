"""Erasure that sticks: tombstones at every door, keyed suppressions, once-per-contact journeys
after Temporal forgot them, and access requests (export), on the real gateway and CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from models.contact_workflow import ContactInput, ContactState
from models.db import create_engine, migrate, session_factory
from models.events import BehaviorEvent
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from models.tables import Contact, ContactEvent, ErasedContact, Suppression
from rules.suppressions import find_suppression, suppress_address
from rules.unsubscribe import sign_unsubscribe_token
from starter.client import AsyncJourneysClient, GoneError
from starter.dev.toolchain import start_dev_server
from tests.cli import cli_environment, journeys
from tests.factories import message_rows, rows_of
from tests.gateway import FULL_KEY, READ_ONLY_KEY, Gateway, gateway_settings, serving_gateway
from tests.kit import workflow_exists
from tests.test_api import contact_state, journey_state, new_id, put_contact

Row = TypeVar("Row", bound=SQLModel)


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def stored(engine: AsyncEngine, table: type[Row], key: str) -> Row | None:
    async with session_factory(engine)() as session:
        return await session.get(table, key)


async def subscribe_and_get_welcomed(gateway: Gateway, client: Client, contact_id: str) -> None:
    await put_contact(gateway, contact_id, phone="+15035550100")
    posted = await gateway.http.post(
        "/v1/events", json={"event_id": "s1", "contact_id": contact_id, "type": "subscribed"}
    )
    assert posted.status_code == 202, posted.text
    await journey_state(client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1)


async def erase(gateway: Gateway, contact_id: str) -> None:
    erased = await gateway.http.delete(f"/v1/contacts/{contact_id}")
    assert erased.json() == {"contact_id": contact_id, "status": "erased"}


# --- tombstones --------------------------------------------------------------------------


async def test_an_erased_contact_is_refused_at_every_door_and_nothing_starts_again(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    client = dev_env.client
    contact_id = new_id("gone")
    await subscribe_and_get_welcomed(gateway, client, contact_id)
    contact_run = (await client.get_workflow_handle(f"contact-{contact_id}").describe()).run_id
    await erase(gateway, contact_id)
    tombstone = await stored(engine, ErasedContact, contact_id)
    assert tombstone is not None and tombstone.erased_at <= datetime.now(UTC)

    event = {"event_id": "after-1", "contact_id": contact_id, "type": "subscribed"}
    single = await gateway.http.post("/v1/events", json=event)
    assert single.status_code == 410
    assert f"contact {contact_id!r} was erased at" in single.json()["detail"]
    only_erased = await gateway.http.post("/v1/events", json={"events": [event]})
    assert only_erased.status_code == 410
    live = new_id("live")
    mixed = await gateway.http.post(
        "/v1/events",
        json={"events": [event, {"event_id": "l1", "contact_id": live, "type": "x"}]},
    )
    assert mixed.status_code == 202
    [refused, taken] = mixed.json()["results"]
    assert refused["status"] == "rejected"
    assert refused["errors"][0]["loc"] == ["body", "events", 0, "contact_id"]
    assert refused["errors"][0]["type"] == "contact_erased"
    assert taken["status"] == "accepted"

    cli = await journeys(
        "event", contact_id, "subscribed",
        env=cli_environment(settings, client.service_client.config.target_host),
    )  # fmt: skip
    assert cli.returncode == 1
    assert f"contact {contact_id!r} was erased at" in cli.stderr

    for method, path, body in [
        ("PUT", f"/v1/contacts/{contact_id}", {"first_name": "Back"}),
        ("GET", f"/v1/contacts/{contact_id}", None),
        ("POST", f"/v1/contacts/{contact_id}/journeys/welcome-series", None),
    ]:
        answer = await gateway.http.request(method, path, json=body)
        assert answer.status_code == 410, (method, path, answer.text)
        assert "was erased" in answer.json()["detail"]
    again = await gateway.http.delete(f"/v1/contacts/{contact_id}")  # erasing again is fine
    assert again.json()["status"] == "erased"

    token = sign_unsubscribe_token(
        contact_id, "email",
        secret=settings.unsubscribe_secret.get_secret_value(), issued_at=datetime.now(UTC),
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=gateway.url) as browser:
        clicked = await browser.post(f"/u/{token}")
    assert clicked.status_code == 200
    assert "You are unsubscribed" in clicked.text

    # Nothing above started the contact workflow again (the second DELETE was answered
    # from the tombstone), nor the welcome series.
    await asyncio.sleep(1)
    assert await rows_of(engine, ContactEvent, contact_id) == []
    assert await stored(engine, Contact, contact_id) is None
    welcome = await client.get_workflow_handle(f"welcome-series-{contact_id}").describe()
    assert welcome.status != WorkflowExecutionStatus.RUNNING
    latest = await client.get_workflow_handle(f"contact-{contact_id}").describe()
    assert latest.status == WorkflowExecutionStatus.COMPLETED
    assert latest.run_id == contact_run  # the erasing run is the last one
    assert await message_rows(engine, contact_id) == []


def straight_at_temporal(client: Client, settings: Settings, contact_id: str) -> Any:
    """Signal-with-start `contact-{id}` with a `subscribed`, past the gateway and the CLI."""
    subscribed = BehaviorEvent(
        event_id="straight-1", contact_id=contact_id, type="subscribed",
        occurred_at=datetime.now(UTC), properties={"utm_source": "tctl"},
    )  # fmt: skip
    return client.start_workflow(
        "contact",
        ContactInput(contact_id=contact_id),
        id=f"contact-{contact_id}",
        task_queue=settings.task_queue,
        start_signal="event",
        start_signal_args=[subscribed],
        result_type=ContactState,
    )


async def test_a_contact_workflow_started_for_an_id_erased_before_crypto_shredding_stores_nothing(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    client = dev_env.client
    contact_id = new_id("sneak")
    await subscribe_and_get_welcomed(gateway, client, contact_id)
    async with session_factory(engine)() as session:  # erased by a version without the codec:
        session.add(ErasedContact(contact_id=contact_id))  # a tombstone, its data key alive
        await session.delete(await session.get(Contact, contact_id))
        await session.commit()

    handle = await straight_at_temporal(client, settings, contact_id)
    # It finds the tombstone, erases again (destroying the key) and ends: its result is sealed.
    ending = client.get_workflow_handle(handle.id, result_type=RawValue).result()
    await asyncio.wait_for(ending, 30)
    assert [row.event_id for row in await rows_of(engine, ContactEvent, contact_id)] == []
    welcome = await client.get_workflow_handle(f"welcome-series-{contact_id}").describe()
    assert welcome.status != WorkflowExecutionStatus.RUNNING


async def test_a_contact_workflow_started_after_crypto_shredding_cannot_even_read_its_input(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    client = dev_env.client
    contact_id = new_id("shred")
    await subscribe_and_get_welcomed(gateway, client, contact_id)
    await erase(gateway, contact_id)
    again = await gateway.http.delete(f"/v1/contacts/{contact_id}")  # answered from the tombstone
    assert again.json() == {"contact_id": contact_id, "status": "erased"}
    assert (
        not await workflow_exists(client, f"contact-{contact_id}")
        or (await client.get_workflow_handle(f"contact-{contact_id}").describe()).status
        != WorkflowExecutionStatus.RUNNING
    )

    handle = await straight_at_temporal(client, settings, contact_id)
    await asyncio.sleep(3)  # its workflow tasks fail: the input was sealed with a throwaway key
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await rows_of(engine, ContactEvent, contact_id) == []
    assert await stored(engine, Contact, contact_id) is None
    welcome = await client.get_workflow_handle(f"welcome-series-{contact_id}").describe()
    assert welcome.status != WorkflowExecutionStatus.RUNNING
    await handle.terminate(reason="test over")


# --- keyed suppressions ------------------------------------------------------------------


async def test_an_erased_address_imported_again_is_suppressed_by_a_keyed_hash(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    client = dev_env.client
    first, second = new_id("first"), new_id("again")
    await subscribe_and_get_welcomed(gateway, client, first)
    await erase(gateway, first)

    address = f"{first}@example.com"
    await put_contact(gateway, second, email=address.upper())
    await gateway.http.post(
        "/v1/events", json={"event_id": "s1", "contact_id": second, "type": "subscribed"}
    )
    await journey_state(client, f"welcome-series-{second}", lambda s: "day0" in s.steps_done)
    [day0] = await message_rows(engine, second)
    assert (day0.step, day0.status) == ("day0", "suppressed")
    assert day0.status_reason == "address suppressed: erased"

    async with session_factory(engine)() as session:
        rows = (await session.exec(select(Suppression))).all()
    email_rows = [row for row in rows if row.channel == "email"]
    keyed = Suppression.hash_address(address, key=settings.suppression_key())
    assert [(row.address_hash, row.scheme) for row in email_rows] == [(keyed, "hmac-sha256")]
    assert keyed != Suppression.legacy_hash(address)
    assert keyed != Suppression.hash_address(address, key=b"another-key-another-key-another")


async def test_bare_sha256_suppressions_from_before_the_key_still_suppress_and_are_rekeyed(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    key = b"a-production-key-of-32-bytes-at-least"
    try:
        await migrate(engine, "0006")
        async with engine.begin() as connection:  # as revision 0006 wrote them
            await connection.execute(
                text(
                    "INSERT INTO suppressions (channel, address_hash, reason, created_at) "
                    "VALUES ('email', :hash, 'unsubscribed', '2026-01-01 00:00:00')"
                ),
                {"hash": Suppression.legacy_hash("old@example.com")},
            )
        await migrate(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            [row] = (await session.exec(select(Suppression))).all()
            assert row.scheme == "sha256"
            assert await find_suppression(session, "email", "nobody@example.com", key=key) is None
            found = await find_suppression(session, "email", " Old@Example.com", key=key)
            assert found is not None and found.reason == "unsubscribed"
            await session.commit()
        async with sessions() as session:
            [row] = (await session.exec(select(Suppression))).all()
            assert (row.scheme, row.address_hash) == (
                "hmac-sha256",
                Suppression.hash_address("old@example.com", key=key),
            )
            found = await find_suppression(session, "email", "old@example.com", key=key)
            assert found is not None  # still suppressed, now by the keyed row
            await suppress_address(  # idempotent
                session, "email", "old@example.com", key=key, reason="erased", contact_id=None
            )
            await session.commit()
            assert len((await session.exec(select(Suppression))).all()) == 1
    finally:
        await engine.dispose()


# --- once per contact, after Temporal forgot ------------------------------------------------


async def test_a_once_per_contact_journey_stays_once_when_temporal_no_longer_knows_it(
    dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    """A fresh Temporal server on the same database: what retention leaves, and more."""
    contact_id = new_id("once")
    welcome = f"welcome-series-{contact_id}"
    served = gateway_settings(settings)
    async with serving_gateway(dev_env.client, served) as gateway:
        await subscribe_and_get_welcomed(gateway, dev_env.client, contact_id)

    fresh = await start_dev_server(
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        data_converter=dev_env.client.data_converter,  # the session's codec and keys
    )
    try:
        client = fresh.client
        async with serving_gateway(client, served) as gateway:
            again = await gateway.http.post(
                "/v1/events",
                json={"event_id": "s2", "contact_id": contact_id, "type": "subscribed"},
            )
            assert again.status_code == 202, again.text
            state = await contact_state(client, contact_id, lambda s: welcome in s.journeys)
            assert state.events_accepted == 1  # a new contact workflow took the subscription
            assert not await workflow_exists(client, welcome), "the welcome series started again"
            enrolled = await gateway.http.post(f"/v1/contacts/{contact_id}/journeys/welcome-series")
            assert enrolled.status_code == 409
            assert "runs once per contact" in enrolled.json()["detail"]
    finally:
        await fresh.shutdown()
    assert [row.step for row in await message_rows(engine, contact_id)] == ["day0"]


# --- access requests -----------------------------------------------------------------------


async def test_export_returns_everything_held_and_erased_contacts_are_gone(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine, settings: Settings
) -> None:
    client = dev_env.client
    contact_id = new_id("dsar")
    await put_contact(
        gateway, contact_id, first_name="Dana", attributes={"region": "EMEA"}, tags=["src_x"]
    )
    await gateway.http.post(
        "/v1/events",
        json={"events": [
            {"event_id": "e1", "contact_id": contact_id, "type": "subscribed"},
            {"event_id": "e2", "contact_id": contact_id, "type": "pricing_page_viewed",
             "properties": {"plan": "pro"}},
        ]},
    )  # fmt: skip
    await journey_state(client, f"welcome-series-{contact_id}", lambda s: s.messages_sent == 1)
    await contact_state(client, contact_id, lambda s: s.score == 10)
    path = f"/v1/contacts/{contact_id}/export"

    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {READ_ONLY_KEY}"}
    ) as reader:
        assert (await reader.get(path)).status_code == 403  # contacts:export, not :read
    assert (await gateway.http.get("/v1/contacts/nobody-at-all/export")).status_code == 404
    answer = await gateway.http.get(path)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert list(document) == [
        "contact_id", "exported_at", "profile", "consent", "consent_history", "suppressions",
        "events", "messages", "tasks", "notifications", "sla_breaches", "deals", "pipeline",
        "score", "journeys",
    ]  # fmt: skip
    assert [(move["stage"], move["cause"]) for move in document["pipeline"]] == [
        ("lead", "created (src_x)")
    ]
    assert document["profile"]["email"] == f"{contact_id}@example.com"
    assert document["profile"]["attributes"] == {"region": "EMEA"}
    assert document["consent"]["email"]["granted"] is True
    assert document["consent"]["email"]["source"] == "form:test"
    assert [(c["channel"], c["granted"], c["source"]) for c in document["consent_history"]] == [
        ("email", True, "form:test")
    ]
    assert [(e["event_id"], e["type"]) for e in document["events"]] == [
        ("e1", "subscribed"),
        ("e2", "pricing_page_viewed"),
    ]
    assert document["events"][1]["properties"] == {"plan": "pro"}
    assert [(m["journey"], m["step"], m["status"]) for m in document["messages"]] == [
        ("welcome-series", "day0", "sent")
    ]
    current = document["score"]["current"]
    assert (current["score"], current["fit"], current["behavior"]) == (10, 0, 10)
    assert document["score"]["history"] == [
        {"event_id": "e2", "type": "pricing_page_viewed",
         "occurred_at": document["events"][1]["occurred_at"], "points": 10},
    ]  # fmt: skip
    journeys_by_id = {run["workflow_id"]: run for run in document["journeys"]}
    welcome = journeys_by_id[f"welcome-series-{contact_id}"]
    assert welcome["status"] == "running"
    assert [(s["step"], s["status"]) for s in welcome["steps"]] == [("day0", "sent")]
    assert welcome["live_state"]["steps_done"] == ["day0"]

    env = cli_environment(settings, client.service_client.config.target_host)
    printed = await journeys("export", contact_id, env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.json()["events"] == document["events"]
    written = settings.outbox_dir.parent / "export.json"
    to_file = await journeys("export", contact_id, "--output", str(written), env=env)
    assert to_file.returncode == 0, to_file.stderr
    assert json.loads(written.read_text())["messages"] == document["messages"]

    async with AsyncJourneysClient(gateway.url, FULL_KEY) as journeys_api:
        assert (await journeys_api.export_contact(contact_id))["events"] == document["events"]
        await erase(gateway, contact_id)
        with pytest.raises(GoneError, match="was erased"):
            await journeys_api.export_contact(contact_id)
    gone = await gateway.http.get(path)
    assert gone.status_code == 410
    assert "was erased" in gone.json()["detail"]
    refused = await journeys("export", contact_id, env=env)
    assert refused.returncode == 1
    assert f"contact {contact_id!r} was erased at" in refused.stderr
    assert refused.stdout == ""
