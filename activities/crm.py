"""CRM activities: tasks for the account team, contact tags, and recycling a lead.

The database is the CRM of record. Every activity is idempotent: a task is
opened once per idempotency key (`{workflow_id}/{step}`), however often the
request is retried, and tagging a contact that has the tag changes nothing.
Recycling a lead (seed 002, step 6) records its move to `recycled` once per key
and cancels its open sales-queue tasks; its owner is kept.
The module's functions (`open_crm_task`, `insert_once`…) are shared with the
sales activities.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.contextvars import bound_contextvars
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.crm import (
    CHURN_RISK_TAG,
    AssigneeRole,
    ChurnRiskRequest,
    ChurnRiskResult,
    CrmTaskKind,
    CrmTaskRequest,
    CrmTaskResult,
)
from models.db import lock_contact, session_factory
from models.onboarding import TagRequest
from models.pipeline import PipelineStage
from models.recycling import SALES_QUEUE_TASKS, RecycledReview, RecycleRequest, RecycleResult
from models.tables import Contact, ContactEvent, CrmTask, Notification, SlaBreach
from rules.pipeline import record_transition

log = structlog.stdlib.get_logger(__name__)

REVIEW_ACTIONS = 10
"""How many of a recycled lead's actions since it was recycled its review task lists."""

KeyedRow = TypeVar("KeyedRow", CrmTask, Notification, SlaBreach)
"""A table whose rows are unique per `idempotency_key`."""


def contact_not_found(contact_id: str) -> ApplicationError:
    """The non-retryable `ContactNotFound` failure an activity raises for a missing contact."""
    return ApplicationError(
        f"contact {contact_id!r} does not exist", type="ContactNotFound", non_retryable=True
    )


async def locked_contact(session: AsyncSession, contact_id: str) -> Contact:
    """The contact, locked until the transaction ends: its tag writers take turns.

    Raises:
        ApplicationError: non-retryable `ContactNotFound` when it does not exist.
    """
    await lock_contact(session, contact_id)
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise contact_not_found(contact_id)
    return contact


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
                contact = await locked_contact(session, request.contact_id)
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
                contact = await locked_contact(session, request.contact_id)
                added = sorted(set(request.tags) - set(contact.tags))
                if added:
                    contact.tags = sorted({*contact.tags, *added})
                    contact.updated_at = now
                    session.add(contact)
                    await session.commit()
            log.info("contact tagged", tags=added)
            return added

    @activity.defn(name="recycle_lead")
    async def recycle_lead(self, request: RecycleRequest) -> RecycleResult:
        """Recycle a lead: pipeline stage `recycled` (cause: the reason), tag `stage_recycled`,
        its open sales-queue tasks cancelled with the reason; its owner is kept.

        Returns:
            Whether the transition was recorded now, the owner, the tasks cancelled.

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        with bound_contextvars(
            idempotency_key=request.idempotency_key, contact_id=request.contact_id
        ):
            async with self._sessions() as session:
                contact = await locked_contact(session, request.contact_id)
                recorded = await record_transition(
                    session,
                    contact,
                    PipelineStage.RECYCLED,
                    cause=request.reason,
                    at=request.recycled_at,
                    key=f"{request.idempotency_key}/stage",
                )
                cancelled = await _cancel_sales_tasks(session, request) if recorded else []
                owner_id = contact.owner_id
                await session.commit()
            log.info("lead recycled", reason=request.reason, recorded=recorded, cancelled=cancelled)
            return RecycleResult(recorded=recorded, owner_id=owner_id, cancelled_tasks=cancelled)

    @activity.defn(name="open_recycled_review")
    async def open_recycled_review(self, review: RecycledReview) -> CrmTaskResult:
        """Open the review task of a recycled lead: for its owner, else the sales queue (a
        sales-rep task nobody is assigned), with its score and its actions since recycling.

        Returns:
            The task, and whether this call opened it.

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        now = activity.info().current_attempt_scheduled_time
        with bound_contextvars(
            idempotency_key=review.idempotency_key, contact_id=review.contact_id
        ):
            async with self._sessions() as session:
                contact = await session.get(Contact, review.contact_id)
                if contact is None:
                    raise contact_not_found(review.contact_id)
                since = await session.exec(
                    select(ContactEvent)
                    .where(
                        ContactEvent.contact_id == review.contact_id,
                        col(ContactEvent.occurred_at) > review.recycled_at,
                    )
                    .order_by(col(ContactEvent.occurred_at).desc(), col(ContactEvent.id).desc())
                    .limit(REVIEW_ACTIONS)
                )
                actions = list(since.all())
            task, created = await open_crm_task(
                self._sessions,
                CrmTaskRequest(
                    idempotency_key=review.idempotency_key,
                    contact_id=review.contact_id,
                    kind=CrmTaskKind.RECYCLED_REVIEW,
                    assignee_role=AssigneeRole.SALES_REP,
                    assignee_id=contact.owner_id,
                    title=f"Review recycled lead {contact.id}: re-qualify or keep recycled",
                    details="\n".join(_review_lines(review, contact, actions))[:2000],
                    due_at=review.due_at,
                ),
                now=now,
            )
            log.info("recycled lead review", task_id=task.id, owner_id=contact.owner_id)
            return CrmTaskResult(task_id=row_id(task), created=created)


async def _cancel_sales_tasks(session: AsyncSession, request: RecycleRequest) -> list[int]:
    """Cancel the lead's open sales-queue tasks (`SALES_QUEUE_TASKS`), noting why."""
    open_tasks = await session.exec(
        select(CrmTask).where(
            CrmTask.contact_id == request.contact_id,
            CrmTask.status == "open",
            col(CrmTask.kind).in_(sorted(SALES_QUEUE_TASKS)),
        )
    )
    note = f"Cancelled: the lead was recycled ({request.reason}) on {_day(request.recycled_at)}."
    cancelled = []
    for task in open_tasks.all():
        task.status = "cancelled"
        task.details = f"{task.details}\n\n{note}".strip()[-2000:]
        session.add(task)
        cancelled.append(row_id(task))
    return cancelled


def _review_lines(
    review: RecycledReview, contact: Contact, actions: list[ContactEvent]
) -> list[str]:
    """What the reviewer needs: why and when it was recycled, the score, what it did since."""
    last = review.review == review.of
    return [
        "Review the score and behaviour: re-qualify the lead, or keep it recycled.",
        f"Recycled on {_day(review.recycled_at)} ({review.reason}); review {review.review} "
        f"of {review.of}{' (the last one: the long-cycle sequence ends)' if last else ''}.",
        f"Score: {contact.lead_score} ({contact.lifecycle_stage or 'no band'})",
        f"Actions since recycling: {len(actions)}{'+' if len(actions) == REVIEW_ACTIONS else ''}"
        + ("" if actions else " (none)"),
        *(f"• {event.type} · {_day(event.occurred_at)}" for event in actions),
    ]


def _day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d}"
