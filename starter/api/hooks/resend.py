"""`POST /webhooks/resend`: Resend's email events (signed by Svix), as behaviour events.

Verification (https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests,
Svix's scheme, implemented here; the `svix` package is not needed for one HMAC):

- headers `svix-id`, `svix-timestamp` (Unix seconds) and `svix-signature`: a
  space-separated list of `v1,<base64 HMAC-SHA256 of "{svix-id}.{svix-timestamp}.{raw
  body}">`, keyed with the base64-decoded part of `RESEND_WEBHOOK_SECRET` after `whsec_`;
  one matching entry is enough (Svix lists several while a secret is rotated);
- a timestamp more than `TOLERANCE` seconds from now is refused (401), so is a
  request this process already took (the same `svix-id` and timestamp: Svix signs
  each retry anew), and a missing or wrong signature; nothing changes then.

Each request carries one event, `{"type": "email.…", "created_at": "…", "data":
{"email_id": "<the id the send answered>", …}}`:

| `type` | notice |
| --- | --- |
| `email.delivered` | delivered |
| `email.opened` | opened |
| `email.clicked` | clicked (`data.click.link`) |
| `email.bounced` | bounced: hard if `data.bounce.type` is `Permanent`, else soft |
| `email.complained` | complained |

Other types (`email.sent`, `email.delivery_delayed`…) are taken and ignored. The
`svix-id` is the event id the intake deduplicates by (Svix keeps it on retries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from models.events import UtcTime
from models.settings import svix_key
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
"""Seconds a Svix timestamp may be from now (Svix's own libraries allow five minutes)."""
KINDS: dict[str, NoticeKind] = {
    "email.delivered": "delivered",
    "email.opened": "opened",
    "email.clicked": "clicked",
    "email.bounced": "bounced",
    "email.complained": "complained",
}
_taken = RecentlySeen(2 * TOLERANCE)
_EVENT_ID = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


class Bounce(BaseModel):
    """`data.bounce` of an `email.bounced` event."""

    type: str


class Click(BaseModel):
    """`data.click` of an `email.clicked` event."""

    link: Annotated[str, StringConstraints(max_length=2_000)]


class EventData(BaseModel):
    """`data` of an email event."""

    model_config = ConfigDict(extra="ignore")

    email_id: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    bounce: Bounce | None = None
    click: Click | None = None


class ResendEvent(BaseModel):
    """The body of a Resend webhook request: one event."""

    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, StringConstraints(max_length=100)]
    created_at: UtcTime
    data: EventData


def sign(body: bytes, secret: str, *, svix_id: str, timestamp: int) -> str:
    """The `svix-signature` value for a request (what Resend, through Svix, sends)."""
    signed = f"{svix_id}.{timestamp}.".encode() + body
    mac = hmac.new(svix_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    body: bytes, secret: str, *, svix_id: str, timestamp: str, signatures: str, now: float
) -> int:
    """Refuse (401) an expired, replayed or wrongly signed request.

    Returns:
        The timestamp.
    """
    try:
        stamp = int(timestamp)
    except ValueError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "malformed svix-timestamp") from None
    if abs(now - stamp) > TOLERANCE:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature has expired")
    expected = sign(body, secret, svix_id=svix_id, timestamp=stamp).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in signatures.split()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook signature does not match")
    if _taken.seen(f"{svix_id}.{stamp}", now=now):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "webhook request was replayed")
    return stamp


def notice(event: ResendEvent, *, event_id: str) -> DeliveryNotice | None:
    """The notice of an event, or None for a type we do not track."""
    kind = KINDS.get(event.type)
    if kind is None:
        return None
    bounce_type: Literal["hard", "soft"] | None = None
    if kind == "bounced":  # `Transient` and `Undetermined` are soft
        permanent = event.data.bounce is not None and event.data.bounce.type == "Permanent"
        bounce_type = "hard" if permanent else "soft"
    return DeliveryNotice(
        event_id=event_id,
        kind=kind,
        message_id=event.data.email_id,
        occurred_at=event.created_at,
        url=event.data.click.link if kind == "clicked" and event.data.click else None,
        bounce_type=bounce_type,
    )


@router.post(
    "/webhooks/resend",
    response_model=WebhookResult,
    summary="Resend email events (signed by Svix)",
    responses={
        401: {"model": Problem, "description": "Missing, wrong, expired or replayed signature."},
        404: {"model": Problem, "description": "Resend webhooks are not configured."},
    },
)
async def resend_webhook(
    request: Request,
    held: ServicesDep,
    svix_id: Annotated[str | None, Header(alias="svix-id")] = None,
    svix_timestamp: Annotated[str | None, Header(alias="svix-timestamp")] = None,
    svix_signature: Annotated[str | None, Header(alias="svix-signature")] = None,
) -> WebhookResult:
    """Verify the Svix signature, then turn the event into a behaviour event."""
    secret = held.settings.resend_webhook_secret
    if secret is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Resend webhooks are not configured")
    if not (svix_id and svix_timestamp and svix_signature):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing svix-id, -timestamp or -signature"
        )
    if not _EVENT_ID.fullmatch(svix_id):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed svix-id")
    body = await request.body()
    now = time.time()
    stamp = verify(
        body,
        secret.get_secret_value(),
        svix_id=svix_id,
        timestamp=svix_timestamp,
        signatures=svix_signature,
        now=now,
    )
    try:
        event = ResendEvent.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"not a Resend event: {error.errors()[0]['msg']}"
        ) from None
    found = notice(event, event_id=svix_id)
    result = (
        WebhookResult(accepted=0, duplicate=0, unknown_messages=[])
        if found is None
        else await record_notices(
            held.temporal, held.engine, held.settings, [found], source="resend"
        )
    )
    _taken.add(f"{svix_id}.{stamp}", now=now)
    return result
