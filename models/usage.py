"""Usage signals of customers: what a `usage_reported` event carries, what a drop or a
recovery derived from it says, and what the churn-prevention journey is started with."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.ids import SubscriptionId
from models.journeys import JourneyInput

USAGE_REPORTED = "usage_reported"
"""A backend service reports one usage figure of a contact (`UsageReported`)."""
USAGE_DROPPED = "usage_dropped"
"""Derived by the ingest: a figure fell below the configured share of its trailing average."""
USAGE_RECOVERED = "usage_recovered"
"""Derived by the ingest: after a drop, the figure is back at or above the drop's threshold."""

MetricName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
]
"""A usage metric, e.g. `campaigns_sent` or `active_seats` (lower case, 1–64 characters)."""


class UsageReported(BaseModel):
    """The properties of a `usage_reported` event (other properties are kept and ignored).

    Attributes:
        metric: Which figure, e.g. `campaigns_sent`.
        value: Its value for the period the service reports on (a week, a day…),
            zero or more.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    metric: MetricName
    value: float = Field(ge=0, allow_inf_nan=False)


class UsageSignal(BaseModel):
    """The properties of a derived `usage_dropped` / `usage_recovered` event: the numbers.

    Attributes:
        metric: The figure.
        value: The value reported.
        trailing_average: Average of the metric's reports in the window before
            this one (for a recovery: the average the drop was measured against).
        share: `value / trailing_average`.
        threshold: `drop_share × trailing_average`: below it is a drop, at or
            above it (after a drop) a recovery.
        reports: How many reports the average is taken over.
        window_days: The window, in days.
        source_event_id: The `usage_reported` event it was derived from.
    """

    model_config = ConfigDict(frozen=True)

    metric: MetricName
    value: float
    trailing_average: float
    share: float
    threshold: float
    reports: int
    window_days: int
    source_event_id: str


class ChurnInput(JourneyInput):
    """What a churn-prevention journey is started with: why the contact is at risk.

    Attributes:
        cause: `usage_dropped` (a usage signal) or `renewal_lapsed` (the renewal
            countdown reached its date without a renewal).
        usage: The numbers of the drop (cause `usage_dropped`).
        subscription_id: The subscription that lapsed (cause `renewal_lapsed`).
    """

    cause: Literal["usage_dropped", "renewal_lapsed"] = "usage_dropped"
    usage: UsageSignal | None = None
    subscription_id: SubscriptionId | None = None
