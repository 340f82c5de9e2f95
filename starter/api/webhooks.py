"""`POST /webhooks/email`: the email provider's delivery events, as behaviour events.

The provider signs each request: header `Webhook-Signature: t=<unix time>,
v1=<hex HMAC-SHA256 of "<t>.<raw body>" with EMAIL_WEBHOOK_SECRET>`. A missing
or wrong signature, or one older than `SIGNATURE_TOLERANCE`, gets 401 and
changes nothing. The body is `{"events": [...]}`; each names the provider's
message id (the one it answered the send with, kept in the message log):

| provider `type` | behaviour event |
| --- | --- |
| `delivered` | `email_delivered` (stored, scores nothing) |
| `opened` | `email_opened` |
| `clicked` | `email_clicked` (with `url`) |
| `bounced` | `email_bounced` (with `bounce_type` `hard` / `soft`; hard suppresses) |
| `complained` | `unsubscribed` (`reason: complaint`: a spam report stops all marketing) |

The event id is the provider's, so a redelivered webhook is processed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from sqlmodel import col, select

from models.db import session_factory
from models.events import BehaviorEvent, UtcTime
from models.tables import MessageLog
from starter.api.dependencies import ServicesDep
from starter.api.schemas import Problem
from starter.services.intake import accept_events

router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "Webhook-Signature"
SIGNATURE_TOLERANCE = 300
"""Seconds a signature stays valid (replayed old requests are refused)."""

EVENT_TYPES = {
    "delivered": "email_delivered",
    "opened": "email_opened",
    "clicked": "email_clicked",
    "bounced": "email_bounced",
    "complained": "unsubscribed",
}


class DeliveryEvent(BaseModel):
    """One delivery event from the provider.

    Attributes:
        id: The provider's id of this event (idempotency key; no control characters).
        type: What happened (see the module docstring).
        message_id: The provider's id of the message it is about.
        occurred_at: When (1970–8999).
        url: The link clicked (`clicked`).
        bounce_type: `hard` or `soft` (`bounced`).
    """

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,100}$")]
    type: Literal["delivered", "opened", "clicked", "bounced", "complained"]
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    occurred_at: UtcTime
    url: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    bounce_type: Literal["hard", "soft"] | None = None


class DeliveryEvents(BaseModel):
    """The body of a webhook request."""

    events: list[DeliveryEvent] = Field(min_length=1, max_length=500)


class WebhookResult(BaseModel):
    """How many events were taken; the ids of those about messages we never sent (or whose
    contact was erased)."""

    accepted: int
    duplicate: int
    unknown_messages: list[str]


def sign_webhook(body: bytes, secret: str, *, timestamp: int) -> str:
    """The `Webhook-Signature` value for `body` (what the provider computes)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(header: str | None, body: bytes, secret: str, *, now: float) -> None:
    """Refuse (401) a missing, malformed, expired or wrong `Webhook-Signature`."""
    parts = dict(part.split("=", 1) for part in (header or "").split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"missing or malformed {SIGNATURE_HEADER} header"
        ) from None
    if abs(now - timestamp) > SIGNATURE_TOLERANCE:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature has expired")
    expected = sign_webhook(body, secret, timestamp=timestamp).partition(",v1=")[2]
    if not hmac.compare_digest(expected.encode(), parts.get("v1", "").encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature does not match")


Body = TypeVar("Body", bound=BaseModel)


async def verified_body(
    request: Request,
    secret: SecretStr | None,
    signature: str | None,
    model: type[Body],
    *,
    webhooks: str,
    body_name: str,
) -> Body:
    """The webhook's body as `model`, once its signature checks out.

    Raises:
        HTTPException: 404 when `secret` is unset (`webhooks` are not configured),
            401 for a bad signature, 422 for a body that is not a `body_name`.
    """
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{webhooks} are not configured")
    body = await request.body()
    verify_signature(signature, body, secret.get_secret_value(), now=time.time())
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"not {body_name} body: {error}"
        ) from None


@router.post(
    "/webhooks/email",
    response_model=WebhookResult,
    summary="Email provider delivery events (signed)",
    responses={
        401: {"model": Problem, "description": "Missing, wrong or expired signature."},
        404: {"model": Problem, "description": "Email webhooks are not configured."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DeliveryEvents"}}
            },
        }
    },
)
async def email_webhook(
    request: Request,
    held: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> WebhookResult:
    """Verify the signature, then turn each delivery event into a behaviour event."""
    posted = await verified_body(
        request,
        held.settings.email_webhook_secret,
        signature,
        DeliveryEvents,
        webhooks="email webhooks",
        body_name="a delivery-events",
    )
    async with session_factory(held.engine)() as session:
        messages = {
            row.provider_message_id: row
            for row in (
                await session.exec(
                    select(MessageLog).where(
                        col(MessageLog.provider_message_id).in_(
                            {event.message_id for event in posted.events}
                        )
                    )
                )
            ).all()
        }
    events = []
    unknown = []
    for delivery in posted.events:
        message = messages.get(delivery.message_id)
        if message is None:
            unknown.append(delivery.id)
            continue
        properties: dict[str, str] = {
            "message_id": delivery.message_id,
            "journey": message.journey,
            "step": message.step,
        }
        if delivery.url:
            properties["url"] = delivery.url
        if delivery.bounce_type:
            properties["bounce_type"] = delivery.bounce_type
        if delivery.type == "complained":
            properties["reason"] = "complaint"
        events.append(
            BehaviorEvent(
                event_id=f"email-webhook-{delivery.id}",
                contact_id=message.contact_id,
                type=EVENT_TYPES[delivery.type],
                occurred_at=delivery.occurred_at,
                properties=properties,
            )
        )
    results = await accept_events(
        held.temporal,
        held.engine,
        events,
        task_queue=held.settings.task_queue,
        day_seconds=held.settings.day_seconds,
        suppression_key=held.settings.suppression_key(),
    )
    erased = [
        event.event_id.removeprefix("email-webhook-")
        for event, result in zip(events, results, strict=True)
        if result.status == "erased"
    ]
    return WebhookResult(
        accepted=sum(result.status == "accepted" for result in results),
        duplicate=sum(result.status in ("duplicate", "conflict") for result in results),
        unknown_messages=unknown + erased,
    )
