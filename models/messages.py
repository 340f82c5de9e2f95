"""Send requests and results exchanged between journeys and the send activity."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from models.events import ContactId


class Channel(StrEnum):
    """Delivery channel of a message."""

    EMAIL = "email"
    SMS = "sms"


class DeliveryStatus(StrEnum):
    """Outcome of one send, as recorded in the message log.

    `pending` is the state of a row written before the provider call; every
    other value is final.
    """

    PENDING = "pending"
    SENT = "sent"
    SKIPPED_NO_CONSENT = "skipped_no_consent"
    SKIPPED_NO_ADDRESS = "skipped_no_address"
    FAILED = "failed"


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
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: str
    contact_id: ContactId
    journey: str
    step: str
    template: str
    channel: Channel = Channel.EMAIL


class SendResult(BaseModel):
    """What the send activity did.

    Attributes:
        status: Final delivery status.
        idempotency_key: Echo of the request's key.
        provider_message_id: Provider's id (the Message-ID for email) when sent.
        reason: Human-readable detail for a status other than `sent`.
    """

    model_config = ConfigDict(frozen=True)

    status: DeliveryStatus
    idempotency_key: str
    provider_message_id: str | None = None
    reason: str | None = None
