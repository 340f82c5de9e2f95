"""An accelerated journey clock never switches the messaging policy off.

Where the worker allows accelerated clocks (ALLOW_ACCELERATED_CLOCK, as `journeys
dev` does), quiet hours and caps are evaluated in journey time; where it does not,
in real time. The gateway refuses an accelerated enrolment unless allowed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from models.journeys import JourneyInput, JourneyState
from models.policy import JourneyClock
from models.settings import Settings
from tests.factories import add_contact, message_rows
from tests.gateway import gateway_settings, serving_gateway
from tests.journeys import BurstJourney
from worker import build_worker
from workflows.journeys.welcome_series import WelcomeSeries

BERLIN = ZoneInfo("Europe/Berlin")
HOUR_DAY = 3_600
"""A journey day of one real hour."""


def test_journey_clock_maps_real_time_to_journey_time_and_back() -> None:
    origin = datetime(2026, 12, 6, 22, tzinfo=UTC)
    clock = JourneyClock(origin=origin, day_seconds=HOUR_DAY)
    assert clock.journey_time(origin) == origin
    assert clock.journey_time(origin + timedelta(minutes=30)) == origin + timedelta(hours=12)
    assert clock.real_time(origin + timedelta(days=2)) == origin + timedelta(hours=2)
    assert clock.real_duration(timedelta(hours=24)) == timedelta(hours=1)
    real_days = JourneyClock(origin=origin)
    assert real_days.journey_time(origin + timedelta(hours=5)) == origin + timedelta(hours=5)


async def enrolled_at_22_00_berlin(env: WorkflowEnvironment, engine: AsyncEngine) -> datetime:
    """Skip to 22:00 Berlin time and add contact `night`; returns that moment."""
    now = await env.get_current_time()
    at = datetime.combine(now.astimezone(BERLIN).date() + timedelta(days=1), time(22), BERLIN)
    await env.sleep(at - now)
    await add_contact(engine, "night", timezone="Europe/Berlin")
    return at


async def start_night_welcome(
    env: WorkflowEnvironment, settings: Settings
) -> WorkflowHandle[WelcomeSeries, JourneyState]:
    """The welcome series of contact `night`, on a journey day of one real hour."""
    return await env.client.start_workflow(
        WelcomeSeries.run,
        JourneyInput(contact_id="night", day_seconds=HOUR_DAY),
        id="welcome-series-night",
        task_queue=settings.task_queue,
    )


def quiet_settings(settings: Settings, *, allowed: bool) -> Settings:
    return settings.model_copy(
        update={
            "quiet_hours_start": time(21),
            "quiet_hours_end": time(8),
            "allow_accelerated_clock": allowed,
        }
    )


async def test_quiet_hours_fall_on_the_journeys_nights_where_accelerated_clocks_are_allowed(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    enrolled = await enrolled_at_22_00_berlin(env, engine)
    quiet = quiet_settings(settings, allowed=True)
    async with build_worker(env.client, quiet, engine):
        handle = await start_night_welcome(env, quiet)
        await handle.result()

    sent = {row.step: row.sent_at for row in await message_rows(engine, "night")}
    clock = JourneyClock(origin=enrolled, day_seconds=HOUR_DAY)
    journey_local = {
        step: clock.journey_time(when).astimezone(BERLIN) for step, when in sent.items() if when
    }
    assert len(journey_local) == 5
    # Day 0 (exempt) at 22:00; Day 1 falls at 22:00 journey time, so it waits for the
    # journey's 08:00: ten journey hours, 25 real minutes.
    # (A real second is 24 journey seconds: the start and the sends take a few.)
    assert journey_local["day0"].time() < time(22, 5)
    assert time(8) <= journey_local["day1"].time() < time(8, 10)
    day1_real = sent["day1"]
    assert day1_real is not None
    assert timedelta(minutes=85) <= day1_real - enrolled < timedelta(minutes=87)
    assert all(
        time(8) <= when.time() < time(21) for step, when in journey_local.items() if step != "day0"
    )


async def test_a_worker_without_the_setting_applies_the_policy_in_real_time(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    enrolled = await enrolled_at_22_00_berlin(env, engine)
    quiet = quiet_settings(settings, allowed=False)
    async with build_worker(env.client, quiet, engine):
        handle = await start_night_welcome(env, quiet)
        await env.sleep(timedelta(hours=2))
        rows = {row.step: row for row in await message_rows(engine, "night")}
        # Day 1 came due at 23:00 real time, inside quiet hours: deferred to 08:00 real time.
        assert rows["day1"].status == "deferred"
        await handle.result()

    sent = {row.step: row.sent_at for row in await message_rows(engine, "night")}
    day1 = sent["day1"]
    assert day1 is not None
    local = day1.astimezone(BERLIN)
    assert local.date() == (enrolled + timedelta(days=1)).date()
    assert time(8) <= local.time() < time(8, 5)


async def test_frequency_caps_count_journey_days(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = time_skipping_env
    await add_contact(engine, "capped")
    async with build_worker(env.client, settings, engine, journeys=[BurstJourney]):
        handles = [
            await env.client.start_workflow(
                BurstJourney.run,
                JourneyInput(contact_id="capped", day_seconds=HOUR_DAY),
                id=f"test-burst-capped-{n}",
                task_queue=settings.task_queue,
            )
            for n in (1, 2)
        ]
        for handle in handles:
            await handle.result()

    times = sorted(row.sent_at for row in await message_rows(engine, "capped") if row.sent_at)
    assert len(times) == 4
    # Two per rolling journey day (one real hour): the third waits for the first to leave it.
    assert timedelta(minutes=59) <= times[2] - times[0] < timedelta(hours=2)


async def test_the_gateway_refuses_an_accelerated_enrolment_unless_allowed(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    production_like = gateway_settings(settings, allow_accelerated_clock=False)
    async with serving_gateway(dev_env.client, production_like, worker=False) as gateway:
        created = await gateway.http.put("/v1/contacts/kim", json={"email": "kim@example.com"})
        assert created.status_code in (200, 201), created.text
        refused = await gateway.http.post(
            "/v1/contacts/kim/journeys/welcome-series", json={"day_seconds": 1}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"] == (
            "day_seconds=1 is an accelerated journey clock; it needs "
            "ALLOW_ACCELERATED_CLOCK=true (demos and staging only)"
        )
        real_days = await gateway.http.post(
            "/v1/contacts/kim/journeys/welcome-series", json={"day_seconds": 86_400}
        )
        assert real_days.status_code == 201, real_days.text
