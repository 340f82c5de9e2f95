"""The weekly nurture on the time-skipping server: same day and time each week, copy, exits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.journeys import ExitRequest, JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from tests.factories import add_contact, event_now, message_rows
from tests.outbox import read_outbox, text_body
from worker import build_worker
from workflows.journeys.nurture import Nurture

WEEKS = {"week1": 1, "week2": 2, "week3": 3, "week4": 4}
TUESDAY = 1
SLACK = timedelta(minutes=1)
"""Time a send may take after its due moment (the activity runs in real time)."""


async def start(
    client: Client, settings: Settings, contact_id: str, *, history_limit: int = 10_000
) -> WorkflowHandle[Nurture, JourneyState]:
    journey_input = JourneyInput(contact_id=contact_id, history_limit=history_limit)
    return await client.start_workflow(
        Nurture.run,
        journey_input,
        id=Nurture.workflow_id_for(journey_input),
        task_queue=settings.task_queue,
    )


async def skip_to(env: WorkflowEnvironment, weekday: int, at: time) -> datetime:
    """Skip the server's clock to the next `weekday` (Monday is 0) at `at` UTC."""
    now = await env.get_current_time()
    target = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    target += timedelta(days=(weekday - target.weekday()) % 7)
    if target <= now:
        target += timedelta(days=7)
    await env.sleep(target - now)
    return target


async def test_four_emails_each_week_on_the_enrolment_weekday_and_time(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "ada", first_name="Ada", company="Acme")
    await add_contact(engine, "anon")
    await skip_to(env, TUESDAY, time(10, 30))
    async with make_worker(env.client):
        handles = [await start(env.client, settings, cid) for cid in ("ada", "anon")]
        results = [await handle.result() for handle in handles]
        started = [(await handle.describe()).start_time for handle in handles]

    for result in results:
        assert result.status == JourneyStatus.COMPLETED
        assert result.messages_sent == 4
        assert result.steps_done == list(WEEKS)
    for cid, start_time in zip(("ada", "anon"), started, strict=True):
        log = await message_rows(engine, cid)
        assert [(r.step, r.template, r.category, r.status) for r in log] == [
            (step, f"nurture/{step}", "marketing", "sent") for step in WEEKS
        ]
        for row, week in zip(log, WEEKS.values(), strict=True):
            assert row.sent_at is not None
            due = start_time + timedelta(days=7 * week)
            assert due <= row.sent_at < due + SLACK, row.step
            assert (row.sent_at.weekday(), row.sent_at.hour, row.sent_at.minute) == (
                TUESDAY,
                10,
                30,
            ), row.step

    outbox = read_outbox(settings.outbox_dir)
    assert sorted(outbox) == sorted(
        f"nurture-{cid}/{step}" for cid in ("ada", "anon") for step in WEEKS
    )
    ada = {step: text_body(outbox[f"nurture-ada/{step}"]) for step in WEEKS}
    anon = {step: text_body(outbox[f"nurture-anon/{step}"]) for step in WEEKS}
    assert all(body.startswith("Hey Ada,\n") for body in ada.values())
    assert all(body.startswith("Hey there,\n") for body in anon.values())
    assert "whoever presses send at Acme" in ada["week3"]
    assert "working on at Acme:" in ada["week4"]
    assert not any("Acme" in body or "Ada" in body for body in anon.values())
    assert (
        outbox["nurture-ada/week1"]["Subject"] == "The inbox rules changed. Most senders haven't."
    )
    assert "https://northwind.example/resources?" in ada["week1"]
    assert "https://northwind.example/book-a-call?" in anon["week4"]
    assert outbox["nurture-anon/week4"]["X-Journey-Step"] == "week4"


async def test_quiet_hours_defer_each_email_to_the_morning_without_drifting(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    quiet = settings.model_copy(update={"quiet_hours_start": time(21), "quiet_hours_end": time(8)})
    await add_contact(engine, "owl")
    enrolled = await skip_to(env, TUESDAY, time(22))
    async with build_worker(env.client, quiet, engine):
        result = await (await start(env.client, quiet, "owl")).result()

    assert result.messages_sent == 4
    morning_after = datetime.combine(enrolled.date() + timedelta(days=1), time(8), enrolled.tzinfo)
    sent = [row.sent_at for row in await message_rows(engine, "owl")]
    # Every email waited for 08:00 on the Wednesday; a late week does not push the next one.
    for sent_at, week in zip(sent, WEEKS.values(), strict=True):
        due = morning_after + timedelta(days=7 * week)
        assert sent_at is not None and due <= sent_at < due + SLACK


@pytest.mark.parametrize("exit_event", ["unsubscribed", "purchased"])
async def test_exit_event_after_week_1_ends_it_at_once(
    exit_event: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "grace", first_name="Grace")
    async with make_worker(env.client):
        handle = await start(env.client, settings, "grace")
        await env.sleep(timedelta(days=10))
        assert (await handle.query(Nurture.state)).next_step == "week2"
        signalled_at = await env.get_current_time()
        await handle.signal(Nurture.event, await event_now(env, "grace", exit_event))
        result = await handle.result()
        closed_at = (await handle.describe()).close_time

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == exit_event
    assert result.messages_sent == 1
    assert closed_at is not None and closed_at - signalled_at < SLACK
    assert sorted(read_outbox(settings.outbox_dir)) == ["nurture-grace/week1"]
    assert [row.step for row in await message_rows(engine, "grace")] == ["week1"]


async def test_handed_to_sales_exit_signal_ends_it(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "mql")
    async with make_worker(env.client):
        handle = await start(env.client, settings, "mql")
        await env.sleep(timedelta(days=15))
        await handle.signal(Nurture.exit, ExitRequest(reason="handed-to-sales"))
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "handed-to-sales"
    assert result.steps_done == ["week1", "week2"]
    assert sorted(read_outbox(settings.outbox_dir)) == ["nurture-mql/week1", "nurture-mql/week2"]


async def test_no_consent_sends_nothing(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    await add_contact(engine, "nocon", email_consent=False)
    async with make_worker(time_skipping_env.client):
        result = await (await start(time_skipping_env.client, settings, "nocon")).result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 0
    assert read_outbox(settings.outbox_dir) == {}
    assert [(row.step, row.status) for row in await message_rows(engine, "nocon")] == [
        (step, "skipped_no_consent") for step in WEEKS
    ]


async def test_continuing_as_new_keeps_the_weekly_schedule(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "long")
    async with make_worker(env.client):
        # A short history limit: the journey continues as new between the weeks.
        handle = await start(env.client, settings, "long", history_limit=20)
        started = (await handle.describe()).start_time
        result = await handle.result()
        last_run = await env.client.get_workflow_handle(handle.id).describe()

    assert last_run.run_id != handle.result_run_id
    assert result.messages_sent == 4
    assert sorted(read_outbox(settings.outbox_dir)) == [f"nurture-long/{step}" for step in WEEKS]
    for row, week in zip(await message_rows(engine, "long"), WEEKS.values(), strict=True):
        due = started + timedelta(days=7 * week)
        assert row.sent_at is not None and due <= row.sent_at < due + SLACK, row.step
