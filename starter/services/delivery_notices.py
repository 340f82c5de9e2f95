"""Providers' delivery notifications (delivered, bounced, complained…) as behaviour events.

Every provider's webhook route verifies its request the provider's way, reads
its notifications into `DeliveryNotice`s and hands them to `record_notices`,
which finds the message each one is about (by the provider's message id, as
the send answered it and the message log keeps it) and sends the events
through the intake like any other:

| notice `kind` | behaviour event |
| --- | --- |
| `delivered` | `email_delivered` (stored, scores nothing) |
| `opened` | `email_opened` |
| `clicked` | `email_clicked` (with `url`) |
| `bounced` | `email_bounced` (with `bounce_type` `hard` / `soft`; hard suppresses) |
| `complained` | `email_complained` (a spam report: suppressed at once, every message) |
| `unsubscribed` | `unsubscribed` (with `channel: email`) |

The event id is `<source>-webhook-<the provider's event id>`, so a redelivered
notification is processed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from models.db import session_factory
from models.events import BehaviorEvent
from models.settings import Settings
from models.tables import MessageLog
from starter.services.intake import accept_events

NoticeKind = Literal["delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"]

EVENT_TYPES: dict[str, str] = {
    "delivered": "email_delivered",
    "opened": "email_opened",
    "clicked": "email_clicked",
    "bounced": "email_bounced",
    "complained": "email_complained",
    "unsubscribed": "unsubscribed",
}


@dataclass(frozen=True)
class DeliveryNotice:
    """One notification of a provider about a message we sent.

    Attributes:
        event_id: The provider's id of this notification (the idempotency key);
            where a provider has none, a digest of what makes it unique.
        kind: What happened.
        message_id: The provider's id of the message, as its send answered it.
        occurred_at: When it happened (aware).
        url: The link clicked (`clicked`).
        bounce_type: `hard` or `soft` (`bounced`).
    """

    event_id: str
    kind: NoticeKind
    message_id: str
    occurred_at: datetime
    url: str | None = None
    bounce_type: Literal["hard", "soft"] | None = None


class WebhookResult(BaseModel):
    """How many notifications were taken; the event ids of those about messages we never sent
    (or whose contact was erased)."""

    accepted: int
    duplicate: int
    unknown_messages: list[str]


async def record_notices(
    temporal: Client,
    engine: AsyncEngine,
    settings: Settings,
    notices: Sequence[DeliveryNotice],
    *,
    source: str,
) -> WebhookResult:
    """Turn each notice about a message we sent into its behaviour event, through the intake.

    Args:
        temporal: Temporal client (the intake signals the contact workflows).
        engine: The app database.
        settings: Task queue, day length and suppression key for the intake.
        notices: The verified notifications.
        source: Prefix of the event ids (`sendgrid`, `ses`…; `email` for the generic webhook).

    Raises:
        TemporalUnavailable: Temporal could not be reached (the provider retries).
    """
    messages = await _messages(engine, {notice.message_id for notice in notices})
    events = []
    unknown = []
    prefix = f"{source}-webhook-"
    for notice in notices:
        message = messages.get(notice.message_id)
        if message is None:
            unknown.append(notice.event_id)
            continue
        events.append(_event(notice, message, event_id=prefix + notice.event_id))
    results = await accept_events(
        temporal,
        engine,
        events,
        task_queue=settings.task_queue,
        day_seconds=settings.day_seconds,
        suppression_key=settings.suppression_key(),
    )
    erased = [
        event.event_id.removeprefix(prefix)
        for event, result in zip(events, results, strict=True)
        if result.status == "erased"
    ]
    return WebhookResult(
        accepted=sum(result.status == "accepted" for result in results),
        duplicate=sum(result.status in ("duplicate", "conflict") for result in results),
        unknown_messages=unknown + erased,
    )


async def _messages(engine: AsyncEngine, message_ids: set[str]) -> dict[str, MessageLog]:
    async with session_factory(engine)() as session:
        rows = await session.exec(
            select(MessageLog).where(col(MessageLog.provider_message_id).in_(message_ids))
        )
        return {row.provider_message_id or "": row for row in rows.all()}


def _event(notice: DeliveryNotice, message: MessageLog, *, event_id: str) -> BehaviorEvent:
    properties: dict[str, str] = {
        "message_id": notice.message_id,
        "journey": message.journey,
        "step": message.step,
    }
    if notice.url:
        properties["url"] = notice.url
    if notice.bounce_type:
        properties["bounce_type"] = notice.bounce_type
    if notice.kind == "unsubscribed":
        properties["channel"] = "email"
    return BehaviorEvent(
        event_id=event_id,
        contact_id=message.contact_id,
        type=EVENT_TYPES[notice.kind],
        occurred_at=notice.occurred_at,
        properties=properties,
    )
