"""The contact workflow on the time-skipping server (real worker, DB file, outbox).

Scores are checked against values computed by hand from seed 000's table:
pricing +10 (−2/7 d), click +3 (−1/14 d), visit +2 (−1/14 d), demo +25 (no
decay), open +1 (−1/30 d); bands 0–10 Cold, 11–25 Warming, 26–50 MQL,
51–75 SQL, 76+ Hot.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.contact_workflow import ContactInput, ContactState, EventBatch
from models.db import session_factory
from models.events import BehaviorEvent
from models.search_attributes import LEAD_SCORE, LIFECYCLE_STAGE
from models.settings import Settings
from models.tables import Contact, ContactEvent
from starter.operations import contact_workflow_id, forward_event, signal_contact
from tests.factories import add_contact

Handle = WorkflowHandle[Any, ContactState]


class Contacts:
    """Sends events the way the gateway does, and reads the contact workflow back."""

    def __init__(self, env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine) -> None:
        self.env, self.settings, self.engine = env, settings, engine

    async def send(
        self,
        contact_id: str,
        event_type: str,
        *,
        event_id: str | None = None,
        at: datetime | None = None,
        **properties: Any,
    ) -> BehaviorEvent:
        event = BehaviorEvent(
            event_id=event_id or f"evt-{uuid.uuid4()}",
            contact_id=contact_id,
            type=event_type,
            occurred_at=at or await self.env.get_current_time(),
            properties=properties,
        )
        await forward_event(
            self.env.client, self.engine, event, task_queue=self.settings.task_queue
        )
        return event

    def handle(self, contact_id: str) -> Handle:
        return self.env.client.get_workflow_handle(
            contact_workflow_id(contact_id), result_type=ContactState
        )

    async def state_when(
        self, contact_id: str, condition: Callable[[ContactState], bool]
    ) -> ContactState:
        """The contact's state once `condition` holds (polled, no time skipped)."""
        state = None
        for _ in range(300):
            state = await self.handle(contact_id).query("state", result_type=ContactState)
            if condition(state):
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition never held; last state: {state}")


@pytest.fixture
def contacts(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> Contacts:
    return Contacts(time_skipping_env, settings, engine)


@pytest.fixture
async def worker(
    time_skipping_env: WorkflowEnvironment, make_worker: Callable[[Client], Worker]
) -> Any:
    async with make_worker(time_skipping_env.client) as running:
        yield running


async def test_scores_decay_over_7_14_30_60_days_and_drop_a_band_by_decay_alone(
    contacts: Contacts, worker: Worker, time_skipping_env: WorkflowEnvironment
) -> None:
    """No contact row: scoring only (no CRM, no hand-off)."""
    for event_type in ("pricing_page_viewed", "email_clicked", "website_visited", "demo_requested"):
        await contacts.send("decay", event_type)
    state = await contacts.state_when("decay", lambda s: s.events_accepted == 4)
    assert (state.score, state.band) == (10 + 3 + 2 + 25, "MQL")
    assert state.breakdown == {
        "demo_requested": 25,
        "email_clicked": 3,
        "pricing_page_viewed": 10,
        "website_visited": 2,
    }
    # day 7: pricing 8 | day 14: pricing 6, click 2, visit 1 | day 30: pricing 10-2*4,
    # click 3-2, visit 0 | day 60: pricing 0, click 0 → demo alone: 25, Warming.
    for days, expected, band in (
        (7, 38, "MQL"),
        (14, 34, "MQL"),
        (30, 28, "MQL"),
        (60, 25, "Warming"),
    ):
        await time_skipping_env.sleep(timedelta(days=days) - (await _elapsed(contacts, "decay")))
        state = await contacts.state_when("decay", lambda s, e=expected: s.score == e)
        assert state.band == band, f"day {days}"
    description = await contacts.handle("decay").describe()
    assert description.typed_search_attributes.get(LEAD_SCORE) == 25
    assert description.typed_search_attributes.get(LIFECYCLE_STAGE) == "Warming"


async def _elapsed(contacts: Contacts, contact_id: str) -> timedelta:
    start = (await contacts.handle(contact_id).describe()).start_time
    return await contacts.env.get_current_time() - start + timedelta(seconds=1)
