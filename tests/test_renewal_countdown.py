"""The renewal countdown on the time-skipping server (real DB file, outbox and CRM tables).

Reminders 90/60/30/7/1 days before the renewal date, CRM tasks at 60 and 30,
an escalation at 7, churn risk when the date passes; `renewed` exits at any
stage; a moved date reschedules what remains without repeating what was done;
a year-long wait with a busy event stream continues as new and stays bounded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from activities.crm import CrmActivities
from models.crm import (
    CHURN_RISK_TAG,
    AssigneeRole,
    ChurnRiskRequest,
    CrmTaskKind,
    CrmTaskRequest,
    TaskPriority,
)
from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.renewals import REMINDER_COPY_DAYS, RenewalInput
from models.settings import PROJECT_ROOT, Settings
from models.tables import Contact, CrmTask, MessageLog
from rules.consent import suppress_addresses
from rules.templates import ContactFields, LinkContext, TemplateCatalog
from starter.cli import commands as cli
from starter.services.operations import OperationError, enroll, journey_input_for
from tests.factories import add_contact
from tests.kit import sleep_until
from tests.local_activities import local_activity_types
from tests.outbox import read_outbox, text_body
from workflows.journeys.renewal_countdown import RenewalCountdown

Handle = WorkflowHandle[RenewalCountdown, JourneyState]
DAY = timedelta(days=1)
REMINDERS = (90, 60, 30, 7, 1)
ALL_ACTIONS = ["task-60d", "task-30d", "escalation-7d", "lapsed"]
CLOSE = timedelta(minutes=1)


# --- helpers ---------------------------------------------------------------------------


async def start(
    env: WorkflowEnvironment,
    settings: Settings,
    contact_id: str,
    *,
    days_out: float,
    subscription: str = "sub_1",
    **fields: Any,
) -> tuple[Handle, datetime]:
    """Enrol the contact with a renewal `days_out` days from now; returns the renewal date."""
    renewal_date = await env.get_current_time() + timedelta(days=days_out)
    journey_input = RenewalInput(
        contact_id=contact_id, subscription_id=subscription, renewal_date=renewal_date, **fields
    )
    handle = await env.client.start_workflow(
        RenewalCountdown.run,
        journey_input,
        id=RenewalCountdown.workflow_id_for(journey_input),
        task_queue=settings.task_queue,
    )
    return handle, renewal_date


async def signal(
    env: WorkflowEnvironment,
    handle: Handle,
    event_type: str,
    *,
    occurred_at: datetime | None = None,
    **properties: Any,
) -> None:
    """Signal an event of the journey's contact (to the latest run of the workflow)."""
    latest: Handle = env.client.get_workflow_handle(handle.id)
    contact_id = handle.id.removeprefix("renewal-countdown-").rsplit("-", 1)[0]
    await latest.signal(
        RenewalCountdown.event,
        BehaviorEvent(
            event_id=f"evt-{uuid.uuid4()}",
            contact_id=contact_id,
            type=event_type,
            occurred_at=occurred_at or await env.get_current_time(),
            properties=properties,
        ),
    )


def sent_at(settings: Settings, workflow_id: str) -> dict[str, datetime]:
    """Step → when its email was delivered (the Date header), for one countdown."""
    return {
        key.rpartition("/")[2]: parsedate_to_datetime(message["Date"])
        for key, message in read_outbox(settings.outbox_dir).items()
        if key.startswith(f"{workflow_id}/")
    }


def assert_at(actual: dict[str, datetime], expected: dict[str, datetime]) -> None:
    assert sorted(actual) == sorted(expected)
    for step, when in expected.items():
        assert abs(actual[step] - when) < CLOSE, (step, actual[step], when)


async def crm_tasks(engine: AsyncEngine, contact_id: str) -> list[CrmTask]:
    async with session_factory(engine)() as session:
        result = await session.exec(
            select(CrmTask).where(CrmTask.contact_id == contact_id).order_by(col(CrmTask.id))
        )
        return list(result.all())


async def message_rows(engine: AsyncEngine, contact_id: str) -> list[MessageLog]:
    async with session_factory(engine)() as session:
        result = await session.exec(
            select(MessageLog)
            .where(MessageLog.contact_id == contact_id)
            .order_by(col(MessageLog.id))
        )
        return list(result.all())


async def tags(engine: AsyncEngine, contact_id: str) -> list[str]:
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact.tags


async def joined_churn_prevention(env: WorkflowEnvironment, contact_id: str) -> JourneyState:
    """The churn-prevention journey a lapse started, once it has alerted the account owner."""
    handle = env.client.get_workflow_handle(f"churn-prevention-{contact_id}")
    state: object = None
    for _ in range(200):  # polled: the journey starts after the countdown closed
        try:
            state = await handle.query("state", result_type=JourneyState)
        except RPCError:
            state = None
        if isinstance(state, JourneyState) and "alert-owner" in state.actions_done:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"churn prevention never alerted the owner: {state}")


def task_steps(tasks: list[CrmTask]) -> dict[str, datetime]:
    return {task.idempotency_key.rpartition("/")[2]: task.created_at for task in tasks}


def reminders_before(renewal: datetime, *days: int) -> dict[str, datetime]:
    return {f"reminder-{n}d": renewal - n * DAY for n in days}


# --- the whole countdown ----------------------------------------------------------------


async def test_lapse_path_reminders_tasks_escalation_then_churn_risk(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "lena", first_name="Lena", company="Acme")
    async with make_worker(time_skipping_env.client):
        handle, renewal = await start(time_skipping_env, settings, "lena", days_out=100)
        await sleep_until(time_skipping_env, renewal - 70 * DAY)
        midway = await handle.query(RenewalCountdown.state)
        result = await handle.result()
        churn = await joined_churn_prevention(time_skipping_env, "lena")

    # Day 30 of 100: the 90-day reminder went out, the 60-day one is next.
    assert midway.steps_done == ["reminder-90d"]
    assert midway.next_step == "reminder-60d"
    assert midway.next_wake_at is not None
    assert abs(midway.next_wake_at - (renewal - 60 * DAY)) < CLOSE

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "churn-risk"
    assert result.step == "lapsed"
    assert result.steps_done == [f"reminder-{n}d" for n in REMINDERS]
    assert result.actions_done == ALL_ACTIONS
    assert result.messages_sent == 5

    workflow_id = "renewal-countdown-lena-sub_1"
    assert_at(sent_at(settings, workflow_id), reminders_before(renewal, *REMINDERS))
    outbox = read_outbox(settings.outbox_dir)
    subjects = {outbox[f"{workflow_id}/reminder-{n}d"]["Subject"] for n in REMINDERS}
    assert len(subjects) == 5
    first = outbox[f"{workflow_id}/reminder-90d"]
    assert first["Subject"] == "Your Northwind Campaigns renewal is about three months away"
    assert text_body(first).startswith("Hi Lena,")
    assert "for Acme" in text_body(first)
    assert "due for renewal tomorrow" in text_body(outbox[f"{workflow_id}/reminder-1d"])

    assert churn.actions_done == ["flag", "alert-owner"]
    tasks = await crm_tasks(engine, "lena")
    assert [(t.kind, t.assignee_role, t.priority, t.status) for t in tasks] == [
        ("renewal_follow_up", "account_owner", "normal", "open"),
        ("renewal_follow_up", "account_owner", "normal", "open"),
        ("renewal_escalation", "account_owner_manager", "high", "open"),
        # The lapse joins churn prevention: Lena has no owner, so customer success gets it.
        ("churn_risk", "customer_success", "high", "open"),
    ]
    assert tasks[3].title == "Churn risk: renewal of sub_1 lapsed: Lena (Acme)"
    tasks = tasks[:3]
    assert_at(
        task_steps(tasks),
        {
            "task-60d": renewal - 60 * DAY,
            "task-30d": renewal - 30 * DAY,
            "escalation-7d": renewal - 7 * DAY,
        },
    )
    for task, due_in in zip(tasks, (7 * DAY, 7 * DAY, 2 * DAY), strict=True):
        assert abs(task.due_at - task.created_at - due_in) < CLOSE
    assert tasks[0].title == "Renewal in 60 days: check in with the customer"
    assert "sub_1" in tasks[0].details and f"{renewal:%Y-%m-%d}" in tasks[0].details
    assert tasks[2].title == "Renewal in 7 days and not renewed: step in"
    assert CHURN_RISK_TAG in await tags(engine, "lena")


@pytest.mark.parametrize(
    ("after", "renewed_days_before"),
    [
        ("reminder-90d", 75),
        ("reminder-60d", 45),
        ("reminder-30d", 20),
        ("reminder-7d", 3),
        ("reminder-1d", 0.5),
    ],  # fmt: skip
)
async def test_renewed_at_each_stage_exits_with_nothing_sent_after(
    after: str,
    renewed_days_before: float,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    contact_id = f"rene-{renewed_days_before:g}".replace(".", "")
    await add_contact(engine, contact_id)
    async with make_worker(time_skipping_env.client):
        handle, renewal = await start(time_skipping_env, settings, contact_id, days_out=100)
        await sleep_until(time_skipping_env, renewal - renewed_days_before * DAY)
        await signal(time_skipping_env, handle, "renewed", subscription_id="sub_1")
        result = await handle.result()
        # Long after the renewal date: nothing more happened.
        await time_skipping_env.sleep(200 * DAY)

    expected_reminders = [n for n in REMINDERS if n > renewed_days_before]
    assert f"reminder-{expected_reminders[-1]}d" == after
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "renewed"
    assert result.steps_done == [f"reminder-{n}d" for n in expected_reminders]
    workflow_id = f"renewal-countdown-{contact_id}-sub_1"
    assert_at(sent_at(settings, workflow_id), reminders_before(renewal, *expected_reminders))
    expected_tasks = [f"task-{n}d" for n in (60, 30) if n > renewed_days_before]
    if renewed_days_before < 7:
        expected_tasks.append("escalation-7d")
    assert result.actions_done == expected_tasks
    assert list(task_steps(await crm_tasks(engine, contact_id))) == expected_tasks
    assert CHURN_RISK_TAG not in await tags(engine, contact_id)


# --- a moved renewal date ---------------------------------------------------------------


async def test_date_moved_later_reschedules_the_rest_without_repeating_the_60_day_steps(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "mo")
    env = time_skipping_env
    async with make_worker(env.client):
        handle, renewal = await start(env, settings, "mo", days_out=100)
        await sleep_until(env, renewal - 50 * DAY)
        # Another subscription of the contact: neither its new date nor its renewal matter here.
        await signal(
            env, handle, "renewal_scheduled", subscription_id="sub_2",
            renewal_date=(renewal + 5 * DAY).isoformat(),
        )  # fmt: skip
        await signal(env, handle, "renewed", subscription_id="sub_2")
        moved = renewal + 45 * DAY
        await signal(
            env, handle, "renewal_scheduled", subscription_id="sub_1",
            renewal_date=moved.isoformat().replace("+00:00", "Z"),
        )  # fmt: skip
        # A late-delivered event older than the move does not undo it.
        await signal(
            env, handle, "renewal_scheduled", occurred_at=renewal - 51 * DAY,
            renewal_date=(renewal + 10 * DAY).isoformat(),
        )  # fmt: skip
        await env.sleep(timedelta(hours=1))
        after_move = await handle.query(RenewalCountdown.state)
        result = await handle.result()

    assert after_move.status == JourneyStatus.RUNNING
    assert after_move.next_step == "reminder-30d"
    assert after_move.next_wake_at is not None
    assert abs(after_move.next_wake_at - (moved - 30 * DAY)) < CLOSE

    assert result.exit_reason == "churn-risk"
    assert result.steps_done == [f"reminder-{n}d" for n in REMINDERS]
    assert_at(
        sent_at(settings, "renewal-countdown-mo-sub_1"),
        reminders_before(renewal, 90, 60) | reminders_before(moved, 30, 7, 1),
    )
    assert [row.step for row in await message_rows(engine, "mo")] == [
        f"reminder-{n}d" for n in REMINDERS
    ]
    assert_at(
        task_steps(await crm_tasks(engine, "mo")),
        {
            "task-60d": renewal - 60 * DAY,
            "task-30d": moved - 30 * DAY,
            "escalation-7d": moved - 7 * DAY,
        },
    )
    assert CHURN_RISK_TAG in await tags(engine, "mo")


async def test_date_moved_earlier_skips_what_is_now_past_instead_of_bursting(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "early")
    env = time_skipping_env
    async with make_worker(env.client):
        handle, renewal = await start(env, settings, "early", days_out=100)
        await sleep_until(env, renewal - 50 * DAY)
        moved_at = await env.get_current_time()
        moved = moved_at + 15 * DAY  # the 30-day steps were due 15 days ago
        await signal(env, handle, "renewal_scheduled", renewal_date=moved.isoformat())
        await sleep_until(env, moved - timedelta(hours=12))
        await signal(env, handle, "renewed")
        result = await handle.result()

    assert result.exit_reason == "renewed"
    assert result.steps_done == ["reminder-90d", "reminder-60d", "reminder-7d", "reminder-1d"]
    sent = sent_at(settings, "renewal-countdown-early-sub_1")
    assert_at(sent, reminders_before(renewal, 90, 60) | reminders_before(moved, 7, 1))
    assert not [step for step, when in sent.items() if abs(when - moved_at) < DAY]
    assert_at(
        task_steps(await crm_tasks(engine, "early")),
        {"task-60d": renewal - 60 * DAY, "escalation-7d": moved - 7 * DAY},
    )


# --- enrolment close to the date ---------------------------------------------------------


async def test_enrolment_20_days_before_skips_the_90_60_30_day_steps(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "late")
    async with make_worker(time_skipping_env.client):
        handle, renewal = await start(time_skipping_env, settings, "late", days_out=20)
        result = await handle.result()

    assert result.exit_reason == "churn-risk"
    assert result.steps_done == ["reminder-7d", "reminder-1d"]
    assert result.actions_done == ["escalation-7d", "lapsed"]
    assert_at(sent_at(settings, "renewal-countdown-late-sub_1"), reminders_before(renewal, 7, 1))
    assert_at(task_steps(await crm_tasks(engine, "late")), {"escalation-7d": renewal - 7 * DAY})


async def test_enrolment_hours_after_the_90_day_mark_still_sends_the_90_day_reminder(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "mark")
    env = time_skipping_env
    async with make_worker(env.client):
        handle, renewal = await start(env, settings, "mark", days_out=89.75, reminder_days=(90, 30))
        enrolled = await env.get_current_time()
        await env.sleep(2 * DAY)
        await signal(env, handle, "renewed")
        result = await handle.result()

    assert result.steps_done == ["reminder-90d"]
    assert_at(sent_at(settings, "renewal-countdown-mark-sub_1"), {"reminder-90d": enrolled})


async def test_an_unsubscribed_contact_still_gets_its_renewal_reminders_as_service_messages(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    contact = await add_contact(engine, "quiet", email_consent=False)
    async with session_factory(engine)() as session:  # the marketing opt-out is on file
        await suppress_addresses(session, contact, "unsubscribed", key=settings.suppression_key())
        await session.commit()
    env = time_skipping_env
    async with make_worker(env.client):
        handle, renewal = await start(env, settings, "quiet", days_out=10)
        await env.sleep(DAY)
        await signal(env, handle, "unsubscribed")
        result = await handle.result()

    assert result.exit_reason == "churn-risk"
    assert result.messages_sent == 2
    assert [
        (row.step, row.category, row.status) for row in await message_rows(engine, "quiet")
    ] == [
        ("reminder-7d", "transactional", "sent"),
        ("reminder-1d", "transactional", "sent"),
    ]
    emails = read_outbox(settings.outbox_dir)
    reminder = emails["renewal-countdown-quiet-sub_1/reminder-7d"]
    assert "List-Unsubscribe" not in reminder
    footer = text_body(reminder).rsplit("--", 1)[1]
    assert "This is a service message about your Northwind Campaigns account" in footer
    assert "/u/" not in footer and "Unsubscribe" not in footer
    assert list(task_steps(await crm_tasks(engine, "quiet"))) == ["escalation-7d"]
    assert CHURN_RISK_TAG in await tags(engine, "quiet")


@pytest.mark.parametrize("reason", ["hard_bounce", "complaint", "erased", "invalid_recipient"])
async def test_a_suppressed_for_all_address_gets_no_renewal_reminder(
    reason: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    contact = await add_contact(engine, "gone")
    async with session_factory(engine)() as session:
        key = settings.suppression_key()
        await suppress_addresses(session, contact, "unsubscribed", key=key)
        await suppress_addresses(session, contact, reason, key=key)  # stronger: replaces it
        await session.commit()
    env = time_skipping_env
    async with make_worker(env.client):
        handle, _ = await start(env, settings, "gone", days_out=2)
        result = await handle.result()

    assert result.messages_sent == 0
    assert [
        (row.step, row.status, row.status_reason) for row in await message_rows(engine, "gone")
    ] == [("reminder-1d", "suppressed", f"address suppressed: {reason}")]
    assert read_outbox(settings.outbox_dir) == {}


# --- bounded history ---------------------------------------------------------------------


async def run_histories(client: Client, workflow_id: str, first_run_id: str) -> list[list[Any]]:
    """The events of every run of a workflow, following continue-as-new from the first run."""
    runs = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(list(history.events))
        last = runs[-1][-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def test_a_busy_year_continues_as_new_and_does_every_step_once(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "busy")
    env = time_skipping_env
    limit = 60
    async with make_worker(env.client):
        handle, renewal = await start(env, settings, "busy", days_out=300, history_limit=limit)
        enrolled = renewal - 300 * DAY
        moved = renewal + 20 * DAY
        for day in range(100):  # a visit every three days, and the date moves on day 150
            await sleep_until(env, enrolled + (3 * day + 0.5) * DAY)
            await signal(env, handle, "website_visited", page=f"/docs/{day}")
            if day == 50:
                await signal(env, handle, "renewal_scheduled", renewal_date=moved.isoformat())
        result = await handle.result()
        runs = await run_histories(env.client, handle.id, handle.first_execution_run_id or "")
        await joined_churn_prevention(env, "busy")

    assert result.exit_reason == "churn-risk"
    assert result.steps_done == [f"reminder-{n}d" for n in REMINDERS]
    assert result.actions_done == ALL_ACTIONS

    # Many runs, each one short: the history never grows with the wait or the events.
    assert len(runs) >= 5
    *waiting, lapsed = runs
    assert max(len(events) for events in waiting) <= limit + 10
    # The last run also starts churn prevention: a patch marker, the child's start (2
    # events) and the workflow task that sees it started (3).
    assert len(lapsed) <= limit + 10 + 6
    for events in runs[:-1]:
        assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW

    # Each side effect was asked for once over all runs, not once per run.
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for events in runs
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert sorted(scheduled) == sorted(
        ["send_message"] * 5 + ["create_crm_task"] * 3 + ["mark_churn_risk"]
    )
    # The run log, a local activity: started (first run only) and ended (last run).
    assert (
        local_activity_types(event for events in runs for event in events)
        == ["record_journey_run"] * 2
    )
    assert [row.step for row in await message_rows(engine, "busy")] == [
        f"reminder-{n}d" for n in REMINDERS
    ]
    # The date moved on day 150, dozens of runs before the first reminder: every step
    # follows the new date, carried from run to run.
    assert_at(
        sent_at(settings, "renewal-countdown-busy-sub_1"), reminders_before(moved, *REMINDERS)
    )
    renewal_tasks = [t for t in await crm_tasks(engine, "busy") if t.kind != "churn_risk"]
    assert_at(
        task_steps(renewal_tasks),
        {
            "task-60d": moved - 60 * DAY,
            "task-30d": moved - 30 * DAY,
            "escalation-7d": moved - 7 * DAY,
        },
    )


# --- the CRM activities -------------------------------------------------------------------


def task_request(key: str, contact_id: str = "crm") -> CrmTaskRequest:
    return CrmTaskRequest(
        idempotency_key=key,
        contact_id=contact_id,
        kind=CrmTaskKind.RENEWAL_ESCALATION,
        assignee_role=AssigneeRole.ACCOUNT_OWNER_MANAGER,
        title="Renewal in 7 days and not renewed: step in",
        details="Subscription sub_1",
        due_at=datetime(2027, 3, 1, tzinfo=UTC),
        priority=TaskPriority.HIGH,
    )


async def test_create_crm_task_opens_one_task_per_key(engine: AsyncEngine) -> None:
    await add_contact(engine, "crm")
    crm = CrmActivities(engine=engine)
    env = ActivityEnvironment()

    first = await env.run(crm.create_crm_task, task_request("renewal-countdown-crm-s/x"))
    again = await env.run(crm.create_crm_task, task_request("renewal-countdown-crm-s/x"))
    other = await env.run(crm.create_crm_task, task_request("renewal-countdown-crm-s/y"))

    assert first.created and not again.created and other.created
    assert again.task_id == first.task_id != other.task_id
    tasks = await crm_tasks(engine, "crm")
    assert [(t.id, t.priority, t.due_at) for t in tasks] == [
        (first.task_id, "high", datetime(2027, 3, 1, tzinfo=UTC)),
        (other.task_id, "high", datetime(2027, 3, 1, tzinfo=UTC)),
    ]
    with pytest.raises(ApplicationError) as raised:
        await env.run(crm.create_crm_task, task_request("k/z", contact_id="nobody"))
    assert raised.value.type == "ContactNotFound" and raised.value.non_retryable


async def test_mark_churn_risk_adds_the_tag_once_and_keeps_the_others(engine: AsyncEngine) -> None:
    await add_contact(engine, "crm")
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "crm")
        assert contact is not None
        contact.tags = ["src_webinar", "stage_customer_active"]
        session.add(contact)
        await session.commit()
    crm = CrmActivities(engine=engine)
    env = ActivityEnvironment()
    request = ChurnRiskRequest(contact_id="crm", subscription_id="sub_1")

    assert (await env.run(crm.mark_churn_risk, request)).tagged
    assert not (await env.run(crm.mark_churn_risk, request)).tagged
    assert await tags(engine, "crm") == ["src_webinar", "stage_churn-risk", "stage_customer_active"]


# --- input, templates, enrolment ------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ((90, 0), "positive"),
        ((30, 30), "distinct"),
        ((7, 30), "descending"),
        ((45, 7), "no reminder copy for [45]"),
    ],
)
def test_reminder_days_are_validated(days: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        RenewalInput(
            contact_id="c1",
            subscription_id="sub_1",
            renewal_date=datetime(2027, 3, 1, tzinfo=UTC),
            reminder_days=days,
        )


def test_renewal_input_needs_an_aware_date_and_normalises_it_to_utc() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        RenewalInput(contact_id="c1", subscription_id="sub_1", renewal_date=datetime(2027, 3, 1))
    parsed = RenewalInput.model_validate(
        {"contact_id": "c1", "subscription_id": "sub_1", "renewal_date": "2027-03-01T09:00+09:00"}
    )
    assert parsed.renewal_date == datetime(2027, 3, 1, tzinfo=UTC)
    assert parsed.renewal_date.tzinfo is UTC
    assert parsed.reminder_days == (90, 60, 30, 7, 1)
    assert RenewalCountdown.workflow_id_for(parsed) == "renewal-countdown-c1-sub_1"


def test_every_reminder_day_has_its_own_copy() -> None:
    catalog = TemplateCatalog(PROJECT_ROOT / "templates")
    names = [f"renewal-countdown/reminder-{days}d" for days in REMINDER_COPY_DAYS]
    assert set(names) == {name for name in catalog.names if name.startswith("renewal-countdown/")}
    rendered = [catalog.render_email(name, ContactFields(), LinkContext()) for name in names]
    assert len({email.subject for email in rendered}) == len(names)
    assert len({email.text for email in rendered}) == len(names)
    assert all(email.text.startswith("Hi there,") for email in rendered)


async def test_enroll_builds_a_renewal_input_and_ids_the_workflow_by_subscription(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "enr")
    renewal_date = (await time_skipping_env.get_current_time()) + 100 * DAY
    journey_input = journey_input_for(
        "renewal-countdown",
        "enr",
        {
            "day_seconds": 60,
            "renewal_date": renewal_date.isoformat().replace("+00:00", "Z"),
            "subscription_id": "sub_9",
        },
        accelerated_clock_allowed=True,
    )
    assert isinstance(journey_input, RenewalInput)
    assert journey_input.renewal_date == renewal_date
    assert journey_input.day_seconds == 60

    client = time_skipping_env.client
    async with make_worker(client):
        workflow_id = await enroll(
            client, engine, "renewal-countdown", journey_input, task_queue=settings.task_queue
        )
        handle = client.get_workflow_handle(workflow_id, result_type=JourneyState)
        started = (await handle.describe()).start_time
        with pytest.raises(OperationError, match="already enrolled"):
            await enroll(client, engine, "renewal-countdown", journey_input, task_queue="unused")
        with pytest.raises(OperationError, match="takes RenewalInput"):
            await enroll(
                client, engine, "renewal-countdown", JourneyInput(contact_id="enr"), task_queue="x"
            )
        # The accelerated clock: 100 calendar days to renewal are 100 journey days of 60 s.
        journey_day = timedelta(seconds=60)
        await time_skipping_env.sleep(101 * journey_day)  # (this handle skips no time itself)
        result = await handle.result()

    assert workflow_id == "renewal-countdown-enr-sub_9"
    assert result.exit_reason == "churn-risk"
    assert_at(
        sent_at(settings, workflow_id),
        {f"reminder-{n}d": started + (100 - n) * journey_day for n in REMINDERS},
    )


@pytest.mark.parametrize(
    ("args", "exit_code", "error"),
    [
        (["welcome-series", "c1", "--option", "renewal_date=2099-03-01T00:00:00Z"], 1,
         "welcome-series does not take --option renewal_date; it takes --day-seconds"),
        (["renewal-countdown", "c1", "--option", "renewal_date=2099-03-01T00:00:00Z"], 2,
         "subscription_id"),
        (["renewal-countdown", "c1", "--option", "subscription_id=sub_1", "--option",
          "renewal_date=2001-03-01T00:00:00Z"], 1, "is in the past"),
        (["renewal-countdown", "c1", "--option", "subscription_id=sub_1", "--option",
          "renewal_date=2099-03-01"], 2, "timezone"),
        (["renewal-countdown", "c1", "--option", "reminder_days=[30,8]"], 2, "no reminder copy"),
        (["renewal-countdown", "c1", "--option", "reminder_days=[30"], 2, "not JSON"),
        (["renewal-countdown", "c1", "--option", "subscription_id"], 2, "expected key=value"),
    ],
)  # fmt: skip
def test_enroll_command_checks_the_renewal_options(
    args: list[str], exit_code: int, error: str
) -> None:
    result = CliRunner().invoke(cli.app, ["enroll", *args])

    assert result.exit_code == exit_code, result.output
    assert error in result.output
