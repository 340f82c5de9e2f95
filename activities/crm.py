"""CRM activities: tasks for the account team, and contact tags.

The database is the CRM of record. Every activity is idempotent: a task is
opened once per idempotency key (`{workflow_id}/{step}`), however often the
request is retried, and tagging a contact that has the tag changes nothing.
The module's functions (`open_crm_task`, `insert_once`…) are shared with the
sales activities.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.crm import (
    CHURN_RISK_TAG,
    ChurnRiskRequest,
    ChurnRiskResult,
    CrmTaskRequest,
    CrmTaskResult,
)
from models.db import lock_contact, session_factory
from models.onboarding import TagRequest
from models.pipeline import PipelineStage
from models.tables import Contact, CrmTask, Notification, SlaBreach
from rules.pipeline import record_transition

log = structlog.stdlib.get_logger(__name__)

KeyedRow = TypeVar("KeyedRow", CrmTask, Notification, SlaBreach)
"""A table whose rows are unique per `idempotency_key`."""


def contact_not_found(contact_id: str) -> ApplicationError:
    """The non-retryable `ContactNotFound` failure an activity raises for a missing contact."""
    return ApplicationError(
        f"contact {contact_id!r} does not exist", type="ContactNotFound", non_retryable=True
    )


def row_id(row: KeyedRow) -> int:
    """The id of a stored row."""
    assert row.id is not None, "row not stored"
    return row.id


async def find_by_key(
    sessions: async_sessionmaker[AsyncSession], table: type[KeyedRow], idempotency_key: str
) -> KeyedRow | None:
    """The row of `table` with this idempotency key, if there is one."""
    async with sessions() as session:
        rows = await session.exec(select(table).where(table.idempotency_key == idempotency_key))
        return rows.first()


async def insert_once(
    sessions: async_sessionmaker[AsyncSession], row: KeyedRow
) -> tuple[KeyedRow, bool]:
    """Insert `row` unless a row with its idempotency key exists (also when a racer wins).

    Returns:
        The stored row, and whether this call inserted it.
    """
    table = type(row)
    existing = await find_by_key(sessions, table, row.idempotency_key)
    if existing is not None:
        return existing, False
    async with sessions() as session:
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:  # a concurrent attempt inserted it first
            await session.rollback()
            raced = await find_by_key(sessions, table, row.idempotency_key)
            assert raced is not None
            return raced, False
        await session.refresh(row)
    return row, True


async def open_crm_task(
    sessions: async_sessionmaker[AsyncSession], request: CrmTaskRequest, *, now: datetime
) -> tuple[CrmTask, bool]:
    """Open a task, at most once per idempotency key.

    Args:
        sessions: Session factory of the CRM database.
        request: The task.
        now: Its creation time.

    Returns:
        The task, and whether this call opened it.

    Raises:
        ApplicationError: non-retryable `ContactNotFound` when the task is new
            and the contact does not exist.
    """
    existing = await find_by_key(sessions, CrmTask, request.idempotency_key)
    if existing is not None:
        log.info("crm task already open", task_id=existing.id)
        return existing, False
    async with sessions() as session:
        if await session.get(Contact, request.contact_id) is None:
            raise contact_not_found(request.contact_id)
    task, created = await insert_once(
        sessions,
        CrmTask(
            idempotency_key=request.idempotency_key,
            contact_id=request.contact_id,
            kind=request.kind,
            assignee_role=request.assignee_role,
            assignee_id=request.assignee_id,
            title=request.title,
            details=request.details,
            due_at=request.due_at,
            priority=request.priority,
            status="open",
            created_at=now,
        ),
    )
    if created:
        log.info(
            "crm task opened",
            task_id=task.id,
            kind=request.kind,
            assignee_role=request.assignee_role,
        )
    return task, created


def _churn_cause(journey: str | None, request: ChurnRiskRequest) -> str:
    """The journey that marked the risk, and the subscription if one lapsed:
    `renewal-countdown (sub_1)`, `churn-prevention`."""
    marked_by = journey or "churn risk"
    if request.subscription_id is None:
        return marked_by
    return f"{marked_by} ({request.subscription_id})"


class CrmActivities:
    """Activities that update the CRM; built once in the worker with the database engine."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        """Hold the database engine the activities use."""
        self._sessions = session_factory(engine)

    @activity.defn(name="create_crm_task")
    async def create_crm_task(self, request: CrmTaskRequest) -> CrmTaskResult:
        """Open a task for the account team, at most once per idempotency key.

        Returns:
            The task's id, and whether this call opened it.

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        now = activity.info().current_attempt_scheduled_time
        with bound_contextvars(
            idempotency_key=request.idempotency_key, contact_id=request.contact_id
        ):
            task, created = await open_crm_task(self._sessions, request, now=now)
            return CrmTaskResult(task_id=row_id(task), created=created)

    @activity.defn(name="mark_churn_risk")
    async def mark_churn_risk(self, request: ChurnRiskRequest) -> ChurnRiskResult:
        """Tag the contact `stage_churn-risk` and move it to the `churn_risk` pipeline stage
        (once; other tags are kept).

        The tag and the transition are written together, so a contact already
        tagged records no second transition; one marked again after the risk
        cleared (the tag was removed) records a new one.

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        info = activity.info()
        now = info.current_attempt_scheduled_time
        with bound_contextvars(
            contact_id=request.contact_id, subscription_id=request.subscription_id
        ):
            async with self._sessions() as session:
                await lock_contact(session, request.contact_id)  # tag writers take turns
                contact = await session.get(Contact, request.contact_id, with_for_update=True)
                if contact is None:
                    raise contact_not_found(request.contact_id)
                if CHURN_RISK_TAG in contact.tags:
                    return ChurnRiskResult(tagged=False)
                contact.tags = sorted({*contact.tags, CHURN_RISK_TAG})
                contact.updated_at = now
                session.add(contact)
                await record_transition(
                    session,
                    contact,
                    PipelineStage.CHURN_RISK,
                    cause=_churn_cause(info.workflow_type, request),
                    at=info.scheduled_time,
                    key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}/churn_risk",
                )
                await session.commit()
            log.info("contact marked churn risk", tag=CHURN_RISK_TAG)
            return ChurnRiskResult(tagged=True)

    @activity.defn(name="tag_contact")
    async def tag_contact(self, request: TagRequest) -> list[str]:
        """Add tags to the contact (tags it has are kept; adding one it has changes nothing).

        Returns:
            The tags this call added.

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        now = activity.info().current_attempt_scheduled_time
        with bound_contextvars(contact_id=request.contact_id):
            async with self._sessions() as session:
                await lock_contact(session, request.contact_id)  # tag writers take turns
                contact = await session.get(Contact, request.contact_id, with_for_update=True)
                if contact is None:
                    raise contact_not_found(request.contact_id)
                added = sorted(set(request.tags) - set(contact.tags))
                if added:
                    contact.tags = sorted({*contact.tags, *added})
                    contact.updated_at = now
                    session.add(contact)
                    await session.commit()
            log.info("contact tagged", tags=added)
            return added
