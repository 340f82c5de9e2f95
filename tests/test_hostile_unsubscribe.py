"""Replayed unsubscribe links: a replay counts once; a click after a new opt-in is honoured.

The decision and why are in `starter/api/unsubscribe.py`: a valid link always opts the
contact out, because an opt-out must never be refused and the link can do nothing else; the
event id is derived from the token and what it opts out of (the address and the consent on
the channel), so the same click repeated is one event, while a click after the contact opted
in again, or moved to another address, is a new opt-out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.settings import Settings
from models.tables import ContactEvent, Suppression
from tests.factories import rows_of
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.test_api import journey_state, new_id, put_contact, unsubscribe_token


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def unsubscribes(engine: AsyncEngine, contact_id: str) -> int:
    """How many `unsubscribed` events the contact workflow stored."""
    rows = await rows_of(engine, ContactEvent, contact_id)
    return sum(row.type == "unsubscribed" for row in rows)


async def test_a_replayed_link_counts_once_and_opts_out_again_after_a_new_opt_in(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    client = dev_env.client
    contact_id = new_id("replay")
    path = f"/v1/contacts/{contact_id}/journeys"
    await put_contact(gateway, contact_id)
    await gateway.http.post(f"{path}/welcome-series")
    welcome = f"welcome-series-{contact_id}"
    await journey_state(client, welcome, lambda state: state.messages_sent == 1)
    token = unsubscribe_token((gateway.settings.outbox_dir / welcome / "day0.eml").read_bytes())

    async with httpx.AsyncClient(base_url=gateway.url) as browser:  # a link: no API key

        async def click() -> None:
            done = await browser.post(f"/u/{token}")
            assert done.status_code == 200 and "You are unsubscribed" in done.text

        for _ in range(3):  # clicked again, or a mail client's retry
            await click()
        exited = await journey_state(client, welcome, lambda state: state.status == "exited")
        assert exited.exit_reason == "unsubscribed"
        assert await unsubscribes(engine, contact_id) == 1  # stored before the exit

        # The contact opts in again (same address) and enters a journey; then the old link.
        # (The first opt-out's exits are done: welcome-series, its last, has exited.)
        await put_contact(gateway, contact_id, email_consent={"granted": True, "source": "form:2"})
        enrolled = await gateway.http.post(f"{path}/pricing-abandon")
        pricing = enrolled.json()["workflow_id"]
        await journey_state(client, pricing, lambda state: state.status == "running")
        await click()
        exited = await journey_state(client, pricing, lambda state: state.status == "exited")
        assert exited.exit_reason == "unsubscribed"
        await click()  # and a replay of that click counts once too
        assert await wait_for_unsubscribes(engine, contact_id, 2)

        # The contact moves to a new address: the old link opts that one out as well.
        moved = await gateway.http.put(
            f"/v1/contacts/{contact_id}", json={"email": f"new-{contact_id}@example.com"}
        )
        assert moved.status_code == 200
        await click()
        assert await wait_for_unsubscribes(engine, contact_id, 3)  # not 4: the replay above
    suppressed = await rows_of(engine, Suppression, contact_id)
    assert [row.channel for row in suppressed] == ["email", "email"]  # both addresses


async def wait_for_unsubscribes(engine: AsyncEngine, contact_id: str, count: int) -> bool:
    """Whether the contact has exactly `count` stored `unsubscribed` events once it has as
    many (events of one contact are stored in order)."""
    for _ in range(100):
        stored = await unsubscribes(engine, contact_id)
        if stored >= count:
            return stored == count
        await asyncio.sleep(0.1)
    return False
