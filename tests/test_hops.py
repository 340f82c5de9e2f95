"""The hops from an event to what it causes, counted in real histories on the dev server.

A `subscribed` event posted to the gateway reaches the contact's inbox as a
Day-0 email after a chain of workflow tasks and activities in two
workflows: each is a round trip through the server, which is what the
contact waits for. An `unsubscribed` event makes the journeys exit through
a similar chain. These tests read the histories of `contact-<id>` and
`welcome-series-<id>` after the real thing happened and compare the chain
with the numbers written here: a change that adds a hop fails them (and
one that removes one updates them, saying which).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.messages import DeliveryStatus
from models.settings import Settings
from models.tables import MessageLog
from tests.factories import add_contact
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.kit import journey_run
from tests.local_activities import is_local_activity


@dataclass(frozen=True)
class Hops:
    """A stretch of one workflow's history, as the round trips it took.

    Attributes:
        activities: Activity types scheduled, in order (each: a task dispatched to a
            worker and its result sent back, then a workflow task to act on it).
        local_activities: Local activities run (inside a workflow task: no round trip).
        workflow_tasks: Workflow tasks completed.
        events: History events.
    """

    activities: tuple[str, ...]
    local_activities: int
    workflow_tasks: int
    events: int


def hops(events: list[HistoryEvent], start: int, end: int) -> Hops:
    """The hops of `events[start:end + 1]`."""
    stretch = events[start : end + 1]
    kinds = [event.event_type for event in stretch]
    return Hops(
        activities=tuple(
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in stretch
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ),
        local_activities=sum(map(is_local_activity, stretch)),
        workflow_tasks=kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        events=len(stretch),
    )


def index(events: list[HistoryEvent], found: Callable[[HistoryEvent], bool], after: int = 0) -> int:
    """Index of the first event from `after` on that `found` selects."""
    return next(i for i, event in enumerate(events) if i >= after and found(event))


async def history(client: Client, workflow_id: str) -> list[HistoryEvent]:
    return [event async for event in client.get_workflow_handle(workflow_id).fetch_history_events()]


BUSY = frozenset(
    {EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED}
)


async def settled(client: Client, workflow_id: str) -> None:
    """Wait until the workflow waits: no activity pending, no workflow task to do."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(300):
        description = await handle.describe()
        events = await history(client, workflow_id)
        if not description.raw_description.pending_activities and events[-1].event_type not in BUSY:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow_id} did not settle")


async def day0_sent(engine: AsyncEngine, contact_id: str) -> None:
    key = f"welcome-series-{contact_id}/day0"
    for _ in range(300):
        async with session_factory(engine)() as session:
            row = (
                await session.exec(select(MessageLog).where(MessageLog.idempotency_key == key))
            ).first()
        if row is not None and row.status == DeliveryStatus.SENT:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} was not sent")


async def post(gateway: Gateway, contact_id: str, event_type: str) -> None:
    response = await gateway.http.post(
        "/v1/events",
        json={"event_id": f"{event_type}-1", "contact_id": contact_id, "type": event_type},
    )
    assert response.status_code == 202, response.text


def is_type(kind: EventType.ValueType) -> Callable[[HistoryEvent], bool]:
    return lambda event: event.event_type == kind


def is_send(event: HistoryEvent) -> bool:
    """The scheduling of a `send_message` activity."""
    scheduled = event.activity_task_scheduled_event_attributes
    return (
        event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and scheduled.activity_type.name == "send_message"
    )


def exit_signal_to(workflow_id: str) -> Callable[[HistoryEvent], bool]:
    """The contact workflow's signal to `workflow_id` (the `exit`)."""

    def found(event: HistoryEvent) -> bool:
        initiated = event.signal_external_workflow_execution_initiated_event_attributes
        return (
            event.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
            and initiated.workflow_execution.workflow_id == workflow_id
        )

    return found


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


async def test_subscribed_to_day0_and_unsubscribed_to_exit_take_these_hops(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    client, contact_id = dev_env.client, "hops-1"
    contact, welcome = f"contact-{contact_id}", f"welcome-series-{contact_id}"
    await add_contact(engine, contact_id)

    await post(gateway, contact_id, "subscribed")
    await day0_sent(engine, contact_id)
    await settled(client, contact)
    await settled(client, welcome)

    # subscribed, in the contact workflow: from its signal-with-start to the child's start.
    events = await history(client, contact)
    child = index(events, is_type(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED))
    assert hops(events, 0, child) == Hops(
        activities=(),
        # ingest_events (store the event), scoring_model (the model, once per run),
        # journey_entered (has this contact had a welcome series?), assign_arm (the draw
        # for the subject test's holdout, which hands the arm to the welcome series)
        local_activities=4,
        workflow_tasks=1,  # the signal: stores, scores, draws and starts the child at once
        # 19 with the markers of the patches that make re-engagement and win-back known to
        # the run (`journey-<name>`) and the subject test's (`experiment-welcome-subject`,
        # with its search-attribute upsert): history events, not round trips
        events=19,
    )
    # ...then in the welcome series: from its start to the Day-0 send.
    events = await history(client, welcome)
    send = index(events, is_send)
    assert hops(events, 0, send) == Hops(
        activities=("send_message",),  # the Day-0 email
        local_activities=1,  # record_journey_run: the run log
        workflow_tasks=1,  # the start: records the run and schedules the send
        events=13,
    )

    await post(gateway, contact_id, "unsubscribed")
    await (await journey_run(client, welcome)).result()

    # unsubscribed, in the contact workflow: from the signal to the welcome series' exit.
    events = await history(client, contact)
    signal = index(events, is_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED), after=child)
    exit_signal = index(events, exit_signal_to(welcome), after=signal)
    assert hops(events, signal, exit_signal) == Hops(
        activities=(),
        local_activities=1,  # ingest_events: store the event (and suppress)
        # the signal: stores it and signals every marketing journey at once (nurture,
        # pricing-abandon, abandoned-cart, churn-prevention, onboarding and recycling too, not
        # running here: one by one, each took a workflow task; the one to abandoned-cart is
        # sorted before welcome-series' exit)
        workflow_tasks=1,
        # re-engagement's, recycling's and first-purchase's exit signals come before
        # welcome-series'
        events=17,
    )
    # ...then in the welcome series: from the exit signal to its close.
    events = await history(client, welcome)
    exit_ = index(events, is_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED))
    assert hops(events, exit_, len(events) - 1) == Hops(
        activities=(),
        local_activities=1,  # record_journey_run: the run log, exited
        workflow_tasks=1,  # the signal: records the exit and closes
        events=7,
    )
