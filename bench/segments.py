"""Segments at scale: a new segment over the whole population, a count, and the time from an
event to the membership it changes.

The population (`Sizes.population`, 100,000 in a full run) is written straight into the
benchmark's journeys database: every contact with email consent, one in three with two
pricing-page visits in the last days (so the rule of `hot-pricing-visitors` holds for
them). Then:

- **New segment over the population**: the segment sweep's evaluation of a segment it
  has not seen (`rules/segment_membership.py: evaluate_everyone`: every contact, a page
  per transaction, members and changes written). Bare: the same pages and event counts
  read, nothing evaluated or written (the floor of evaluating in the application).
- **Segment count**: `journeys segments`' count of one segment's members (median of 25).
  Bare: counting every contact.
- **Event to membership change** (p50, p99): a contact's second pricing visit posted to
  the gateway, until the contact workflow has put it in the segment (its
  `segment_members` row). Bare: the same kind of event posted, until the contact workflow
  has stored it (its `events` row): the part of the path before segments.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx
from sqlalchemy import func, insert
from sqlmodel import col, select

from bench.report import Figure, held_to
from bench.stack import Stack, WorkerKind, gateway, until, worker_processes
from models.db import session_factory
from models.segments import Segment
from models.tables import Contact, ContactEvent, SegmentMember
from rules.segment_membership import (
    evaluate_everyone,
    file_segments,
    load_facts,
    member_count,
    next_page,
)

SEGMENT = "hot-pricing-visitors"
BENCH_SEGMENT = "bench-hot-pricing-visitors"
PAGE = 500
"""Contacts per transaction, as the sweep takes them."""
WRITE_BATCH = 5_000
COUNTS = 25
WAIT = {"every": 0.005, "timeout": 60.0}
"""How the live figure polls the database (5 ms, as finely as the event-to-send figure)."""


async def _populate(stack: Stack, population: int) -> None:
    """`population` contacts with consent; one in three visited pricing twice lately."""
    now = datetime.now(UTC)
    async with stack.engine.begin() as connection:
        for start in range(0, population, WRITE_BATCH):
            numbers = range(start, min(start + WRITE_BATCH, population))
            await connection.execute(
                insert(Contact),
                [
                    {
                        "id": f"seg-{n:06d}",
                        "email": f"seg-{n:06d}@bench.example",
                        "email_consent": True,
                        "tags": [],
                        "attributes": {},
                        "score_breakdown": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in numbers
                ],
            )
            visits = [
                {
                    "contact_id": f"seg-{n:06d}",
                    "event_id": f"visit-{days}",
                    "type": "pricing_page_viewed",
                    "occurred_at": now - timedelta(days=days),
                    "properties": {},
                    "batch_key": "bench",
                    "received_at": now,
                }
                for n in numbers
                if n % 3 == 0
                for days in (1, 3)
            ]
            if visits:
                await connection.execute(insert(ContactEvent), visits)


async def _read_pages(stack: Stack, segment: Segment, now: datetime) -> int:
    """The bare baseline: every page and its event counts read, nothing evaluated."""
    read = 0
    async with session_factory(stack.engine)() as session:
        contacts = await next_page(session, after="", size=PAGE)
        while contacts:
            await load_facts(session, contacts, [segment.rule], now)
            read += len(contacts)
            contacts = await next_page(session, after=contacts[-1].id, size=PAGE)
    return read


async def _median_ms(query: Callable[[], Awaitable[int]]) -> float:
    async def once() -> float:
        began = time.perf_counter()
        await query()
        return (time.perf_counter() - began) * 1000

    return statistics.median([await once() for _ in range(COUNTS)])


async def _post(http: httpx.AsyncClient, contact_id: str, event_id: str) -> float:
    sent = time.time()
    response = await http.post(
        "/v1/events",
        json={"event_id": event_id, "contact_id": contact_id, "type": "pricing_page_viewed"},
    )
    if response.status_code != 202:
        raise RuntimeError(f"the gateway answered {response.status_code}: {response.text}")
    return sent


async def _stored(stack: Stack, contact_id: str, event_id: str) -> bool:
    async with session_factory(stack.engine)() as session:
        found = await session.exec(
            select(ContactEvent.id).where(
                col(ContactEvent.contact_id) == contact_id, ContactEvent.event_id == event_id
            )
        )
        return found.first() is not None


async def _member(stack: Stack, contact_id: str) -> bool:
    async with session_factory(stack.engine)() as session:
        return await session.get(SegmentMember, (SEGMENT, contact_id)) is not None


async def _event_to_membership(stack: Stack, samples: int) -> tuple[list[float], list[float]]:
    """Seconds from the second visit posted to the membership, and (bare) to the stored
    event, contact by contact."""
    journeys: list[float] = []
    bare: list[float] = []
    async with worker_processes(stack, WorkerKind.JOURNEYS), gateway(stack) as http:
        for number in range(samples + 1):
            contact_id = f"seg-live-{number}"
            await http.put(
                f"/v1/contacts/{contact_id}",
                json={"email_consent": {"granted": True, "source": "bench"}},
            )
            await _post(http, contact_id, "first")
            await until(partial(_stored, stack, contact_id, "first"), **WAIT, what="1st visit")
            sent = await _post(http, contact_id, "second")
            await until(partial(_stored, stack, contact_id, "second"), **WAIT, what="2nd visit")
            stored = time.time()
            await until(partial(_member, stack, contact_id), **WAIT, what="membership")
            if number:  # the first one warms up
                journeys.append(time.time() - sent)
                bare.append(stored - sent)
    return journeys, bare


def _quantile(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


async def segment_figures(stack: Stack, population: int, samples: int) -> list[Figure]:
    """The segment figures (see the module docstring)."""
    rule = file_segments(stack.settings.segments_file)[SEGMENT].rule
    segment = Segment(name=BENCH_SEGMENT, rule=rule)  # one the workers' sweep does not know
    await _populate(stack, population)
    now = datetime.now(UTC)
    began = time.perf_counter()
    evaluated = await evaluate_everyone(session_factory(stack.engine), segment, now, page=PAGE)
    evaluation = time.perf_counter() - began
    began = time.perf_counter()
    await _read_pages(stack, segment, now)
    reading = time.perf_counter() - began

    async def count_members() -> int:
        async with session_factory(stack.engine)() as session:
            return await member_count(session, BENCH_SEGMENT)

    async def count_contacts() -> int:
        async with session_factory(stack.engine)() as session:
            return (await session.exec(select(func.count()).select_from(Contact))).one()

    counted, floor = await _median_ms(count_members), await _median_ms(count_contacts)
    live, stored = await _event_to_membership(stack, samples)
    sizes = {"population": population, "members": evaluated.entered}
    return [
        Figure(
            "segment_evaluation",
            f"New segment over {population:,} contacts",
            "s",
            evaluation,
            None,
            reading,
            note=f"the rule of `{SEGMENT}` (two pricing visits in 14 days, no purchase) as a "
            f"new segment, evaluated as the sweep does it: pages of {PAGE}, members and changes "
            "written. Bare: the same pages and event counts read only.",
            details={**sizes, "contacts_evaluated": evaluated.contacts},
        ),
        Figure(
            "segment_count",
            f"Segment count at {population:,} contacts",
            "ms",
            counted,
            None,
            floor,
            note=f"median of {COUNTS} counts of the segment's members; bare: counting every "
            "contact",
            target=held_to(below=100),
            details=sizes,
        ),
        *(
            Figure(
                f"event_to_segment_p{q}",
                f"Event-to-membership-change p{q}",
                "ms",
                _quantile(live, q),
                None,
                _quantile(stored, q),
                note=f"{samples} contacts, one after another: their second pricing visit "
                "posted to the gateway until the contact workflow put them in the segment; "
                "bare: until it stored the event",
                target=held_to(below=1000) if q == 99 else None,
                details={"samples": samples},
            )
            for q in (50, 99)
        ),
    ]
