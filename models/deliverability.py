"""The deliverability guard's configuration (`deliverability.toml`) and what a check finds.

Per journey and step, over a rolling window, the guard measures five rates of
the emails sent: bounce, complaint, unsubscribe (too high is bad) and open,
click (too low is bad). A rate past its alert limit notifies the journey's
owner; a bounce or complaint rate past its pause limit stops the journey's
marketing sends until an operator resumes them (`rules/deliverability.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from models.ids import PersonId
from models.toml_files import load_toml

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class Metric(StrEnum):
    """A rate the guard watches: the share of sent emails whose contact did this."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    OPEN = "open"
    CLICK = "click"

    @property
    def event_type(self) -> str:
        """The behaviour event that counts for this rate."""
        return METRIC_EVENTS[self]

    @property
    def low_is_bad(self) -> bool:
        """Whether the rate alerts when it is too low (opens, clicks) rather than too high."""
        return self in (Metric.OPEN, Metric.CLICK)


METRIC_EVENTS = {
    Metric.BOUNCE: "email_bounced",
    Metric.COMPLAINT: "email_complained",
    Metric.UNSUBSCRIBE: "unsubscribed",
    Metric.OPEN: "email_opened",
    Metric.CLICK: "email_clicked",
}
PAUSING_METRICS = frozenset({Metric.BOUNCE, Metric.COMPLAINT})
"""The rates whose spike endangers the sending domain's reputation: only they pause sends."""


class Owner(BaseModel):
    """Someone who owns journeys and hears about their deliverability.

    Attributes:
        id: Stable id.
        name: Display name.
        mention: How a chat notification addresses them (e.g. `<@U024BE7LH>`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PersonId
    name: str = Field(min_length=1, max_length=100)
    mention: str | None = Field(default=None, max_length=100)

    @property
    def addressed(self) -> str:
        """The mention if there is one, else the name."""
        return self.mention or self.name


def _seed_alert_limits() -> dict[Metric, Rate]:
    return {
        Metric.BOUNCE: 0.02,  # seed 002: bounce rate < 2%
        Metric.COMPLAINT: 0.001,  # seed 002: complaint rate < 0.1%
        Metric.UNSUBSCRIBE: 0.01,  # seed 002: unsubscribe rate < 1%
        Metric.OPEN: 0.10,  # seed 003: "alert when the open rate falls below 10%"
        Metric.CLICK: 0.03,  # seed 002: click rate 3%–8%
    }


def _pause_limits() -> dict[Metric, Rate]:
    return {Metric.BOUNCE: 0.05, Metric.COMPLAINT: 0.003}


class GuardConfig(BaseModel):
    """`deliverability.toml`.

    Attributes:
        window_hours: The rolling window: emails sent this long ago or less count.
        min_sends: A step is judged only once it sent this many emails in the window.
        settle_hours: Opens and clicks count only emails sent at least this long ago
            (an email sent a minute ago has not been opened yet).
        alert: Alert limit per metric: at most (bounce, complaint, unsubscribe) or at
            least (open, click). A metric left out is not watched.
        pause: Pause limit (bounce, complaint only): a step at or past it pauses the
            journey's marketing sends.
        owners: Journey name → owner id; `default` for every other journey.
        people: The owners.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    min_sends: PositiveInt = 100
    settle_hours: float = Field(default=2.0, ge=0)
    alert: dict[Metric, Rate] = Field(default_factory=_seed_alert_limits)
    pause: dict[Metric, Rate] = Field(default_factory=_pause_limits)
    owners: dict[str, PersonId] = Field(default_factory=dict)
    people: list[Owner] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not set(self.pause) <= PAUSING_METRICS:
            raise ValueError("pause: only bounce and complaint rates pause sends")
        known = {person.id for person in self.people}
        unknown = sorted(set(self.owners.values()) - known)
        if unknown:
            raise ValueError(f"owners: {', '.join(unknown)} not among [[people]]")
        if self.people and "default" not in self.owners:
            raise ValueError("owners: name a `default` owner for the other journeys")
        return self

    @classmethod
    def load(cls, path: str | Path) -> GuardConfig:
        """Read the file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid configuration (the message names
                the file and each problem).
        """
        return load_toml(cls, path, "deliverability configuration")

    @property
    def window(self) -> timedelta:
        """The rolling window."""
        return timedelta(hours=self.window_hours)

    def owner_of(self, journey: str) -> Owner | None:
        """Who owns `journey` (the default owner when it has none of its own)."""
        owner_id = self.owners.get(journey, self.owners.get("default"))
        return next((person for person in self.people if person.id == owner_id), None)


class StepRates(BaseModel):
    """What one journey step's emails did in the window.

    Attributes:
        journey: Journey name.
        step: Step id.
        sent: Emails sent in the window.
        settled: Of those, sent at least `settle_hours` ago (the base of the open and
            click rates).
        counts: Contacts who did each metric's event (bounce, open…).
    """

    journey: str
    step: str
    sent: int
    settled: int
    counts: dict[Metric, int] = Field(default_factory=dict)

    def rate(self, metric: Metric) -> float | None:
        """The metric's rate, or None when no email is its base."""
        base = self.settled if metric.low_is_bad else self.sent
        return None if base == 0 else self.counts.get(metric, 0) / base


class Breach(BaseModel):
    """A step's rate past a limit.

    Attributes:
        journey: Journey name.
        step: Step id.
        metric: The rate.
        rate: Its value.
        limit: The limit it passed.
        sent: Emails it was measured on.
        pauses: Whether it passed the pause limit (not only the alert limit).
    """

    journey: str
    step: str
    metric: Metric
    rate: float
    limit: float
    sent: int
    pauses: bool = False

    @property
    def key(self) -> str:
        """`journey/step/metric`: at most one open alert per key."""
        return f"{self.journey}/{self.step}/{self.metric}"

    def describe(self) -> str:
        """`bounce rate 8.0% on day0 (limit 5.0%, 100 emails)`."""
        side = "below" if self.metric.low_is_bad else "above"
        return (
            f"{self.metric} rate {self.rate:.1%} on {self.step} ({side} the "
            f"{'pause' if self.pauses else 'alert'} limit {self.limit:.1%}, {self.sent} emails)"
        )


class PauseView(BaseModel):
    """A pause of a journey's marketing sends (`models.tables.SendPause`).

    Attributes:
        journey: The journey paused.
        paused_at: When.
        paused_by: `deliverability-guard`, or the operator.
        reason: Why, with the figures.
        resumed_at: When an operator resumed the sends; none while paused.
        resumed_by: Who resumed them.
    """

    journey: str
    paused_at: datetime
    paused_by: str
    reason: str
    resumed_at: datetime | None = None
    resumed_by: str | None = None

    def describe(self) -> str:
        """`sends paused 2026-12-06 23:10 UTC by deliverability-guard (…); resumed … by …`."""
        text = (
            f"sends paused {self.paused_at:%Y-%m-%d %H:%M} UTC by {self.paused_by} ({self.reason})"
        )
        if self.resumed_at is None:
            return text + "; still paused"
        return text + f"; resumed {self.resumed_at:%Y-%m-%d %H:%M} UTC by {self.resumed_by}"


class GuardResult(BaseModel):
    """What one check found and did.

    Attributes:
        checked_at: When it measured.
        steps: Steps with emails in the window.
        open_alerts: Every alert still open after the check.
        raised: Alerts raised by this check (their owners notified).
        cleared: Alerts whose rate is back within its limit.
        paused: Journeys paused by this check.
        paused_journeys: Every journey whose sends are paused after the check.
    """

    checked_at: datetime
    steps: int = 0
    open_alerts: list[str] = Field(default_factory=list)
    raised: list[str] = Field(default_factory=list)
    cleared: list[str] = Field(default_factory=list)
    paused: list[str] = Field(default_factory=list)
    paused_journeys: list[str] = Field(default_factory=list)
