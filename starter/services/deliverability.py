"""What operators see and do about deliverability: the figures, the alerts, the send pauses.

`journeys deliverability` and `/v1/deliverability` read the same figures the
guard judges (`rules/deliverability.py`); an operator pauses a journey's
marketing sends by hand or resumes them after the circuit breaker paused them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.db import session_factory
from models.deliverability import GuardConfig, Metric, PauseView
from models.tables import DeliverabilityAlert
from rules.deliverability import active_pauses, breaches, measure, pause_sends, resume_sends
from starter.services.operations import Conflict, NotFound


class StepFigures(BaseModel):
    """One journey step's emails in the window and their rates (fractions; none without a base).

    Attributes:
        journey: Journey name.
        step: Step id.
        sent: Emails sent in the window.
        rates: Per metric.
        breached: The metrics past a limit now.
    """

    journey: str
    step: str
    sent: int
    rates: dict[Metric, float | None]
    breached: list[Metric] = Field(default_factory=list)


class AlertView(BaseModel):
    """An open alert."""

    journey: str
    step: str
    metric: Metric
    rate: float
    limit: float
    sent: int
    pauses: bool
    raised_at: datetime
    notified_at: datetime | None


class DeliverabilityStatus(BaseModel):
    """The figures of the window, the open alerts and the pauses in force.

    Attributes:
        window_hours: The rolling window measured.
        limits: Alert limit per metric.
        pause_limits: Pause limit per metric.
        steps: Every journey step that sent email in the window.
        alerts: The alerts the guard holds open.
        paused: The pauses in force.
    """

    window_hours: float
    limits: dict[Metric, float]
    pause_limits: dict[Metric, float]
    steps: list[StepFigures]
    alerts: list[AlertView]
    paused: list[PauseView]


async def deliverability_status(
    engine: AsyncEngine, config: GuardConfig, *, now: datetime | None = None
) -> DeliverabilityStatus:
    """Measure the window as the guard does, with the alerts and pauses it recorded."""
    now = now or datetime.now(UTC)
    async with session_factory(engine)() as session:
        steps = await measure(
            session,
            since=now - config.window,
            settled_before=now - timedelta(hours=config.settle_hours),
        )
        alerts = (
            await session.exec(
                select(DeliverabilityAlert)
                .where(col(DeliverabilityAlert.cleared_at).is_(None))
                .order_by(col(DeliverabilityAlert.id))
            )
        ).all()
        paused = await active_pauses(session)
    breached: dict[tuple[str, str], list[Metric]] = {}
    for breach in breaches(steps, config):
        breached.setdefault((breach.journey, breach.step), []).append(breach.metric)
    return DeliverabilityStatus(
        window_hours=config.window_hours,
        limits=config.alert,
        pause_limits=config.pause,
        steps=[
            StepFigures(
                journey=step.journey,
                step=step.step,
                sent=step.sent,
                rates={metric: step.rate(metric) for metric in Metric},
                breached=breached.get((step.journey, step.step), []),
            )
            for step in steps
        ],
        alerts=[AlertView.model_validate(alert, from_attributes=True) for alert in alerts],
        paused=[PauseView.model_validate(pause, from_attributes=True) for pause in paused],
    )


async def pause_journey_sends(
    engine: AsyncEngine, journey: str, *, actor: str, reason: str
) -> PauseView:
    """Pause `journey`'s marketing sends by hand.

    Raises:
        NotFound: no journey has this name.
        Conflict: its sends are paused already.
    """
    from workflows import catalog  # the journey files' names only

    if journey not in catalog.journey_names():
        raise NotFound(f"no journey named {journey!r}")
    async with session_factory(engine)() as session:
        pause = await pause_sends(
            session, journey, by=actor, reason=reason or "paused by an operator", at=_now()
        )
    if pause is None:
        raise Conflict(f"the sends of {journey} are paused already")
    return PauseView.model_validate(pause, from_attributes=True)


async def resume_journey_sends(engine: AsyncEngine, journey: str, *, actor: str) -> PauseView:
    """Resume `journey`'s marketing sends; the messages waiting go out at their next ask.

    Raises:
        NotFound: its sends are not paused.
    """
    async with session_factory(engine)() as session:
        pause = await resume_sends(session, journey, by=actor, at=_now())
    if pause is None:
        raise NotFound(f"the sends of {journey!r} are not paused")
    return PauseView.model_validate(pause, from_attributes=True)


def _now() -> datetime:
    return datetime.now(UTC)
