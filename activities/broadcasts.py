"""The broadcast activities: the audience snapshot, batches of sends, cancelling, status.

A batch sends through the journeys' send path (`MessagingActivities.send`): consent,
suppressions, quiet hours in the contact's zone, frequency caps, the message-log row
keyed `broadcast-{name}/{occurrence}/{contact_id}` before the provider call. What the
send path answers becomes the recipient's status: sent; deferred (due again when quiet
hours end or the cap frees a slot); refused by policy (final: never retried); failed
(the provider refused it). A batch retried after a crash sends again only to those not
yet recorded, and the message log finds what was sent before the crash.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.messaging import MessagingActivities
from models.broadcasts import (
    OPEN_STATUSES,
    BatchRequest,
    CloseRequest,
    RecipientStatus,
    SnapshotRequest,
    StatusChange,
    Tally,
    due_at,
    journey_label,
    message_key,
)
from models.db import session_factory
from models.messages import DeliveryStatus, SendRequest, SendResult
from models.tables import Broadcast, BroadcastRecipient, Contact, MessageLog, SegmentMember
from rules.templates import TemplateCatalog, TemplateError

log = structlog.stdlib.get_logger(__name__)

SNAPSHOT_PAGE = 1000
"""Members read and written per page while taking the snapshot."""


class BroadcastActivities:
    """Activities of the `broadcast` workflow, built once in the worker.

    Args:
        engine: The database (segments, contacts, recipients, message log).
        messaging: The send activities, whose send path every message takes.
        templates: The validated template catalogue.
    """

    def __init__(
        self, *, engine: AsyncEngine, messaging: MessagingActivities, templates: TemplateCatalog
    ) -> None:
        self._sessions = session_factory(engine)
        self._messaging = messaging
        self._templates = templates

    @activity.defn(name="snapshot_audience")
    async def snapshot_audience(self, request: SnapshotRequest) -> Tally:
        """Write the occurrence's recipients: the segment's members now (once per occurrence).

        Raises:
            ApplicationError: non-retryable `TemplateError` when the template does not exist.
        """
        try:
            self._templates.require(
                f"broadcast {request.broadcast}", [(request.template, str(request.channel))]
            )
        except TemplateError as error:
            raise ApplicationError(str(error), type="TemplateError", non_retryable=True) from None
        async with self._sessions() as session:
            taken = await _tally(session, request.broadcast, request.occurrence)
            if taken.counts:
                return taken
            after = ""
            while page := await _members(session, request.segment, after):
                await session.exec(
                    insert(BroadcastRecipient).values(
                        [_recipient(request, contact_id, zone) for contact_id, zone in page]
                    )
                )
                after = page[-1][0]
                activity.heartbeat(after)
            await session.commit()
            tally = await _tally(session, request.broadcast, request.occurrence)
        log.info("broadcast audience taken", broadcast=request.broadcast, audience=tally.counts)
        return tally

    @activity.defn(name="send_broadcast_batch")
    async def send_broadcast_batch(self, request: BatchRequest) -> Tally:
        """Send to up to `limit` recipients that are due, at most `rate` per second.

        Raises:
            ApplicationError: the send path's: a missing template (non-retryable), a
                provider failing transiently (retryable: the batch is retried).
        """
        plan = request.plan
        started, scheduled = time.monotonic(), activity.info().current_attempt_scheduled_time

        def now() -> datetime:
            return scheduled + timedelta(seconds=time.monotonic() - started)

        async with self._sessions() as session:
            due = await _due(session, plan.name, request.occurrence, now(), request.limit)
        for number, contact_id in enumerate(due):
            await asyncio.sleep(max(0.0, started + number / plan.rate - time.monotonic()))
            status, until, reason = await self._send_one(request, contact_id, now())
            async with self._sessions() as session:
                await _set_status(
                    session, plan.name, request.occurrence, contact_id, status, until, reason, now()
                )
            activity.heartbeat(number)
        async with self._sessions() as session:
            tally = await _tally(session, plan.name, request.occurrence)
        return tally.model_copy(update={"handled": len(due)})

    async def _send_one(
        self, request: BatchRequest, contact_id: str, now: datetime
    ) -> tuple[RecipientStatus, datetime | None, str | None]:
        """Send one contact's message; its recipient status, due time if deferred, reason."""
        plan = request.plan
        try:
            result = await self._messaging.send(
                SendRequest(
                    idempotency_key=message_key(plan.name, request.occurrence, contact_id),
                    contact_id=contact_id,
                    journey=journey_label(plan.name),
                    step=request.occurrence,
                    template=plan.template,
                    channel=plan.channel,
                    category=plan.category,
                ),
                now=now,
            )
        except ApplicationError as error:
            if error.type != "ContactNotFound":
                raise
            return RecipientStatus.REFUSED, None, "contact gone (erased or merged)"
        return _recipient_outcome(result)

    @activity.defn(name="cancel_broadcast_rest")
    async def cancel_broadcast_rest(self, request: CloseRequest) -> Tally:
        """Cancel the recipients not sent yet, and their deferred messages in the message log."""
        now = activity.info().current_attempt_scheduled_time
        async with self._sessions() as session:
            await session.exec(
                update(BroadcastRecipient)
                .where(
                    col(BroadcastRecipient.broadcast) == request.broadcast,
                    col(BroadcastRecipient.occurrence) == request.occurrence,
                    col(BroadcastRecipient.status).in_(OPEN_STATUSES),
                )
                .values(
                    status=RecipientStatus.CANCELLED, reason="broadcast cancelled", updated_at=now
                )
            )
            prefix = message_key(request.broadcast, request.occurrence, "")
            await session.exec(
                update(MessageLog)
                .where(
                    col(MessageLog.idempotency_key).startswith(prefix),
                    col(MessageLog.status) == DeliveryStatus.DEFERRED,
                )
                .values(status=DeliveryStatus.CANCELLED, updated_at=now)
            )
            await session.commit()
            return await _tally(session, request.broadcast, request.occurrence)

    @activity.defn(name="record_broadcast_status")
    async def record_broadcast_status(self, change: StatusChange) -> None:
        """Record a one-off broadcast's status (running, done, cancelled)."""
        now = activity.info().current_attempt_scheduled_time
        async with self._sessions() as session:
            await session.exec(
                update(Broadcast)
                .where(col(Broadcast.name) == change.broadcast)
                .values(status=change.status, updated_at=now)
            )
            await session.commit()


def _recipient_outcome(
    result: SendResult,
) -> tuple[RecipientStatus, datetime | None, str | None]:
    """A recipient's status from the send path's answer."""
    if result.status == DeliveryStatus.SENT:
        return RecipientStatus.SENT, None, None
    if result.status == DeliveryStatus.DEFERRED:
        return RecipientStatus.DEFERRED, result.deferred_until, result.reason
    if result.status == DeliveryStatus.FAILED:
        return RecipientStatus.FAILED, None, result.reason
    if result.status == DeliveryStatus.CANCELLED:
        return RecipientStatus.CANCELLED, None, result.reason
    return RecipientStatus.REFUSED, None, f"{result.status}: {result.reason}"


def _recipient(request: SnapshotRequest, contact_id: str, zone: str) -> dict[str, object]:
    return {
        "broadcast": request.broadcast,
        "occurrence": request.occurrence,
        "contact_id": contact_id,
        "due_at": due_at(request.wall, zone, start=request.start),
        "status": RecipientStatus.QUEUED,
        "updated_at": request.start,
    }


async def _members(session: AsyncSession, segment: str, after: str) -> list[tuple[str, str]]:
    """The next page of the segment's members (contact id, time zone), by contact id."""
    rows = await session.exec(
        select(SegmentMember.contact_id, Contact.timezone)
        .join(Contact, col(Contact.id) == col(SegmentMember.contact_id))
        .where(col(SegmentMember.segment) == segment, col(SegmentMember.contact_id) > after)
        .order_by(col(SegmentMember.contact_id))
        .limit(SNAPSHOT_PAGE)
    )
    return list(rows.all())


async def _due(
    session: AsyncSession, broadcast: str, occurrence: str, now: datetime, limit: int
) -> list[str]:
    """The contact ids of the next recipients due at `now` (earliest first)."""
    rows = await session.exec(
        select(BroadcastRecipient.contact_id)
        .where(
            col(BroadcastRecipient.broadcast) == broadcast,
            col(BroadcastRecipient.occurrence) == occurrence,
            col(BroadcastRecipient.status).in_(OPEN_STATUSES),
            col(BroadcastRecipient.due_at) <= now,
        )
        .order_by(col(BroadcastRecipient.due_at), col(BroadcastRecipient.contact_id))
        .limit(limit)
    )
    return list(rows.all())


async def _set_status(
    session: AsyncSession,
    broadcast: str,
    occurrence: str,
    contact_id: str,
    status: RecipientStatus,
    until: datetime | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Record one recipient's outcome (a deferred one is due again at `until`)."""
    values: dict[str, object] = {"status": status, "reason": reason, "updated_at": now}
    if until is not None:
        values["due_at"] = until
    await session.exec(
        update(BroadcastRecipient)
        .where(
            col(BroadcastRecipient.broadcast) == broadcast,
            col(BroadcastRecipient.occurrence) == occurrence,
            col(BroadcastRecipient.contact_id) == contact_id,
        )
        .values(**values)
    )
    await session.commit()


async def _tally(session: AsyncSession, broadcast: str, occurrence: str) -> Tally:
    """The occurrence's recipients by status, and the next due time of those still to send."""
    where = (
        col(BroadcastRecipient.broadcast) == broadcast,
        col(BroadcastRecipient.occurrence) == occurrence,
    )
    counts = await session.exec(
        select(BroadcastRecipient.status, func.count())
        .where(*where)
        .group_by(col(BroadcastRecipient.status))
    )
    next_due = await session.exec(
        select(BroadcastRecipient.due_at)
        .where(*where, col(BroadcastRecipient.status).in_(OPEN_STATUSES))
        .order_by(col(BroadcastRecipient.due_at))
        .limit(1)
    )
    return Tally(counts=dict(counts.all()), next_due_at=next_due.first())
