"""Segment membership in the database: who is in each segment now, and who came and went.

`refresh_memberships` evaluates segments for a page of contacts and records the
difference: a `segment_members` row added on entering, removed on leaving, and a
`segment_changes` row either way, with its time. A segment a journey follows
(`followed`) also gets a `segment_entered` / `segment_left` event for the
contact workflow: the change row carries its id until it is delivered. The
contact's `segments_due_at` becomes the next moment a rule may change with time
alone (`rules/segments.py: next_lapse`).

Every path goes through it: the contact workflow after its events and score
(`activities/segments.py: refresh_segments`), the segment sweep (contacts whose
profile changed or whose window lapsed, and a new or changed segment over every
contact), and `journeys segments preview` (evaluating, recording nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from sqlalchemy import ColumnElement, and_, delete, func, not_, or_
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.db import lock_for_writing
from models.events import (
    NOT_CONTACT_INITIATED,
    PRODUCT_USAGE,
    SEGMENT_ENTERED,
    SEGMENT_LEFT,
    BehaviorEvent,
)
from models.segments import (
    Condition,
    ScoreKind,
    Segment,
    SegmentFile,
)
from models.tables import Contact, ContactEvent, SegmentChange, SegmentDefinition, SegmentMember
from models.toml_files import load_toml
from rules.segments import (
    ACTIVITY,
    ContactFacts,
    WindowCount,
    WindowKey,
    matches,
    next_lapse,
    window_keys,
)

Change = Literal["entered", "left"]
EVENT_TYPES: Mapping[Change, str] = {"entered": SEGMENT_ENTERED, "left": SEGMENT_LEFT}


@lru_cache(maxsize=4)
def _file_segments(path: Path, modified: float) -> dict[str, Segment]:
    return load_toml(SegmentFile, path, "segments file").defined()


def file_segments(path: Path) -> dict[str, Segment]:
    """The segments of the file (read again when it changes).

    Raises:
        OSError: The file cannot be read.
        ValueError: It is not a valid segments file (each problem named).
    """
    return _file_segments(path, path.stat().st_mtime)


def api_segment(row: SegmentDefinition) -> Segment:
    """The segment a `segments` row defines."""
    return Segment(
        name=row.name, title=row.title, rule=Condition.model_validate(row.rule), source="api"
    )


async def defined_segments(session: AsyncSession, path: Path) -> dict[str, Segment]:
    """Every segment: those of the file and those defined through the API, by name."""
    rows = (await session.exec(select(SegmentDefinition))).all()
    return {**{row.name: api_segment(row) for row in rows}, **file_segments(path)}


# --- facts --------------------------------------------------------------------------


def _of_window(key: WindowKey, now: datetime) -> ColumnElement[bool]:
    if key.event is not ACTIVITY:
        wanted: ColumnElement[bool] = col(ContactEvent.type) == key.event
    else:
        value = ContactEvent.properties["value"]
        wanted = or_(
            not_(col(ContactEvent.type).in_([*NOT_CONTACT_INITIATED, PRODUCT_USAGE])),
            and_(col(ContactEvent.type) == PRODUCT_USAGE, value.as_float() > 0),
        )
    if key.window is None:
        return wanted
    return and_(wanted, col(ContactEvent.occurred_at) >= now - key.window)


async def _window_counts(
    session: AsyncSession, contact_ids: Sequence[str], key: WindowKey, now: datetime
) -> dict[str, WindowCount]:
    rows = await session.exec(
        select(ContactEvent.contact_id, func.count(), func.min(ContactEvent.occurred_at))
        .where(col(ContactEvent.contact_id).in_(contact_ids), _of_window(key, now))
        .group_by(col(ContactEvent.contact_id))
    )
    return {contact_id: WindowCount(count, oldest) for contact_id, count, oldest in rows.all()}


def _facts(contact: Contact, windows: dict[WindowKey, WindowCount]) -> ContactFacts:
    consent = {"email"} if contact.email_consent else set()
    if contact.sms_consent:
        consent.add("sms")
    return ContactFacts(
        contact_id=contact.id,
        created_at=contact.created_at,
        attributes=contact.attributes,
        tags=frozenset(contact.tags),
        scores={
            ScoreKind.LEAD: contact.lead_score,
            ScoreKind.FIT: contact.fit_score,
            ScoreKind.BEHAVIOR: contact.behavior_score,
        },
        band=contact.lifecycle_stage,
        stage=contact.pipeline_stage,
        consent=frozenset(consent),
        windows=windows,
    )


async def load_facts(
    session: AsyncSession, contacts: Sequence[Contact], rules: Sequence[Condition], now: datetime
) -> list[ContactFacts]:
    """What `rules` read of each contact: its profile and one grouped query per window."""
    ids = [contact.id for contact in contacts]
    counts = {key: await _window_counts(session, ids, key, now) for key in window_keys(rules)}
    return [
        _facts(
            contact,
            {key: found[contact.id] for key, found in counts.items() if contact.id in found},
        )
        for contact in contacts
    ]


# --- membership -----------------------------------------------------------------------


@dataclass(frozen=True)
class Refreshed:
    """What a refresh changed: the change rows written, and the events for followed segments."""

    changes: list[SegmentChange]
    events: list[BehaviorEvent]


def segment_event(change: SegmentChange) -> BehaviorEvent:
    """The `segment_entered` / `segment_left` event of a change of a followed segment."""
    assert change.event_id is not None, "only changes of followed segments have events"
    return BehaviorEvent(
        event_id=change.event_id,
        contact_id=change.contact_id,
        type=EVENT_TYPES[change.change],  # type: ignore[index]
        occurred_at=change.occurred_at,
        properties={"segment": change.segment},
    )


def _event_id(segment: str, change: Change, at: datetime) -> str:
    return f"segment:{segment}:{change}:{at:%Y%m%dT%H%M%S.%fZ}"


async def refresh_memberships(
    session: AsyncSession,
    contacts: Sequence[Contact],
    segments: Sequence[Segment],
    now: datetime,
    *,
    followed: frozenset[str],
    every_segment: bool,
) -> Refreshed:
    """Evaluate `segments` for `contacts` and record who entered and who left (not committed).

    Args:
        session: The caller's transaction.
        contacts: The contacts (a page).
        segments: The segments to evaluate.
        now: The moment of the evaluation (the time of the changes).
        followed: Segments a journey follows: their changes get an event.
        every_segment: Whether `segments` is every defined segment: the contacts'
            `segments_due_at` becomes their next lapse. Otherwise (one segment's first
            evaluation) it only moves earlier.
    """
    if not contacts:
        return Refreshed([], [])
    rules = [segment.rule for segment in segments]
    facts = await load_facts(session, contacts, rules, now)
    names = [segment.name for segment in segments]
    ids = [contact.id for contact in contacts]
    members = set(
        (
            await session.exec(
                select(SegmentMember.segment, SegmentMember.contact_id).where(
                    col(SegmentMember.contact_id).in_(ids), col(SegmentMember.segment).in_(names)
                )
            )
        ).all()
    )
    changes: list[SegmentChange] = []
    for contact, contact_facts in zip(contacts, facts, strict=True):
        for segment in segments:
            now_in = matches(segment.rule, contact_facts, now)
            was_in = (segment.name, contact.id) in members
            if now_in != was_in:
                changes.append(
                    await _record(session, segment.name, contact.id, now_in, now, followed)
                )
        _set_due(contact, next_lapse(rules, contact_facts, now), replace=every_segment)
        session.add(contact)
    events = [segment_event(change) for change in changes if change.event_id is not None]
    return Refreshed(changes, events)


async def _record(
    session: AsyncSession,
    segment: str,
    contact_id: str,
    entered: bool,
    now: datetime,
    followed: frozenset[str],
) -> SegmentChange:
    change: Change = "entered" if entered else "left"
    if entered:
        session.add(SegmentMember(segment=segment, contact_id=contact_id, entered_at=now))
    else:
        await session.exec(
            delete(SegmentMember).where(
                col(SegmentMember.segment) == segment, col(SegmentMember.contact_id) == contact_id
            )
        )
    row = SegmentChange(
        segment=segment,
        contact_id=contact_id,
        change=change,
        occurred_at=now,
        event_id=_event_id(segment, change, now) if segment in followed else None,
    )
    session.add(row)
    return row


def _set_due(contact: Contact, lapse: datetime | None, *, replace: bool) -> None:
    if replace or contact.segments_due_at is None:
        contact.segments_due_at = lapse
    elif lapse is not None:
        contact.segments_due_at = min(contact.segments_due_at, lapse)


async def forget_segment(session: AsyncSession, segment: str) -> int:
    """Drop a segment's members (it is no longer defined); returns how many (not committed)."""
    result = await session.exec(delete(SegmentMember).where(col(SegmentMember.segment) == segment))
    return int(result.rowcount or 0)


async def member_count(session: AsyncSession, segment: str) -> int:
    """How many contacts are in the segment now."""
    return (
        await session.exec(
            select(func.count())
            .select_from(SegmentMember)
            .where(col(SegmentMember.segment) == segment)
        )
    ).one()


async def member_page(
    session: AsyncSession, segment: str, *, after: str | None, limit: int
) -> list[SegmentMember]:
    """Members of the segment in contact-id order, from after `after` (a page)."""
    query = select(SegmentMember).where(col(SegmentMember.segment) == segment)
    if after is not None:
        query = query.where(col(SegmentMember.contact_id) > after)
    return list(
        (await session.exec(query.order_by(col(SegmentMember.contact_id)).limit(limit))).all()
    )


@dataclass(frozen=True)
class Preview:
    """How many contacts a rule matches now, and a few of them (nothing is recorded)."""

    count: int
    contacts: int
    sample: list[str]


async def preview_rule(
    session: AsyncSession, rule: Condition, now: datetime, *, sample_size: int, page: int = 1_000
) -> Preview:
    """Evaluate a rule over every contact, page by page, recording nothing."""
    count, seen = 0, 0
    sample: list[str] = []
    contacts = await next_page(session, after="", size=page)
    while contacts:
        for facts in await load_facts(session, contacts, [rule], now):
            if matches(rule, facts, now):
                count += 1
                if len(sample) < sample_size:
                    sample.append(facts.contact_id)
        seen += len(contacts)
        contacts = await next_page(session, after=contacts[-1].id, size=page)
    return Preview(count=count, contacts=seen, sample=sample)


async def next_page(
    session: AsyncSession, *, after: str, size: int, for_update: bool = False
) -> list[Contact]:
    """The next `size` contacts in id order after `after` ("" for the first page)."""
    query = select(Contact).where(col(Contact.id) > after).order_by(col(Contact.id)).limit(size)
    return list((await session.exec(query.with_for_update() if for_update else query)).all())


@dataclass
class Evaluated:
    """What evaluating a segment over every contact changed."""

    contacts: int = 0
    entered: int = 0
    left: int = 0


async def evaluate_everyone(
    sessions: async_sessionmaker[AsyncSession],
    segment: Segment,
    now: datetime,
    *,
    page: int,
    progress: Callable[[str], None] = lambda _: None,
) -> Evaluated:
    """Evaluate a new or changed segment over every contact, a page per transaction;
    `progress` is told the last contact id of each page (the sweep heartbeats with it).

    Membership is recorded, with its changes, but no `segment_entered` / `segment_left`
    event is made: a new segment (or a new rule) starts no journey for the many contacts
    it finds at once. Journeys follow a contact entering or leaving afterwards, through
    its events, its profile or time passing."""
    evaluated = Evaluated()
    after = ""
    while True:
        async with sessions() as session:
            await lock_for_writing(session)
            contacts = await next_page(session, after=after, size=page, for_update=True)
            if not contacts:
                return evaluated
            refreshed = await refresh_memberships(
                session, contacts, [segment], now, followed=frozenset(), every_segment=False
            )
            await session.commit()
        evaluated.contacts += len(contacts)
        for change in refreshed.changes:
            if change.change == "entered":
                evaluated.entered += 1
            else:
                evaluated.left += 1
        after = contacts[-1].id
        progress(after)
