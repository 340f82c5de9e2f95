"""The messaging policy's rules, as pure functions: quiet hours (with DST) and caps."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from models.policy import FrequencyCap, MessagingPolicy
from rules.policy import frequency_cap_release, quiet_hours_end

POLICY = MessagingPolicy()  # 21:00–08:00


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # 12:00 in Paris (CET, +1): allowed.
        (utc(2027, 1, 15, 11), "Europe/Paris", None),
        # 22:30 in Paris: until 08:00 next morning = 07:00 UTC.
        (utc(2027, 1, 15, 21, 30), "Europe/Paris", utc(2027, 1, 16, 7)),
        # 03:00 in Paris: until 08:00 the same morning.
        (utc(2027, 1, 15, 2), "Europe/Paris", utc(2027, 1, 15, 7)),
        # Spring forward in Paris (28 March 2027, 02:00 → 03:00): 23:00 CET on
        # the 27th waits until 08:00 CEST (+2) = 06:00 UTC, not 07:00.
        (utc(2027, 3, 27, 22), "Europe/Paris", utc(2027, 3, 28, 6)),
        # Fall back in New York (7 November 2027): 22:00 EDT (-4) on the 6th
        # waits until 08:00 EST (-5) = 13:00 UTC.
        (utc(2027, 11, 7, 2), "America/New_York", utc(2027, 11, 7, 13)),
        # Exactly 08:00 local is allowed; exactly 21:00 is not.
        (utc(2027, 1, 15, 7), "Europe/Paris", None),
        (utc(2027, 1, 15, 20), "Europe/Paris", utc(2027, 1, 16, 7)),
        # 03:00 UTC is quiet in Paris (04:00) but midday in Tokyo (12:00).
        (utc(2027, 1, 15, 3), "Europe/Paris", utc(2027, 1, 15, 7)),
        (utc(2027, 1, 15, 3), "Asia/Tokyo", None),
    ],
)
def test_quiet_hours_in_the_contact_time_zone(
    now: datetime, zone: str, expected: datetime | None
) -> None:
    assert quiet_hours_end(now, zone, POLICY) == expected


def test_quiet_period_within_a_day_and_disabled() -> None:
    lunch = MessagingPolicy(quiet_start=time(12), quiet_end=time(14))
    assert quiet_hours_end(utc(2027, 1, 15, 13), "UTC", lunch) == utc(2027, 1, 15, 14)
    assert quiet_hours_end(utc(2027, 1, 15, 15), "UTC", lunch) is None
    disabled = MessagingPolicy(quiet_start=time(0), quiet_end=time(0))
    assert quiet_hours_end(utc(2027, 1, 15, 3), "UTC", disabled) is None


CAPS = (
    FrequencyCap(limit=2, window=timedelta(hours=24)),
    FrequencyCap(limit=5, window=timedelta(days=7)),
)


def test_frequency_cap_releases_when_the_oldest_counted_message_leaves_the_window() -> None:
    now = utc(2027, 1, 15, 12)
    assert frequency_cap_release(now, [], CAPS) is None
    assert frequency_cap_release(now, [now - timedelta(hours=3)], CAPS) is None
    two_today = [now - timedelta(hours=3), now - timedelta(hours=1)]
    assert frequency_cap_release(now, two_today, CAPS) == now + timedelta(hours=21)
    # Messages older than 24 h do not count against the daily cap…
    assert frequency_cap_release(now, [now - timedelta(hours=25)] * 2, CAPS) is None
    # …but five in a week hold the sixth until the oldest is a week old.
    week = [now - timedelta(days=d) for d in (6, 5, 4, 3, 2)]
    assert frequency_cap_release(now, week, CAPS) == now + timedelta(days=1)
    # Both caps: the later release wins.
    both = [now - timedelta(days=d) for d in (6, 5, 4)] + two_today
    assert frequency_cap_release(now, both, CAPS) == now + timedelta(days=1)
