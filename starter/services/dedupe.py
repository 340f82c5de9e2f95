"""Dedupe on entry, merge on request, and the duplicate rate (seed 002, step 2).

**On entry** (`enter_contact`, what `PUT /v1/contacts/{id}` and `journeys contact
upsert` do): an id the CRM does not know whose lead matches an existing contact
(`rules/dedupe.py`: by email; by company domain + first name where configured)
is merged into that contact instead of becoming a second one:

- its fields fill the survivor's empty ones (a timezone only over the default
  `UTC`; an email address other than the survivor's is not kept); its tags are
  added, and its attributes where the survivor has none of that name;
- its consent changes apply to the survivor and are recorded in its history with
  their source, as a `PUT` of the survivor would;
- events already stored under the new id (sent before the `PUT`) move to the
  survivor, and its id becomes an **alias**: later events, `PUT`s and merges sent
  under it land on the survivor.

**On request** (`merge_contacts`, `journeys contact merge` and `POST
/v1/contacts/{survivor}/merge`): the loser's fields fill the survivor's empty ones
(owner and pipeline stage included), its tags (but `stage_…` / `eng_…`, which the
survivor's workflow keeps) and attributes are added, the more recent consent per
channel wins; its events, receipts, messages, tasks, notifications, SLA breaches,
consent history, pipeline transitions, journey runs and suppressions move; its row
is deleted and its id becomes an alias.

Either way one audit row (`contact_merges`) records survivor, loser, how they
matched, who, when and what moved, in the same transaction; then
`finish_merges` tells the contact workflows: the survivor `absorb`s the moved
events' scored actions and its managed tags (no journey is triggered), and the
loser is told it was `merged_into` the survivor (its journeys exit with reason
`merged`, its workflow ends). The audit row's `signalled_at` says this was done,
so a retry (the same `PUT`, the same merge again) sends what is missing and
nothing twice; re-running a merge changes nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, delete, func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.contacts import ContactProfile
from models.db import lock_contact, session_factory
from models.lead_score import ScoredAction
from models.merges import AbsorbRequest, MergeNotice
from models.tables import (
    ConsentChange,
    Contact,
    ContactAlias,
    ContactEvent,
    ContactMerge,
    CrmTask,
    EventReceipt,
    ExperimentExposure,
    JourneyRun,
    MessageLog,
    Notification,
    PipelineTransition,
    SegmentChange,
    SegmentMember,
    SlaBreach,
    Suppression,
    utc_now,
)
from rules.dedupe import company_domain, same_name
from rules.scoring import ActionKey, ScoringModel, add_action, worth_points
from runtime.contact_signals import signal_contact
from starter.services.operations import (
    Conflict,
    InvalidRequest,
    apply_consents,
    apply_earlier_opt_outs,
    check_limits,
    contact_in,
    refuse_if_erased,
    upsert_in,
)

if TYPE_CHECKING:
    from temporalio.client import Client

MatchedBy = Literal["email", "domain+name", "request"]
DUPLICATE_RATE_TARGET = 0.02
"""Seed 002: at most 2% of the leads entered are duplicates."""
WORKFLOW_MANAGED_TAGS = ("act_", "src_", "int_")
"""Tags the contact workflow accumulates; the survivor's workflow takes the loser's over."""
LOSER_TAGS_LEFT_OUT = ("stage_", "eng_")
"""The loser's band and engagement tags: the survivor's workflow sets its own."""
_UNIQUE_PER_CONTACT: tuple[tuple[Any, str], ...] = (
    (ContactEvent, "event_id"),
    (EventReceipt, "event_id"),
    (ExperimentExposure, "experiment"),
)
_MOVED_TABLES: tuple[Any, ...] = (
    ContactEvent,
    EventReceipt,
    ConsentChange,
    MessageLog,
    CrmTask,
    Notification,
    SlaBreach,
    PipelineTransition,
    JourneyRun,
    Suppression,
    ExperimentExposure,
    SegmentChange,
)


@dataclass(frozen=True)
class Entry:
    """What a `PUT` of a contact became.

    Attributes:
        contact: The contact written (the survivor, when merged).
        merged_from: The id given, when it landed on another contact.
        matched_by: `email` / `domain+name` (merged now) or `alias` (merged before).
    """

    contact: Contact
    merged_from: str | None = None
    matched_by: str | None = None


@dataclass(frozen=True)
class MergeOutcome:
    """A merge on request: its audit row, and whether it had been done before."""

    merge: ContactMerge
    already_merged: bool


@dataclass(frozen=True)
class DuplicateRate:
    """Duplicates found on entry among the leads entered in a period.

    Attributes:
        duplicates: Leads merged into an existing contact on entry.
        leads: Leads entered: contacts created in the period (still held, or merged
            away later on request) plus the duplicates.
        rate: `duplicates / leads`; None without leads.
        target: Seed 002's ceiling (2%).
    """

    duplicates: int
    leads: int
    rate: float | None
    target: float = DUPLICATE_RATE_TARGET


def batch_key_of(loser: str) -> str:
    """The `batch_key` of the events moved from `loser` (how `finish_merges` finds them)."""
    return f"merge/{loser}"


async def alias_target(session: AsyncSession, contact_id: str) -> str | None:
    """The contact `contact_id` was merged into, if it is an alias."""
    alias = await session.get(ContactAlias, contact_id)
    return alias.contact_id if alias is not None else None


async def alias_targets(engine: AsyncEngine, contact_ids: Iterable[str]) -> dict[str, str]:
    """Those of the ids that are aliases, with the contact each was merged into."""
    wanted = set(contact_ids)
    if not wanted:
        return {}
    async with session_factory(engine)() as session:
        found = await session.exec(select(ContactAlias).where(col(ContactAlias.alias).in_(wanted)))
        return {alias.alias: alias.contact_id for alias in found.all()}


async def enter_contact(
    engine: AsyncEngine,
    profile: ContactProfile,
    *,
    key: bytes,
    match_domain_name: bool,
    actor: str,
) -> Entry:
    """Create or update a contact, merging a new lead into the contact it duplicates.

    Args:
        engine: The database.
        profile: The fields given.
        key: The suppression hash key.
        match_domain_name: Also match by company domain + first name
            (`DEDUPE_MATCH_DOMAIN_NAME`).
        actor: Who asks, for the audit row (`api:<key name>`, `cli:<user>`).

    Raises:
        Gone: the id (or the contact it is an alias of) was erased.
        Conflict: an existing contact takes an email address of another contact.
        InvalidRequest: too many tags or attributes.
    """
    async with session_factory(engine)() as session:
        await lock_contact(session, profile.id)
        await refuse_if_erased(session, profile.id)
        entry = await enter_in(
            session, profile, key=key, by_domain_name=match_domain_name, actor=actor
        )
        await session.commit()
        await session.refresh(entry.contact)
        return entry


async def enter_in(
    session: AsyncSession, profile: ContactProfile, *, key: bytes, by_domain_name: bool, actor: str
) -> Entry:
    """`enter_contact` inside the caller's transaction (the id locked and its tombstone
    checked by the caller; no commit)."""
    survivor_id = await alias_target(session, profile.id)
    if survivor_id is not None:
        await lock_contact(session, survivor_id)
        await contact_in(session, survivor_id)
        survivor = await upsert_in(session, profile.model_copy(update={"id": survivor_id}), key=key)
        return Entry(survivor, merged_from=profile.id, matched_by="alias")
    if await session.get(Contact, profile.id) is None:
        match = await _find_match(session, profile, by_domain_name=by_domain_name)
        if match is not None:
            found, matched_by = match
            await lock_contact(session, found)
            survivor = await contact_in(session, found)
            await fold_in_lead(session, survivor, profile)
            await _record_merge(
                session, survivor, profile.id, matched_by=matched_by, actor=actor, created_at=None
            )
            await apply_earlier_opt_outs(session, survivor, key=key)
            return Entry(survivor, merged_from=profile.id, matched_by=matched_by)
    return Entry(await upsert_in(session, profile, key=key))


async def _find_match(
    session: AsyncSession, profile: ContactProfile, *, by_domain_name: bool
) -> tuple[str, MatchedBy] | None:
    """The existing contact a new lead duplicates (`rules/dedupe.py`), and how it matched."""
    if profile.email is None:
        return None
    # Addresses are stored normalised (`models.contacts.EmailAddress`): the index serves this.
    found = await session.exec(select(Contact.id).where(Contact.email == profile.email))
    by_email = found.first()
    if by_email is not None:
        return by_email, "email"
    domain = company_domain(profile.email)
    if not by_domain_name or domain is None or not profile.first_name:
        return None
    candidates = await session.exec(
        select(Contact.id, Contact.email, Contact.first_name).where(
            col(Contact.email).endswith(f"@{domain}", autoescape=True)
        )
    )
    same = [
        contact_id
        for contact_id, email, first_name in candidates.all()
        if email
        and email.rpartition("@")[2] == domain
        and same_name(first_name, profile.first_name)
    ]
    return (same[0], "domain+name") if len(same) == 1 else None


def _fill_empty(survivor: Contact, values: Mapping[str, Any]) -> None:
    """Set the survivor's fields that are empty (None; a timezone still the default `UTC`)."""
    for field, value in values.items():
        current = getattr(survivor, field)
        if value is not None and (current is None or (field == "timezone" and current == "UTC")):
            setattr(survivor, field, value)


def _add_tags_and_attributes(
    survivor: Contact, tags: Iterable[str], attributes: Mapping[str, str]
) -> None:
    """Add tags, and the attributes the survivor has no value for (its own win)."""
    merged_tags = sorted(set(survivor.tags) | set(tags))
    merged_attributes = {**attributes, **survivor.attributes}
    check_limits(survivor.id, tags=merged_tags, attributes=merged_attributes)
    survivor.tags, survivor.attributes = merged_tags, merged_attributes


async def fold_in_lead(session: AsyncSession, survivor: Contact, lead: ContactProfile) -> None:
    """A new lead's fields, tags, attributes and consent changes, onto the survivor."""
    _fill_empty(
        survivor, {f: getattr(lead, f) for f in ("phone", "first_name", "company", "timezone")}
    )
    _add_tags_and_attributes(survivor, lead.tags, lead.attributes)
    await apply_consents(session, survivor, lead)
    survivor.updated_at = utc_now()
    session.add(survivor)


def _fold_in_contact(survivor: Contact, loser: Contact) -> None:
    """An existing contact's fields, tags, attributes and consent, onto the survivor."""
    fields = (
        "email", "phone", "first_name", "company", "timezone", "owner_id", "owner_assigned_at",
        "pipeline_stage",
    )  # fmt: skip
    _fill_empty(survivor, {field: getattr(loser, field) for field in fields})
    _add_tags_and_attributes(
        survivor,
        (tag for tag in loser.tags if not tag.startswith(LOSER_TAGS_LEFT_OUT)),
        loser.attributes,
    )
    for channel in ("email", "sms"):
        theirs: datetime | None = getattr(loser, f"{channel}_consent_at")
        ours: datetime | None = getattr(survivor, f"{channel}_consent_at")
        if theirs is not None and (ours is None or theirs > ours):
            for suffix in ("", "_at", "_source"):
                name = f"{channel}_consent{suffix}"
                setattr(survivor, name, getattr(loser, name))
    survivor.updated_at = utc_now()


async def _move_rows(session: AsyncSession, *, loser: str, survivor: str) -> dict[str, int]:
    """Give the survivor the loser's rows; per table, how many moved.

    An event (or receipt) id both hold stays the survivor's (the loser's copy is
    dropped: the same event, already counted); an experiment both were exposed to keeps
    the survivor's arm. The loser's segment memberships end with it (their history moves;
    the survivor's segments are due again, as after any write). Moved events get the batch key
    `merge/<loser>`, by which `finish_merges` finds what the survivor must absorb.
    Consent changes keep their `change_key`; one the survivor already holds is dropped.
    """
    for table, column in (*_UNIQUE_PER_CONTACT, (ConsentChange, "change_key")):
        held = select(getattr(table, column)).where(col(table.contact_id) == survivor)
        await session.exec(
            delete(table).where(
                col(table.contact_id) == loser, col(getattr(table, column)).in_(held)
            )
        )
    moved: dict[str, int] = {}
    for table in _MOVED_TABLES:
        values: dict[str, str] = {"contact_id": survivor}
        if table is ContactEvent:
            values["batch_key"] = batch_key_of(loser)
        result = await session.exec(
            update(table).where(col(table.contact_id) == loser).values(**values)
        )
        if result.rowcount:
            moved[table.__tablename__] = result.rowcount
    await session.exec(
        update(ContactAlias)
        .where(col(ContactAlias.contact_id) == loser)
        .values(contact_id=survivor)
    )
    await session.exec(delete(SegmentMember).where(col(SegmentMember.contact_id) == loser))
    return moved


async def _record_merge(
    session: AsyncSession,
    survivor: Contact,
    loser: str,
    *,
    matched_by: MatchedBy,
    actor: str,
    created_at: datetime | None,
) -> ContactMerge:
    """Move the loser's rows, make its id an alias, and write the audit row."""
    moved = await _move_rows(session, loser=loser, survivor=survivor.id)
    session.add(ContactAlias(alias=loser, contact_id=survivor.id))
    merge = ContactMerge(
        survivor_id=survivor.id,
        loser_id=loser,
        matched_by=matched_by,
        actor=actor[:100],
        merged_at=utc_now(),
        loser_created_at=created_at,
        moved=moved,
    )
    session.add(merge)
    return merge


async def merge_contacts(
    engine: AsyncEngine, survivor_id: str, loser_id: str, *, actor: str
) -> MergeOutcome:
    """Merge the contact `loser_id` into `survivor_id` (see the module docstring).

    Idempotent: the same merge again returns the first one's audit row and changes nothing.

    Raises:
        InvalidRequest: a contact merged into itself.
        NotFound: either contact does not exist.
        Gone: either contact was erased.
        Conflict: the loser was merged into another contact, or the survivor was
            merged into one (merge into that one instead).
    """
    if survivor_id == loser_id:
        raise InvalidRequest(f"cannot merge contact {loser_id!r} into itself; name two contacts")
    async with session_factory(engine)() as session:
        for contact_id in sorted((survivor_id, loser_id)):
            await lock_contact(session, contact_id)
        earlier = (
            await session.exec(select(ContactMerge).where(ContactMerge.loser_id == loser_id))
        ).first()
        if earlier is not None:
            if earlier.survivor_id == survivor_id:
                return MergeOutcome(earlier, already_merged=True)
            raise Conflict(
                f"contact {loser_id!r} was already merged into {earlier.survivor_id!r} "
                f"at {earlier.merged_at.isoformat()}; it cannot be merged again"
            )
        target = await alias_target(session, survivor_id)
        if target is not None:
            raise Conflict(
                f"contact {survivor_id!r} was merged into {target!r}; merge into {target!r} instead"
            )
        survivor = await contact_in(session, survivor_id)
        loser = await contact_in(session, loser_id)
        _fold_in_contact(survivor, loser)
        created_at = loser.created_at
        await session.delete(loser)
        await session.flush()
        session.add(survivor)
        merge = await _record_merge(
            session, survivor, loser_id, matched_by="request", actor=actor, created_at=created_at
        )
        await session.commit()
        await session.refresh(merge)
        return MergeOutcome(merge, already_merged=False)


async def finish_merges(
    client: Client,
    engine: AsyncEngine,
    survivor_id: str,
    *,
    scoring: ScoringModel,
    task_queue: str,
    day_seconds: int,
) -> int:
    """Tell the contact workflows about the survivor's merges not signalled yet.

    The survivor's workflow (started if needed) absorbs the moved events' scored actions
    (compacted and pruned with `scoring`) and its managed tags; the loser's is told it was
    merged (if it runs). Each merge is marked `signalled_at` once both have the signal.

    Returns:
        How many merges were signalled now.

    Raises:
        TemporalUnavailable: Temporal could not be reached (the rest stays to be done).
    """
    from temporalio.service import RPCError, RPCStatusCode

    from runtime.contact_signals import contact_workflow_id
    from runtime.temporal import unavailable_as_error

    async with session_factory(engine)() as session:
        pending = (
            await session.exec(
                select(ContactMerge).where(
                    ContactMerge.survivor_id == survivor_id,
                    col(ContactMerge.signalled_at).is_(None),
                )
            )
        ).all()
        survivor = await session.get(Contact, survivor_id)
        tags = [
            tag
            for tag in (survivor.tags if survivor else [])
            if tag.startswith(WORKFLOW_MANAGED_TAGS)
        ]
        for merge in pending:
            actions = await _moved_actions(session, survivor_id, merge.loser_id, scoring=scoring)
            with unavailable_as_error():
                await signal_contact(
                    client,
                    survivor_id,
                    "absorb",
                    AbsorbRequest(loser=merge.loser_id, actions=actions, tags=tags),
                    task_queue=task_queue,
                    day_seconds=day_seconds,
                )
                handle = client.get_workflow_handle(contact_workflow_id(merge.loser_id))
                try:
                    await handle.signal("merged_into", MergeNotice(survivor=survivor_id))
                except RPCError as error:
                    if error.status != RPCStatusCode.NOT_FOUND:
                        raise  # not running (ended, or never started): nothing to end
            merge.signalled_at = utc_now()
            session.add(merge)
            await session.commit()
        return len(pending)


async def _moved_actions(
    session: AsyncSession, survivor_id: str, loser: str, *, scoring: ScoringModel
) -> list[ScoredAction]:
    """The scored actions of the events moved from `loser`, compact, those still worth points."""
    rows = await session.exec(
        select(ContactEvent.type, ContactEvent.occurred_at).where(
            ContactEvent.contact_id == survivor_id, ContactEvent.batch_key == batch_key_of(loser)
        )
    )
    actions: dict[ActionKey, ScoredAction] = {}
    for event_type, occurred_at in rows.all():
        add_action(scoring, actions, ScoredAction(event_type=event_type, occurred_at=occurred_at))
    now = utc_now()
    return [action for action in actions.values() if worth_points(scoring, action, now)]


async def list_merges(
    engine: AsyncEngine, *, since: datetime | None = None, until: datetime | None = None
) -> list[ContactMerge]:
    """The audit rows of merges in `[since, until)`, oldest first."""
    statement = select(ContactMerge).order_by(col(ContactMerge.merged_at), col(ContactMerge.id))
    if since is not None:
        statement = statement.where(ContactMerge.merged_at >= since)
    if until is not None:
        statement = statement.where(ContactMerge.merged_at < until)
    async with session_factory(engine)() as session:
        return list((await session.exec(statement)).all())


async def duplicate_rate(engine: AsyncEngine, since: datetime, until: datetime) -> DuplicateRate:
    """Duplicates found on entry / leads entered, in `[since, until)` (seed 002: ≤ 2%).

    Leads entered: contacts created in the period that are still held, those created in
    the period and merged away later on request (their audit row keeps when they were
    created), and the leads merged on entry (a duplicate is a lead that entered too).
    Erased contacts are not counted: nothing about them is kept.
    """

    def in_period(column: Any) -> Any:
        return and_(column >= since, column < until)

    async with session_factory(engine)() as session:
        created = await _count(session, Contact, in_period(Contact.created_at))
        duplicates = await _count(
            session,
            ContactMerge,
            in_period(ContactMerge.merged_at),
            ContactMerge.matched_by != "request",
        )
        merged_away = await _count(session, ContactMerge, in_period(ContactMerge.loser_created_at))
    leads = created + merged_away + duplicates
    return DuplicateRate(
        duplicates=duplicates, leads=leads, rate=duplicates / leads if leads else None
    )


async def _count(session: AsyncSession, table: Any, *where: Any) -> int:
    statement = select(func.count()).select_from(table).where(*where)
    return int((await session.exec(statement)).one())
