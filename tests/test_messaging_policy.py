"""The messaging policy applied by the real send activity to real journeys (time-skipping).

Quiet hours in the contact's zone across a DST change, frequency caps across
two journeys, suppression and consent checked at send time, the unsubscribe
headers, and provider failures (429 with Retry-After, invalid recipient).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.journeys import ExitRequest, JourneyInput, JourneyState, JourneyStatus
from models.messages import MessageCategory
from models.settings import Settings
from models.tables import Contact, Suppression
from rules.unsubscribe import verify_unsubscribe_token
from starter.services.operations import apply_suppressing_event
from tests.factories import add_contact, event_now, message_rows
from tests.fake_api import FakeApi, Reply
from tests.journeys import BurstJourney
from tests.outbox import read_outbox
from worker import build_worker
from workflows import catalog
from workflows.journeys.welcome_series import WelcomeSeries
from workflows.toolkit import Journey

NEW_YORK = ZoneInfo("America/New_York")


async def start_welcome(
    client: Client, settings: Settings, contact_id: str
) -> WorkflowHandle[WelcomeSeries, JourneyState]:
    return await client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id=contact_id),
        id=f"welcome-series-{contact_id}",
        task_queue=settings.task_queue,
    )


def http_settings(settings: Settings, api: FakeApi) -> Settings:
    """The test's settings with email going to the fake JSON API."""
    return settings.model_copy(
        update={"email_provider": "http", "email_api_url": api.url, "email_api_key": SecretStr("k")}
    )


def next_dst_change(after: datetime, zone: ZoneInfo) -> date:
    """The local date of the zone's first UTC-offset change after `after`."""
    probe = after
    offset = probe.astimezone(zone).utcoffset()
    while probe.astimezone(zone).utcoffset() == offset:
        probe += timedelta(hours=1)
    return probe.astimezone(zone).date()


async def test_quiet_hours_defer_to_08_00_local_across_a_dst_change(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    quiet = settings.model_copy(update={"quiet_hours_start": time(21), "quiet_hours_end": time(8)})
    await add_contact(engine, "nyc", first_name="Nia")
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "nyc")
        assert contact is not None
        contact.timezone = "America/New_York"
        session.add(contact)
        await session.commit()

    now = await env.get_current_time()
    change_day = next_dst_change(now + timedelta(days=3), NEW_YORK)
    enrol_at = datetime.combine(change_day - timedelta(days=2), time(23), tzinfo=NEW_YORK)
    await env.sleep(enrol_at - now)

    async with build_worker(env.client, quiet, engine):
        handle = await start_welcome(env.client, quiet, "nyc")
        # Day 1 falls at 23:00 local, the night before the clocks change.
        await env.sleep(timedelta(days=1, minutes=30))
        [day0, day1] = await message_rows(engine, "nyc")
        assert day1.step == "day1"
        assert day1.status == "deferred"
        assert day1.status_reason is not None and "quiet hours" in day1.status_reason
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 5
    sent = {row.step: row.sent_at for row in await message_rows(engine, "nyc")}
    assert all(when is not None for when in sent.values())
    local = {step: when.astimezone(NEW_YORK) for step, when in sent.items() if when}
    # Day 0 is exempt: it went out at 23:00 local.
    assert (local["day0"].hour, local["day0"].minute) == (23, 0)
    # Day 1 waited for 08:00 local on the day the clocks changed…
    assert local["day1"].date() == change_day
    assert abs(local["day1"] - datetime.combine(change_day, time(8), tzinfo=NEW_YORK)) < timedelta(
        minutes=1
    )
    # …which is a different UTC offset from the enrolment's.
    assert local["day1"].utcoffset() != local["day0"].utcoffset()
    # Every later email landed outside 21:00–08:00 local.
    assert all(time(8) <= when.time() < time(21) for step, when in local.items() if step != "day0")


async def test_a_journey_that_exits_while_a_message_is_deferred_cancels_it(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    now = await env.get_current_time()
    # Quiet from an hour after enrolment, every day: Day 1 falls inside.
    quiet = settings.model_copy(
        update={
            "quiet_hours_start": (now - timedelta(hours=1)).time().replace(microsecond=0),
            "quiet_hours_end": (now + timedelta(hours=6)).time().replace(microsecond=0),
        }
    )
    await add_contact(engine, "gone")
    async with build_worker(env.client, quiet, engine):
        handle = await start_welcome(env.client, quiet, "gone")
        await env.sleep(timedelta(days=1, hours=1))
        assert [row.status for row in await message_rows(engine, "gone")] == ["sent", "deferred"]
        await handle.signal(WelcomeSeries.exit, ExitRequest(reason="operator: duplicate"))
        result = await handle.result()

    assert result.status == JourneyStatus.EXITED
    [day0, day1] = await message_rows(engine, "gone")
    assert (day0.status, day1.status) == ("sent", "cancelled")
    assert day1.status_reason is not None
    assert "journey exited: operator: duplicate" in day1.status_reason
    assert sorted(read_outbox(settings.outbox_dir)) == ["welcome-series-gone/day0"]


async def test_frequency_cap_defers_across_two_journeys_and_drops_nothing(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    await add_contact(engine, "cap")
    journeys = [WelcomeSeries, BurstJourney]
    async with build_worker(env.client, settings, engine, journeys=journeys):
        first = await env.client.start_workflow(
            BurstJourney.run,
            JourneyInput(contact_id="cap"),
            id="test-burst-cap-1",
            task_queue=settings.task_queue,
        )
        await env.sleep(timedelta(minutes=2))
        second = await env.client.start_workflow(
            BurstJourney.run,
            JourneyInput(contact_id="cap"),
            id="test-burst-cap-2",
            task_queue=settings.task_queue,
        )
        await env.sleep(timedelta(hours=1))
        deferred = [row for row in await message_rows(engine, "cap") if row.status == "deferred"]
        assert [row.idempotency_key for row in deferred] == ["test-burst-cap-2/first"]
        assert deferred[0].status_reason is not None
        assert "frequency cap" in deferred[0].status_reason
        results = [await first.result(), await second.result()]

    assert [result.messages_sent for result in results] == [2, 2]
    log = await message_rows(engine, "cap")
    assert [row.status for row in log] == ["sent"] * 4
    times = sorted(row.sent_at for row in log if row.sent_at is not None)
    for moment in times:  # never more than 2 marketing emails in any rolling 24 h
        assert sum(moment - timedelta(hours=24) < other <= moment for other in times) <= 2
    assert times[2] - times[0] >= timedelta(hours=24)


async def test_suppression_is_checked_at_send_time(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    await add_contact(engine, "sup")
    async with build_worker(env.client, settings, engine):
        handle = await start_welcome(env.client, settings, "sup")
        await env.sleep(timedelta(days=1, hours=12))
        # Written straight to the database (as the gateway would); the journey is not told.
        await apply_suppressing_event(
            engine,
            await event_now(env, "sup", "unsubscribed", channel="email"),
            key=settings.suppression_key(),
        )
        result = await handle.result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 2
    assert sorted(read_outbox(settings.outbox_dir)) == [
        "welcome-series-sup/day0",
        "welcome-series-sup/day1",
    ]
    assert [(row.step, row.status) for row in await message_rows(engine, "sup")] == [
        ("day0", "sent"),
        ("day1", "sent"),
        ("day2", "suppressed"),
        ("day4", "suppressed"),
        ("day7", "suppressed"),
    ]


async def test_no_consent_skips_every_email_and_the_journey_continues(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "nocon", email_consent=False)
    async with build_worker(time_skipping_env.client, settings, engine):
        result = await (await start_welcome(time_skipping_env.client, settings, "nocon")).result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 0
    assert result.steps_done == ["day0", "day1", "day2", "day4", "day7"]
    assert read_outbox(settings.outbox_dir) == {}
    assert {row.status for row in await message_rows(engine, "nocon")} == {"skipped_no_consent"}


async def test_emails_carry_one_click_unsubscribe_headers_and_utm_links(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "hdr", first_name="Hal")
    async with build_worker(time_skipping_env.client, settings, engine):
        handle = await start_welcome(time_skipping_env.client, settings, "hdr")
        await handle.result()

    message = read_outbox(settings.outbox_dir)["welcome-series-hdr/day0"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    assert link.startswith("http://localhost:8000/u/")
    request = verify_unsubscribe_token(
        link.rpartition("/")[2],
        secret=settings.unsubscribe_secret.get_secret_value(),
        now=datetime.now(UTC),
    )
    assert (request.contact_id, request.channel) == ("hdr", "email")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = str(body.get_content())
    assert f"Unsubscribe: {link}" in text
    assert (
        "https://northwind.example/playbook?utm_source=journeys&utm_medium=email"
        "&utm_campaign=welcome-series&utm_content=day0" in text
    )


async def test_http_provider_429_is_retried_after_retry_after_and_delivered_once(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "busy")
    with FakeApi() as api:
        api.answer(Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "90"}))
        http = http_settings(settings, api)
        async with build_worker(time_skipping_env.client, http, engine):
            handle = await start_welcome(time_skipping_env.client, http, "busy")
            result = await handle.result()

    assert result.messages_sent == 5
    day0_requests = [r for r in api.received if r.headers["idempotency-key"].endswith("/day0")]
    assert len(day0_requests) == 2
    assert len(api.received) == 6
    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    # five sends (the first one twice), the routing's lead_status (the run log is local)
    assert attempts == [2, 1, 1, 1, 1, 1]
    assert [row.provider for row in await message_rows(engine, "busy")] == ["http"] * 5


async def test_invalid_recipient_is_recorded_and_suppressed(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    await add_contact(engine, "bad")
    with FakeApi() as api:
        api.answer(
            Reply(status=422, body={"error": {"code": "invalid_recipient", "message": "no"}})
        )
        http = http_settings(settings, api)
        async with build_worker(time_skipping_env.client, http, engine):
            result = await (await start_welcome(time_skipping_env.client, http, "bad")).result()

    assert result.status == JourneyStatus.COMPLETED
    assert result.messages_sent == 0
    assert len(api.received) == 1, "nothing is sent to an address the provider refused"
    statuses = [(row.step, row.status) for row in await message_rows(engine, "bad")]
    assert statuses[0] == ("day0", "failed")
    assert {status for _, status in statuses[1:]} == {"suppressed"}
    async with session_factory(engine)() as session:
        [suppression] = (await session.exec(select(Suppression))).all()
    assert suppression.reason == "invalid_recipient"
    assert suppression.address_hash == Suppression.hash_address(
        "bad@example.com", key=settings.suppression_key()
    )


def test_every_journey_declares_whether_it_is_marketing() -> None:
    assert {journey.name: journey.category for journey in catalog.all_journeys()} == {
        "welcome-series": MessageCategory.MARKETING,
        "nurture": MessageCategory.MARKETING,
        "pricing-abandon": MessageCategory.MARKETING,
        "renewal-countdown": MessageCategory.TRANSACTIONAL,
        "lead-sla": MessageCategory.TRANSACTIONAL,
        "re-engagement": MessageCategory.MARKETING,
        "win-back": MessageCategory.MARKETING,
        "onboarding": MessageCategory.MARKETING,  # it promotes using more of the product
        "abandoned-cart": MessageCategory.MARKETING,
        "churn-prevention": MessageCategory.MARKETING,  # offers; the owner's task is not mail
        "recycling": MessageCategory.MARKETING,  # a long-cycle sequence; the review is a task
        "first-purchase": MessageCategory.MARKETING,  # an offer; the call is a task
    }
    # Marketing journeys exit on an unsubscribe by their category, not by a list entry.
    assert "unsubscribed" not in WelcomeSeries.exit_on
    assert WelcomeSeries.concerned_by("unsubscribed")
    assert not catalog.journey_class("renewal-countdown").concerned_by("unsubscribed")
    with pytest.raises(TypeError, match="journey Undeclared must declare its category"):

        class Undeclared(Journey):
            name = "undeclared"
            title = "Undeclared"
            plan = ()
