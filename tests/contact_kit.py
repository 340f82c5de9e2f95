"""Contact-workflow helpers for tests: send events as the gateway does, read state back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from models.contact_workflow import ContactState
from models.events import BehaviorEvent
from models.journeys import JourneyState
from models.policy import SECONDS_PER_DAY
from models.settings import Settings
from runtime.contact_signals import contact_workflow_id, signal_contact
from starter.services.intake import accept_events

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
        """Send one event through the intake, as the gateway does."""
        event = BehaviorEvent(
            event_id=event_id or f"evt-{uuid.uuid4()}",
            contact_id=contact_id,
            type=event_type,
            occurred_at=at or await self.env.get_current_time(),
            properties=properties,
        )
        await accept_events(
            self.env.client,
            self.engine,
            [event],
            task_queue=self.settings.task_queue,
            day_seconds=SECONDS_PER_DAY,
            suppression_key=self.settings.suppression_key(),
        )
        return event

    async def signal_directly(self, event: BehaviorEvent) -> None:
        """Signal the contact workflow, bypassing the intake's receipts."""
        await signal_contact(
            self.env.client,
            event.contact_id,
            "event",
            event,
            task_queue=self.settings.task_queue,
        )

    def handle(self, contact_id: str) -> Handle:
        return self.env.client.get_workflow_handle(
            contact_workflow_id(contact_id), result_type=ContactState
        )

    async def state_when(
        self, contact_id: str, condition: Callable[[ContactState], bool]
    ) -> ContactState:
        """The contact's state once `condition` holds (polled, no time skipped)."""
        state: ContactState | None = None
        for _ in range(300):
            try:
                state = await self.handle(contact_id).query(
                    "state", result_type=ContactState, rpc_timeout=timedelta(seconds=5)
                )
            except RPCError:  # a query racing a continue-as-new on the test server is lost
                continue
            if condition(state):
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition never held; last state: {state}")


async def journey(client: Client, workflow_id: str) -> JourneyState:
    handle = client.get_workflow_handle(workflow_id, result_type=JourneyState)
    state: JourneyState = await handle.query("state", result_type=JourneyState)
    return state


async def journey_when(
    client: Client, workflow_id: str, condition: Callable[[JourneyState], bool]
) -> JourneyState:
    """A journey's state once `condition` holds (polled; it may not have started yet)."""
    last: object = None
    for _ in range(300):
        try:
            state = await journey(client, workflow_id)
        except RPCError as error:
            last = error
        else:
            if condition(state):
                return state
            last = state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id}: condition never held; last: {last}")
