"""Taking in behaviour events: durable once acknowledged, each event id once per contact.

The gateway, the CLI, the unsubscribe link and the provider webhooks all hand
events to `accept_events`, checked: the gateway and the CLI refuse an event whose
properties its type's model does not take (`models/event_properties.py`) before
it gets here, with the field named; the link and the webhooks make events of
other types.

0. An event sent under the id of a lead merged into another contact (an alias,
   `starter/services/dedupe.py`) goes to that contact; its result says which
   (`merged_from`, and the workflow id).
1. An event of an erased contact (one with a tombstone) is refused as
   `erased` and goes nowhere: it must not start `contact-{id}` again. An
   event whose id the contact already has a receipt for is a `duplicate`
   (a client retry); one reusing the id for a different type or properties is
   a `conflict` and is not processed.
2. The new events are grouped per contact, in order. A suppressing event
   (`unsubscribed`, hard `email_bounced`) suppresses the addresses it names
   (and an opt-out withdraws the consent, see `rules/consent.py`)
   first, so no message goes out once the event is accepted.
3. Each group goes to `contact-{id}` in one signal-with-start. Only after
   Temporal accepted it is the event `accepted` (durable from then on) and
   its receipt written (in one write for the whole request). If Temporal
   cannot be reached, `TemporalUnavailable` is raised after every group was
   tried; the groups that got through have receipts, so a retry of the whole
   request processes nothing twice.
4. Concurrent requests with the same event id may both get past step 1 and
   both signal (the contact workflow drops the second by its id); the receipt
   decides the answer: the request that writes it says `accepted`, the others
   `duplicate` (or `conflict` if their event differs).

Events of a contact the CRM does not know (yet) are accepted and kept, not
refused: services often report what a person did before their profile sync
runs, and an event refused is an event lost. The contact workflow stores and
scores them, but its trigger rules start no journey for a contact that does
not exist, so each such result says so (`contact_known`); an unsubscribe or
hard bounce among them suppresses the contact when it is created
(`starter.services.operations.upsert_contact`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client

from models.contact_workflow import EventBatch
from models.db import session_factory
from models.events import BehaviorEvent
from models.tables import Contact, ErasedContact, EventReceipt, utc_now
from runtime.contact_signals import signal_contact
from runtime.temporal import TemporalUnavailable, unavailable_as_error
from starter.services.dedupe import alias_targets
from starter.services.operations import apply_suppressing_event, erased_contact

SIGNALS_IN_FLIGHT = 32
"""Contacts signalled concurrently for one batch."""

IntakeStatus = Literal["accepted", "duplicate", "conflict", "erased"]


@dataclass(frozen=True)
class IntakeResult:
    """What became of one event.

    Attributes:
        status: `accepted` (durable in Temporal), `duplicate` (this id was
            accepted before), `conflict` (the id was used for another event) or
            `erased` (the contact was erased; the event went nowhere).
        workflow_id: The contact workflow that has (or had) it.
        contact_known: Whether the contact exists in the CRM (if not, the event
            is kept but starts no journey).
        detail: Why, for a conflict or an erased contact.
        merged_from: The id the event was sent under, when that id is an alias of the
            contact it went to (a lead merged into it, `starter/services/dedupe.py`).
    """

    status: IntakeStatus
    workflow_id: str
    contact_known: bool
    detail: str | None = None
    merged_from: str | None = None


def event_digest(event: BehaviorEvent) -> str:
    """Fingerprint of what an event says (type and properties), to recognise a retry.

    `occurred_at` is left out: a client that lets the gateway stamp the time
    sends a retry with a later one.
    """
    canonical = json.dumps(
        {"type": event.type, "properties": event.properties},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def accept_events(
    client: Client,
    engine: AsyncEngine,
    events: Sequence[BehaviorEvent],
    *,
    task_queue: str,
    day_seconds: int,
    suppression_key: bytes,
) -> list[IntakeResult]:
    """Hand events to their contact workflows (see the module docstring).

    Args:
        client: Temporal client.
        engine: The database.
        events: The events, in order.
        task_queue: Where a contact workflow is started if none runs.
        day_seconds: Journey clock of a contact workflow started here.
        suppression_key: The suppression hash key (`Settings.suppression_key`).

    Returns:
        One result per event, in order.

    Raises:
        TemporalUnavailable: some events could not be handed over; none of
            those is acknowledged.
    """
    sent_to = [event.contact_id for event in events]
    erased = await _tombstones(engine, set(sent_to))
    events = await _resolve_aliases(engine, events, erased=erased)
    contact_ids = {event.contact_id for event in events}
    erased.update(await _tombstones(engine, contact_ids - set(sent_to)))
    known = await _receipts(engine, events)
    contacts = await _existing_contacts(engine, contact_ids)
    results: list[IntakeResult | None] = [None] * len(events)
    groups: dict[str, list[tuple[int, BehaviorEvent]]] = {}
    for index, event in enumerate(events):
        key = (event.contact_id, event.event_id)
        workflow_id = f"contact-{event.contact_id}"
        if event.contact_id in erased:
            results[index] = IntakeResult(
                "erased",
                workflow_id,
                False,
                str(erased_contact(event.contact_id, erased[event.contact_id])),
            )
        elif key in known:
            results[index] = _repeated(event, known[key], event.contact_id in contacts)
        else:
            known[key] = event_digest(event)
            groups.setdefault(event.contact_id, []).append((index, event))

    limit = asyncio.Semaphore(SIGNALS_IN_FLIGHT)
    handed_over: list[tuple[int, BehaviorEvent]] = []

    async def hand_over(group: list[tuple[int, BehaviorEvent]]) -> None:
        async with limit:
            await _signal_group(
                client,
                engine,
                [event for _, event in group],
                task_queue=task_queue,
                day_seconds=day_seconds,
                suppression_key=suppression_key,
            )
        handed_over.extend(group)

    outcomes = await asyncio.gather(
        *(hand_over(group) for group in groups.values()), return_exceptions=True
    )
    if handed_over:  # one write for the whole request, also when some groups failed
        for index, result in await _answers(engine, handed_over, contacts):
            results[index] = result
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    for failure in failures:
        if not isinstance(failure, TemporalUnavailable):
            raise failure
    if failures:
        raise failures[0]
    return [
        result
        if result.status == "erased" or sent == event.contact_id
        else replace(result, merged_from=sent)
        for result, sent, event in zip(results, sent_to, events, strict=True)
        if result is not None
    ]


async def _resolve_aliases(
    engine: AsyncEngine, events: Sequence[BehaviorEvent], *, erased: Mapping[str, datetime]
) -> list[BehaviorEvent]:
    """The events, those sent under an alias addressed to the contact it was merged into
    (an erased id stays as it is: it is refused)."""
    aliases = await alias_targets(engine, {e.contact_id for e in events} - set(erased))
    return [
        event.model_copy(update={"contact_id": aliases[event.contact_id]})
        if event.contact_id in aliases
        else event
        for event in events
    ]


def _repeated(event: BehaviorEvent, digest: str, contact_known: bool) -> IntakeResult:
    """The answer to an event whose id has a receipt holding `digest`."""
    workflow_id = f"contact-{event.contact_id}"
    if digest == event_digest(event):
        return IntakeResult("duplicate", workflow_id, contact_known)
    return IntakeResult(
        "conflict",
        workflow_id,
        contact_known,
        f"event_id {event.event_id!r} was already used for a different event "
        "of this contact; use a new id for a new event",
    )


async def _answers(
    engine: AsyncEngine, handed_over: list[tuple[int, BehaviorEvent]], contacts: set[str]
) -> list[tuple[int, IntakeResult]]:
    """Write the receipts of the events Temporal took; the request whose receipt was written
    first says `accepted`, a concurrent one that lost the race `duplicate` (or `conflict`)."""
    written = await record_receipts(engine, [event for _, event in handed_over])
    lost = [event for _, event in handed_over if (event.contact_id, event.event_id) not in written]
    winners = await _receipts(engine, lost)
    answers = []
    for index, event in handed_over:
        key = (event.contact_id, event.event_id)
        known = event.contact_id in contacts
        if key in written or key not in winners:
            answers.append((index, IntakeResult("accepted", f"contact-{key[0]}", known)))
        else:
            answers.append((index, _repeated(event, winners[key], known)))
    return answers


async def _signal_group(
    client: Client,
    engine: AsyncEngine,
    events: list[BehaviorEvent],
    *,
    task_queue: str,
    day_seconds: int,
    suppression_key: bytes,
) -> None:
    contact_id = events[0].contact_id
    for event in events:
        await apply_suppressing_event(engine, event, key=suppression_key)
    with unavailable_as_error():
        if len(events) == 1:
            await signal_contact(
                client, contact_id, "event", events[0], task_queue=task_queue,
                day_seconds=day_seconds,
            )  # fmt: skip
        else:
            await signal_contact(
                client, contact_id, "events", EventBatch(events=events), task_queue=task_queue,
                day_seconds=day_seconds,
            )  # fmt: skip


async def _tombstones(engine: AsyncEngine, contact_ids: set[str]) -> dict[str, datetime]:
    """Those of the contacts that were erased, with when."""
    if not contact_ids:
        return {}
    async with session_factory(engine)() as session:
        found = await session.exec(
            select(ErasedContact).where(col(ErasedContact.contact_id).in_(contact_ids))
        )
        return {tombstone.contact_id: tombstone.erased_at for tombstone in found.all()}


async def _existing_contacts(engine: AsyncEngine, contact_ids: set[str]) -> set[str]:
    """Those of the contacts that exist in the CRM."""
    if not contact_ids:
        return set()
    async with session_factory(engine)() as session:
        found = await session.exec(select(Contact.id).where(col(Contact.id).in_(contact_ids)))
        return set(found.all())


async def _receipts(
    engine: AsyncEngine, events: Sequence[BehaviorEvent]
) -> dict[tuple[str, str], str]:
    """Digests of the receipts the events' contacts hold for these event ids."""
    if not events:
        return {}
    statement = select(EventReceipt).where(
        col(EventReceipt.contact_id).in_({event.contact_id for event in events}),
        col(EventReceipt.event_id).in_({event.event_id for event in events}),
    )
    async with session_factory(engine)() as session:
        return {
            (receipt.contact_id, receipt.event_id): receipt.digest
            for receipt in (await session.exec(statement)).all()
        }


async def record_receipts(engine: AsyncEngine, events: list[BehaviorEvent]) -> set[tuple[str, str]]:
    """Record that Temporal has these events; a receipt a concurrent request wrote first
    is left as it is.

    Returns:
        The (contact id, event id) of the receipts written now.
    """
    accepted_at = utc_now()
    rows = [
        {
            "contact_id": event.contact_id,
            "event_id": event.event_id,
            "digest": event_digest(event),
            "accepted_at": accepted_at,
        }
        for event in events
    ]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(EventReceipt)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["contact_id", "event_id"])
        .returning(col(EventReceipt.contact_id), col(EventReceipt.event_id))
    )
    async with session_factory(engine)() as session:
        written = {(contact_id, event_id) for contact_id, event_id in await session.exec(statement)}
        await session.commit()
    return written
