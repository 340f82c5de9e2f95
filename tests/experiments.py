"""Rows of an experiment's history (exposures, goal events, messages), for report tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from models.db import session_factory
from models.tables import ContactEvent, ExperimentExposure, MessageLog

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When a scenario's first contact is exposed."""

_ids = itertools.count()


def exposure(contact: str, arm: str, at: datetime) -> ExperimentExposure:
    """A `welcome-subject` exposure as `assign_arm` records it."""
    return ExperimentExposure(
        experiment="welcome-subject",
        contact_id=contact,
        arm=arm,
        journey="welcome-series",
        workflow_id=f"welcome-series-{contact}",
        exposed_at=at,
    )


def event(
    contact: str, event_type: str, at: datetime, *, journey: str | None = None, step: str = "day0"
) -> ContactEvent:
    """An event of the contact; with `journey`, about that journey's `step` message."""
    properties = {} if journey is None else {"journey": journey, "step": step}
    return ContactEvent(
        contact_id=contact,
        event_id=f"evt-{next(_ids)}",
        type=event_type,
        occurred_at=at,
        properties=properties,
        batch_key="test",
    )


def message(contact: str, status: str, *, step: str = "day0") -> MessageLog:
    """A welcome-series message-log row of `step` for the contact, written at T0."""
    return MessageLog(
        idempotency_key=f"welcome-series-{contact}/{step}/{next(_ids)}",
        contact_id=contact,
        journey="welcome-series",
        step=step,
        channel="email",
        template=f"welcome-series/{step}",
        status=status,
        created_at=T0,
        updated_at=T0,
    )


def population(arm: str, exposed: int, converted: int, *, start: datetime = T0) -> list[SQLModel]:
    """`exposed` contacts of `arm` (`{arm}-000`, …) exposed a minute apart from `start`; the
    first `converted` purchase a day after their exposure."""
    rows: list[SQLModel] = []
    for number in range(exposed):
        contact = f"{arm}-{number:03}"
        at = start + timedelta(minutes=number)
        rows.append(exposure(contact, arm, at))
        if number < converted:
            rows.append(event(contact, "purchased", at + timedelta(days=1)))
    return rows


async def add_rows(engine: AsyncEngine, rows: Iterable[SQLModel]) -> None:
    """Insert the rows in one transaction."""
    async with session_factory(engine)() as session:
        session.add_all(list(rows))
        await session.commit()
