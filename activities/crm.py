"""CRM activities: tasks for the account team, and contact tags.

The database is the CRM of record. Both activities are idempotent: a task is
opened once per idempotency key (`{workflow_id}/{step}`), however often the
request is retried, and tagging a contact that has the tag changes nothing.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
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
from models.db import session_factory
from models.tables import Contact, CrmTask

log = structlog.stdlib.get_logger(__name__)


def _contact_not_found(contact_id: str) -> ApplicationError:
    return ApplicationError(
        f"contact {contact_id!r} does not exist", type="ContactNotFound", non_retryable=True
    )


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
            existing = await self._task(request.idempotency_key)
            if existing is not None:
                log.info("crm task already open", task_id=existing.id)
                return CrmTaskResult(task_id=_id(existing), created=False)
            async with self._sessions() as session:
                if await session.get(Contact, request.contact_id) is None:
                    raise _contact_not_found(request.contact_id)
                task = CrmTask(
                    idempotency_key=request.idempotency_key,
                    contact_id=request.contact_id,
                    kind=request.kind,
                    assignee_role=request.assignee_role,
                    title=request.title,
                    details=request.details,
                    due_at=request.due_at,
                    priority=request.priority,
                    status="open",
                    created_at=now,
                )
                session.add(task)
                try:
                    await session.commit()
                except IntegrityError:  # a concurrent attempt opened it first
                    await session.rollback()
                    raced = await self._task(request.idempotency_key)
                    assert raced is not None
                    return CrmTaskResult(task_id=_id(raced), created=False)
                await session.refresh(task)
            log.info(
                "crm task opened",
                task_id=task.id,
                kind=request.kind,
                assignee_role=request.assignee_role,
            )
            return CrmTaskResult(task_id=_id(task), created=True)

    @activity.defn(name="mark_churn_risk")
    async def mark_churn_risk(self, request: ChurnRiskRequest) -> ChurnRiskResult:
        """Tag the contact `stage_churn-risk` (once; other tags are kept).

        Raises:
            ApplicationError: non-retryable `ContactNotFound` when the contact
                does not exist.
        """
        now = activity.info().current_attempt_scheduled_time
        with bound_contextvars(
            contact_id=request.contact_id, subscription_id=request.subscription_id
        ):
            async with self._sessions() as session:
                contact = await session.get(Contact, request.contact_id, with_for_update=True)
                if contact is None:
                    raise _contact_not_found(request.contact_id)
                if CHURN_RISK_TAG in contact.tags:
                    return ChurnRiskResult(tagged=False)
                contact.tags = sorted({*contact.tags, CHURN_RISK_TAG})
                contact.updated_at = now
                session.add(contact)
                await session.commit()
            log.info("contact marked churn risk", tag=CHURN_RISK_TAG)
            return ChurnRiskResult(tagged=True)

    async def _task(self, idempotency_key: str) -> CrmTask | None:
        async with self._sessions() as session:
            rows = await session.exec(
                select(CrmTask).where(CrmTask.idempotency_key == idempotency_key)
            )
            return rows.first()


def _id(task: CrmTask) -> int:
    assert task.id is not None
    return task.id
