"""The welcome series on the time-skipping server: schedule, content, exits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from models.tables import Contact, MessageLog, Notification
from tests.factories import add_contact
from tests.kit import workflow_exists
from tests.outbox import read_outbox, text_body
from workflows.journeys.welcome_series import WelcomeSeries

SCHEDULE = {"day0": 0, "day1": 1, "day2": 2, "day4": 4, "day7": 7}


async def start(
    client: Client, settings: Settings, contact_id: str
) -> WorkflowHandle[WelcomeSeries, JourneyState]:
    return await client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )


async def message_log(engine: AsyncEngine) -> list[MessageLog]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(MessageLog).order_by(col(MessageLog.id)))).all())


async def test_five_emails_on_day_0_1_2_4_7_with_rendered_tokens(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "ada", first_name="Ada", company="Acme")
    await add_contact(engine, "anon")
    client = time_skipping_env.client
    async with make_worker(client):
        try:
            handles = [await start(client, settings, cid) for cid in ("ada", "anon")]
            # To just after Day 7: `result()` would let the server skip on into the
            # nurture the routing starts (its timers, its emails).
            await time_skipping_env.sleep(timedelta(days=7, minutes=1))
            results = [
                await settled(handle, lambda s: s.status != JourneyStatus.RUNNING)
                for handle in handles
            ]
            started = [(await handle.describe()).start_time for handle in handles]
        finally:
            for cid in ("ada", "anon"):  # routed to the nurture after Day 7
                await end_routed_journeys(client, cid)

    for result in results:
        assert result.status == JourneyStatus.COMPLETED
        assert result.messages_sent == 5
        assert result.steps_done == list(SCHEDULE)

    outbox = read_outbox(settings.outbox_dir)
    assert sorted(outbox) == sorted(
        f"welcome-series-{cid}/{step}" for cid in ("ada", "anon") for step in SCHEDULE
    )
    for cid, start_time in zip(("ada", "anon"), started, strict=True):
        for step, day in SCHEDULE.items():
            message = outbox[f"welcome-series-{cid}/{step}"]
            sent_at = parsedate_to_datetime(message["Date"])
            assert abs(sent_at - (start_time + timedelta(days=day))) < timedelta(minutes=1), step
            assert message["X-Journey-Step"] == step
            assert message["To"] == f"{cid}@example.com"

    ada_day0, anon_day0 = outbox["welcome-series-ada/day0"], outbox["welcome-series-anon/day0"]
    assert ada_day0["Subject"] == "Your Email Marketing Playbook is ready! 📥"
    assert text_body(ada_day0).startswith("Hey Ada!")
    assert text_body(anon_day0).startswith("Hey there!")
    assert "https://northwind.example/playbook" in text_body(ada_day0)
    assert "500 Harbor Street" in text_body(anon_day0)
    assert "Ada" not in text_body(outbox["welcome-series-anon/day7"])

    rows = await message_log(engine)
    assert [
        (r.contact_id, r.step, r.template, r.status) for r in rows if r.contact_id == "ada"
    ] == [("ada", step, f"welcome-series/{step}", "sent") for step in SCHEDULE]
    assert all(r.provider_message_id == outbox[r.idempotency_key]["Message-ID"] for r in rows)


@pytest.mark.parametrize("exit_event", ["unsubscribed", "purchased"])
async def test_exit_event_on_day_3_stops_after_three_emails(
    exit_event: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "grace", first_name="Grace")
    client = time_skipping_env.client
    async with make_worker(client):
        handle = await start(client, settings, "grace")
        await time_skipping_env.sleep(timedelta(days=3))
        assert (await handle.query(WelcomeSeries.state)).next_step == "day4"
        await handle.signal(
            WelcomeSeries.event,
            BehaviorEvent(
                event_id=f"evt-{exit_event}",
                contact_id="grace",
                type=exit_event,
                occurred_at=await time_skipping_env.get_current_time(),
            ),
        )
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == exit_event
    assert result.messages_sent == 3
    assert sorted(read_outbox(settings.outbox_dir)) == [
        "welcome-series-grace/day0",
        "welcome-series-grace/day1",
        "welcome-series-grace/day2",
    ]
    assert [row.step for row in await message_log(engine)] == ["day0", "day1", "day2"]


# --- routing after the last email ---------------------------------------------------------

DAY_SECONDS = 60
"""A one-minute journey day: the series ends (and routes) seven minutes after enrolment."""
PAST_DAY_7 = timedelta(seconds=7 * DAY_SECONDS + 30)
"""Before any timer of a journey the routing starts (their first is minutes later)."""


async def set_lead(
    engine: AsyncEngine,
    contact_id: str,
    *,
    lifecycle_stage: str | None,
    lead_score: int,
    owner_id: str | None = None,
) -> None:
    """Record the lead's band, score and owner as the CRM has them."""
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        contact.lifecycle_stage = lifecycle_stage
        contact.lead_score = lead_score
        contact.owner_id = owner_id
        session.add(contact)
        await session.commit()


async def settled(
    handle: WorkflowHandle[Any, Any], done: Callable[[JourneyState], bool]
) -> JourneyState:
    """Poll a journey's `state` query (no time skipping) until `done` holds; fail after 10 s."""
    for _ in range(200):
        state: JourneyState = await handle.query("state", result_type=JourneyState)
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"journey never reached the expected state: {state}")


async def run_past_day_7(
    env: WorkflowEnvironment, settings: Settings, contact_id: str
) -> tuple[JourneyState, list[str]]:
    """Run the series on one-minute days to just after Day 7; its final state and children.

    Time is skipped by exactly `PAST_DAY_7` (not by `result()`, which lets the
    server skip on into the timers of the journey the routing started).
    """
    handle = await env.client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id, day_seconds=DAY_SECONDS),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )
    await env.sleep(PAST_DAY_7)
    final = await settled(handle, lambda s: s.status != JourneyStatus.RUNNING)
    history = await handle.fetch_history()
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]
    return final, children


async def end_routed_journeys(client: Client, contact_id: str) -> None:
    """Terminate the journeys the routing may have started for the contact.

    Left running, their timers would wake them on this test's task queue after
    its worker is gone; ended by a signal (a workflow task) after their parent
    closed, they leave the Java test server's time skipping locked for the rest
    of the session (sdk-java#2392): either way every later test that skips time
    hangs. Terminating does neither.
    """
    for journey in ("nurture", "lead-sla"):
        handle = client.get_workflow_handle(f"{journey}-{contact_id}")
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test over")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise


async def started_with(client: Client, workflow_id: str) -> JourneyInput:
    """The input a journey was started with (from its history)."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [journey_input] = await client.data_converter.decode(started.input.payloads, [JourneyInput])
    assert isinstance(journey_input, JourneyInput)
    return journey_input


async def test_a_cold_contact_goes_to_the_weekly_nurture_on_the_same_clock(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "ws-cold")
    await set_lead(engine, "ws-cold", lifecycle_stage="Cold", lead_score=4)
    async with make_worker(env.client):
        try:
            result, children = await run_past_day_7(env, settings, "ws-cold")
            nurture = env.client.get_workflow_handle("nurture-ws-cold")
            nurture_info = await nurture.describe()
            nurture_state = await settled(nurture, lambda s: s.next_wake_at is not None)
            nurture_input = await started_with(env.client, "nurture-ws-cold")
            lead_sla_started = await workflow_exists(env.client, "lead-sla-ws-cold")
        finally:
            await end_routed_journeys(env.client, "ws-cold")

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5
    assert result.actions_done == ["route"]
    assert children == ["nurture-ws-cold"]
    assert nurture_info.workflow_type == "nurture"
    assert nurture_info.parent_id == "welcome-series-ws-cold"
    assert nurture_info.status == WorkflowExecutionStatus.RUNNING
    assert nurture_input.day_seconds == DAY_SECONDS
    # The nurture wakes first at its mid-week slot: Day 3 at 10:00 on the contact's (UTC)
    # calendar, on the welcome's one-minute days (a Cold lead gets nothing then; see
    # tests/test_nurture.py).
    assert nurture_state.next_wake_at is not None
    started = nurture_info.start_time
    slot = datetime.combine(started.date() + timedelta(days=3), time(10), tzinfo=UTC)
    slot_in = (slot - started) / timedelta(days=1) * timedelta(seconds=DAY_SECONDS)
    assert abs(nurture_state.next_wake_at - started - slot_in) < timedelta(seconds=5)
    assert not lead_sla_started


async def test_a_sales_ready_lead_without_owner_is_handed_to_sales(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "ws-mql", first_name="Mae", company="Initech")
    await set_lead(engine, "ws-mql", lifecycle_stage="MQL", lead_score=30)
    async with make_worker(env.client):
        try:
            result, children = await run_past_day_7(env, settings, "ws-mql")
            lead_sla = env.client.get_workflow_handle("lead-sla-ws-mql")
            lead_sla_info = await lead_sla.describe()
            handed_off = await settled(lead_sla, lambda s: "handoff" in s.actions_done)
            nurture_started = await workflow_exists(env.client, "nurture-ws-mql")
        finally:
            await end_routed_journeys(env.client, "ws-mql")

    assert result.status == JourneyStatus.COMPLETED
    assert result.actions_done == ["route"]
    assert children == ["lead-sla-ws-mql"]
    assert lead_sla_info.workflow_type == "lead-sla"
    assert lead_sla_info.parent_id == "welcome-series-ws-mql"
    assert handed_off.status == JourneyStatus.RUNNING
    assert handed_off.next_step == "first_touch-reminder"
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "ws-mql")
        notifications = (
            await session.exec(select(Notification).where(Notification.contact_id == "ws-mql"))
        ).all()
    assert contact is not None and contact.owner_id is not None
    # Handed off with the band and score the CRM had.
    assert [(n.kind, n.recipient_id, n.title) for n in notifications] == [
        ("hand_off", contact.owner_id, "New MQL lead: Mae (Initech), score 30")
    ]
    assert not nurture_started


async def test_a_lead_already_owned_by_sales_is_not_routed(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "ws-owned")
    await set_lead(engine, "ws-owned", lifecycle_stage="MQL", lead_score=30, owner_id="sdr-leo")
    async with make_worker(env.client):
        try:
            result, children = await run_past_day_7(env, settings, "ws-owned")
            started = [
                await workflow_exists(env.client, f"{journey}-ws-owned")
                for journey in ("lead-sla", "nurture")
            ]
        finally:
            await end_routed_journeys(env.client, "ws-owned")

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5
    assert result.actions_done == ["route"]
    assert children == []
    assert started == [False, False]
