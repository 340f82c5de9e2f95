"""Messaging policy settings: quiet hours and frequency caps (applied in `activities/policy.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta


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
