"""`POST /webhooks/mailgun`: Mailgun's email events (HMAC-signed), as behaviour events.

The body is JSON: `{"signature": {"timestamp", "token", "signature"}, "event-data":
{…}}`. Verification (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks):

- `signature` is the hex HMAC-SHA256 of `timestamp` followed by `token`, keyed with
  `MAILGUN_WEBHOOK_SIGNING_KEY`; a missing or wrong one is refused (401);
- a timestamp more than `TOLERANCE` seconds from now is refused (401);
- a token this process already took is refused (401, Mailgun's advice: tokens are
  random, one per request). The memory of tokens is this process's (see
  `starter/api/hooks/replay.py`): after a restart, a replay within the window
  verifies, and the intake finds its event id (`event-data.id`) already taken, so
  nothing changes. A token is remembered only once its request has been handled,
  so Mailgun's retry after our 503 is not refused.

A malformed body is refused with 400. Each request carries one event:

| `event` | notice |
| --- | --- |
| `delivered` | delivered |
| `opened` | opened |
| `clicked` | clicked (`url`) |
| `failed` | bounced: hard if `severity` is `permanent`, soft if `temporary` |
| `complained` | complained |
| `unsubscribed` | unsubscribed |

Others (`accepted`, `stored`…) are taken and ignored. The message is
`event-data.message.headers.message-id` (no angle brackets, as the Mailgun
adapter keeps it); the event id is `event-data.id`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from starter.api.dependencies import ServicesDep
from starter.api.hooks.replay import RecentlySeen
from starter.api.schemas import Problem
from starter.services.delivery_notices import (
    DeliveryNotice,
    NoticeKind,
    WebhookResult,
    record_notices,
)

router = APIRouter(tags=["webhooks"])

TOLERANCE = 300
"""Seconds a Mailgun timestamp may be from now."""
KINDS: dict[str, NoticeKind] = {
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "failed": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
}
_taken = RecentlySeen(2 * TOLERANCE)
_Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,300}$")]


class Signature(BaseModel):
    """The `signature` object of a webhook request."""

    timestamp: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")]
    token: _Text
    signature: _Text


class MessageHeaders(BaseModel):
    """`event-data.message.headers`."""

    model_config = ConfigDict(extra="ignore")

    message_id: _Text | None = Field(default=None, alias="message-id")


class Message(BaseModel):
    """`event-data.message`."""

    model_config = ConfigDict(extra="ignore")

    headers: MessageHeaders = Field(default_factory=MessageHeaders)


class EventData(BaseModel):
    """`event-data`: one event."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,100}$")]
    event: Annotated[str, StringConstraints(max_length=50)]
    timestamp: float = Field(ge=0, lt=200_000_000_000)
    severity: str | None = None
    url: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    message: Message = Field(default_factory=Message)


class MailgunWebhook(BaseModel):
    """The body of a Mailgun webhook request."""

    model_config = ConfigDict(extra="ignore")

    signature: Signature
    event_data: EventData = Field(alias="event-data")


def sign(key: str, *, timestamp: str, token: str) -> str:
    """The `signature` of a request (what Mailgun computes)."""
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def verify(signature: Signature, key: str, *, now: float) -> None:
    """Refuse (401) an expired, replayed or wrongly signed request."""
    if abs(now - int(signature.timestamp)) > TOLERANCE:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature has expired")
    expected = sign(key, timestamp=signature.timestamp, token=signature.token)
    if not hmac.compare_digest(expected.encode(), signature.signature.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature does not match")
    if _taken.seen(signature.token, now=now):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook token was replayed")


def notice(data: EventData) -> DeliveryNotice | None:
    """The notice of an event, or None for one we do not track.

    Raises:
        HTTPException: 400 for a tracked event that names no message.
    """
    kind = KINDS.get(data.event)
    if kind is None:
        return None
    if data.message.headers.message_id is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "event-data.message.headers.message-id is missing"
        )
    bounce_type: Literal["hard", "soft"] | None = None
    if kind == "bounced":
        bounce_type = "hard" if data.severity == "permanent" else "soft"
    return DeliveryNotice(
        event_id=data.id,
        kind=kind,
        # without angle brackets, as the adapter keeps it (`activities/providers/mailgun.py`)
        message_id=data.message.headers.message_id.strip("<> "),
        occurred_at=datetime.fromtimestamp(data.timestamp, UTC),
        url=data.url if kind == "clicked" else None,
        bounce_type=bounce_type,
    )


@router.post(
    "/webhooks/mailgun",
    response_model=WebhookResult,
    summary="Mailgun email events (HMAC-signed)",
    responses={
        400: {"model": Problem, "description": "Not a Mailgun webhook body."},
        401: {"model": Problem, "description": "Wrong, expired or replayed signature."},
        404: {"model": Problem, "description": "Mailgun webhooks are not configured."},
    },
)
async def mailgun_webhook(request: Request, held: ServicesDep) -> WebhookResult:
    """Verify the signature, then turn the event into a behaviour event."""
    key = held.settings.mailgun_webhook_signing_key
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Mailgun webhooks are not configured")
    try:
        posted = MailgunWebhook.model_validate_json(await request.body())
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"not a Mailgun webhook body: {error.errors()[0]['msg']}"
        ) from None
    now = time.time()
    verify(posted.signature, key.get_secret_value(), now=now)
    found = notice(posted.event_data)
    result = (
        WebhookResult(accepted=0, duplicate=0, unknown_messages=[])
        if found is None
        else await record_notices(
            held.temporal, held.engine, held.settings, [found], source="mailgun"
        )
    )
    _taken.add(posted.signature.token, now=now)
    return result
