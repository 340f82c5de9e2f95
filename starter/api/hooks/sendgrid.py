"""`POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook, as behaviour events.

Verification (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features):
SendGrid signs `<X-Twilio-Email-Event-Webhook-Timestamp> + <raw body>` with ECDSA
P-256 / SHA-256 and sends the base64 DER signature in
`X-Twilio-Email-Event-Webhook-Signature`; the route checks it with the public key
of `SENDGRID_WEBHOOK_PUBLIC_KEY` (base64 DER, as SendGrid shows it). 404 until the
key is set; 401 for a missing or wrong signature, or a timestamp more than
`SIGNATURE_TOLERANCE` (300 s) away from now (a replay of an old request); 400 for a
body that is not JSON, 422 for one that is not a list of events. A replay within the
five minutes changes nothing: every event is known by its `sg_event_id`.

The body is a JSON list of events
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event); each
becomes a notice by its `event`:

| `event` | notice |
| --- | --- |
| `delivered` | delivered |
| `open` | opened |
| `click` | clicked (`url`) |
| `bounce`, `type` `bounce` | bounced, hard |
| `bounce`, `type` `blocked` | bounced, soft |
| `dropped`, `reason` an invalid or a bounced address | bounced, hard |
| `spamreport` | complained |
| `unsubscribe`, `group_unsubscribe` | unsubscribed |

Ignored: `processed`, `deferred` (SendGrid still retries), `group_resubscribe`, a
`dropped` for any other reason (an address SendGrid already suppressed as
unsubscribed or complaining: we learnt it then), and an event without
`sg_event_id` or `sg_message_id`. An event's message is its `sg_message_id` up to
the first `.` (`<X-Message-Id>.<filter suffix>`): the `X-Message-Id` the send
answered, which the message log keeps.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

from starter.api.dependencies import ServicesDep
from starter.api.hooks.bodies import json_body
from starter.api.schemas import Problem
from starter.api.webhooks import SIGNATURE_TOLERANCE
from starter.services.delivery_notices import (
    DeliveryNotice,
    NoticeKind,
    WebhookResult,
    record_notices,
)

router = APIRouter(tags=["webhooks"])

SOURCE = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_EVENTS = 10_000
_HARD_DROP_REASONS = ("invalid", "bounced address")
"""How a `dropped` event's `reason` starts (case ignored) when the address is bad."""


class SendGridEvent(BaseModel):
    """The fields of one SendGrid event this route reads.

    Attributes:
        event: `delivered`, `open`, `click`, `bounce`, `dropped`, `spamreport`…
        sg_event_id: SendGrid's id of this event (the idempotency key).
        sg_message_id: `<X-Message-Id>.<suffix>`.
        timestamp: When it happened (Unix seconds).
        url: The clicked link.
        type: A bounce's type: `bounce` (permanent) or `blocked` (temporary).
        reason: Why SendGrid dropped or bounced the message.
    """

    model_config = ConfigDict(extra="ignore")

    event: Annotated[str, StringConstraints(max_length=64)]
    sg_event_id: Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,100}$")] | None = (
        None
    )
    sg_message_id: Annotated[str, StringConstraints(min_length=1, max_length=300)] | None = None
    timestamp: int = Field(ge=0, le=253_402_300_799)
    url: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    type: str | None = None
    reason: str | None = None


_EVENTS = TypeAdapter(Annotated[list[SendGridEvent], Field(min_length=1, max_length=MAX_EVENTS)])


def signed_payload(timestamp: str, body: bytes) -> bytes:
    """What SendGrid signs: the timestamp header's text, then the raw body."""
    return timestamp.encode() + body


def verify_signature(
    key: ec.EllipticCurvePublicKey,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    *,
    now: float,
) -> None:
    """Refuse (401) a missing, stale or wrong signature."""
    if not signature or not timestamp:
        raise _unauthorized(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        stamp = int(timestamp)
    except ValueError:
        raise _unauthorized(f"malformed {TIMESTAMP_HEADER} header") from None
    if abs(now - stamp) > SIGNATURE_TOLERANCE:
        raise _unauthorized("webhook signature has expired")
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, signed_payload(timestamp, body), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise _unauthorized("webhook signature does not match") from None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


def _what(event: SendGridEvent) -> tuple[NoticeKind, Literal["hard", "soft"] | None] | None:
    """What the event says happened, or None when it is one this route ignores."""
    match event.event:
        case "delivered":
            return "delivered", None
        case "open":
            return "opened", None
        case "click":
            return "clicked", None
        case "bounce":
            return "bounced", "soft" if event.type == "blocked" else "hard"
        case "dropped" if (event.reason or "").lower().startswith(_HARD_DROP_REASONS):
            return "bounced", "hard"
        case "spamreport":
            return "complained", None
        case "unsubscribe" | "group_unsubscribe":
            return "unsubscribed", None
    return None


def message_id(sg_message_id: str) -> str:
    """The `X-Message-Id` an `sg_message_id` starts with."""
    return sg_message_id.partition(".")[0]


def notice_of(event: SendGridEvent) -> DeliveryNotice | None:
    """The notice an event becomes, or None when it is ignored (see the module docstring)."""
    what = _what(event)
    if what is None or not event.sg_event_id or not event.sg_message_id:
        return None
    kind, bounce_type = what
    return DeliveryNotice(
        event_id=event.sg_event_id,
        kind=kind,
        message_id=message_id(event.sg_message_id),
        occurred_at=datetime.fromtimestamp(event.timestamp, UTC),
        url=event.url if kind == "clicked" else None,
        bounce_type=bounce_type,
    )


@router.post(
    "/webhooks/sendgrid",
    response_model=WebhookResult,
    summary="SendGrid Signed Event Webhook (ECDSA)",
    responses={
        400: {"model": Problem, "description": "The body is not JSON."},
        401: {"model": Problem, "description": "Missing, wrong or expired signature."},
        404: {"model": Problem, "description": "SendGrid webhooks are not configured."},
    },
)
async def sendgrid_webhook(
    request: Request,
    held: ServicesDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=TIMESTAMP_HEADER)] = None,
) -> WebhookResult:
    """Verify the signature, then turn each event into a behaviour event (or ignore it)."""
    key = held.settings.sendgrid_verification_key()
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SendGrid webhooks are not configured")
    body = await request.body()
    verify_signature(key, signature, timestamp, body, now=time.time())
    events = json_body(body, _EVENTS, what="a list of SendGrid events")
    notices = [n for n in map(notice_of, events) if n is not None]
    if not notices:
        return WebhookResult(accepted=0, duplicate=0, unknown_messages=[])
    return await record_notices(held.temporal, held.engine, held.settings, notices, source=SOURCE)
