"""The nurture on the time-skipping server, with the real worker, templates and outbox.

Tracks by `int_` / `src_` tags, Warming twice a week and Cold weekly, the same local
weekday and hour (across a DST change), the high-intent offer once, downloaded assets
skipped, and the exits. Runs from before the tracks replay from
`tests/histories/nurture-handed-to-sales.json` (`tests/test_replay.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.qa.simulate import Timeline
from starter.services.report import funnel_report
from tests.kit import (
    JourneyKit,
    Simulation,
    at,
    message_rows,
    read_outbox,
    sample_contact,
    text_body,
)

GENERAL = ["general.sender-checklist", "general.customer-story", "general.pre-send-checklist"]
AUTOMATION = [
    "automation.flow-recipes",
    "automation.automation-teardown",
    "automation.first-flow-checklist",
]
ECOMMERCE = [
    "ecommerce.abandoned-cart-guide",
    "ecommerce.store-story",
    "ecommerce.launch-checklist",
]
WEEKLY = [7, 14, 21, 28]


def sent_days(timeline: Timeline) -> list[tuple[str, int]]:
    """(step, day) of every email sent; slots are 10:00 local, the journey starts at 10:00
    and a few seconds, so a slot is Day N less those seconds: rounded to the day."""
    return [
        (entry.step or "", round((entry.at - timeline.enrolled_at) / timedelta(days=1)))
        for entry in timeline.of_kind("sent")
    ]


def local_sends(timeline: Timeline) -> list[tuple[int, int, int]]:
    """(weekday, hour, minute) of every email sent, in the contact's zone."""
    zone = ZoneInfo(timeline.timezone)
    return [
        (local.weekday(), local.hour, local.minute)
        for local in (entry.at.astimezone(zone) for entry in timeline.of_kind("sent"))
    ]


@pytest.mark.parametrize(
    ("tags", "track"),
    [
        (["src_lead-magnet", "int_product_course"], GENERAL),
        (["int_topic_marketing-automation"], AUTOMATION),
        (["src_shopify-app"], ECOMMERCE),
    ],
    ids=["general", "automation-by-interest", "ecommerce-by-source"],
)
async def test_each_track_weekly_for_a_cold_lead_then_the_roundup(
    tags: list[str], track: list[str], journey_kit: JourneyKit
) -> None:
    contact = sample_contact(tags=tags)
    timeline = await journey_kit.simulate(Simulation("nurture", contact=contact))

    assert sent_days(timeline) == list(zip([*track, "roundup"], WEEKLY, strict=True))
    assert timeline.status == "completed"
    enrolled = timeline.enrolled_at.astimezone(ZoneInfo(contact.timezone or "UTC"))
    assert set(local_sends(timeline)) == {(enrolled.weekday(), 10, 0)}
    outbox = read_outbox(journey_kit.outbox)
    first = outbox[f"nurture-{contact.id}/{track[0]}"]
    assert text_body(first).startswith("Hey Ada,\n")
    assert "utm_content=" + track[0] in text_body(first)


async def test_an_interest_gained_mid_way_moves_the_contact_at_the_next_email(
    journey_kit: JourneyKit,
) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation(
            "nurture",
            contact=contact,
            events=[at("9d", "webinar_registered", interest="Automation")],
        )
    )
    await journey_kit.save_history(timeline, "nurture-tracks-switched")

    # webinar registration: +10 → still Cold; from the second email on, the automation track.
    assert sent_days(timeline) == [
        ("general.sender-checklist", 7),
        ("automation.flow-recipes", 14),
        ("automation.automation-teardown", 21),
        ("roundup", 28),
    ]
    roundup = text_body(read_outbox(journey_kit.outbox)[f"nurture-{contact.id}/roundup"])
    assert "Start small with automation" in roundup
    # `journeys report`: one completed run, a row per email sent, whichever track.
    (funnel,) = (await funnel_report(journey_kit.engine, journey="nurture")).journeys
    assert (funnel.entered, funnel.completed) == (1, 1)
    sent = {step.step: step.sent for step in funnel.steps if step.sent}
    assert sent == {step: 1 for step, _ in sent_days(timeline)}


async def test_warming_gets_twice_a_week_cold_weekly(journey_kit: JourneyKit) -> None:
    warming = await journey_kit.simulate(
        Simulation("nurture", contact=sample_contact(), events=[at("1d", "email_replied")])
    )

    # A reply: +20 → Warming from Day 1: the mid-week slots (Days 3, 10) go too.
    assert sent_days(warming) == list(zip([*GENERAL, "roundup"], [3, 7, 10, 14], strict=True))
    zone = ZoneInfo(warming.timezone)
    enrolled = warming.enrolled_at.astimezone(zone)
    assert local_sends(warming) == [
        ((enrolled.weekday() + 3) % 7, 10, 0),
        (enrolled.weekday(), 10, 0),
        ((enrolled.weekday() + 3) % 7, 10, 0),
        (enrolled.weekday(), 10, 0),
    ]


async def test_reaching_mql_hands_the_lead_to_sales_and_ends_the_nurture(
    journey_kit: JourneyKit,
) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation("nurture", contact=contact, events=[at("9d", "trial_started")])
    )

    assert (timeline.status, timeline.exit_reason) == ("exited", "handed-to-sales")
    assert timeline.sent == ["general.sender-checklist"]
    assert [row.step for row in await message_rows(journey_kit.engine, contact.id)] == [
        "general.sender-checklist"
    ]


def next_dst_change(zone: ZoneInfo, after: datetime) -> datetime:
    """The first day after `after` whose UTC offset differs from the day before."""
    day = after
    while (day + timedelta(days=1)).astimezone(zone).utcoffset() == day.astimezone(
        zone
    ).utcoffset():
        day += timedelta(days=1)
    return day


@pytest.mark.parametrize("timezone", ["America/New_York", "Europe/Paris"])
async def test_same_local_weekday_and_hour_across_a_dst_change(
    timezone: str, journey_kit: JourneyKit, time_skipping_env: WorkflowEnvironment
) -> None:
    zone = ZoneInfo(timezone)
    now = await time_skipping_env.get_current_time()
    change = next_dst_change(zone, now)
    await time_skipping_env.sleep(change - timedelta(days=12) - now)
    timeline = await journey_kit.simulate(
        Simulation("nurture", contact=sample_contact(timezone=timezone))
    )

    enrolled = timeline.enrolled_at.astimezone(zone)
    assert set(local_sends(timeline)) == {(enrolled.weekday(), 10, 0)}
    utc_hours = {entry.at.astimezone(UTC).hour for entry in timeline.of_kind("sent")}
    assert len(utc_hours) == 2, utc_hours  # the clocks changed in between


async def test_two_pricing_visits_send_the_high_intent_offer_once(
    journey_kit: JourneyKit,
) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation(
            "nurture",
            contact=contact,
            events=[at("2d", "pricing_page_viewed"), at("8d", "pricing_page_viewed")],
        )
    )
    await journey_kit.save_history(timeline, "nurture-offer-once")

    assert timeline.sent.count("offer") == 1
    assert sent_days(timeline)[0] == ("offer", 7)  # the next slot after the first visit
    assert timeline.sent[-1] == "roundup"
    offer = read_outbox(journey_kit.outbox)[f"nurture-{contact.id}/offer"]
    assert offer["Subject"] == "Want a hand choosing a plan?"
    assert "https://northwind.example/book-a-call?" in text_body(offer)


async def test_a_downloaded_asset_is_not_offered_again(journey_kit: JourneyKit) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation(
            "nurture",
            contact=contact,
            events=[at("8d", "content_downloaded", asset="customer-story")],
        )
    )

    # +5 keeps it Cold; the customer story is skipped for the next asset, then the roundup.
    assert sent_days(timeline) == [
        ("general.sender-checklist", 7),
        ("general.pre-send-checklist", 14),
        ("roundup", 21),
    ]


@pytest.mark.parametrize("exit_event", ["unsubscribed", "purchased"])
async def test_exit_event_after_the_first_email_ends_it(
    exit_event: str, journey_kit: JourneyKit
) -> None:
    contact = sample_contact()
    timeline = await journey_kit.simulate(
        Simulation("nurture", contact=contact, events=[at("10d", exit_event)])
    )

    assert (timeline.status, timeline.exit_reason) == ("exited", exit_event)
    assert timeline.sent == ["general.sender-checklist"]


async def test_continuing_as_new_keeps_the_schedule_and_the_track(
    journey_kit: JourneyKit,
) -> None:
    timeline = await journey_kit.simulate(
        Simulation(
            "nurture",
            contact=sample_contact(tags=["int_ecommerce"]),
            options={"history_limit": 20},
        )
    )

    assert sent_days(timeline) == list(zip([*ECOMMERCE, "roundup"], WEEKLY, strict=True))
    assert timeline.status == "completed"
