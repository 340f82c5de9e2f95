"""Segments in tests: a segments file with more segments, and a segment evaluated at once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.db import session_factory
from models.settings import PROJECT_ROOT
from models.tables import Contact, utc_now
from rules.segment_membership import file_segments, refresh_memberships
from workflows import catalog

SHIPPED_SEGMENTS = PROJECT_ROOT / "segments.toml"


def segments_file_with(directory: Path, extra: str) -> Path:
    """A segments file in `directory`: the shipped one (journeys follow some of its
    segments) plus `extra`, more `[segments.<name>]` tables."""
    path = directory / "segments.toml"
    path.write_text(f"{SHIPPED_SEGMENTS.read_text()}\n{extra}\n", encoding="utf-8")
    return path


async def evaluate_segment(engine: AsyncEngine, segments_file: Path, name: str) -> int:
    """Evaluate one segment of the file over every contact, as the segment sweep does for a
    new segment; returns how many contacts entered it."""
    segment = file_segments(segments_file)[name]
    async with session_factory(engine)() as session:
        contacts = list((await session.exec(select(Contact).order_by(col(Contact.id)))).all())
        refreshed = await refresh_memberships(
            session, contacts, [segment], utc_now(), followed=frozenset(), every_segment=False
        )
        await session.commit()
    return len(refreshed.changes)


def followed_segments_matching_nobody(directory: Path) -> Path:
    """A segments file in `directory` whose segments, those journeys follow, match no
    contact: for a test of another journey that a segment's journey would otherwise join
    (first-purchase, a week after a sign-up)."""
    path = directory / "segments.toml"
    tables = "\n".join(
        f'[segments.{name}]\nhas_tag = "tests-match-nobody"\n'
        for name in sorted(catalog.followed_segments())
    )
    path.write_text(tables, encoding="utf-8")
    return path
