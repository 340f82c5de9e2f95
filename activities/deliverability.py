"""The deliverability guard's check: measure, raise and clear alerts, pause, notify owners.

One check (`check_deliverability`, run by the `deliverability-guard` workflow on a
Temporal Schedule):

1. measures every journey step's emails of the window (`rules/deliverability.py`);
   a journey resumed within the window is measured from its resume on, so the
   figures that paused it do not pause it again;
2. raises an alert for each new breach (one open alert per journey, step and
   metric) and clears the open alerts whose rate is back within its limit;
3. pauses the marketing sends of each journey with a step at or past a pause
   limit (the circuit breaker), until an operator resumes them;
4. notifies each raised alert's journey owner through the notifier, once: the
   alert row is written first, then marked notified; a check that finds one
   not notified (the notifier failed) tries again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.providers.errors import DeliveryError
from activities.providers.notifier import Notifier, RepNotification
from models.db import lock_for_writing, session_factory
from models.deliverability import Breach, GuardConfig, GuardResult, StepRates
from models.tables import DeliverabilityAlert
from rules.deliverability import (
    GUARD,
    active_pauses,
    breaches,
    last_resumes,
    measure,
    pause_sends,
)

log = structlog.get_logger()


class DeliverabilityActivities:
    """The guard's check, with the database, its configuration and the notifier."""

    def __init__(self, *, engine: AsyncEngine, config: GuardConfig, notifier: Notifier) -> None:
        """Hold the database engine, the guard's configuration and the notifier."""
        self._sessions = session_factory(engine)
        self._config = config
        self._notifier = notifier

    @activity.defn(name="check_deliverability")
    async def check_deliverability(self) -> GuardResult:
        """One check (see the module docstring).

        Raises:
            ApplicationError: a notifier's failure (transient ones are retried; the
                alerts and pauses are recorded already).
        """
        now = datetime.now(UTC)
        async with self._sessions() as session:
            steps = await self._measure(session, now)
            found = breaches(steps, self._config)
            raised, cleared = await self._record_alerts(session, found, now)
            paused = [
                breach.journey
                for breach in _first_per_journey(found)
                if breach.pauses
                and await pause_sends(
                    session, breach.journey, by=GUARD, reason=_pause_reason(breach), at=now
                )
                is not None
            ]
            for journey in paused:
                log.warning("journey sends paused", journey=journey)
            open_alerts = await _open_alerts(session)
            paused_journeys = sorted({pause.journey for pause in await active_pauses(session)})
        await self._notify_owners(open_alerts)
        return GuardResult(
            checked_at=now,
            steps=len(steps),
            open_alerts=[_alert_line(alert) for alert in open_alerts],
            raised=raised,
            cleared=cleared,
            paused=paused,
            paused_journeys=paused_journeys,
        )

    async def _measure(self, session: AsyncSession, now: datetime) -> list[StepRates]:
        since = now - self._config.window
        settled_before = now - timedelta(hours=self._config.settle_hours)
        resumed = await last_resumes(session, since=since)
        steps = [
            step
            for step in await measure(session, since=since, settled_before=settled_before)
            if step.journey not in resumed
        ]
        for journey, resumed_at in resumed.items():
            steps += await measure(
                session, since=resumed_at, settled_before=settled_before, journeys=[journey]
            )
        return steps

    async def _record_alerts(
        self, session: AsyncSession, found: list[Breach], now: datetime
    ) -> tuple[list[str], list[str]]:
        """Raise the new breaches' alerts and clear those back within limits; commit."""
        await lock_for_writing(session)
        open_by_key = {alert.key: alert for alert in await _open_alerts(session)}
        current = {breach.key: breach for breach in found}
        raised = []
        for key, breach in current.items():
            alert = open_by_key.get(key)
            if alert is None or (breach.pauses and not alert.pauses):
                if alert is not None:
                    alert.cleared_at = now  # superseded by the pausing alert
                    session.add(alert)
                session.add(_alert_row(breach, now))
                raised.append(breach.describe())
        cleared = []
        for key, alert in open_by_key.items():
            if key not in current:
                alert.cleared_at = now
                session.add(alert)
                cleared.append(key)
        await session.commit()
        return raised, cleared

    async def _notify_owners(self, alerts: list[DeliverabilityAlert]) -> None:
        for alert in alerts:
            if alert.notified_at is not None:
                continue
            owner = self._config.owner_of(alert.journey)
            if owner is None:
                log.warning("deliverability alert has no owner to notify", key=alert.key)
                continue
            try:
                await self._notifier.notify(
                    RepNotification(
                        idempotency_key=f"deliverability/{alert.id}",
                        recipient_id=owner.id,
                        recipient=owner.addressed,
                        kind="deliverability",
                        title=_title(alert),
                        text=_text(alert),
                    )
                )
            except DeliveryError as error:
                log.warning("deliverability alert not delivered", key=alert.key, error=str(error))
                raise error.to_application_error() from error
            async with self._sessions() as session:
                alert.notified_at = datetime.now(UTC)
                session.add(alert)
                await session.commit()
            log.info("deliverability alert sent", key=alert.key, owner=owner.id)


async def _open_alerts(session: AsyncSession) -> list[DeliverabilityAlert]:
    rows = await session.exec(
        select(DeliverabilityAlert)
        .where(col(DeliverabilityAlert.cleared_at).is_(None))
        .order_by(col(DeliverabilityAlert.id))
    )
    return list(rows.all())


def _first_per_journey(found: list[Breach]) -> list[Breach]:
    """The worst pausing breach of each journey, then the others (one pause per journey)."""
    return sorted(found, key=lambda breach: (not breach.pauses, -breach.rate))


def _alert_row(breach: Breach, now: datetime) -> DeliverabilityAlert:
    return DeliverabilityAlert(
        key=breach.key,
        journey=breach.journey,
        step=breach.step,
        metric=breach.metric,
        rate=breach.rate,
        limit=breach.limit,
        sent=breach.sent,
        pauses=breach.pauses,
        raised_at=now,
    )


def _pause_reason(breach: Breach) -> str:
    return f"deliverability guard: {breach.describe()}"


def _alert_line(alert: DeliverabilityAlert) -> str:
    return f"{alert.journey}: {alert.metric} {alert.rate:.1%} on {alert.step}"


def _title(alert: DeliverabilityAlert) -> str:
    if alert.pauses:
        return f"Sends paused: {alert.journey} ({alert.metric} rate {alert.rate:.1%})"
    return f"Deliverability alert: {alert.journey} ({alert.metric} rate {alert.rate:.1%})"


def _text(alert: DeliverabilityAlert) -> str:
    side = "below" if alert.metric in ("open", "click") else "at or above"
    lines = [
        f"Journey {alert.journey}, step {alert.step}: {alert.metric} rate {alert.rate:.2%}, "
        f"{side} the limit {alert.limit:.2%}, measured on {alert.sent} emails.",
    ]
    if alert.pauses:
        lines.append(
            "Its marketing sends are paused to protect the sending domain. Once the cause "
            f"is fixed: journeys deliverability resume {alert.journey}"
        )
    return "\n".join(lines)
