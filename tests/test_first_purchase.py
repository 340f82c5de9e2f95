"""First purchase, on the time-skipping server: started by entering the segment
`signed-up-no-purchase`, ended by leaving it.

The real worker, database file and outbox: events go through the intake to the
contact workflow, which evaluates the contact's segments after them and routes the
`segment_entered` / `segment_left` events of the segments journeys follow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.db import session_factory
from models.events import SEGMENT_LEFT, BehaviorEvent
from models.journeys import JourneyStatus
from models.settings import Settings
from models.tables import CrmTask, SegmentChange, SegmentMember
from tests.contact_kit import Contacts, journey_when
from tests.factories import add_contact, message_rows
from tests.kit import save_history, sleep_until
from tests.outbox import read_outbox
from workflows.journeys.first_purchase import SEGMENT, FirstPurchase

DAY = timedelta(days=1)


async def _signed_up_a_week_ago(
    contacts: Contacts, env: WorkflowEnvironment, engine: AsyncEngine, contact_id: str
) -> datetime:
    """A contact who subscribed eight days ago (the event arrives late, as from a backlog)."""
    await add_contact(engine, contact_id, first_name="Fay")
    now = await env.get_current_time()
    await contacts.send(contact_id, "subscribed", at=now - 8 * DAY)
    return now


async def _steps_sent(engine: AsyncEngine, contact_id: str) -> list[str]:
    rows = await message_rows(engine, contact_id)
    return [row.step for row in rows if row.journey == FirstPurchase.name]


async def _changes(engine: AsyncEngine, contact_id: str) -> list[str]:
    """The contact entering and leaving the journey's segment, in order."""
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(SegmentChange.change)
            .where(col(SegmentChange.contact_id) == contact_id, SegmentChange.segment == SEGMENT)
            .order_by(col(SegmentChange.id))
        )
        return list(rows.all())


async def test_entering_the_segment_starts_it_offer_favourites_then_a_call_task(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    settings: Settings,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    start = await _signed_up_a_week_ago(contacts, env, engine, "fay")
    workflow_id = f"{FirstPurchase.name}-fay"
    running = await journey_when(env.client, workflow_id, lambda s: s.messages_sent == 1)
    assert running.status == JourneyStatus.RUNNING
    assert await _changes(engine, "fay") == ["entered"]
    subjects = [message["Subject"] for message in read_outbox(settings.outbox_dir).values()]
    assert "Fay, 15% off your first year" in subjects

    await sleep_until(env, start + 2 * DAY + timedelta(minutes=1))
    await journey_when(env.client, workflow_id, lambda s: s.messages_sent == 2)
    assert await _steps_sent(engine, "fay") == ["offer", "favourites"]

    await sleep_until(env, start + 6 * DAY + timedelta(minutes=1))
    done = await journey_when(env.client, workflow_id, lambda s: s.status != "running")
    assert done.status == JourneyStatus.COMPLETED
    async with session_factory(engine)() as session:
        tasks = (await session.exec(select(CrmTask).where(CrmTask.contact_id == "fay"))).all()
    assert [(task.kind, task.assignee_role) for task in tasks] == [
        ("first_purchase_call", "customer_success")
    ]
    await save_history(env.client, workflow_id, "first-purchase-offer-favourites-call")


async def test_leaving_the_segment_ends_it_at_once(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Subscribing again (a new sign-up within the week) takes the contact out of the segment:
    the journey ends with `segment_left` before the favourites."""
    env = time_skipping_env
    await _signed_up_a_week_ago(contacts, env, engine, "gil")
    workflow_id = f"{FirstPurchase.name}-gil"
    await journey_when(env.client, workflow_id, lambda s: s.messages_sent == 1)

    await contacts.send("gil", "subscribed")
    exited = await journey_when(env.client, workflow_id, lambda s: s.status != "running")
    assert (exited.status, exited.exit_reason) == (JourneyStatus.EXITED, SEGMENT_LEFT)
    assert await _changes(engine, "gil") == ["entered", "left"]
    async with session_factory(engine)() as session:
        member = await session.get(SegmentMember, (SEGMENT, "gil"))
    assert member is None
    assert await _steps_sent(engine, "gil") == ["offer"]
    await save_history(env.client, "contact-gil", "contact-entered-and-left-a-segment")


async def test_leaving_another_segment_does_not_end_it_and_a_purchase_does(
    contacts: Contacts,
    worker: Worker,
    engine: AsyncEngine,
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    await _signed_up_a_week_ago(contacts, env, engine, "hal")
    workflow_id = f"{FirstPurchase.name}-hal"
    await journey_when(env.client, workflow_id, lambda s: s.messages_sent == 1)
    other = BehaviorEvent(
        event_id="left-other",
        contact_id="hal",
        type=SEGMENT_LEFT,
        occurred_at=datetime.now(UTC),
        properties={"segment": "email-subscribers"},
    )
    await env.client.get_workflow_handle(workflow_id).signal("event", other)

    await contacts.send("hal", "purchased")  # after the other segment's event, in order
    exited = await journey_when(env.client, workflow_id, lambda s: s.status != "running")
    assert (exited.status, exited.exit_reason) == (JourneyStatus.EXITED, "purchased")
