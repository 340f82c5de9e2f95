"""Messaging policy settings: quiet hours and frequency caps (applied in `rules/policy.py`),
and the journey clock they are evaluated on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

SECONDS_PER_DAY = 86_400
"""A real day; a journey whose day is shorter runs on an accelerated clock."""


@dataclass(frozen=True)
class JourneyClock:
    """A journey's clock: real time mapped to journey time, and back.

    On real days the two are the same. On an accelerated clock (a demo or
    staging journey whose day lasts `day_seconds`), journey time runs faster
    from `origin`, where both agree: the policy is evaluated in journey time,
    so quiet hours fall on the journey's nights and caps count journey days.

    Attributes:
        origin: When journey time equals real time (the journey's Day 0, shifted
            by the time spent paused).
        day_seconds: Real seconds per journey day.
    """

    origin: datetime
    day_seconds: int = SECONDS_PER_DAY

    @property
    def speed(self) -> float:
        """Journey seconds per real second (1 on real days)."""
        return SECONDS_PER_DAY / self.day_seconds

    def journey_time(self, real: datetime) -> datetime:
        """The journey time at real time `real`."""
        return self.origin + (real - self.origin) * self.speed

    def real_time(self, journey: datetime) -> datetime:
        """The real time at which the journey's clock shows `journey`."""
        return self.origin + (journey - self.origin) / self.speed

    def real_duration(self, journey: timedelta) -> timedelta:
        """How long a journey duration lasts in real time."""
        return journey / self.speed


@dataclass(frozen=True)
class FrequencyCap:
    """At most `limit` marketing messages per rolling `window`."""

    limit: int
    window: timedelta


@dataclass(frozen=True)
class MessagingPolicy:
    """The rules the send activity applies.

    Attributes:
        quiet_start: Local time quiet hours begin (e.g. 21:00).
        quiet_end: Local time they end (e.g. 08:00); may be earlier than
            `quiet_start` (the period spans midnight).
        email_caps: Caps on marketing email per contact, across journeys.
    """

    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    email_caps: Sequence[FrequencyCap] = field(
        default_factory=lambda: (
            FrequencyCap(limit=2, window=timedelta(hours=24)),
            FrequencyCap(limit=5, window=timedelta(days=7)),
        )
    )
