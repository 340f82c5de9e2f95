"""The journey-run log: one row per journey run, what `journeys report` counts.

Journeys write their run when they start and when they end (completed, or
exited with the reason). Idempotent: the row is keyed by the run and simply
brought up to date, however often an attempt is retried. A run that ended
because its contact was erased, or of a contact erased meanwhile, leaves no
row behind.
"""

from __future__ import annotations

import structlog
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from structlog.contextvars import bound_contextvars
from temporalio import activity

from models.db import session_factory
from models.journeys import ContactMemo, JourneyEntry, JourneyRunRecord, JourneyStatus
from models.tables import Contact, JourneyRun
from rules.erasure import erased_at

log = structlog.stdlib.get_logger(__name__)

ERASED = "erased"


class JourneyLogActivities:
    """Activities writing the journey-run log (built in `worker.py` with the DB engine)."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    @activity.defn
    async def record_journey_run(self, record: JourneyRunRecord) -> ContactMemo | None:
        """Create or update the run's row with its status, step and exit reason.

        Returns:
            The contact's non-sensitive attributes for the journey's memo (None
            if the contact does not exist).
        """
        with bound_contextvars(workflow_id=record.workflow_id, contact_id=record.contact_id):
            async with self._sessions() as session:
                if record.exit_reason == ERASED or await erased_at(session, record.contact_id):
                    await session.exec(
                        delete(JourneyRun).where(col(JourneyRun.run_key) == record.run_key)
                    )
                    await session.commit()
                    return None
                found = await session.exec(
                    select(JourneyRun).where(JourneyRun.run_key == record.run_key)
                )
                run = found.first() or JourneyRun(
                    run_key=record.run_key,
                    workflow_id=record.workflow_id,
                    journey=record.journey,
                    contact_id=record.contact_id,
                    started_at=record.at,
                    status=record.status,
                    step=record.step,
                )
                run.status = record.status
                run.step = record.step
                run.exit_reason = record.exit_reason
                run.messages_sent = record.messages_sent
                if record.status != JourneyStatus.RUNNING:
                    run.ended_at = record.at
                session.add(run)
                await session.commit()
                contact = await session.get(Contact, record.contact_id)
            log.info("journey run recorded", status=record.status, step=record.step)
            if contact is None:
                return None
            return ContactMemo(
                timezone=contact.timezone,
                lifecycle_stage=contact.lifecycle_stage,
                lead_score=contact.lead_score,
                owner_id=contact.owner_id,
                tags=contact.tags,
                attributes=contact.attributes,
            )

    @activity.defn
    async def journey_entered(self, entry: JourneyEntry) -> bool:
        """Whether the journey workflow `entry.workflow_id` ever ran (a row in the run log).

        What keeps a once-per-contact journey once per contact after Temporal's
        retention has deleted its closed workflow.
        """
        async with self._sessions() as session:
            found = await session.exec(
                select(JourneyRun.id).where(JourneyRun.workflow_id == entry.workflow_id).limit(1)
            )
            return found.first() is not None
