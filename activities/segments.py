"""Segment membership kept current: after a contact's events, and by the segment sweep.

- `refresh_segments` (a local activity of the contact workflow, after each batch of
  events and each score change): evaluates the contact's segments and returns the
  `segment_entered` / `segment_left` events of the segments journeys follow, stored
  under the refresh's key so a retry returns them again.
- `sweep_segments` (the `segment-sweep` workflow, on a Temporal Schedule): drops the
  members of segments no longer defined; evaluates a new or changed segment over
  every contact (recording members, starting no journey); evaluates the contacts that
  are due (`segments_due_at`: a profile change through the API, the CLI or an import,
  or a time window lapsing); and hands
  the events of followed segments not delivered yet to the contact workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client

from models.contact_workflow import EventBatch
from models.db import lock_for_writing, session_factory
from models.events import SEGMENT_ENTERED, SEGMENT_LEFT, BehaviorEvent
from models.segments import Segment, SegmentRefresh, SweepResult
from models.tables import (
    Contact,
    ContactEvent,
    SegmentChange,
    SegmentEvaluation,
    utc_now,
)
from rules.segment_membership import (
    Refreshed,
    defined_segments,
    evaluate_everyone,
    forget_segment,
    refresh_memberships,
    segment_event,
)
from runtime.contact_signals import signal_contact

log = structlog.stdlib.get_logger(__name__)

SWEEP_PAGE = 500
"""Contacts evaluated (and committed) together by the sweep."""
DELIVERY_PAGE = 200
"""Undelivered segment events read at once by the sweep."""


class SegmentActivities:
    """The segment activities; built once in the worker."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        client: Client,
        segments_file: Path,
        followed: frozenset[str],
        task_queue: str,
        day_seconds: int,
    ) -> None:
        """Hold the database, the client (to tell contact workflows), the segments file,
        the segments journeys follow, and the task queue and clock of contact workflows."""
        self._sessions = session_factory(engine)
        self._client = client
        self._file = segments_file
        self._followed = followed
        self._task_queue = task_queue
        self._day_seconds = day_seconds

    @activity.defn(name="refresh_segments")
    async def refresh_segments(self, request: SegmentRefresh) -> list[BehaviorEvent]:
        """Evaluate the contact's segments at the workflow's time; the events of followed
        segments it entered or left (stored as the contact's events, delivered by this
        answer)."""
        async with self._sessions() as session:
            await lock_for_writing(session)
            stored = await _stored_events(session, request)
            if stored:
                return stored  # a retry: the first attempt committed these
            contact = await session.get(Contact, request.contact_id, with_for_update=True)
            segments = await defined_segments(session, self._file)
            if contact is None or not segments:
                return []
            now = request.at
            refreshed = await refresh_memberships(
                session,
                [contact],
                list(segments.values()),
                now,
                followed=self._followed,
                every_segment=True,
            )
            for change in refreshed.changes:
                if change.event_id is not None:
                    change.delivered_at = now
            for event in refreshed.events:
                session.add(ContactEvent.of(event, request.refresh_key))
            await session.commit()
        _log_changes(refreshed, contact_id=request.contact_id)
        return refreshed.events

    @activity.defn(name="sweep_segments")
    async def sweep_segments(self) -> SweepResult:
        """Keep every segment current (see the module docstring); heartbeats per page."""
        result = SweepResult()
        now = utc_now()
        async with self._sessions() as session:
            segments = await defined_segments(session, self._file)
            evaluated = {
                row.segment: row for row in (await session.exec(select(SegmentEvaluation))).all()
            }
            for name in sorted(set(evaluated) - set(segments)):
                await forget_segment(session, name)
                await session.delete(evaluated[name])
                result.forgotten_segments.append(name)
            await session.commit()
        for segment in segments.values():
            known = evaluated.get(segment.name)
            if known is None or known.digest != segment.digest():
                await self._evaluate_everyone(segment, now, result)
                result.evaluated_segments.append(segment.name)
        await self._refresh_due(list(segments.values()), now, result)
        result.events_delivered = await self._deliver_events()
        log.info("segments swept", **result.model_dump())
        return result

    async def _evaluate_everyone(
        self, segment: Segment, now: datetime, result: SweepResult
    ) -> None:
        """A new or changed segment: every contact, page by page; then its digest."""
        evaluated = await evaluate_everyone(
            self._sessions,
            segment,
            now,
            page=SWEEP_PAGE,
            progress=lambda after: activity.heartbeat(segment.name, after),
        )
        result.entered += evaluated.entered
        result.left += evaluated.left
        async with self._sessions() as session:
            await session.merge(
                SegmentEvaluation(segment=segment.name, digest=segment.digest(), evaluated_at=now)
            )
            await session.commit()

    async def _refresh_due(
        self, segments: Sequence[Segment], now: datetime, result: SweepResult
    ) -> None:
        """The contacts whose segments are due, every segment, page by page."""
        while True:
            async with self._sessions() as session:
                await lock_for_writing(session)
                page = list(
                    (
                        await session.exec(
                            select(Contact)
                            .where(col(Contact.segments_due_at) <= now)
                            .order_by(col(Contact.segments_due_at), col(Contact.id))
                            .limit(SWEEP_PAGE)
                            .with_for_update()
                        )
                    ).all()
                )
                if not page:
                    return
                refreshed = await refresh_memberships(
                    session, page, segments, now, followed=self._followed, every_segment=True
                )
                await session.commit()
            result.contacts_refreshed += len(page)
            _count(refreshed, result)
            activity.heartbeat("due", result.contacts_refreshed)

    async def _deliver_events(self) -> int:
        """Hand the undelivered events of followed segments to the contact workflows, in order."""
        delivered = 0
        while True:
            async with self._sessions() as session:
                pending = list(
                    (
                        await session.exec(
                            select(SegmentChange)
                            .where(
                                col(SegmentChange.event_id).is_not(None),
                                col(SegmentChange.delivered_at).is_(None),
                            )
                            .order_by(col(SegmentChange.id))
                            .limit(DELIVERY_PAGE)
                        )
                    ).all()
                )
                if not pending:
                    return delivered
                for contact_id, events in _by_contact(pending).items():
                    await signal_contact(
                        self._client,
                        contact_id,
                        "events",
                        EventBatch(events=events),
                        task_queue=self._task_queue,
                        day_seconds=self._day_seconds,
                    )
                now = utc_now()
                for change in pending:
                    change.delivered_at = now
                    session.add(change)
                await session.commit()
            delivered += len(pending)
            activity.heartbeat("delivered", delivered)


async def _stored_events(session: AsyncSession, request: SegmentRefresh) -> list[BehaviorEvent]:
    rows = await session.exec(
        select(ContactEvent)
        .where(
            col(ContactEvent.contact_id) == request.contact_id,
            col(ContactEvent.batch_key) == request.refresh_key,
            col(ContactEvent.type).in_([SEGMENT_ENTERED, SEGMENT_LEFT]),
        )
        .order_by(col(ContactEvent.id))
    )
    return [row.behavior_event() for row in rows.all()]


def _by_contact(changes: Sequence[SegmentChange]) -> dict[str, list[BehaviorEvent]]:
    events: dict[str, list[BehaviorEvent]] = {}
    for change in changes:
        events.setdefault(change.contact_id, []).append(segment_event(change))
    return events


def _count(refreshed: Refreshed, result: SweepResult) -> None:
    for change in refreshed.changes:
        if change.change == "entered":
            result.entered += 1
        else:
            result.left += 1


def _log_changes(refreshed: Refreshed, *, contact_id: str) -> None:
    if refreshed.changes:
        log.info(
            "segments changed",
            contact_id=contact_id,
            changes=[f"{change.change} {change.segment}" for change in refreshed.changes],
        )
