"""Concurrent writes to one contact never answer 500: the real gateway, requests really in flight
together, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from models.db import create_engine, session_factory
from models.settings import Settings
from models.tables import Contact, Suppression
from starter.dev.postgres import PostgresCluster, postgres_unavailable
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.test_api import contact_state, new_id

ROUNDS = 4


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with PostgresCluster() as cluster:
        yield cluster


WITHOUT_POSTGRES = pytest.mark.skipif(
    postgres_unavailable() is not None, reason=str(postgres_unavailable())
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=WITHOUT_POSTGRES)])
async def gateway(
    request: pytest.FixtureRequest, dev_env: WorkflowEnvironment, settings: Settings
) -> AsyncIterator[Gateway]:
    changes: dict[str, Any] = {}
    if request.param == "postgresql":
        changes["database_url"] = request.getfixturevalue("postgres").url
    async with serving_gateway(dev_env.client, gateway_settings(settings, **changes)) as served:
        yield served


async def at_once(*requests: Any) -> list[httpx.Response]:
    """Send the requests together (each on its own connection)."""
    return list(await asyncio.gather(*requests))


def statuses(responses: list[httpx.Response]) -> list[int]:
    return [response.status_code for response in responses]


async def contact_row(gateway: Gateway, contact_id: str) -> Contact | None:
    engine = create_engine(gateway.settings.database_url)
    try:
        async with session_factory(engine)() as session:
            return await session.get(Contact, contact_id)
    finally:
        await engine.dispose()


async def test_identical_puts_of_a_new_contact_create_it_once(gateway: Gateway) -> None:
    for _ in range(ROUNDS):
        contact_id = new_id("crm-sync")
        body = {"email": f"{contact_id}@example.com", "first_name": "Kim", "tags": ["src_crm"]}
        answers = await at_once(
            *(gateway.http.put(f"/v1/contacts/{contact_id}", json=body) for _ in range(4))
        )
        assert statuses(answers) == [200] * 4, [a.text for a in answers]
        assert {a.json()["created_at"] for a in answers} == {answers[0].json()["created_at"]}


async def test_a_put_racing_a_delete_lands_before_the_erasure_or_is_refused(
    gateway: Gateway,
) -> None:
    for _ in range(ROUNDS):
        contact_id = new_id("race")
        path = f"/v1/contacts/{contact_id}"
        created = await gateway.http.put(path, json={"phone": "+14155550100"})
        assert created.status_code == 200, created.text
        erasing = asyncio.create_task(gateway.http.delete(path))
        puts: list[httpx.Response] = []
        while not erasing.done() or not puts:  # PUTs all the way through the erasure
            puts += await at_once(
                *(gateway.http.put(path, json={"phone": f"+1415555010{n}"}) for n in range(2))
            )
        assert (await erasing).status_code == 200
        for put in puts:
            assert put.status_code in (200, 410), put.text
        assert puts[-1].status_code == 410
        assert "was erased" in puts[-1].json()["detail"]
        assert await contact_row(gateway, contact_id) is None, "the erasure left the contact"
        assert (await gateway.http.get(path)).status_code == 410


async def test_concurrent_posts_of_one_event_id_are_accepted_once(
    gateway: Gateway, dev_env: WorkflowEnvironment
) -> None:
    contact_id = new_id("dup")
    await gateway.http.put(f"/v1/contacts/{contact_id}", json={"first_name": "Dee"})
    for round_ in range(ROUNDS):
        event = {"event_id": f"e{round_}", "contact_id": contact_id, "type": "website_visited"}
        answers = await at_once(*(gateway.http.post("/v1/events", json=event) for _ in range(4)))
        assert sorted(statuses(answers)) == [200, 200, 200, 202], [a.text for a in answers]
        kinds = sorted(answer.json()["results"][0]["status"] for answer in answers)
        assert kinds == ["accepted", "duplicate", "duplicate", "duplicate"]
    state = await contact_state(dev_env.client, contact_id, lambda s: s.events_accepted == ROUNDS)
    assert state.score == 2 * ROUNDS  # each visit scored once


async def test_events_racing_a_delete_are_taken_or_refused_and_never_revive_the_contact(
    gateway: Gateway,
) -> None:
    for _ in range(ROUNDS):
        contact_id = new_id("late")
        await gateway.http.put(
            f"/v1/contacts/{contact_id}",
            json={"email": f"{contact_id}@example.com", "phone": "+15035550111"},
        )
        events = [
            {"event_id": f"u{n}", "contact_id": contact_id, "type": "unsubscribed"}
            for n in range(3)
        ] + [{"event_id": "s", "contact_id": contact_id, "type": "subscribed"}]
        erased, *posted = await at_once(
            gateway.http.delete(f"/v1/contacts/{contact_id}"),
            *(gateway.http.post("/v1/events", json=event) for event in events),
        )
        assert erased.status_code == 200, erased.text
        for answer in posted:
            assert answer.status_code in (202, 410), answer.text
        after = await gateway.http.post(
            "/v1/events", json={"event_id": "after", "contact_id": contact_id, "type": "x"}
        )
        assert after.status_code == 410
        assert await contact_row(gateway, contact_id) is None
    engine = create_engine(gateway.settings.database_url)
    try:
        async with session_factory(engine)() as session:
            suppressions = (await session.exec(select(Suppression))).all()
    finally:
        await engine.dispose()
    assert all(row.contact_id is None for row in suppressions), "erased contacts stay unlinked"
