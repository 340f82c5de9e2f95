"""Operator controls every journey has: pause / resume, exit with a reason, the state query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.events import BehaviorEvent
from models.journeys import ExitRequest, JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from models.tables import JourneyRun
from tests.factories import add_contact, rows_of
from tests.outbox import read_outbox
from workflows.journeys.welcome_series import WelcomeSeries


async def start(
    env: WorkflowEnvironment, settings: Settings, contact_id: str
) -> tuple[WorkflowHandle[WelcomeSeries, JourneyState], datetime]:
    handle = await env.client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )
    return handle, (await handle.describe()).start_time


def sent_days(settings: Settings, contact_id: str, started: datetime) -> dict[str, float]:
    """Step → day of the journey on which its email was sent (from the Date header)."""
    return {
        key.rpartition("/")[2]: round(
            (parsedate_to_datetime(message["Date"]) - started) / timedelta(days=1), 2
        )
        for key, message in read_outbox(settings.outbox_dir).items()
        if key.startswith(f"welcome-series-{contact_id}/")
    }


async def test_pause_stops_the_clock_and_resume_shifts_the_rest_of_the_plan(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "paula")
    async with make_worker(time_skipping_env.client):
        handle, started = await start(time_skipping_env, settings, "paula")
        await time_skipping_env.sleep(timedelta(days=1.5))
        await handle.signal(WelcomeSeries.pause)
        await time_skipping_env.sleep(timedelta(days=3))
        paused = await handle.query(WelcomeSeries.state)
        assert paused.status == JourneyStatus.PAUSED
        assert sorted(sent_days(settings, "paula", started)) == ["day0", "day1"]
        await handle.signal(WelcomeSeries.resume)
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    days = sent_days(settings, "paula", started)
    assert days == {"day0": 0, "day1": 1, "day2": 5, "day4": 7, "day7": 10}


async def test_state_query_reports_the_next_wake_up(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "quinn")
    async with make_worker(time_skipping_env.client):
        handle, started = await start(time_skipping_env, settings, "quinn")
        await time_skipping_env.sleep(timedelta(days=2.5))
        state = await handle.query(WelcomeSeries.state)
        await handle.signal(WelcomeSeries.exit, ExitRequest(reason="operator: wrong list"))
        result = await handle.result()

    assert state.status == JourneyStatus.RUNNING
    assert state.step == "day2"
    assert state.next_step == "day4"
    assert state.next_wake_at is not None
    assert abs(state.next_wake_at - (started + timedelta(days=4))) < timedelta(seconds=5)
    assert state.messages_sent == 3
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "operator: wrong list"
    assert sorted(sent_days(settings, "quinn", started)) == ["day0", "day1", "day2"]


async def test_an_event_id_is_processed_once_and_unrelated_events_do_not_end_the_journey(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "rita")
    async with make_worker(time_skipping_env.client):
        handle, _ = await start(time_skipping_env, settings, "rita")
        now = await time_skipping_env.get_current_time()
        visit = BehaviorEvent(
            event_id="evt-visit", contact_id="rita", type="website_visited", occurred_at=now
        )
        await handle.signal(WelcomeSeries.event, visit)
        replayed_id = visit.model_copy(update={"type": "unsubscribed"})
        await handle.signal(WelcomeSeries.event, replayed_id)
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5


async def test_skip_wait_fires_the_current_wait_and_keeps_the_spacing_of_later_days(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "skip", timezone="Europe/Lisbon")
    async with make_worker(time_skipping_env.client):
        handle, started = await start(time_skipping_env, settings, "skip")
        await time_skipping_env.sleep(timedelta(days=0.5))
        await handle.signal(WelcomeSeries.skip_wait)
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    days = sent_days(settings, "skip", started)
    assert days == {"day0": 0, "day1": 0.5, "day2": 1.5, "day4": 3.5, "day7": 6.5}

    runs = {row.journey: row for row in await rows_of(engine, JourneyRun, "skip")}
    assert runs["nurture"].status == "running"  # routed on at the end, logged as it starts
    run = runs["welcome-series"]
    assert (run.journey, run.status, run.step, run.messages_sent) == (
        "welcome-series", "completed", "route", 5,
    )  # fmt: skip
    assert run.ended_at is not None
    assert round((run.ended_at - run.started_at) / timedelta(days=1), 2) == 6.5
    memo = await (await handle.describe()).memo_value("contact")
    assert memo["timezone"] == "Europe/Lisbon"
    assert "email" not in memo and "first_name" not in memo
