"""The lead-sla journey on the time-skipping server with the real worker, DB file and outbox.

Hand-off (owner by territory or round robin, follow-up task, notification),
the first-touch SLA (reminder at 5 min, breach at 10 min) met by
`rep_contacted`, the qualification SLA (reminder at 24 h, breach at 48 h) met
by `lead_qualified`, priority raises on `band_changed`, the plan shown to
operators, and an erasure's `exit`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.crm import AssigneeRole, CrmTaskKind, TaskPriority
from models.db import session_factory
from models.handoff import LeadBand, LeadSlaInput
from models.journeys import ExitRequest, JourneyState, JourneyStatus
from models.pipeline import RecyclingInput
from models.settings import Settings
from models.tables import Contact, ContactEvent, CrmTask, Notification, SlaBreach
from tests.factories import add_lead, event_now, rows_of
from tests.kit import sleep_until
from workflows.journeys.lead_sla import LeadSla

Handle = WorkflowHandle[LeadSla, JourneyState]
Row = TypeVar("Row", bound=SQLModel)

MQL = LeadBand(band="MQL", score=30)
MANAGER = "mgr-sam"
ROUND_ROBIN = {"sdr-mia", "sdr-leo"}
CLOSE = timedelta(seconds=30)
"""How far a side effect may be from its due moment (activities run in real time)."""


# --- helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartedJourney:
    """A journey run as its history says it was started."""

    input: RecyclingInput
    parent_id: str


async def recycling_run(env: WorkflowEnvironment, contact_id: str) -> StartedJourney:
    """The `recycling-{contact}` run: its input and the workflow that started it."""
    history = await env.client.get_workflow_handle(f"recycling-{contact_id}").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [journey_input] = await env.client.data_converter.decode(
        started.input.payloads, [RecyclingInput]
    )
    return StartedJourney(
        input=journey_input, parent_id=started.parent_workflow_execution.workflow_id
    )


async def start(
    env: WorkflowEnvironment, settings: Settings, contact_id: str, band: LeadBand = MQL
) -> tuple[Handle, datetime]:
    """Hand the lead off; returns the handle and the hand-off time (workflow start)."""
    journey_input = LeadSlaInput(contact_id=contact_id, band=band)
    handle = await env.client.start_workflow(
        LeadSla.run,
        journey_input,
        id=LeadSla.workflow_id_for(journey_input),
        task_queue=settings.task_queue,
    )
    return handle, (await handle.describe()).start_time


async def owner_of(engine: AsyncEngine, contact_id: str) -> str | None:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact.owner_id


def notification_files(settings: Settings, contact_id: str) -> list[dict[str, Any]]:
    """The notifications the outbox notifier wrote about the lead, oldest key first."""
    folder = settings.outbox_dir / "notifications" / f"lead-sla-{contact_id}"
    return [json.loads(path.read_text()) for path in sorted(folder.rglob("*.json"))]


def kinds(files: list[dict[str, Any]]) -> list[str]:
    return sorted(file["kind"] for file in files)


async def scheduled_activities(handle: Handle) -> list[str]:
    """Sales activity types the run scheduled, in order (from its history); the
    journey-run log every journey writes is left out."""
    history = await handle.fetch_history()
    names = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return [name for name in names if name != "record_journey_run"]


async def settled(handle: Handle, done: Callable[[JourneyState], bool]) -> JourneyState:
    """Poll the `state` query (no time skipping) until `done` holds; fail after 10 s."""
    for _ in range(200):
        state = await handle.query(LeadSla.state)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"journey never reached the expected state: {state}")


async def add_events(
    engine: AsyncEngine, contact_id: str, events: list[tuple[str, datetime]]
) -> None:
    """Store events of the contact as the contact workflow's ingest does."""
    async with session_factory(engine)() as session:
        session.add_all(
            ContactEvent(
                contact_id=contact_id,
                event_id=f"evt-{uuid.uuid4()}",
                type=event_type,
                occurred_at=occurred_at,
                properties={},
                batch_key="test",
            )
            for event_type, occurred_at in events
        )
        await session.commit()


def near(actual: datetime, expected: datetime) -> bool:
    return abs(actual - expected) < CLOSE


# --- SLAs met, reminded, breached ---------------------------------------------------------


async def test_contacted_at_3_min_qualified_at_5_h_demo_at_6_h_completes_without_any_alert(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-met", score_breakdown={"demo_requested": 25, "email_clicked": 5})
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-met")
        await sleep_until(env, handed_off + timedelta(minutes=3))
        await handle.signal(LeadSla.event, await event_now(env, "ls-met", "rep_contacted"))
        await sleep_until(env, handed_off + timedelta(hours=5))
        after_touch = await handle.query(LeadSla.state)
        await handle.signal(LeadSla.event, await event_now(env, "ls-met", "lead_qualified"))
        after_qualified = await settled(handle, lambda s: s.next_step == "sql_follow_up-reminder")
        await sleep_until(env, handed_off + timedelta(hours=6))
        await handle.signal(
            LeadSla.event, await event_now(env, "ls-met", "meeting_held", kind="demo")
        )
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    assert after_touch.status == JourneyStatus.RUNNING
    assert after_touch.next_step == "qualification-reminder"
    # SQL at 5 h: the follow-up SLA's reminder is at half of 72 h from then.
    assert after_qualified.next_wake_at is not None
    assert near(after_qualified.next_wake_at, handed_off + timedelta(hours=5 + 36))
    assert result.status == JourneyStatus.COMPLETED
    assert result.actions_done == ["handoff"]
    assert closed_at is not None and near(closed_at, handed_off + timedelta(hours=6))

    owner = await owner_of(engine, "ls-met")
    assert owner in ROUND_ROBIN
    [handoff_file] = notification_files(settings, "ls-met")
    assert handoff_file["kind"] == "hand_off"
    assert handoff_file["recipient_id"] == owner
    assert handoff_file["title"] == "New MQL lead: Ada (Acme), score 30"
    assert "SLA: first touch within 10 min, qualification within 48 h" in handoff_file["text"]
    assert [
        (n.kind, n.recipient_id, n.status) for n in await rows_of(engine, Notification, "ls-met")
    ] == [("hand_off", owner, "sent")]
    [task, checklist] = await rows_of(engine, CrmTask, "ls-met")
    assert (checklist.kind, checklist.assignee_id) == (CrmTaskKind.LEAD_CHECKLIST, owner)
    assert (task.kind, task.assignee_role, task.assignee_id, task.priority) == (
        CrmTaskKind.LEAD_FOLLOW_UP,
        AssigneeRole.SALES_REP,
        owner,
        TaskPriority.NORMAL,
    )
    assert near(task.due_at, handed_off + timedelta(minutes=10))
    assert await rows_of(engine, SlaBreach, "ls-met") == []
    assert await scheduled_activities(handle) == ["hand_off_lead"]


async def test_no_touch_by_6_min_reminds_the_owner_at_5_and_a_touch_at_7_avoids_the_breach(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-late")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-late")
        await sleep_until(env, handed_off + timedelta(minutes=6))
        at_6_min = await handle.query(LeadSla.state)
        files_at_6_min = notification_files(settings, "ls-late")
        await sleep_until(env, handed_off + timedelta(minutes=7))
        await handle.signal(LeadSla.event, await event_now(env, "ls-late", "rep_contacted"))
        await sleep_until(env, handed_off + timedelta(minutes=15))
        at_15_min = await handle.query(LeadSla.state)
        await handle.signal(LeadSla.exit, ExitRequest(reason="test over"))
        await handle.result()

    owner = await owner_of(engine, "ls-late")
    assert at_6_min.actions_done == ["handoff", "first_touch-reminder"]
    assert at_6_min.next_step == "first_touch-breach"
    assert kinds(files_at_6_min) == ["hand_off", "sla_reminder"]
    [reminder_file] = [f for f in files_at_6_min if f["kind"] == "sla_reminder"]
    assert reminder_file["recipient_id"] == owner
    assert reminder_file["title"].startswith("Reminder: First-touch SLA for Ada (Acme) due ")
    due = handed_off + timedelta(minutes=10)
    assert f"First-touch SLA due {due:%Y-%m-%d %H:%M} UTC" in reminder_file["text"]
    reminders = [
        n for n in await rows_of(engine, Notification, "ls-late") if n.kind == "sla_reminder"
    ]
    assert [(n.recipient_id, n.status) for n in reminders] == [(owner, "sent")]
    assert near(reminders[0].created_at, handed_off + timedelta(minutes=5))

    # Touched at 7 min: the first-touch SLA is met; next is the qualification reminder.
    assert at_15_min.actions_done == ["handoff", "first_touch-reminder"]
    assert at_15_min.next_step == "qualification-reminder"
    assert await rows_of(engine, SlaBreach, "ls-late") == []
    assert kinds(notification_files(settings, "ls-late")) == ["hand_off", "sla_reminder"]
    assert [t.kind for t in await rows_of(engine, CrmTask, "ls-late")] == [
        CrmTaskKind.LEAD_FOLLOW_UP,
        CrmTaskKind.LEAD_CHECKLIST,
    ]


async def test_no_touch_breaches_at_10_min_no_verdict_warns_at_46_h_breaches_at_48_recycled_at_14_d(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-idle")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-idle")
        await sleep_until(env, handed_off + timedelta(minutes=11))
        breaches_at_11_min = await rows_of(engine, SlaBreach, "ls-idle")
        tasks_at_11_min = await rows_of(engine, CrmTask, "ls-idle")
        files_at_11_min = notification_files(settings, "ls-idle")
        await sleep_until(env, handed_off + timedelta(days=13))
        at_13_days = await handle.query(LeadSla.state)
        result = await handle.result()
        closed_at = (await handle.describe()).close_time
        recycling = await recycling_run(env, "ls-idle")

    owner = await owner_of(engine, "ls-idle")
    first_touch_due = handed_off + timedelta(minutes=10)
    qualification_due = handed_off + timedelta(hours=48)

    # At 10 min: the breach, the manager's task and notification.
    [breach] = breaches_at_11_min
    assert (breach.sla, breach.owner_id) == ("first_touch", owner)
    assert near(breach.due_at, first_touch_due) and near(breach.breached_at, first_touch_due)
    [_, _, escalation] = tasks_at_11_min
    assert (escalation.kind, escalation.assignee_role, escalation.assignee_id) == (
        CrmTaskKind.SLA_ESCALATION,
        AssigneeRole.SALES_MANAGER,
        MANAGER,
    )
    assert escalation.title == "First-touch SLA breached: Ada (Acme)"
    assert kinds(files_at_11_min) == ["hand_off", "sla_escalation", "sla_reminder"]
    [to_manager] = [f for f in files_at_11_min if f["kind"] == "sla_escalation"]
    assert to_manager["recipient_id"] == MANAGER
    assert to_manager["title"].startswith("First-touch SLA breached by ")

    # Then the qualification SLA: reminder at 24 h, warning 2 h before due, breach at 48 h.
    # The lead stays handed off; 14 days without interaction recycle it.
    assert (at_13_days.status, at_13_days.next_step) == (JourneyStatus.RUNNING, "recycle")
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "recycled"
    assert result.actions_done == [
        "handoff",
        "first_touch-reminder",
        "first_touch-breach",
        "qualification-reminder",
        "qualification-warning",
        "qualification-breach",
        "recycle",
    ]
    assert closed_at is not None and near(closed_at, handed_off + timedelta(days=14))
    breaches = await rows_of(engine, SlaBreach, "ls-idle")
    assert [(b.sla, b.owner_id) for b in breaches] == [
        ("first_touch", owner),
        ("qualification", owner),
    ]
    assert near(breaches[1].breached_at, qualification_due)
    notifications = await rows_of(engine, Notification, "ls-idle")
    assert [(n.kind, n.recipient_id) for n in notifications] == [
        ("hand_off", owner),
        ("sla_reminder", owner),
        ("sla_escalation", MANAGER),
        ("sla_reminder", owner),
        ("sla_warning", owner),
        ("sla_warning", MANAGER),
        ("sla_escalation", MANAGER),
    ]
    sent_at = [n.created_at for n in notifications]
    for moment, due in zip(
        sent_at,
        (
            handed_off,
            handed_off + timedelta(minutes=5),
            first_touch_due,
            handed_off + timedelta(hours=24),
            handed_off + timedelta(hours=46),
            handed_off + timedelta(hours=46),
            qualification_due,
        ),
        strict=True,
    ):
        assert near(moment, due), (moment, due)
    assert notifications[3].title.startswith("Reminder: Qualification SLA for Ada (Acme) due ")
    assert notifications[4].title.startswith("Warning: Qualification SLA for Ada (Acme) due ")
    assert len(notification_files(settings, "ls-idle")) == 7
    tasks = await rows_of(engine, CrmTask, "ls-idle")
    assert [(t.kind, t.assignee_id, t.title) for t in tasks] == [
        (CrmTaskKind.LEAD_FOLLOW_UP, owner, "Follow up new MQL"),
        (CrmTaskKind.LEAD_CHECKLIST, owner, "Qualification checklist (BANT/CHAMP): Ada (Acme)"),
        (CrmTaskKind.SLA_ESCALATION, MANAGER, "First-touch SLA breached: Ada (Acme)"),
        (CrmTaskKind.SLA_ESCALATION, MANAGER, "Qualification SLA breached: Ada (Acme)"),
    ]
    assert await scheduled_activities(handle) == [
        "hand_off_lead",
        "remind_sla",
        "escalate_sla_breach",
        "remind_sla",
        "warn_sla",
        "escalate_sla_breach",
        "last_interaction",
    ]
    # The recycling journey took the lead, started by this run.
    assert (recycling.input.contact_id, recycling.input.reason) == ("ls-idle", "no-interaction")
    assert recycling.input.day_seconds == 86_400
    assert recycling.parent_id == handle.id


# --- priority -------------------------------------------------------------------------


async def test_hot_at_2_min_opens_one_urgent_call_task_even_if_signalled_twice(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-hot")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-hot")
        await sleep_until(env, handed_off + timedelta(minutes=1))
        # The hand-off band itself is no change of band.
        await handle.signal(LeadSla.band_changed, LeadBand(band="MQL", score=35))
        await sleep_until(env, handed_off + timedelta(minutes=2))
        tasks_before_hot = await rows_of(engine, CrmTask, "ls-hot")
        activities_before_hot = await scheduled_activities(handle)
        await handle.signal(LeadSla.band_changed, LeadBand(band="Hot", score=80))
        raised = await settled(handle, lambda s: "priority-hot" in s.actions_done)
        await handle.signal(LeadSla.band_changed, LeadBand(band="Hot", score=85))
        await sleep_until(env, handed_off + timedelta(minutes=4))
        at_4_min = await handle.query(LeadSla.state)
        await handle.signal(LeadSla.exit, ExitRequest(reason="test over"))
        await handle.result()

    owner = await owner_of(engine, "ls-hot")
    assert [t.kind for t in tasks_before_hot] == [
        CrmTaskKind.LEAD_FOLLOW_UP,
        CrmTaskKind.LEAD_CHECKLIST,
    ]
    assert activities_before_hot == ["hand_off_lead"]
    assert raised.actions_done == ["handoff", "priority-hot"]
    assert at_4_min.actions_done == ["handoff", "priority-hot"]
    assert at_4_min.next_step == "first_touch-reminder"

    tasks = [t for t in await rows_of(engine, CrmTask, "ls-hot") if t.kind != "lead_checklist"]
    assert [(t.kind, t.priority, t.title, t.assignee_id) for t in tasks] == [
        (CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.NORMAL, "Follow up new MQL", owner),
        (CrmTaskKind.LEAD_CALL, TaskPriority.URGENT, "Call now", owner),
    ]
    assert near(tasks[1].due_at, handed_off + timedelta(minutes=2))
    files = notification_files(settings, "ls-hot")
    assert kinds(files) == ["hand_off", "priority"]
    [priority] = [f for f in files if f["kind"] == "priority"]
    assert priority["recipient_id"] == owner
    assert priority["title"] == "Ada (Acme) moved up to Hot: Call now"
    assert "Score: 80 (Hot)" in priority["text"]
    assert [n.kind for n in await rows_of(engine, Notification, "ls-hot")] == [
        "hand_off",
        "priority",
    ]
    assert (await scheduled_activities(handle)).count("raise_lead_priority") == 1


# --- territory --------------------------------------------------------------------------


async def test_an_emea_lead_goes_to_the_territory_rep_others_round_robin(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-emea", attributes={"region": "EMEA"})
    await add_lead(engine, "ls-amer", attributes={"region": "AMER"})
    async with make_worker(env.client):
        handles = [(await start(env, settings, cid))[0] for cid in ("ls-emea", "ls-amer")]
        for handle in handles:
            await settled(handle, lambda s: "handoff" in s.actions_done)
            await handle.signal(LeadSla.exit, ExitRequest(reason="test over"))
            await handle.result()

    assert await owner_of(engine, "ls-emea") == "sdr-ines"
    assert {t.assignee_id for t in await rows_of(engine, CrmTask, "ls-emea")} == {"sdr-ines"}
    assert [f["recipient_id"] for f in notification_files(settings, "ls-emea")] == ["sdr-ines"]
    assert await owner_of(engine, "ls-amer") in ROUND_ROBIN


# --- plan, state, exit ------------------------------------------------------------------


async def test_state_and_ui_plan_show_the_sla_steps_and_an_erasure_exit_ends_it(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-erased")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-erased")
        waiting = await settled(handle, lambda s: s.next_step is not None)
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        # Not a marketing journey: an unsubscribe does not end it.
        await handle.signal(LeadSla.event, await event_now(env, "ls-erased", "unsubscribed"))
        await sleep_until(env, handed_off + timedelta(minutes=2))
        after_unsubscribe = await handle.query(LeadSla.state)
        await handle.signal(LeadSla.exit, ExitRequest(reason="erased"))
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    assert waiting.journey == "lead-sla"
    assert waiting.step == "handoff"
    assert waiting.actions_done == ["handoff"]
    assert waiting.next_step == "first_touch-reminder"
    assert waiting.next_wake_at is not None
    assert near(waiting.next_wake_at, handed_off + timedelta(minutes=5))

    details = metadata.current_details
    assert details.startswith("**Sales hand-off SLA** · contact `ls-erased` · running")
    plan = [line for line in details.splitlines() if line.startswith("- ")]
    assert plan == [
        "- ✅ Hand-off → Assign an owner, open a task, notify the rep (done)",
        "- ⏳ +5 min → Remind the owner: first touch due in 5 min (next)",
        "- ▫️ +10 min → No first touch within 10 min: breach, escalate to the manager",
        "- ▫️ +24 h → Remind the owner: qualification due in 24 h",
        "- ▫️ +46 h → Warn the owner and the manager: qualification due in 2 h",
        "- ▫️ +48 h → No qualification within 48 h: breach, escalate to the manager",
        # Counted from the SQL (`lead_qualified`); shown from the qualification's deadline.
        "- ▫️ SQL +36 h → Remind the owner: SQL follow-up meeting due in 36 h",
        "- ▫️ SQL +70 h → Warn the owner and the manager: SQL follow-up meeting due in 2 h",
        "- ▫️ SQL +72 h → No SQL follow-up meeting within 72 h: breach, escalate to the manager",
        "- ▫️ +14 d quiet → Not qualified, no interaction for 14 days: recycle the lead",
    ]

    assert after_unsubscribe.status == JourneyStatus.RUNNING
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "erased"
    assert result.actions_done == ["handoff"]
    assert closed_at is not None and near(closed_at, handed_off + timedelta(minutes=2))
    assert kinds(notification_files(settings, "ls-erased")) == ["hand_off"]


async def test_hot_signalled_with_the_start_raises_the_priority_after_the_hand_off(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    """A band change in the journey's first workflow task (signal-with-start, or the
    contact workflow signalling right after starting it) is kept for after the hand-off."""
    await add_lead(engine, "ls-early")
    journey_input = LeadSlaInput(contact_id="ls-early", band=MQL)
    async with make_worker(time_skipping_env.client):
        handle = await time_skipping_env.client.start_workflow(
            LeadSla.run,
            journey_input,
            id=LeadSla.workflow_id_for(journey_input),
            task_queue=settings.task_queue,
            start_signal="band_changed",
            start_signal_args=[LeadBand(band="Hot", score=80)],
        )
        for _ in range(200):
            state = await handle.query(LeadSla.state)
            if "priority-hot" in state.actions_done:
                break
            await asyncio.sleep(0.05)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert state.actions_done == ["handoff", "priority-hot"]
    tasks = await rows_of(engine, CrmTask, "ls-early")
    assert [(t.kind, t.priority) for t in tasks] == [
        (CrmTaskKind.LEAD_FOLLOW_UP, TaskPriority.NORMAL),
        (CrmTaskKind.LEAD_CHECKLIST, TaskPriority.NORMAL),
        (CrmTaskKind.LEAD_CALL, TaskPriority.URGENT),
    ]


async def test_a_hand_off_for_a_contact_not_in_the_crm_exits_and_says_why(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    make_worker: Callable[[Client], Worker],
) -> None:
    journey_input = LeadSlaInput(contact_id="ls-nobody", band=MQL)
    async with make_worker(time_skipping_env.client):
        handle = await time_skipping_env.client.start_workflow(
            LeadSla.run,
            journey_input,
            id=LeadSla.workflow_id_for(journey_input),
            task_queue=settings.task_queue,
        )
        result = await handle.result()
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason is not None
    assert result.exit_reason.startswith("hand-off failed")
    assert "ls-nobody" in result.exit_reason


# --- SQL follow-up (seed 002, step 5: 72 h from SQL to the first demo or deep-dive) ----------


async def test_qualified_at_1_h_without_a_meeting_reminds_at_37_warns_at_71_breaches_at_73_h(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-sql")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-sql")
        await sleep_until(env, handed_off + timedelta(minutes=2))
        await handle.signal(LeadSla.event, await event_now(env, "ls-sql", "rep_contacted"))
        await sleep_until(env, handed_off + timedelta(hours=1))
        await handle.signal(LeadSla.event, await event_now(env, "ls-sql", "lead_qualified"))
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    owner = await owner_of(engine, "ls-sql")
    sql_at = handed_off + timedelta(hours=1)
    due = sql_at + timedelta(hours=72)
    assert result.status == JourneyStatus.COMPLETED
    assert result.actions_done == [
        "handoff",
        "sql_follow_up-reminder",
        "sql_follow_up-warning",
        "sql_follow_up-breach",
    ]
    assert closed_at is not None and near(closed_at, due)
    [breach] = await rows_of(engine, SlaBreach, "ls-sql")
    assert (breach.sla, breach.owner_id) == ("sql_follow_up", owner)
    assert near(breach.due_at, due) and near(breach.breached_at, due)
    notifications = await rows_of(engine, Notification, "ls-sql")
    assert [(n.kind, n.recipient_id) for n in notifications] == [
        ("hand_off", owner),
        ("sla_reminder", owner),
        ("sla_warning", owner),
        ("sla_warning", MANAGER),
        ("sla_escalation", MANAGER),
    ]
    for notification, moment in zip(
        notifications[1:],
        (sql_at + timedelta(hours=36), due - timedelta(hours=2), due - timedelta(hours=2), due),
        strict=True,
    ):
        assert near(notification.created_at, moment), (notification, moment)
    assert notifications[1].title.startswith("Reminder: SQL follow-up SLA for Ada (Acme) due ")
    [escalation] = [t for t in await rows_of(engine, CrmTask, "ls-sql") if t.assignee_id == MANAGER]
    assert escalation.title == "SQL follow-up SLA breached: Ada (Acme)"


async def test_a_deep_dive_after_the_reminder_meets_the_sql_follow_up_and_completes(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-demo")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-demo")
        await handle.signal(LeadSla.event, await event_now(env, "ls-demo", "rep_contacted"))
        await handle.signal(LeadSla.event, await event_now(env, "ls-demo", "lead_qualified"))
        await sleep_until(env, handed_off + timedelta(hours=40))
        await handle.signal(
            LeadSla.event, await event_now(env, "ls-demo", "meeting_held", kind="deep-dive")
        )
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    assert result.status == JourneyStatus.COMPLETED
    assert result.actions_done == ["handoff", "sql_follow_up-reminder"]
    assert closed_at is not None and near(closed_at, handed_off + timedelta(hours=40))
    assert await rows_of(engine, SlaBreach, "ls-demo") == []


# --- 14 days without interaction after MQL (seed 002, step 6) -------------------------------


async def test_an_interaction_on_day_10_puts_the_recycling_off_to_day_24(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-quiet")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-quiet")
        await handle.signal(LeadSla.event, await event_now(env, "ls-quiet", "rep_contacted"))
        # The contact clicks on day 10: stored as the contact workflow stores events;
        # the journey is not told (`listens_to` stays as it was) and reads it on day 14.
        await add_events(engine, "ls-quiet", [("email_clicked", handed_off + timedelta(days=10))])
        await sleep_until(env, handed_off + timedelta(days=15))
        at_15_days = await handle.query(LeadSla.state)
        result = await handle.result()
        closed_at = (await handle.describe()).close_time
        recycling = await recycling_run(env, "ls-quiet")

    assert at_15_days.status == JourneyStatus.RUNNING
    assert at_15_days.next_wake_at is not None
    assert near(at_15_days.next_wake_at, handed_off + timedelta(days=24))
    assert (result.status, result.exit_reason) == (JourneyStatus.EXITED, "recycled")
    assert closed_at is not None and near(closed_at, handed_off + timedelta(days=24))
    assert recycling.input.reason == "no-interaction"
    assert (await scheduled_activities(handle)).count("last_interaction") == 2


async def test_qualified_on_day_5_after_the_breach_is_not_recycled_and_its_sql_follow_up_runs(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-late-sql")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-late-sql")
        await handle.signal(LeadSla.event, await event_now(env, "ls-late-sql", "rep_contacted"))
        await sleep_until(env, handed_off + timedelta(days=5))
        await handle.signal(LeadSla.event, await event_now(env, "ls-late-sql", "lead_qualified"))
        await sleep_until(env, handed_off + timedelta(days=6))
        await handle.signal(
            LeadSla.event, await event_now(env, "ls-late-sql", "meeting_held", kind="demo")
        )
        result = await handle.result()
        closed_at = (await handle.describe()).close_time
        with pytest.raises(RPCError):
            await recycling_run(env, "ls-late-sql")

    assert result.status == JourneyStatus.COMPLETED
    assert result.actions_done == [
        "handoff",
        "qualification-reminder",
        "qualification-warning",
        "qualification-breach",
    ]
    assert closed_at is not None and near(closed_at, handed_off + timedelta(days=6))
    assert "last_interaction" not in await scheduled_activities(handle)


async def test_a_disqualification_ends_the_journey_without_recycling_it(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-dq")
    async with make_worker(env.client):
        handle, handed_off = await start(env, settings, "ls-dq")
        await handle.signal(LeadSla.event, await event_now(env, "ls-dq", "rep_contacted"))
        await sleep_until(env, handed_off + timedelta(hours=3))
        await handle.signal(
            LeadSla.event, await event_now(env, "ls-dq", "lead_disqualified", reason="no-budget")
        )
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    assert (result.status, result.actions_done) == (JourneyStatus.COMPLETED, ["handoff"])
    assert closed_at is not None and near(closed_at, handed_off + timedelta(hours=3))


# --- ownership lock (seed 002: 7 days from the hand-off) --------------------------------------


async def test_a_second_hand_off_on_day_3_keeps_the_owner_one_on_day_8_routes_the_lead_again(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_lead(engine, "ls-lock")
    owners = []
    async with make_worker(env.client):
        _, first_at = await start(env, settings, "ls-lock")
        for day in (0, 3, 8):
            if day:
                await sleep_until(env, first_at + timedelta(days=day))
                await start(env, settings, "ls-lock")
            handle: Handle = env.client.get_workflow_handle(
                "lead-sla-ls-lock", result_type=JourneyState
            )
            await settled(handle, lambda s: "handoff" in s.actions_done)
            owners.append(await owner_of(engine, "ls-lock"))
            await handle.signal(LeadSla.exit, ExitRequest(reason="test over"))
            await handle.result()

    first, second, third = owners
    assert first in ROUND_ROBIN
    assert second == first  # inside the 7 days: the owner is kept
    assert third in ROUND_ROBIN and third != first  # after: routed again, the other rep's turn
    follow_ups = [
        t.assignee_id
        for t in await rows_of(engine, CrmTask, "ls-lock")
        if t.kind == CrmTaskKind.LEAD_FOLLOW_UP
    ]
    assert follow_ups == [first, first, third]
