"""The renewal-countdown journey's input: which subscription renews, and when."""

from __future__ import annotations

from pydantic import Field, field_validator

from models.events import InUtc, UtcTime
from models.ids import SubscriptionId
from models.journeys import KEPT_BY_THE_JOURNEY, JourneyInput

REMINDER_COPY_DAYS = (90, 60, 30, 7, 1)
"""Days before renewal that have reminder copy (`templates/renewal-countdown/reminder-{N}d`).

A journey may use any of them; another day needs its template first.
"""


class RenewalInput(JourneyInput):
    """What a renewal countdown is started with.

    Attributes:
        subscription_id: The subscription that renews; one countdown per
            contact and subscription (`renewal-countdown-{contact}-{subscription}`).
        renewal_date: When it renews (timezone-aware; normalised to UTC).
            Days before renewal are calendar days counted from enrolment,
            waited on the journey clock (`day_seconds` accelerates them too).
        reminder_days: Days before renewal a reminder email goes out: positive,
            distinct, in descending order, each one with copy
            (`REMINDER_COPY_DAYS`).
        rescheduled_on_day: Journey day on which `renewal_date` was last set
            (0: at enrolment). Set by the journey when the date moves.
        rescheduled_by_event_at: `occurred_at` of the `renewal_scheduled` event
            that set `renewal_date`; older events are ignored. Set by the
            journey when the date moves.
    """

    subscription_id: SubscriptionId
    renewal_date: UtcTime
    reminder_days: tuple[int, ...] = REMINDER_COPY_DAYS
    rescheduled_on_day: float = Field(default=0, ge=0, json_schema_extra=KEPT_BY_THE_JOURNEY)
    rescheduled_by_event_at: InUtc | None = Field(
        default=None, json_schema_extra=KEPT_BY_THE_JOURNEY
    )

    @field_validator("reminder_days")
    @classmethod
    def _check_reminder_days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if any(day <= 0 for day in days):
            raise ValueError("reminder days must be positive")
        if len(set(days)) != len(days):
            raise ValueError("reminder days must be distinct")
        if list(days) != sorted(days, reverse=True):
            raise ValueError("reminder days must be in descending order, e.g. (90, 60, 30, 7, 1)")
        without_copy = [day for day in days if day not in REMINDER_COPY_DAYS]
        if without_copy:
            raise ValueError(
                f"no reminder copy for {without_copy} days before renewal; "
                f"choose among {REMINDER_COPY_DAYS}"
            )
        return days
