"""What the CLI (and later the HTTP gateway) does: contacts, enrolments, events, status.

Functions here talk to the database and to Temporal; they raise
`OperationError` with a message meant for the person who asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.contact_workflow import EraseRequest, JourneyEnrolment
from models.contacts import (
    MAX_CONTACT_ATTRIBUTES,
    MAX_CONTACT_TAGS,
    ConsentUpdate,
    ContactProfile,
)
from models.db import lock_contact, session_factory
from models.events import BehaviorEvent
from models.journeys import (
    ExitRequest,
    JourneyDescription,
    JourneyInput,
    JourneyState,
    enrolment_options,
)
from models.pipeline import PipelineStage
from models.settings import accelerated_clock_refusal
from models.tables import ConsentChange, Contact, ContactEvent, MessageLog, utc_now
from models.tables import JourneyRun as JourneyRunRow
from rules.consent import ConsentOrigin, apply_event, consent_history, record_change, set_consent
from rules.erasure import erased_at
from rules.opt_outs import SUPPRESSING_EVENTS, suppression_scope
from rules.pipeline import record_transition, source_tags
from runtime.contact_signals import CONTACT_WORKFLOW, signal_contact

if TYPE_CHECKING:  # the Temporal client loads only in the operations that talk to Temporal
    from temporalio.client import Client, WorkflowExecution

    from workflows.toolkit import Journey

QUERY_TIMEOUT = timedelta(seconds=5)
"""Workflow type of the contact workflow (`workflows/contact.py`)."""


class OperationError(Exception):
    """A request that cannot be carried out; the message says why."""


class NotFound(OperationError):
    """The contact, journey or workflow asked for does not exist."""


class UnknownContact(NotFound):
    """No contact has this id (never created; an erased one is `Gone`)."""

    def __init__(self, contact_id: str) -> None:
        super().__init__(f"contact {contact_id!r} does not exist")
        self.contact_id = contact_id


class NotRunning(NotFound):
    """The contact has no running run of the journey asked for."""

    def __init__(self, contact_id: str, journey: str) -> None:
        super().__init__(f"contact {contact_id!r} has no running {journey} journey")
        self.contact_id = contact_id


class Conflict(OperationError):
    """The request clashes with what exists (already enrolled, email of another contact…)."""


class InvalidRequest(OperationError):
    """The request is well-formed but its values cannot be used."""


class Gone(OperationError):
    """The contact was erased: its id keeps a tombstone and takes nothing new."""


def erased_contact(contact_id: str, at: datetime) -> Gone:
    """The refusal of anything addressed to an erased contact."""
    return Gone(
        f"contact {contact_id!r} was erased at {at.isoformat()}; its id takes no new data "
        "(a new contact needs a new id)"
    )


async def refuse_if_erased(session: AsyncSession, contact_id: str) -> None:
    """Raise `Gone` if the contact has a tombstone."""
    at = await erased_at(session, contact_id)
    if at is not None:
        raise erased_contact(contact_id, at)


class JourneyRun(BaseModel):
    """One journey workflow of a contact, as `status` reports it.

    Attributes:
        workflow_id: e.g. `welcome-series-ada`.
        run_id: The run this describes.
        execution_status: Temporal's status (RUNNING, COMPLETED, TERMINATED…).
        state: The journey's own state, when it could be read.
    """

    workflow_id: str
    run_id: str
    execution_status: str
    state: JourneyState | None = None


async def upsert_contact(engine: AsyncEngine, profile: ContactProfile, *, key: bytes) -> Contact:
    """Create the contact or update the fields given; tags and attributes are added.

    Writers of one contact take turns (`models.db.lock_contact`): concurrent
    upserts of a new id create it once and update it after, and an upsert
    racing an erasure either lands before it (and is erased) or finds the
    tombstone.

    Events may arrive before their contact (they are kept, see `starter.services.intake`):
    a contact created after an `unsubscribed` or hard-bounce event of its own
    has its addresses suppressed at once, as if the event had come after it.
    (An event still on its way to the database is left to the contact
    workflow's ingest, which suppresses the contact it finds.)

    Args:
        engine: The database.
        profile: The fields given.
        key: The suppression hash key (`Settings.suppression_key`).

    Raises:
        Gone: the contact was erased.
        Conflict: the email address (normalised) belongs to another contact.
        InvalidRequest: the contact would hold more than `MAX_CONTACT_TAGS` tags or
            `MAX_CONTACT_ATTRIBUTES` attributes.
    """
    async with session_factory(engine)() as session:
        await lock_contact(session, profile.id)
        await refuse_if_erased(session, profile.id)
        contact = await upsert_in(session, profile, key=key)
        await session.commit()
        await session.refresh(contact)
        return contact


async def _record_lead(session: AsyncSession, contact: Contact) -> None:
    """The new contact enters the pipeline as a `lead` when it is created; the cause names
    its `src_` tags."""
    sources = source_tags(contact.tags)
    cause = f"created ({', '.join(sources)})" if sources else "created"
    await record_transition(
        session,
        contact,
        PipelineStage.LEAD,
        cause=cause,
        at=contact.created_at,
        key=f"{contact.id}/lead",
    )


async def upsert_in(session: AsyncSession, profile: ContactProfile, *, key: bytes) -> Contact:
    """`upsert_contact` inside the caller's transaction (locked, tombstone checked; no commit).

    Raises:
        Conflict: the email address (normalised) belongs to another contact.
        InvalidRequest: too many tags or attributes.
    """
    now = utc_now()
    if profile.email is not None:
        owner = (
            await session.exec(
                select(Contact.id).where(Contact.email == profile.email, Contact.id != profile.id)
            )
        ).first()
        if owner is not None:
            raise Conflict(
                f"email address already belongs to contact {owner!r}; "
                "update that contact instead of creating a duplicate"
            )
    existing = await session.get(Contact, profile.id)
    contact = existing or Contact(id=profile.id)
    tags = sorted(set(contact.tags) | set(profile.tags))
    attributes = {**contact.attributes, **profile.attributes}
    check_limits(profile.id, tags=tags, attributes=attributes)
    for field in ("email", "phone", "first_name", "company", "timezone"):
        value = getattr(profile, field)
        if value is not None:
            setattr(contact, field, value)
    await apply_consents(session, contact, profile)
    contact.tags, contact.attributes = tags, attributes
    contact.updated_at = now
    session.add(contact)
    if existing is None:
        await _record_lead(session, contact)
        await apply_earlier_opt_outs(session, contact, key=key)
    return contact


def check_limits(contact_id: str, *, tags: list[str], attributes: dict[str, str]) -> None:
    """Raise `InvalidRequest` if the contact would hold too many tags or attributes."""
    for name, count, limit in (
        ("tags", len(tags), MAX_CONTACT_TAGS),
        ("attributes", len(attributes), MAX_CONTACT_ATTRIBUTES),
    ):
        if count > limit:
            raise InvalidRequest(
                f"contact {contact_id!r} would hold {count} {name}; at most {limit}"
            )


async def apply_consents(session: AsyncSession, contact: Contact, profile: ContactProfile) -> None:
    """Set (and record in the history) the consent changes the profile gives, per channel."""
    for channel in ("email", "sms"):
        await _apply_consent(session, contact, channel, getattr(profile, f"{channel}_consent"))


async def apply_earlier_opt_outs(session: AsyncSession, contact: Contact, *, key: bytes) -> None:
    """Suppress (and withdraw consent) as the events stored before the contact existed say."""
    stored = await session.exec(
        select(ContactEvent)
        .where(
            ContactEvent.contact_id == contact.id,
            col(ContactEvent.type).in_(SUPPRESSING_EVENTS),
        )
        .order_by(col(ContactEvent.occurred_at))
    )
    for event in stored.all():
        await apply_event(session, contact, event, key=key)


async def _apply_consent(
    session: AsyncSession, contact: Contact, channel: str, update: ConsentUpdate | None
) -> None:
    """Set the consent the request gives; record it when it differs from the stored one
    (granted or withdrawn, or given again from another source)."""
    if update is None:
        return
    granted, source = (getattr(contact, f"{channel}_consent{field}") for field in ("", "_source"))
    if (update.granted, update.source) == (granted, source):
        return
    at = update.at or utc_now()
    set_consent(contact, channel, granted=update.granted, at=at, source=update.source)
    await record_change(
        session,
        contact.id,
        channel,
        granted=update.granted,
        at=at,
        origin=ConsentOrigin(
            source=update.source,
            wording=update.text,
            ip=str(update.ip) if update.ip else None,
            user_agent=update.user_agent,
        ),
    )


def journey_type(journey: str) -> type[Journey]:
    """The journey called `journey` (e.g. `welcome-series`); imports its module only.

    Raises:
        NotFound: no such journey (the message lists the known ones).
    """
    from workflows import catalog  # the journey's file loads only for the commands that need it

    try:
        return catalog.journey_class(journey)
    except catalog.UnknownJourney as unknown:
        raise NotFound(str(unknown)) from None


def describe_journey(journey: str) -> JourneyDescription:
    """One journey: title, trigger, enrolment options and plan.

    Raises:
        NotFound: no such journey (the message lists the known ones).
    """
    from workflows import catalog

    journey_type(journey)
    return catalog.describe(journey)


def journey_catalog() -> list[JourneyDescription]:
    """Every journey: title, trigger, enrolment options and plan (imports every journey)."""
    from workflows import catalog

    return [catalog.describe(name) for name in catalog.journey_names()]


def journey_input_for(
    journey: str,
    contact_id: str,
    options: Mapping[str, Any],
    *,
    accelerated_clock_allowed: bool,
    option_name: Callable[[str], str] = str,
) -> JourneyInput:
    """The input of `journey` (its `input_model`) for a contact, from enrolment options.

    Args:
        journey: Journey type.
        contact_id: The contact to enrol.
        options: Input fields given (e.g. `day_seconds`, `renewal_date`).
        accelerated_clock_allowed: The ALLOW_ACCELERATED_CLOCK setting; without
            it a `day_seconds` other than a real day is refused.
        option_name: How the caller names a field in messages (a CLI flag…).

    Raises:
        NotFound: unknown journey.
        InvalidRequest: an option the journey does not take, an accelerated clock
            that is not allowed, or a renewal date already past.
        ValidationError: a missing or invalid value.
    """
    model = journey_type(journey).input_model
    takes = [option.name for option in enrolment_options(model)]
    unknown = sorted(name for name in options if name not in takes)
    if unknown:
        raise InvalidRequest(
            f"{journey} does not take {', '.join(map(option_name, unknown))}; "
            f"it takes {', '.join(map(option_name, takes))}"
        )
    journey_input = model.model_validate({**options, "contact_id": contact_id})
    clock_refusal = accelerated_clock_refusal(
        journey_input.day_seconds,
        allowed=accelerated_clock_allowed,
        name=option_name("day_seconds"),
    )
    if clock_refusal:
        raise InvalidRequest(clock_refusal)
    renews_at = getattr(journey_input, "renewal_date", None)
    if isinstance(renews_at, datetime) and renews_at <= datetime.now(UTC):
        raise InvalidRequest(f"renewal date {renews_at.isoformat()} is in the past")
    return journey_input


async def enroll(
    client: Client,
    engine: AsyncEngine,
    journey: str,
    journey_input: JourneyInput,
    *,
    task_queue: str,
) -> str:
    """Start `journey` for a contact; returns the workflow id.

    A contact goes through a journey once, unless the journey declares a
    re-entry window (then at most once per window: the workflow stays open for
    the window, and a new enrolment inside it is refused).

    Raises:
        NotFound: unknown journey or contact.
        Gone: the contact was erased.
        InvalidRequest: an input of the wrong type.
        Conflict: already enrolled (running, or a once-only journey the run
            log says it went through, however long ago).
    """
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    journey_class = journey_type(journey)
    if not isinstance(journey_input, journey_class.input_model):
        raise InvalidRequest(
            f"{journey} takes {journey_class.input_model.__name__}, "
            f"not {type(journey_input).__name__}"
        )
    contact_id = journey_input.contact_id
    workflow_id = journey_class.workflow_id_for(journey_input)
    async with session_factory(engine)() as session:
        if await session.get(Contact, contact_id) is None:
            await refuse_if_erased(session, contact_id)
            raise UnknownContact(contact_id)
        if journey_class.reentry_days is None:
            await _refuse_second_run(session, workflow_id, contact_id, journey)
    try:
        await client.start_workflow(
            journey,
            journey_input,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
            if journey_class.reentry_days is None
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{journey_class.title} for contact {contact_id}",
        )
    except WorkflowAlreadyStartedError:
        raise Conflict(f"contact {contact_id!r} is already enrolled in {journey}") from None
    await signal_contact(
        client,
        contact_id,
        "journey_enrolled",
        JourneyEnrolment(workflow_id=workflow_id, journey=journey),
        task_queue=task_queue,
        day_seconds=journey_input.day_seconds,
    )
    return workflow_id


async def _refuse_second_run(
    session: AsyncSession, workflow_id: str, contact_id: str, journey: str
) -> None:
    """Raise `Conflict` if the run log has a run of this once-only journey workflow."""
    started = (
        await session.exec(
            select(JourneyRunRow.started_at)
            .where(JourneyRunRow.workflow_id == workflow_id)
            .order_by(col(JourneyRunRow.started_at))
        )
    ).first()
    if started is not None:
        raise Conflict(
            f"contact {contact_id!r} is already enrolled in {journey} "
            f"(it went through it, started {started.isoformat()}; it runs once per contact)"
        )


async def journey_workflow_ids(client: Client, contact_id: str, *, running: bool) -> list[str]:
    """Ids of the contact's journeys, not its contact workflow (only running ones if `running`)."""
    query = f"ContactId = '{contact_id}' AND WorkflowType != '{CONTACT_WORKFLOW}'"
    if running:
        query += " AND ExecutionStatus = 'Running'"
    return [execution.id async for execution in client.list_workflows(query)]


async def apply_suppressing_event(engine: AsyncEngine, event: BehaviorEvent, *, key: bytes) -> None:
    """Suppress (and withdraw consent) as an `unsubscribed` / hard-bounce event says, at once.

    Idempotent per event: the contact workflow's ingest applies it again and changes nothing.
    """
    if suppression_scope(event) is None:
        return
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, event.contact_id)
        if contact is None:
            return
        await apply_event(session, contact, event, key=key)
        await session.commit()


async def forget_contact(
    client: Client,
    engine: AsyncEngine,
    contact_id: str,
    *,
    task_queue: str,
    wait: float | None = None,
) -> bool:
    """Erase a contact (right to be forgotten).

    The contact workflow ends every journey of the contact and deletes its
    personal data (only hashed suppressions remain). Any workflow of the
    contact still running after that (one it could not know of) is terminated.
    The request is durable once this returns, finished or not. An id already
    erased (it has a tombstone) is erased: no workflow is started for it again
    (its data key is destroyed, a new run could not even read its input).

    Args:
        client: Temporal client.
        engine: The app database (for the tombstone).
        contact_id: The contact to forget.
        task_queue: Where a contact workflow is started if none runs.
        wait: Seconds to wait for the erasure to finish (None: until it has).

    Returns:
        True once erased, False if it was still going on after `wait` seconds.
    """
    from temporalio.common import RawValue
    from temporalio.service import RPCError

    async with session_factory(engine)() as session:
        if await erased_at(session, contact_id) is not None:
            return True
    handle = await signal_contact(
        client, contact_id, "forget", EraseRequest(), task_queue=task_queue
    )
    # Its result is written after the data key is destroyed: wait for it, never read it.
    ending = client.get_workflow_handle(handle.id, result_type=RawValue).result()
    try:
        await asyncio.wait_for(ending, wait)
    except TimeoutError:
        return False
    for workflow_id in await journey_workflow_ids(client, contact_id, running=True):
        try:
            await client.get_workflow_handle(workflow_id).terminate(reason="contact erased")
        except RPCError:
            continue  # ended meanwhile
    return True


JourneyAction = Literal["exit", "pause", "resume", "skip-wait"]
_ACTION_SIGNALS = {"pause": "pause", "resume": "resume", "skip-wait": "skip_wait"}


async def steer_journey(
    client: Client, contact_id: str, journey: str, action: JourneyAction, *, reason: str
) -> list[str]:
    """Exit, pause, resume or skip the current wait of the contact's running `journey`
    (every run of it).

    Args:
        client: Temporal client.
        contact_id: The contact.
        journey: Journey type, e.g. `welcome-series`.
        action: `exit` (ends it with `reason`), `pause` (sends nothing until
            resumed), `resume`, or `skip-wait` (the current wait ends now).
        reason: Why, recorded as the exit reason.

    Returns:
        The ids of the workflows signalled.

    Raises:
        NotFound: unknown journey, or the contact has no running run of it.
    """
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    journey_class = journey_type(journey)
    query = f"ContactId = '{contact_id}' AND Journey = '{journey}' AND ExecutionStatus = 'Running'"
    workflow_ids = {execution.id async for execution in client.list_workflows(query)}
    plain_id = journey_class.workflow_id_for(JourneyInput(contact_id=contact_id))
    try:  # visibility lags a just-started run
        if (await client.get_workflow_handle(plain_id).describe()).status == (
            WorkflowExecutionStatus.RUNNING
        ):
            workflow_ids.add(plain_id)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    if not workflow_ids:
        raise NotRunning(contact_id, journey)
    for workflow_id in sorted(workflow_ids):
        handle = client.get_workflow_handle(workflow_id)
        if action == "exit":
            await handle.signal("exit", ExitRequest(reason=reason))
        else:
            await handle.signal(_ACTION_SIGNALS[action])
    return sorted(workflow_ids)


async def list_journeys(
    client: Client, *, journey: str | None = None, step: str | None = None, running: bool = True
) -> list[WorkflowExecution]:
    """Journey workflows by journey and step (search attributes), newest first.

    Raises:
        NotFound: unknown journey.
    """
    clauses = [f"WorkflowType != '{CONTACT_WORKFLOW}'", "Journey IS NOT NULL"]
    if journey is not None:
        journey_type(journey)
        clauses.append(f"Journey = '{journey}'")
    if step is not None:
        clauses.append(f"JourneyStep = '{step.replace(chr(39), '')}'")
    if running:
        clauses.append("ExecutionStatus = 'Running'")
    return [execution async for execution in client.list_workflows(" AND ".join(clauses))]


async def contact_in(session: AsyncSession, contact_id: str) -> Contact:
    """The contact's row, read in `session`.

    Raises:
        NotFound: no such contact.
        Gone: the contact was erased.
    """
    contact = await session.get(Contact, contact_id)
    if contact is None:
        await refuse_if_erased(session, contact_id)
        raise UnknownContact(contact_id)
    return contact


async def get_contact(engine: AsyncEngine, contact_id: str) -> Contact:
    """The contact's row (see `contact_in`)."""
    async with session_factory(engine)() as session:
        return await contact_in(session, contact_id)


async def consent_changes(engine: AsyncEngine, contact_id: str) -> list[ConsentChange]:
    """The contact's consent history, oldest first: every opt-in and opt-out, with when, from
    where and what the contact agreed to or said.

    Raises:
        NotFound: no such contact (never created, or erased: erasure deletes the history).
    """
    async with session_factory(engine)() as session:
        if await session.get(Contact, contact_id) is None:
            raise UnknownContact(contact_id)
        return await consent_history(session, contact_id)


async def journey_runs(client: Client, contact_id: str) -> list[JourneyRun]:
    """Every journey of the contact with its state (result if closed, query if running)."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowQueryFailedError
    from temporalio.service import RPCError

    runs = []
    query = f"ContactId = '{contact_id}' AND WorkflowType != '{CONTACT_WORKFLOW}'"
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(
            execution.id, run_id=execution.run_id, result_type=JourneyState
        )
        state: JourneyState | None = None
        try:
            if execution.status == WorkflowExecutionStatus.RUNNING:
                state = await handle.query(
                    "state", result_type=JourneyState, rpc_timeout=QUERY_TIMEOUT
                )
            elif execution.status == WorkflowExecutionStatus.COMPLETED:
                state = await handle.result()
        except (RPCError, WorkflowQueryFailedError):
            state = None
        runs.append(
            JourneyRun(
                workflow_id=execution.id,
                run_id=execution.run_id,
                execution_status=execution.status.name if execution.status else "UNKNOWN",
                state=state,
            )
        )
    return runs


async def message_log(
    engine: AsyncEngine, *, contact_id: str | None = None, journey: str | None = None
) -> list[MessageLog]:
    """Message-log rows, oldest first, optionally for one contact / journey."""
    statement = select(MessageLog).order_by(col(MessageLog.created_at), col(MessageLog.id))
    if contact_id is not None:
        statement = statement.where(MessageLog.contact_id == contact_id)
    if journey is not None:
        statement = statement.where(MessageLog.journey == journey)
    async with session_factory(engine)() as session:
        return list((await session.exec(statement)).all())
