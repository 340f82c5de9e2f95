"""What the CLI (and later the HTTP gateway) does: contacts, enrolments, events, status.

Functions here talk to the database and to Temporal; they raise
`OperationError` with a message meant for the person who asked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from models.contacts import ConsentUpdate, ContactProfile
from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput, JourneyState
from models.messages import Channel
from models.tables import Contact, MessageLog, Suppression, utc_now
from workflows import JOURNEYS

QUERY_TIMEOUT = timedelta(seconds=5)


class OperationError(Exception):
    """A request that cannot be carried out; the message says why."""


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


async def upsert_contact(engine: AsyncEngine, profile: ContactProfile) -> Contact:
    """Create the contact or update the fields given; tags are added, not replaced."""
    now = utc_now()
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, profile.id) or Contact(id=profile.id)
        for field in ("email", "phone", "first_name", "company", "timezone"):
            value = getattr(profile, field)
            if value is not None:
                setattr(contact, field, value)
        _apply_consent(contact, "email", profile.email_consent, now)
        _apply_consent(contact, "sms", profile.sms_consent, now)
        contact.tags = sorted(set(contact.tags) | set(profile.tags))
        contact.updated_at = now
        session.add(contact)
        await session.commit()
        await session.refresh(contact)
        return contact


def _apply_consent(contact: Contact, channel: str, update: ConsentUpdate | None, now: Any) -> None:
    if update is None:
        return
    setattr(contact, f"{channel}_consent", update.granted)
    setattr(contact, f"{channel}_consent_at", now)
    setattr(contact, f"{channel}_consent_source", update.source)


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
        OperationError: unknown journey or contact, invalid input, or already enrolled.
    """
    journey_class = JOURNEYS.get(journey)
    if journey_class is None:
        raise OperationError(f"unknown journey {journey!r}; known: {', '.join(sorted(JOURNEYS))}")
    if not isinstance(journey_input, journey_class.input_model):
        raise OperationError(
            f"{journey} takes {journey_class.input_model.__name__}, "
            f"not {type(journey_input).__name__}"
        )
    contact_id = journey_input.contact_id
    async with session_factory(engine)() as session:
        if await session.get(Contact, contact_id) is None:
            raise OperationError(
                f"contact {contact_id!r} does not exist; create it with `journeys contact upsert`"
            )
    workflow_id = journey_class.workflow_id_for(journey_input)
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
        raise OperationError(f"contact {contact_id!r} is already enrolled in {journey}") from None
    return workflow_id


async def journey_workflow_ids(client: Client, contact_id: str, *, running: bool) -> list[str]:
    """Ids of the contact's journeys (only running ones if `running`)."""
    query = f"ContactId = '{contact_id}'"
    if running:
        query += " AND ExecutionStatus = 'Running'"
    return [execution.id async for execution in client.list_workflows(query)]


SUPPRESSING_EVENTS = {"unsubscribed": "unsubscribed", "email_bounced": "hard_bounce"}
"""Events that stop all marketing to the contact's address, with the reason recorded."""


async def suppress_contact(engine: AsyncEngine, contact_id: str, reason: str) -> list[str]:
    """Suppress the contact's email address and phone number; returns the channels suppressed.

    Idempotent: an address already suppressed stays as it is.
    """
    async with session_factory(engine)() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            return []
        addresses = {Channel.EMAIL: contact.email, Channel.SMS: contact.phone}
        suppressed = []
        for channel, address in addresses.items():
            if not address:
                continue
            address_hash = Suppression.hash_address(address)
            existing = await session.exec(
                select(Suppression).where(
                    Suppression.channel == channel, Suppression.address_hash == address_hash
                )
            )
            if existing.first() is None:
                session.add(
                    Suppression(
                        channel=channel,
                        address_hash=address_hash,
                        reason=reason,
                        contact_id=contact_id,
                    )
                )
            suppressed.append(str(channel))
        await session.commit()
        return suppressed


async def forward_event(client: Client, engine: AsyncEngine, event: BehaviorEvent) -> list[str]:
    """Record what the event means for messaging, then signal it to the contact's running journeys.

    An `unsubscribed` event (or a hard `email_bounced`) suppresses the contact's
    addresses in the database first, so no message goes out after it is
    accepted, even one whose send is already running; then every running
    journey receives the event (and exits, for those that exit on it).

    Returns:
        Ids of the journeys signalled.
    """
    reason = SUPPRESSING_EVENTS.get(event.type)
    if reason is not None and not _soft_bounce(event):
        await suppress_contact(engine, event.contact_id, reason)
    workflow_ids = await journey_workflow_ids(client, event.contact_id, running=True)
    for workflow_id in workflow_ids:
        await client.get_workflow_handle(workflow_id).signal("event", event)
    return workflow_ids


def _soft_bounce(event: BehaviorEvent) -> bool:
    return event.type == "email_bounced" and event.properties.get("bounce_type") == "soft"


async def journey_runs(client: Client, contact_id: str) -> list[JourneyRun]:
    """Every journey of the contact with its state (result if closed, query if running)."""
    runs = []
    async for execution in client.list_workflows(f"ContactId = '{contact_id}'"):
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
