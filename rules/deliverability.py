"""Measuring journeys' deliverability, judging it, and the send pauses of its circuit breaker.

- `measure`: per journey and step, the emails sent in a window and how many of
  their contacts bounced, complained, unsubscribed, opened and clicked. An event
  counts for the step its `journey` / `step` properties name (what the provider
  webhooks set) when the contact got an email of that step in the window (opens
  and clicks: one sent before `settled_before`); an `unsubscribed` without them
  (the unsubscribe link) counts for the contact's last email sent before it in
  the window.
- `breaches`: the rates past their limits. A high-side rate (bounce, complaint,
  unsubscribe) breaches at or above its limit, a low-side one (open, click)
  below it; a step is judged once it sent `min_sends` emails (opens and clicks:
  once that many have settled).
- `active_pause`, `pause_sends`, `resume_sends`: the journeys whose marketing
  sends are stopped, and by whom.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import JSON, and_, case, distinct, func, type_coerce
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from models.db import lock_for_writing
from models.deliverability import (
    METRIC_EVENTS,
    Breach,
    GuardConfig,
    Metric,
    StepRates,
)
from models.messages import Channel, DeliveryStatus
from models.tables import ContactEvent, MessageLog, SendPause

GUARD = "deliverability-guard"
"""Who a pause made by the circuit breaker is recorded as paused by."""
_EVENT_METRICS = {event_type: metric for metric, event_type in METRIC_EVENTS.items()}
StepKey = tuple[str, str]


async def measure(
    session: AsyncSession,
    *,
    since: datetime,
    settled_before: datetime,
    journeys: Sequence[str] | None = None,
) -> list[StepRates]:
    """The figures of every journey step that sent email since `since`.

    Args:
        session: The app database.
        since: The window's start.
        settled_before: Emails sent before then are the base of the open and click rates.
        journeys: Only these journeys (default: all).
    """
    sent = await _sent_counts(session, since, settled_before, journeys)
    counts: dict[StepKey, dict[Metric, int]] = defaultdict(dict)
    for (journey, step, metric), contacts in (
        await _event_counts(session, since, settled_before, journeys)
    ).items():
        counts[journey, step][metric] = contacts
    for key, contacts in (await _link_unsubscribes(session, since, journeys)).items():
        counts[key][Metric.UNSUBSCRIBE] = counts[key].get(Metric.UNSUBSCRIBE, 0) + contacts
    return [
        StepRates(
            journey=journey, step=step, sent=total, settled=settled, counts=counts[journey, step]
        )
        for (journey, step), (total, settled) in sorted(sent.items())
    ]


def breaches(steps: Iterable[StepRates], config: GuardConfig) -> list[Breach]:
    """The rates past their alert limits; `pauses` set where a pause limit is passed too."""
    found = []
    for step in steps:
        for metric, limit in config.alert.items():
            base = step.settled if metric.low_is_bad else step.sent
            rate = step.rate(metric)
            if base < config.min_sends or rate is None:
                continue
            pause_limit = config.pause.get(metric)
            pauses = pause_limit is not None and rate >= pause_limit
            if pauses or (rate < limit if metric.low_is_bad else rate >= limit):
                found.append(
                    Breach(
                        journey=step.journey,
                        step=step.step,
                        metric=metric,
                        rate=rate,
                        limit=pause_limit if pauses and pause_limit is not None else limit,
                        sent=base,
                        pauses=pauses,
                    )
                )
    return found


async def active_pause(session: AsyncSession, journey: str) -> SendPause | None:
    """The pause stopping `journey`'s marketing sends now, if any."""
    rows = await session.exec(
        select(SendPause)
        .where(col(SendPause.journey) == journey, col(SendPause.resumed_at).is_(None))
        .order_by(col(SendPause.paused_at))
        .limit(1)
    )
    return rows.first()


async def active_pauses(session: AsyncSession) -> list[SendPause]:
    """Every pause in force, oldest first."""
    rows = await session.exec(
        select(SendPause)
        .where(col(SendPause.resumed_at).is_(None))
        .order_by(col(SendPause.paused_at))
    )
    return list(rows.all())


async def last_resumes(session: AsyncSession, *, since: datetime) -> dict[str, datetime]:
    """Per journey, when its sends were last resumed, if that was after `since`.

    The guard judges such a journey only on what it sent after the resume.
    """
    rows = await session.exec(
        select(col(SendPause.journey), func.max(col(SendPause.resumed_at)))
        .where(col(SendPause.resumed_at) > since)
        .group_by(col(SendPause.journey))
    )
    return {journey: resumed for journey, resumed in rows.all() if resumed is not None}


async def pause_sends(
    session: AsyncSession, journey: str, *, by: str, reason: str, at: datetime
) -> SendPause | None:
    """Pause `journey`'s marketing sends; None (nothing written) when they already are.

    Commits.
    """
    await lock_for_writing(session)
    if await active_pause(session, journey) is not None:
        await session.rollback()
        return None
    pause = SendPause(journey=journey, paused_at=at, paused_by=by, reason=reason[:500])
    session.add(pause)
    await session.commit()
    return pause


async def resume_sends(
    session: AsyncSession, journey: str, *, by: str, at: datetime
) -> SendPause | None:
    """Resume `journey`'s marketing sends; the pause ended, or None when none was in force.

    Commits.
    """
    await lock_for_writing(session)
    pause = await active_pause(session, journey)
    if pause is None:
        await session.rollback()
        return None
    pause.resumed_at, pause.resumed_by = at, by
    session.add(pause)
    await session.commit()
    return pause


async def _sent_counts(
    session: AsyncSession,
    since: datetime,
    settled_before: datetime,
    journeys: Sequence[str] | None,
) -> dict[StepKey, tuple[int, int]]:
    sent_at = col(MessageLog.sent_at)
    statement = (
        select(
            col(MessageLog.journey),
            col(MessageLog.step),
            func.count(),
            func.sum(case((sent_at < settled_before, 1), else_=0)),
        )
        .where(
            col(MessageLog.channel) == Channel.EMAIL,
            col(MessageLog.status) == DeliveryStatus.SENT,
            sent_at >= since,
        )
        .group_by(col(MessageLog.journey), col(MessageLog.step))
    )
    if journeys is not None:
        statement = statement.where(col(MessageLog.journey).in_(journeys))
    rows = await session.exec(statement)
    return {(journey, step): (total, settled or 0) for journey, step, total, settled in rows}


async def _event_counts(
    session: AsyncSession,
    since: datetime,
    settled_before: datetime,
    journeys: Sequence[str] | None,
) -> dict[tuple[str, str, Metric], int]:
    """Contacts per step and metric whose event is about an email of the step sent in the
    window (opens and clicks: a settled one)."""
    counts = {}
    for metrics, sent_before in (
        ([metric for metric in Metric if not metric.low_is_bad], None),
        ([metric for metric in Metric if metric.low_is_bad], settled_before),
    ):
        statement = _contacts_per_step(metrics, since, sent_before, journeys)
        for event_type, journey, step, contacts in await session.exec(statement):
            counts[journey, step, _EVENT_METRICS[event_type]] = contacts
    return counts


def _contacts_per_step(
    metrics: Sequence[Metric],
    since: datetime,
    sent_before: datetime | None,
    journeys: Sequence[str] | None,
) -> Select[str, str, str, int]:
    properties = type_coerce(col(ContactEvent.properties), JSON)
    journey, step = col(MessageLog.journey), col(MessageLog.step)
    statement = (
        select(
            col(ContactEvent.type),
            journey,
            step,
            func.count(distinct(col(ContactEvent.contact_id))),
        )
        .join(
            MessageLog,
            and_(
                col(MessageLog.contact_id) == col(ContactEvent.contact_id),
                journey == properties["journey"].as_string(),
                step == properties["step"].as_string(),
            ),
        )
        .where(
            col(ContactEvent.type).in_([metric.event_type for metric in metrics]),
            col(ContactEvent.occurred_at) >= since,
            col(MessageLog.channel) == Channel.EMAIL,
            col(MessageLog.status) == DeliveryStatus.SENT,
            col(MessageLog.sent_at) >= since,
        )
        .group_by(col(ContactEvent.type), journey, step)
    )
    if sent_before is not None:
        statement = statement.where(col(MessageLog.sent_at) < sent_before)
    if journeys is not None:
        statement = statement.where(journey.in_(journeys))
    return statement


async def _link_unsubscribes(
    session: AsyncSession, since: datetime, journeys: Sequence[str] | None
) -> dict[StepKey, int]:
    """Unsubscribes that name no step, each counted for its contact's last email before it."""
    properties = type_coerce(col(ContactEvent.properties), JSON)
    unsubscribes = (
        await session.exec(
            select(col(ContactEvent.contact_id), col(ContactEvent.occurred_at)).where(
                col(ContactEvent.type) == METRIC_EVENTS[Metric.UNSUBSCRIBE],
                col(ContactEvent.occurred_at) >= since,
                properties["journey"].as_string().is_(None),
            )
        )
    ).all()
    if not unsubscribes:
        return {}
    emails: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
    statement = select(
        col(MessageLog.contact_id),
        col(MessageLog.sent_at),
        col(MessageLog.journey),
        col(MessageLog.step),
    ).where(
        col(MessageLog.contact_id).in_({contact for contact, _ in unsubscribes}),
        col(MessageLog.channel) == Channel.EMAIL,
        col(MessageLog.status) == DeliveryStatus.SENT,
        col(MessageLog.sent_at) >= since,
    )
    for contact_id, sent_at, journey, step in await session.exec(statement):
        if sent_at is not None:
            emails[contact_id].append((sent_at, journey, step))
    counted: dict[StepKey, set[str]] = defaultdict(set)
    for contact_id, occurred_at in unsubscribes:
        before = [email for email in emails[contact_id] if email[0] <= occurred_at]
        if before:
            _, journey, step = max(before)
            if journeys is None or journey in journeys:
                counted[journey, step].add(contact_id)
    return {key: len(contacts) for key, contacts in counted.items()}
