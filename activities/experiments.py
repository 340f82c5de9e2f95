"""A contact's arm in an experiment: assigned once, recorded as its exposure.

Run as a local activity (`Journey.split`, and `start_journey` when a journey with a
journey-level holdout is about to start, at its trigger): its result is recorded in
the workflow's history, so a replay gets the same arm without asking again.

- While the experiment runs, the first assignment of a contact is recorded
  (`experiment_exposures`) with its time; every later one (a re-entry, another run)
  returns that recorded arm, even if the weights have changed since.
- A journey-level holdout is decided when the journey is about to start. Inside
  the journey, a contact with no exposure entered another way (an operator's
  enrolment): it gets control and is not counted, since it was never drawn for
  the holdout.
- Once the experiment is stopped (`experiment_decisions`), every assignment is the
  winner, or control, and nothing more is recorded: the counts stay those of the
  experiment.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from structlog.contextvars import bound_contextvars
from temporalio import activity

from models.db import session_factory
from models.experiments import HOLDOUT, ArmAssignment, ArmRequest
from models.tables import ExperimentDecision, ExperimentExposure
from rules.experiment_split import assign_arm

log = structlog.stdlib.get_logger(__name__)


class ExperimentActivities:
    """Assigns arms (built in `worker.py` with the DB engine)."""

    def __init__(self, *, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    @activity.defn
    async def assign_arm(self, request: ArmRequest) -> ArmAssignment:
        """The contact's arm in `request.experiment` (see the module docstring)."""
        with bound_contextvars(experiment=request.experiment, contact_id=request.contact_id):
            async with self._sessions() as session:
                assignment = await _assignment(session, request)
            log.info("experiment arm", arm=assignment.arm, reason=assignment.reason)
            return assignment


async def _assignment(session: AsyncSession, request: ArmRequest) -> ArmAssignment:
    decision = await _decision(session, request.experiment)
    if decision is not None:
        how = f"winner {decision.winner}" if decision.winner else "no winner: control"
        return ArmAssignment(
            experiment=request.experiment,
            arm=decision.winner or request.control,
            exposed=False,
            reason=f"stopped: {how}",
        )
    recorded = await _exposure(session, request)
    if recorded is not None:
        return _recorded(recorded, "assigned before")
    if request.holdout_at_entry and not request.at_entry:
        return ArmAssignment(
            experiment=request.experiment,
            arm=request.control,
            exposed=False,
            reason="entered without the holdout draw: control, not counted",
        )
    exposure = ExperimentExposure(
        experiment=request.experiment,
        contact_id=request.contact_id,
        arm=assign_arm(
            request.experiment,
            request.contact_id,
            request.arms,
            holdout_percent=request.holdout_percent,
        ),
        journey=request.journey,
        workflow_id=request.workflow_id,
        exposed_at=request.at,
    )
    session.add(exposure)
    try:
        await session.commit()
    except IntegrityError:  # a previous attempt recorded it, or a concurrent run did
        await session.rollback()
        recorded = await _exposure(session, request)
        if recorded is None:
            raise
        return _recorded(recorded, "assigned before")
    return _recorded(exposure, "assigned")


async def _decision(session: AsyncSession, experiment: str) -> ExperimentDecision | None:
    found = await session.exec(
        select(ExperimentDecision).where(ExperimentDecision.experiment == experiment)
    )
    return found.first()


async def _exposure(session: AsyncSession, request: ArmRequest) -> ExperimentExposure | None:
    found = await session.exec(
        select(ExperimentExposure).where(
            ExperimentExposure.experiment == request.experiment,
            ExperimentExposure.contact_id == request.contact_id,
        )
    )
    return found.first()


def _recorded(exposure: ExperimentExposure, reason: str) -> ArmAssignment:
    return ArmAssignment(
        experiment=exposure.experiment,
        arm=exposure.arm,
        exposed=True,
        exposed_at=exposure.exposed_at,
        reason=reason if exposure.arm != HOLDOUT else f"{reason}: held out",
    )
