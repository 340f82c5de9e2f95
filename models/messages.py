"""Send requests and results exchanged between journeys and the send activity."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from models.ids import ContactId
from models.policy import SECONDS_PER_DAY


class Channel(StrEnum):
    """Delivery channel of a message."""

    EMAIL = "email"
    SMS = "sms"


class DeliveryStatus(StrEnum):
    """Outcome of one send, as recorded in the message log.

    `pending` (written before the provider call) and `deferred` (quiet hours or
    frequency cap: the journey waits and asks again) are not final; every other
    value is. `cancelled`: a deferred message the journey no longer sends (it
    exited, or an event called the message off). `held_out`: an experiment's
    message not sent to a contact in its holdout (a journey's outcome; the message
    log has no row for it).
    """

    PENDING = "pending"
    DEFERRED = "deferred"
    SENT = "sent"
    SUPPRESSED = "suppressed"
    SKIPPED_NO_CONSENT = "skipped_no_consent"
    SKIPPED_NO_ADDRESS = "skipped_no_address"
    SKIPPED_SUNSET = "skipped_sunset"
    HELD_OUT = "held_out"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """Whether a later attempt with the same key must return this outcome as is."""
        return self not in (DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)


SUNSET_TAG = "eng_sunset"
"""The tag of a sunset contact: no response to re-engagement, so no marketing messages until
it does something again (list hygiene, not an opt-out; `workflows/contact.py` sets and lifts
it, the send activity honours it)."""


class MessageCategory(StrEnum):
    """Marketing messages need consent and count against caps; transactional ones do not."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


class SendRequest(BaseModel):
    """Ask the send activity to deliver one templated message.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; a retry with the same key never
            delivers twice.
        contact_id: Recipient; the activity loads address and consent itself.
        journey: Journey type, for the message log.
        step: Journey step, for the message log.
        template: Template name, e.g. `welcome-series/day0`.
        channel: Delivery channel.
        category: Marketing (consent, quiet hours, caps) or transactional.
        quiet_hours_exempt: Send even inside quiet hours (e.g. the Day-0 welcome,
            which the contact is waiting for).
        day_seconds: The journey's clock: seconds per journey day.
        clock_origin: When the journey's clock agrees with real time (its Day 0,
            shifted by pauses); with `day_seconds`, where a worker that allows
            accelerated clocks evaluates quiet hours and caps (in journey time).
        variables: What the journey tells its template besides the contact (e.g.
            `cart`, the abandoned cart's contents), as template variables; like
            contact data, rendered as text, never as template code.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    contact_id: ContactId
    journey: str
    step: str
    template: str
    channel: Channel = Channel.EMAIL
    category: MessageCategory = MessageCategory.MARKETING
    quiet_hours_exempt: bool = False
    day_seconds: int = Field(default=SECONDS_PER_DAY, ge=1, le=SECONDS_PER_DAY)
    clock_origin: datetime | None = None
    variables: dict[str, JsonValue] = Field(default_factory=dict)


class SendResult(BaseModel):
    """What the send activity did.

    Attributes:
        status: Final delivery status.
        idempotency_key: Echo of the request's key.
        provider_message_id: Provider's id (the Message-ID for email) when sent.
        reason: Human-readable detail for a status other than `sent`.
        deferred_until: For `deferred`: when to ask again.
    """

    model_config = ConfigDict(frozen=True)

    status: DeliveryStatus
    idempotency_key: str
    provider_message_id: str | None = None
    reason: str | None = None
    deferred_until: datetime | None = None


class CancelRequest(BaseModel):
    """Mark a journey's deferred messages as cancelled (it exited, or called them off).

    Attributes:
        idempotency_keys: The messages' keys.
        reason: Why, for the message log.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_keys: list[str]
    reason: str


class ServiceSms(BaseModel):
    """A service text message (an answer to an SMS keyword): no consent needed, not suppressed.

    Attributes:
        idempotency_key: `sms-keywords/<digest of the inbound message id>`:
            a redelivered inbound message is answered once.
        to_number: Where to send it: the number that texted us (E.164).
        template: SMS template name, e.g. `sms-keywords/stop`.
        step: What it answers, for the message log, e.g. `stop`.
        contact_id: The contact with that number, for the message log (None:
            no contact has it).
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    to_number: str
    template: str
    step: str
    contact_id: ContactId | None = None
