"""Behaviour events: what backend services tell us a contact did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from models.ids import ContactId

CANONICAL_EVENT_TYPES = frozenset(
    {
        "subscribed",
        "email_opened",
        "email_clicked",
        "email_replied",
        "email_bounced",
        "email_complained",
        "unsubscribed",
        "website_visited",
        "pricing_page_viewed",
        "checkout_started",
        "purchased",
        "demo_requested",
        "content_downloaded",
        "webinar_registered",
        "webinar_attended",
        "trial_started",
        "renewal_scheduled",
        "renewed",
        "rep_contacted",
        "meeting_held",
        "cart_updated",
        "usage_reported",
        "usage_dropped",
        "usage_recovered",
        "subscription_confirmed",
        "feature_used",
        "lead_qualified",
        "deal_stage_changed",
        "deal_won",
        "deal_lost",
        "lead_disqualified",
    }
)
"""Event types the journeys and the lead score understand.

Other snake_case types are accepted and stored; they score nothing.
"""


SEGMENT_ENTERED = "segment_entered"
SEGMENT_LEFT = "segment_left"
"""The events of entering and leaving a segment a journey follows (`properties.segment`;
`rules/segment_membership.py`)."""

NOT_CONTACT_INITIATED = frozenset(
    {
        "email_delivered",  # our message reached the inbox (the provider's webhook)
        "email_bounced",  # the receiving server refused our message
        "unsubscribed",  # the contact's act, but an opt-out, not engagement
        "email_complained",  # a spam report: an opt-out, not engagement
        "renewal_scheduled",  # the billing system's schedule
        "rep_contacted",  # our sales rep's act
        "usage_dropped",  # derived by the ingest from usage reports
        "usage_recovered",  # derived by the ingest from usage reports
        "deal_stage_changed",  # our sales team's record of the deal
        "deal_won",  # our sales team's record (the derived `purchased` is the contact's)
        "deal_lost",  # our sales team's record of the deal
        SEGMENT_ENTERED,  # the contact met a segment's rule
        SEGMENT_LEFT,  # the contact no longer meets it
    }
)
"""Event types that report what we or our systems did, not something the contact did.

Every other type is contact-initiated (a behaviour event is "one thing a contact
did"): opens, clicks, replies, visits, downloads, sign-ups, trials, purchases,
renewals, `subscription_confirmed` (the "keep me subscribed" link) and any custom
type a service sends; and a usage report that counts some use (`PRODUCT_USAGE`).
Contact-initiated events, and only they, reset the contact's inactivity timer
(`workflows/contact.py`), end a re-engagement journey as `reactivated` and lift a
sunset. A new event type that we or a system emit about a contact goes here, one
line each."""
PRODUCT_USAGE = "usage_reported"
"""A metering report the product's backend sends: the contact's own activity when its
`value` is above 0 (a customer who uses the product every day is not inactive, however
few emails they open), not when it reports no use."""


def is_contact_initiated(event: BehaviorEvent) -> bool:
    """Whether the event is something the contact did (see `NOT_CONTACT_INITIATED`)."""
    if event.type == PRODUCT_USAGE:
        value = event.properties.get("value")
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return event.type not in NOT_CONTACT_INITIATED


EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)
"""Far enough for any real date (and a time-skipping test server's clock), far enough from
the end of `datetime` for the journeys' arithmetic."""


def _in_utc(value: datetime) -> datetime:
    """`value` in UTC; one that falls outside `datetime`'s range there is refused."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} cannot be expressed in UTC") from None


def _plausible_utc(value: datetime) -> datetime:
    """`value` in UTC, refused before 1970 or from 9000 on.

    Such a date is a typo or an attack; journeys compute with it (decay,
    dormancy, reminders), and near the end of `datetime`'s range that
    arithmetic overflows: a workflow task that fails on every retry.
    """
    utc = _in_utc(value)
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(f"{utc.isoformat()} is not between 1970 and 8999")
    return utc


UtcTime = Annotated[AwareDatetime, AfterValidator(_plausible_utc)]
"""A timezone-aware time between 1970 and 8999, normalised to UTC: what a contact, a
caller or an event supplies."""
InUtc = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""A timezone-aware time normalised to UTC: what the project computes itself."""

MAX_PROPERTIES_DEPTH = 16
MAX_PROPERTIES_BYTES = 32_768


def _bounded(properties: dict[str, Any]) -> dict[str, Any]:
    """Refuse properties nested deeper than 16 levels, larger than 32 KiB as (UTF-8) JSON, or
    that JSON cannot carry (NaN, infinities, lone surrogates): Temporal and the database
    could not store them."""
    level: list[Any] = [properties]
    for depth in range(1, MAX_PROPERTIES_DEPTH + 2):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            break
        if depth > MAX_PROPERTIES_DEPTH:
            raise ValueError(f"properties nest deeper than {MAX_PROPERTIES_DEPTH} levels")
    try:
        as_json = json.dumps(properties, default=str, ensure_ascii=False, allow_nan=False)
        size = len(as_json.encode())
    except ValueError as error:  # NaN or an infinity; UnicodeEncodeError: a lone surrogate
        reason = "a lone surrogate" if isinstance(error, UnicodeEncodeError) else "NaN or infinity"
        raise ValueError(f"properties hold {reason}, which JSON cannot carry") from None
    if size > MAX_PROPERTIES_BYTES:
        raise ValueError(f"properties take {size} bytes as JSON; at most {MAX_PROPERTIES_BYTES}")
    return properties


EventProperties = Annotated[dict[str, Any], AfterValidator(_bounded)]
"""Free-form event details, bounded: at most 16 levels deep and 32 KiB as JSON."""


class BehaviorEvent(BaseModel):
    """One thing a contact did, as reported by a backend service.

    Attributes:
        event_id: Idempotency key: the same id is processed once.
        contact_id: The contact who did it.
        type: snake_case event type, e.g. `pricing_page_viewed`.
        occurred_at: When it happened (timezone-aware, 1970–8999; normalised to UTC).
        properties: Free-form details (page URL, plan, UTM parameters…).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,128}$")]
    contact_id: ContactId
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    occurred_at: UtcTime
    properties: EventProperties = Field(default_factory=dict)


MAX_EVENTS_PAYLOAD_BYTES = 512 * 1024
"""Most event JSON one Temporal payload holds: a batch to ingest, or the events carried
over to a contact's or a journey's next run. Far below Temporal's 2 MB limit: events of
up to 32 KiB each may pile up (e.g. while no worker runs)."""


def json_size(event: BehaviorEvent) -> int:
    """Size of the event as the payload converter writes it (JSON)."""
    return len(event.model_dump_json().encode())


ALL_CHANNELS = frozenset({"email", "sms"})
"""The channels messages go out on (`models.messages.Channel`'s values)."""
