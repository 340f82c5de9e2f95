"""`POST /webhooks/email`: the email provider's delivery events, as behaviour events.

The provider signs each request: header `Webhook-Signature: t=<unix time>,
v1=<hex HMAC-SHA256 of "<t>.<raw body>" with EMAIL_WEBHOOK_SECRET>`. A missing
or wrong signature, or one older than `SIGNATURE_TOLERANCE`, gets 401 and
changes nothing. The body is `{"events": [...]}`; each names the provider's
message id (the one it answered the send with, kept in the message log). This
is the webhook of the generic `http` provider; each named provider has its own
route, verified its own way. The `type`s and the events they become are
`starter/services/delivery_notices.py`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from models.events import UtcTime
from starter.api.dependencies import ServicesDep
from starter.api.schemas import Problem
from starter.services.delivery_notices import (
    DeliveryNotice,
    NoticeKind,
    WebhookResult,
    record_notices,
)

router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "Webhook-Signature"
SIGNATURE_TOLERANCE = 300
"""Seconds a signature stays valid (replayed old requests are refused)."""


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
    type: NoticeKind
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    occurred_at: UtcTime
    url: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    bounce_type: Literal["hard", "soft"] | None = None


class DeliveryEvents(BaseModel):
    """The body of a webhook request."""

    events: list[DeliveryEvent] = Field(min_length=1, max_length=500)


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
    notices = [
        DeliveryNotice(
            event_id=event.id,
            kind=event.type,
            message_id=event.message_id,
            occurred_at=event.occurred_at,
            url=event.url,
            bounce_type=event.bounce_type,
        )
        for event in posted.events
    ]
    return await record_notices(held.temporal, held.engine, held.settings, notices, source="email")
