"""The pricing-abandon journey on the time-skipping server (real DB file and outbox).

Wait 30 min for checkout → email → wait 2 days for a purchase → SMS; a
conversion exits (a purchase also starts onboarding); at most one run per
contact per 30 days.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.settings import Settings
from starter.services.operations import OperationError, enroll
from tests.factories import add_contact, message_rows
from tests.kit import journey_run, workflow_exists
from tests.outbox import read_outbox, text_body
from worker import build_worker
from workflows.journeys.onboarding import Onboarding
from workflows.journeys.pricing_abandon import PricingAbandon

PHONE = "+15035550123"
EMAIL_AT = timedelta(minutes=30)
SMS_AT = timedelta(days=2, minutes=30)
Handle = WorkflowHandle[PricingAbandon, JourneyState]


async def start(
    env: WorkflowEnvironment,
    settings: Settings,
    contact_id: str,
    *,
    at_start: BehaviorEvent | None = None,
) -> tuple[Handle, datetime]:
    """Enrol the contact (with `at_start` signalled with the start); returns the start time."""
    handle = await env.client.start_workflow(
        PricingAbandon.run,
        JourneyInput(contact_id=contact_id),
        id=f"pricing-abandon-{contact_id}",
        task_queue=settings.task_queue,
        start_signal="event" if at_start else None,
        start_signal_args=[at_start] if at_start else [],
    )
    return handle, (await handle.describe()).start_time


async def event(env: WorkflowEnvironment, contact_id: str, event_type: str) -> BehaviorEvent:
    """An event of the contact happening now (workflow time)."""
    return BehaviorEvent(
        event_id=f"evt-{contact_id}-{event_type}",
        contact_id=contact_id,
        type=event_type,
        occurred_at=await env.get_current_time(),
    )


async def signal(
    env: WorkflowEnvironment, handle: Handle, contact_id: str, event_type: str
) -> None:
    """Signal an event of `event_type` happening now (see `send_event`)."""
    await send_event(handle, await event(env, contact_id, event_type))


async def send_event(handle: Handle, sent: BehaviorEvent) -> None:
    """Signal `sent`; again (the same event: the journey drops duplicates) while the test
    server refuses it because the run is continuing as new (`Completed workflow`)."""
    for _ in range(100):
        try:
            await handle.signal(PricingAbandon.event, sent)
            return
        except RPCError as refused:
            if refused.status != RPCStatusCode.NOT_FOUND or "Completed" not in refused.message:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} refused {sent.type} while it continued as new")


async def settled(handle: Handle) -> JourneyState:
    """The journey's state once it has stopped running its steps (no time skipped)."""
    for _ in range(200):
        state = await handle.query(PricingAbandon.state)
        if state.status != JourneyStatus.RUNNING:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"journey still running: {state}")


def pricing_emails(settings: Settings, contact_id: str) -> dict[str, datetime]:
    """Idempotency key → Date of each pricing-abandon email to the contact."""
    return {
        key: parsedate_to_datetime(message["Date"])
        for key, message in read_outbox(settings.outbox_dir).items()
        if key.startswith(f"pricing-abandon-{contact_id}/")
    }


def sms_files(settings: Settings, contact_id: str) -> list[Path]:
    return sorted((settings.outbox_dir / f"pricing-abandon-{contact_id}").rglob("*.sms.txt"))


def near(actual: datetime, expected: datetime) -> bool:
    return abs(actual - expected) < timedelta(minutes=1)


async def latest_run(client: Client, workflow_id: str) -> Handle:
    """A handle on the workflow's latest run, pinned to that run.

    Unlike a handle from `start_workflow`, its `result()` does not make the
    time-skipping server skip time: sleep the environment past the close first.
    """
    run_id = (await client.get_workflow_handle(workflow_id).describe()).run_id
    return client.get_workflow_handle_for(PricingAbandon.run, workflow_id, run_id=run_id)


# --- converted early: no email ------------------------------------------------


async def test_checkout_5_minutes_after_the_visit_exits_converted_at_once_without_email(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-early")
    async with make_worker(env.client):
        handle, started = await start(env, settings, "pa-early")
        await env.sleep(timedelta(minutes=5))
        waiting = await handle.query(PricingAbandon.state)
        await signal(env, handle, "pa-early", "checkout_started")
        exited = await settled(handle)
        exited_at = await env.get_current_time()
        result = await handle.result()

    assert waiting.status == JourneyStatus.RUNNING
    assert waiting.next_step == "email"
    assert waiting.next_wake_at is not None and near(waiting.next_wake_at, started + EMAIL_AT)
    # The checkout ended the 30-minute wait at once, not when it ran out.
    assert exited.exit_reason == "converted"
    assert exited_at - started < timedelta(minutes=10)
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert result.messages_sent == 0
    assert result.steps_done == []
    assert read_outbox(settings.outbox_dir) == {}
    assert await message_rows(engine, "pa-early") == []
    # A checkout is not a purchase: no onboarding.
    assert not await workflow_exists(env.client, "onboarding-pa-early")


async def test_checkout_received_before_the_wait_began_counts(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-atstart")
    checkout = await event(env, "pa-atstart", "checkout_started")
    async with make_worker(env.client):
        # Signal-with-start: the event is in the journey before its first step runs.
        handle, started = await start(env, settings, "pa-atstart", at_start=checkout)
        exited = await settled(handle)
        exited_at = await env.get_current_time()
        result = await handle.result()

    assert exited.exit_reason == "converted"
    assert exited_at - started < timedelta(minutes=1)
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert result.messages_sent == 0
    assert read_outbox(settings.outbox_dir) == {}


async def test_purchase_in_the_first_30_minutes_exits_converted_and_starts_onboarding(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-quick", first_name="Quinn")
    async with make_worker(env.client):
        handle, started = await start(env, settings, "pa-quick")
        await env.sleep(timedelta(minutes=10))
        await signal(env, handle, "pa-quick", "purchased")
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert result.messages_sent == 0
    assert pricing_emails(settings, "pa-quick") == {}
    welcome = read_outbox(settings.outbox_dir)["onboarding-pa-quick/welcome"]
    assert near(parsedate_to_datetime(welcome["Date"]), started + timedelta(minutes=10))


# --- converted late: email, no SMS, onboarding -------------------------------


async def test_purchase_on_day_1_exits_converted_without_sms_and_starts_onboarding(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-late", first_name="Lee", phone=PHONE, sms_consent=True)
    async with make_worker(env.client):
        handle, started = await start(env, settings, "pa-late")
        await env.sleep(timedelta(days=1))
        waiting = await handle.query(PricingAbandon.state)
        await signal(env, handle, "pa-late", "purchased")
        exited = await settled(handle)
        exited_at = await env.get_current_time()
        result = await handle.result()
        onboarding = await journey_run(env.client, "onboarding-pa-late")
        onboarding_result = await onboarding.result()
        onboarding_info = await onboarding.describe()

    assert waiting.step == "email"
    assert waiting.next_step == "day2-sms"
    assert waiting.next_wake_at is not None and near(waiting.next_wake_at, started + SMS_AT)
    assert exited.exit_reason == "converted"
    assert exited_at - started < timedelta(days=1, minutes=5)
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert result.messages_sent == 1
    assert result.steps_done == ["email"]
    [email_sent_at] = pricing_emails(settings, "pa-late").values()
    assert near(email_sent_at, started + EMAIL_AT)
    assert sms_files(settings, "pa-late") == []
    assert [
        row.step
        for row in await message_rows(engine, "pa-late")
        if row.journey == PricingAbandon.name
    ] == ["email"]

    # Onboarding (not the welcome series), started by the journey, on the same clock.
    assert onboarding_info.parent_id == "pricing-abandon-pa-late"
    assert onboarding_result.status == JourneyStatus.COMPLETED
    assert not await workflow_exists(env.client, "welcome-series-pa-late")
    welcome = read_outbox(settings.outbox_dir)["onboarding-pa-late/welcome"]
    assert near(parsedate_to_datetime(welcome["Date"]), started + timedelta(days=1))
    assert text_body(welcome).startswith("Hey Lee!")

    # The recorded history replays on the current code (determinism).
    replayer = Replayer(
        workflows=[PricingAbandon, Onboarding], data_converter=env.client.data_converter
    )
    await replayer.replay_workflow(await handle.fetch_history())


async def test_contact_already_in_onboarding_is_left_alone(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-member")
    async with make_worker(env.client):
        onboarding = await env.client.start_workflow(
            Onboarding.run,
            JourneyInput(contact_id="pa-member"),
            id="onboarding-pa-member",
            task_queue=settings.task_queue,
        )
        handle, _ = await start(env, settings, "pa-member")
        await env.sleep(timedelta(hours=12))
        await signal(env, handle, "pa-member", "purchased")
        result = await handle.result()
        onboarding_info = await onboarding.describe()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert onboarding_info.parent_id is None  # the run that was already there


# --- not converted: email, then SMS ---------------------------------------------


async def test_no_conversion_sends_the_email_at_30_minutes_and_the_sms_2_days_later(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-sms", first_name="Sam", phone=PHONE, sms_consent=True)
    async with make_worker(env.client):
        handle, started = await start(env, settings, "pa-sms")
        result = await handle.result()
        finished = await handle.describe()

    assert result.status == JourneyStatus.COMPLETED
    assert result.exit_reason is None
    assert result.messages_sent == 2
    assert result.steps_done == ["email", "day2-sms"]

    [(key, email_sent_at)] = pricing_emails(settings, "pa-sms").items()
    assert near(email_sent_at, started + EMAIL_AT)
    email = read_outbox(settings.outbox_dir)[key]
    assert email["Subject"] == "Quick question about Northwind Campaigns"
    assert email["X-Journey"] == "pricing-abandon"
    body = text_body(email)
    assert body.startswith(
        "Hey Sam,\n\nI noticed you were checking out Northwind Campaigns earlier."
    )
    for link in ("/quiz?", "/guarantee?", "/book-a-call?"):
        assert f"https://northwind.example{link}utm_source=journeys" in body
    assert "👉 Book a call with Maya: https://northwind.example/book-a-call?" in body
    assert "I'm here to help (not to sell you something you don't need)." in body

    [sms] = sms_files(settings, "pa-sms")
    head, _, sms_body = sms.read_text(encoding="utf-8").partition("\n\n")
    headers = dict(line.split(": ", 1) for line in head.splitlines())
    assert headers["To"] == PHONE
    assert near(parsedate_to_datetime(headers["Date"]), started + SMS_AT)
    assert sms_body.strip() == (
        "Hey Sam! Saw you were interested in Northwind Campaigns. Have questions? "
        "Reply here or call/text me: +1 503 555 0142 -Maya Reply STOP to opt out."
    )
    assert [
        (row.step, row.channel, row.status) for row in await message_rows(engine, "pa-sms")
    ] == [
        ("email", "email", "sent"),
        ("day2-sms", "sms", "sent"),
    ]
    # The workflow stayed open for the 30-day re-entry window.
    assert finished.close_time is not None
    assert finished.close_time - started >= timedelta(days=30)


@pytest.mark.parametrize(
    ("contact_id", "phone", "sms_consent", "status"),
    [
        ("pa-nocon", PHONE, False, "skipped_no_consent"),
        ("pa-nophone", None, True, "skipped_no_address"),
    ],
)
async def test_without_sms_consent_or_phone_the_sms_step_is_recorded_as_skipped(
    contact_id: str,
    phone: str | None,
    sms_consent: bool,
    status: str,
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, contact_id, phone=phone, sms_consent=sms_consent)
    async with make_worker(env.client):
        handle, _ = await start(env, settings, contact_id)
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 1
    assert result.steps_done == ["email", "day2-sms"]
    assert sms_files(settings, contact_id) == []
    assert [(row.step, row.status) for row in await message_rows(engine, contact_id)] == [
        ("email", "sent"),
        ("day2-sms", status),
    ]


async def test_unsubscribe_during_the_2_day_wait_exits_without_sms(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-unsub", phone=PHONE, sms_consent=True)
    async with make_worker(env.client):
        handle, _ = await start(env, settings, "pa-unsub")
        await env.sleep(timedelta(days=1))
        await signal(env, handle, "pa-unsub", "unsubscribed")
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "unsubscribed"
    assert result.messages_sent == 1
    assert sms_files(settings, "pa-unsub") == []
    assert [row.step for row in await message_rows(engine, "pa-unsub")] == ["email"]


async def test_continuing_as_new_keeps_the_schedule_and_a_checkout_after_the_email(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    await add_contact(engine, "pa-long", phone=PHONE, sms_consent=True)
    async with make_worker(env.client):
        # A short history limit: the journey continues as new while it waits (the test
        # server refuses a signal that arrives while a run continues as new: `send_event`
        # signals again).
        handle = await env.client.start_workflow(
            PricingAbandon.run,
            JourneyInput(contact_id="pa-long", history_limit=26),
            id="pricing-abandon-pa-long",
            task_queue=settings.task_queue,
        )
        started = (await handle.describe()).start_time
        await env.sleep(timedelta(minutes=5))
        for n in range(4):
            visit = BehaviorEvent(
                event_id=f"evt-pa-long-visit-{n}",
                contact_id="pa-long",
                type="website_visited",
                occurred_at=await env.get_current_time(),
            )
            await send_event(handle, visit)
        await env.sleep(timedelta(days=1))
        # After the email a checkout (without a purchase) does not end the journey.
        await signal(env, handle, "pa-long", "checkout_started")
        result = await handle.result()
        last_run = await env.client.get_workflow_handle("pricing-abandon-pa-long").describe()

    assert last_run.run_id != handle.result_run_id  # it did continue as new
    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 2
    assert result.steps_done == ["email", "day2-sms"]
    assert abs(result.enrolled_at - started) < timedelta(seconds=5)
    [email_sent_at] = pricing_emails(settings, "pa-long").values()
    assert near(email_sent_at, started + EMAIL_AT)
    [sms] = sms_files(settings, "pa-long")
    sms_date = next(line for line in sms.read_text().splitlines() if line.startswith("Date: "))
    assert near(parsedate_to_datetime(sms_date.removeprefix("Date: ")), started + SMS_AT)
    assert [(row.step, row.status) for row in await message_rows(engine, "pa-long")] == [
        ("email", "sent"),
        ("day2-sms", "sent"),
    ]


# --- a conversion while a message waits out quiet hours ---------------------------


async def test_purchase_while_the_email_waits_out_quiet_hours_calls_it_off(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    # Quiet hours (UTC, the contact's zone) begin 20 minutes after the visit.
    quiet = settings.model_copy(
        update={
            "quiet_hours_start": (now + timedelta(minutes=20))
            .time()
            .replace(second=0, microsecond=0),
            "quiet_hours_end": (now + timedelta(hours=10)).time().replace(second=0, microsecond=0),
        }
    )
    await add_contact(engine, "pa-night")
    async with build_worker(env.client, quiet, engine):
        handle, started = await start(env, quiet, "pa-night")
        await env.sleep(timedelta(hours=2))
        [deferred] = await message_rows(engine, "pa-night")
        waiting = await handle.query(PricingAbandon.state)
        await signal(env, handle, "pa-night", "purchased")
        exited = await settled(handle)
        exited_at = await env.get_current_time()
        result = await handle.result()

    assert (deferred.step, deferred.status) == ("email", "deferred")
    assert deferred.status_reason is not None and "quiet hours" in deferred.status_reason
    assert waiting.status == JourneyStatus.RUNNING
    assert exited.exit_reason == "converted"
    assert exited_at - started < timedelta(hours=2, minutes=5)  # not at the end of quiet hours
    assert result.status == JourneyStatus.EXITED
    assert result.exit_reason == "converted"
    assert result.messages_sent == 0
    assert pricing_emails(settings, "pa-night") == {}
    [email_row] = [
        row for row in await message_rows(engine, "pa-night") if row.journey == "pricing-abandon"
    ]
    assert email_row.status == "cancelled"  # never sent, and the log says so
    assert email_row.status_reason is not None
    assert "called off: purchased received" in email_row.status_reason
    welcome = read_outbox(settings.outbox_dir)["onboarding-pa-night/welcome"]  # exempt
    assert near(parsedate_to_datetime(welcome["Date"]), started + timedelta(hours=2))


# --- re-entry: at most once per 30 days -----------------------------------------


async def test_second_visit_inside_30_days_is_refused_and_after_them_starts_a_new_run(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    client = env.client
    await add_contact(engine, "pa-again")

    async def visit() -> Handle:
        workflow_id = await enroll(
            client,
            engine,
            "pricing-abandon",
            JourneyInput(contact_id="pa-again"),
            task_queue=settings.task_queue,
        )
        return await latest_run(client, workflow_id)

    async with make_worker(client):
        first = await visit()
        first_started = (await first.describe()).start_time
        await env.sleep(timedelta(minutes=10))  # still in the first 30-minute wait
        with pytest.raises(OperationError, match="already enrolled"):
            await visit()
        await env.sleep(timedelta(days=10))  # the journey is done, the window is not
        with pytest.raises(OperationError, match="already enrolled"):
            await visit()
        state = await first.query(PricingAbandon.state)
        await env.sleep(timedelta(days=20))  # past the 30-day window (see `latest_run`)
        first_result = await first.result()
        second = await visit()
        second_started = (await second.describe()).start_time
        await env.sleep(timedelta(days=31))  # see `latest_run`
        second_result = await second.result()

    # The refused visits did not restart the first run.
    assert abs(state.enrolled_at - first_started) < timedelta(seconds=5)
    assert state.status == JourneyStatus.COMPLETED
    assert first_result.messages_sent == 1  # email (no phone: SMS skipped)
    assert second_started - first_started >= timedelta(days=30)
    assert second_result.status == JourneyStatus.COMPLETED
    assert second_result.messages_sent == 1

    emails = sorted(pricing_emails(settings, "pa-again").items(), key=lambda item: item[1])
    assert len(emails) == 2
    (first_key, first_at), (second_key, second_at) = emails
    assert first_key != second_key
    assert near(first_at, first_started + EMAIL_AT)
    assert near(second_at, second_started + EMAIL_AT)
    email_rows = [row for row in await message_rows(engine, "pa-again") if row.step == "email"]
    assert [(row.idempotency_key, row.status) for row in email_rows] == [
        (first_key, "sent"),
        (second_key, "sent"),
    ]


async def test_re_entry_window_is_configurable_per_enrolment(
    time_skipping_env: WorkflowEnvironment,
    settings: Settings,
    engine: AsyncEngine,
    make_worker: Callable[[Client], Worker],
) -> None:
    env = time_skipping_env
    client = env.client
    await add_contact(engine, "pa-week")
    short = JourneyInput(contact_id="pa-week", reentry_days=7)
    async with make_worker(client):
        await enroll(client, engine, "pricing-abandon", short, task_queue=settings.task_queue)
        first = await latest_run(client, "pricing-abandon-pa-week")
        started = (await first.describe()).start_time
        await env.sleep(timedelta(days=6))
        with pytest.raises(OperationError, match="already enrolled"):
            await enroll(client, engine, "pricing-abandon", short, task_queue=settings.task_queue)
        await env.sleep(timedelta(days=1, hours=1))  # past the 7-day window
        await first.result()
        closed = await first.describe()
        await enroll(client, engine, "pricing-abandon", short, task_queue=settings.task_queue)
        second = await latest_run(client, "pricing-abandon-pa-week")
        await env.sleep(timedelta(days=8))
        await second.result()

    assert closed.close_time is not None
    assert near(closed.close_time, started + timedelta(days=7))
    assert len(pricing_emails(settings, "pa-week")) == 2
