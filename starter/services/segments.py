"""Segments for operators: list them with their counts, page through members, preview a
rule before saving it, define and remove segments through the API.

Segments in the segments file are reviewed like code: the API neither changes nor
removes them. A segment defined (or changed) through the API is evaluated over every
contact by the next segment sweep (within `SEGMENT_SWEEP_SECONDS`); until then it
has no members (or those of its old rule) and says so (`evaluated` false).
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.db import session_factory
from models.segments import Condition, Segment
from models.tables import SegmentDefinition, SegmentEvaluation, SegmentMember, utc_now
from models.toml_files import validation_problems
from rules.segment_membership import (
    Preview,
    defined_segments,
    file_segments,
    member_count,
    member_page,
    preview_rule,
)
from starter.services.operations import Conflict, InvalidRequest, NotFound

PREVIEW_SAMPLE = 10
"""Contacts a preview names."""


class SegmentSummary(BaseModel):
    """A segment, its rule and how many contacts it has now.

    Attributes:
        name: The segment.
        title: What it is.
        source: `file` (segments.toml) or `api`.
        rule: Its rule, as the file writes it.
        members: Contacts in it now.
        evaluated: Whether its current rule was evaluated over every contact (a new or
            changed segment waits for the next sweep).
        evaluated_at: When that was.
    """

    name: str
    title: str
    source: str
    rule: dict[str, object]
    members: int
    evaluated: bool
    evaluated_at: datetime | None = None


class MemberView(BaseModel):
    """A contact in a segment, since when."""

    contact_id: str
    entered_at: datetime


class SegmentMembers(SegmentSummary):
    """A segment and one page of its members (in contact-id order).

    Attributes:
        page: The members of this page.
        next_after: Pass as `after` for the next page; null on the last one.
    """

    page: list[MemberView] = Field(default_factory=list)
    next_after: str | None = None


async def segment_summaries(engine: AsyncEngine, segments_file: Path) -> list[SegmentSummary]:
    """Every segment (file and API), with its count, by name."""
    async with session_factory(engine)() as session:
        segments = await defined_segments(session, segments_file)
        counts = dict(
            (
                await session.exec(
                    select(SegmentMember.segment, func.count()).group_by(col(SegmentMember.segment))
                )
            ).all()
        )
        evaluations = {
            row.segment: row for row in (await session.exec(select(SegmentEvaluation))).all()
        }
    return [
        _summary(segment, counts.get(name, 0), evaluations.get(name))
        for name, segment in sorted(segments.items())
    ]


async def segment_members(
    engine: AsyncEngine, segments_file: Path, name: str, *, after: str | None, limit: int
) -> SegmentMembers:
    """A segment and a page of its members.

    Raises:
        NotFound: no segment of that name (the message lists them).
    """
    async with session_factory(engine)() as session:
        segment = _known(await defined_segments(session, segments_file), name)
        count = await member_count(session, name)
        members = await member_page(session, name, after=after, limit=limit + 1)
        evaluation = await session.get(SegmentEvaluation, name)
    page = [MemberView(contact_id=m.contact_id, entered_at=m.entered_at) for m in members[:limit]]
    return SegmentMembers(
        **_summary(segment, count, evaluation).model_dump(),
        page=page,
        next_after=page[-1].contact_id if len(members) > limit else None,
    )


async def preview(engine: AsyncEngine, rule: Condition, *, now: datetime | None = None) -> Preview:
    """How many contacts `rule` matches now, and a sample of them (nothing recorded)."""
    async with session_factory(engine)() as session:
        return await preview_rule(session, rule, now or utc_now(), sample_size=PREVIEW_SAMPLE)


async def define_segment(
    engine: AsyncEngine, segments_file: Path, segment: Segment, *, actor: str
) -> bool:
    """Define or replace an API segment; True when it is new.

    Raises:
        Conflict: the segments file defines that name (change it there).
    """
    if segment.name in file_segments(segments_file):
        raise Conflict(
            f"segment {segment.name!r} is defined in {segments_file}: change it there "
            "(file segments are reviewed like code)"
        )
    async with session_factory(engine)() as session:
        row = await session.get(SegmentDefinition, segment.name)
        created = row is None
        row = row or SegmentDefinition(name=segment.name, defined_by=actor)
        if created or row.rule != segment.rule.dump() or row.title != segment.title:
            row.title, row.rule, row.defined_by = segment.title, segment.rule.dump(), actor
            row.updated_at = utc_now()
            session.add(row)
            await session.commit()
    return created


async def remove_segment(engine: AsyncEngine, segments_file: Path, name: str) -> None:
    """Remove an API segment (the next sweep drops its members).

    Raises:
        Conflict: it is a file segment.
        NotFound: no API segment of that name.
    """
    if name in file_segments(segments_file):
        raise Conflict(f"segment {name!r} is defined in {segments_file}: remove it there")
    async with session_factory(engine)() as session:
        row = await session.get(SegmentDefinition, name)
        if row is None:
            raise NotFound(f"no segment {name!r} was defined through the API")
        await session.delete(row)
        await session.commit()


def _known(segments: dict[str, Segment], name: str) -> Segment:
    segment = segments.get(name)
    if segment is None:
        raise NotFound(
            f"unknown segment {name!r}; defined: {', '.join(sorted(segments)) or 'none'}"
        )
    return segment


def _summary(
    segment: Segment, members: int, evaluation: SegmentEvaluation | None
) -> SegmentSummary:
    evaluated = evaluation is not None and evaluation.digest == segment.digest()
    return SegmentSummary(
        name=segment.name,
        title=segment.title,
        source=segment.source,
        rule=segment.rule.dump(),
        members=members,
        evaluated=evaluated,
        evaluated_at=evaluation.evaluated_at if evaluation and evaluated else None,
    )


def parse_rule(text: str) -> Condition:
    """A rule written in JSON or as a TOML inline table (as in segments.toml).

    Raises:
        InvalidRequest: neither, or not a valid rule (each problem named).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = tomllib.loads(f"rule = {text}")["rule"]
        except tomllib.TOMLDecodeError as error:
            raise InvalidRequest(
                f"the rule is neither JSON nor a TOML inline table: {error}"
            ) from None
    try:
        return Condition.model_validate(data)
    except ValidationError as error:
        raise InvalidRequest(f"invalid rule: {validation_problems(error)}") from None


def render_table(summaries: list[SegmentSummary]) -> str:
    """The segments as a table: name, members, source, title."""
    if not summaries:
        return "no segments: define them in segments.toml or with PUT /v1/segments/{name}"
    width = max(len(summary.name) for summary in summaries)
    lines = [f"{'SEGMENT':<{width}}  {'MEMBERS':>8}  SOURCE  TITLE"]
    for summary in summaries:
        members = f"{summary.members}" if summary.evaluated else f"{summary.members}*"
        lines.append(f"{summary.name:<{width}}  {members:>8}  {summary.source:<6}  {summary.title}")
    if any(not summary.evaluated for summary in summaries):
        lines.append("* new or changed: evaluated over every contact by the next segment sweep")
    return "\n".join(lines)


def render_members(members: SegmentMembers) -> str:
    """A segment's rule, count and one page of members."""
    lines = [
        f"{members.name}: {members.title}" if members.title else members.name,
        f"rule: {json.dumps(members.rule)}",
        f"members: {members.members}" + ("" if members.evaluated else " (waiting for the sweep)"),
    ]
    lines += [f"  {m.contact_id}  since {m.entered_at:%Y-%m-%d %H:%M:%S} UTC" for m in members.page]
    if members.next_after:
        lines.append(f"more: --after {members.next_after}")
    return "\n".join(lines)
