"""The nurture's rules (`rules/nurture.py`): tracks, assets, slots and cadence."""

from __future__ import annotations

from datetime import UTC, date, datetime

from rules.nurture import (
    GENERAL,
    choose_track,
    next_asset,
    sent_this_slot,
    slot_day,
    slot_time,
    track_named,
)

MONDAY = date(2026, 3, 2)
"""A Monday a week before the United States move their clocks (Sunday 8 March 2026)."""


def test_slots_fall_midweek_and_on_the_enrolment_weekday() -> None:
    assert [slot_day(index) for index in range(6)] == [3, 7, 10, 14, 17, 21]


def test_a_slot_keeps_its_local_hour_across_a_daylight_saving_change() -> None:
    before = slot_time(MONDAY, 0, hour=10, timezone="America/New_York")  # Thursday 5 March
    after = slot_time(MONDAY, 1, hour=10, timezone="America/New_York")  # Monday 9 March
    assert before == datetime(2026, 3, 5, 15, tzinfo=UTC)  # EST, UTC-5
    assert after == datetime(2026, 3, 9, 14, tzinfo=UTC)  # EDT, UTC-4
    assert slot_time(MONDAY, 1, hour=10, timezone="Europe/Paris") == datetime(
        2026, 3, 9, 9, tzinfo=UTC
    )


def test_a_contact_without_a_known_zone_is_sent_to_on_utc() -> None:
    expected = datetime(2026, 3, 9, 10, tzinfo=UTC)
    assert slot_time(MONDAY, 1, hour=10, timezone=None) == expected
    assert slot_time(MONDAY, 1, hour=10, timezone="Mars/Olympus_Mons") == expected


def test_cold_is_weekly_and_warming_gets_every_slot() -> None:
    assert [sent_this_slot(index, "Cold") for index in range(4)] == [False, True, False, True]
    assert [sent_this_slot(index, "Warming") for index in range(4)] == [True] * 4
    assert [sent_this_slot(index, None) for index in range(2)] == [False, True]


def test_the_track_comes_from_interests_then_source_then_general() -> None:
    assert choose_track({"int_topic_automation"}, seen=(), current=None).id == "automation"
    assert choose_track({"src_shopify-app"}, seen=(), current=None).id == "ecommerce"
    both = {"src_shopify-app", "int_workflows"}
    assert choose_track(both, seen=(), current=None).id == "automation"
    assert choose_track({"src_leadmagnet_email-guide"}, seen=(), current=None) is GENERAL


def test_an_interest_gained_since_the_last_email_moves_the_contact_to_its_track() -> None:
    seen = {"src_leadmagnet_email-guide"}
    assert choose_track(seen, seen=seen, current="general") is GENERAL  # nothing new: stays
    gained = {*seen, "int_ecommerce"}
    assert choose_track(gained, seen=seen, current="general").id == "ecommerce"
    # An interest the contact already had does not pull it back from its current track.
    had = {"int_ecommerce", "int_automation"}
    assert choose_track(had, seen=had, current="automation").id == "automation"


def test_the_next_asset_skips_what_was_offered_or_downloaded_then_falls_back_to_general() -> None:
    automation = track_named("automation")
    assert automation is not None
    first, second, third = automation.assets

    found = next_asset(automation, offered=(), downloaded={first.id})
    assert found == (automation, second)
    found = next_asset(
        automation, offered={automation.step(second)}, downloaded={first.id, third.id}
    )
    assert found == (GENERAL, GENERAL.assets[0])
    everything = {track.step(asset) for track in (automation, GENERAL) for asset in track.assets}
    assert next_asset(automation, offered=everything, downloaded=()) is None
