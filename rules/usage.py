"""Churn signals from usage: when a customer's usage drops, and when it recovers.

The rule, for each `usage_reported` event (`metric`, `value`) as it is stored:

- no open drop of the metric, and the value is below `drop_share` × the
  trailing average (the metric's reports in the `window_days` before it, at
  least `min_reports` of them, average above 0): `usage_dropped`;
- an open drop (a `usage_dropped` not followed by a `usage_recovered`), and
  the value is at or above the drop's threshold: `usage_recovered`;
- otherwise nothing.

A recovery is measured against the threshold of the drop, not against a new
average: low reports during the drop would pull the average down, and a
customer still at 45% of their old usage would count as recovered. A second
low report during an open drop derives nothing (the owner has the first).

The configuration is `churn.toml` (`UsageRule.load`). Derived events get ids
made from the report's (`derived_event_id`), so a retried ingest finds them
stored and derives nothing twice. `renewed` and `usage_recovered` clear the
contact's `stage_churn-risk` tag (`clears_churn_risk`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.crm import CHURN_RISK_TAG
from models.events import BehaviorEvent
from models.tables import Contact, ContactEvent
from models.toml_files import load_toml
from models.usage import USAGE_DROPPED, USAGE_RECOVERED, USAGE_REPORTED, UsageReported, UsageSignal

CLEARS_CHURN_RISK = frozenset({"renewed", USAGE_RECOVERED})
"""Events after which a contact is no longer a churn risk."""
_DERIVED = (USAGE_DROPPED, USAGE_RECOVERED)


class UsageRule(BaseModel):
    """When usage counts as dropped (`churn.toml`).

    Attributes:
        window_days: The trailing window whose reports are averaged (28: the last 4 weeks).
        drop_share: A value below this share of the trailing average is a drop (0.5: < 50%).
        min_reports: Fewest reports in the window for an average to be judged against.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_days: int = Field(default=28, ge=1, le=366)
    drop_share: float = Field(default=0.5, gt=0, lt=1)
    min_reports: int = Field(default=2, ge=1)

    @classmethod
    def load(cls, path: str | Path) -> UsageRule:
        """Read the rule from a TOML file.

        Raises:
            OSError: The file cannot be read.
            ValueError: Not valid TOML or not a valid rule; the message names the file.
        """
        return load_toml(cls, path, "churn configuration")


@dataclass(frozen=True)
class Reading:
    """One report of a metric: when, and its value."""

    at: datetime
    value: float


def trailing_average(
    history: Iterable[Reading], *, before: datetime, window: timedelta
) -> tuple[float, int]:
    """The average of the readings in `[before - window, before)` and how many there are
    (`(0.0, 0)` for none)."""
    values = [reading.value for reading in history if before - window <= reading.at < before]
    return (sum(values) / len(values), len(values)) if values else (0.0, 0)


def judge(
    rule: UsageRule,
    report: BehaviorEvent,
    history: Sequence[Reading],
    open_drop: UsageSignal | None,
) -> tuple[str, UsageSignal] | None:
    """The event a report derives (see the module's table), or None.

    Args:
        rule: The configuration.
        report: A `usage_reported` event with valid properties.
        history: Earlier readings of the same metric (those outside the window are ignored).
        open_drop: The metric's drop not yet followed by a recovery, if any.

    Returns:
        The derived event type and its numbers, or None.
    """
    usage = UsageReported.model_validate(report.properties)
    if open_drop is not None:
        if usage.value < open_drop.threshold:
            return None
        return USAGE_RECOVERED, _signal(
            rule, report, usage, open_drop.trailing_average, open_drop.reports
        )
    average, reports = trailing_average(
        history, before=report.occurred_at, window=timedelta(days=rule.window_days)
    )
    if reports < rule.min_reports or average <= 0 or usage.value >= rule.drop_share * average:
        return None
    return USAGE_DROPPED, _signal(rule, report, usage, average, reports)


def _signal(
    rule: UsageRule, report: BehaviorEvent, usage: UsageReported, average: float, reports: int
) -> UsageSignal:
    return UsageSignal(
        metric=usage.metric,
        value=usage.value,
        trailing_average=round(average, 4),
        share=round(usage.value / average, 4),
        threshold=round(rule.drop_share * average, 4),
        reports=reports,
        window_days=rule.window_days,
        source_event_id=report.event_id,
    )


def derived_event_id(event_type: str, source_event_id: str) -> str:
    """`{type}:{source id}`, or `{type}:sha256:{hex}` when that would exceed 128 characters."""
    event_id = f"{event_type}:{source_event_id}"
    if len(event_id) <= 128:
        return event_id
    return f"{event_type}:sha256:{hashlib.sha256(source_event_id.encode()).hexdigest()}"


def clears_churn_risk(events: Iterable[BehaviorEvent]) -> bool:
    """Whether one of the events ends a churn risk (`CLEARS_CHURN_RISK`)."""
    return any(event.type in CLEARS_CHURN_RISK for event in events)


def clear_churn_risk(contact: Contact) -> bool:
    """Remove `stage_churn-risk` from the contact's tags; returns whether it had it."""
    if CHURN_RISK_TAG not in contact.tags:
        return False
    contact.tags = [tag for tag in contact.tags if tag != CHURN_RISK_TAG]
    return True


async def usage_signals(
    session: AsyncSession, reports: Sequence[BehaviorEvent], *, rule: UsageRule, batch_key: str
) -> list[BehaviorEvent]:
    """Judge newly stored `usage_reported` events; store and return the events they derive.

    A report whose derived event is stored already (a retry of the same batch)
    returns the stored one. Reports with invalid properties derive nothing.

    Args:
        session: The ingest's session; the reports are added to it (not committed).
        reports: The accepted events of a batch (other types are skipped).
        rule: The configuration.
        batch_key: The ingest's batch, written on the derived rows.
    """
    derived: list[BehaviorEvent] = []
    for report in reports:
        if report.type != USAGE_REPORTED or not _valid(report):
            continue
        event = await _stored_signal(session, report) or await _new_signal(
            session, report, rule=rule, batch_key=batch_key
        )
        if event is not None:
            derived.append(event)
    return derived


def _valid(report: BehaviorEvent) -> bool:
    try:
        UsageReported.model_validate(report.properties)
    except ValidationError:
        return False
    return True


async def _stored_signal(session: AsyncSession, report: BehaviorEvent) -> BehaviorEvent | None:
    ids = [derived_event_id(event_type, report.event_id) for event_type in _DERIVED]
    rows = await session.exec(
        select(ContactEvent).where(
            ContactEvent.contact_id == report.contact_id, col(ContactEvent.event_id).in_(ids)
        )
    )
    row = rows.first()
    return row.behavior_event() if row is not None else None


async def _new_signal(
    session: AsyncSession, report: BehaviorEvent, *, rule: UsageRule, batch_key: str
) -> BehaviorEvent | None:
    metric = UsageReported.model_validate(report.properties).metric
    verdict = judge(
        rule,
        report,
        await _history(session, report, metric, rule),
        await _open_drop(session, report, metric),
    )
    if verdict is None:
        return None
    event_type, signal = verdict
    row = ContactEvent(
        contact_id=report.contact_id,
        event_id=derived_event_id(event_type, report.event_id),
        type=event_type,
        occurred_at=report.occurred_at,
        properties=signal.model_dump(mode="json"),
        batch_key=batch_key,
    )
    session.add(row)
    return row.behavior_event()


async def _history(
    session: AsyncSession, report: BehaviorEvent, metric: str, rule: UsageRule
) -> list[Reading]:
    """The metric's readings in the window before the report (the report excluded)."""
    since = report.occurred_at - timedelta(days=rule.window_days)
    rows = await session.exec(
        select(ContactEvent).where(
            ContactEvent.contact_id == report.contact_id,
            ContactEvent.type == USAGE_REPORTED,
            ContactEvent.event_id != report.event_id,
            col(ContactEvent.occurred_at) >= since,
            col(ContactEvent.occurred_at) < report.occurred_at,
        )
    )
    readings = []
    for row in rows.all():
        properties = row.properties
        if properties.get("metric") == metric:
            try:
                readings.append(
                    Reading(row.occurred_at, UsageReported.model_validate(properties).value)
                )
            except ValidationError:
                continue
    return readings


async def _open_drop(
    session: AsyncSession, report: BehaviorEvent, metric: str
) -> UsageSignal | None:
    """The metric's latest derived event up to the report, if it is a drop."""
    rows = await session.exec(
        select(ContactEvent)
        .where(
            ContactEvent.contact_id == report.contact_id,
            col(ContactEvent.type).in_(_DERIVED),
            col(ContactEvent.occurred_at) <= report.occurred_at,
        )
        .order_by(col(ContactEvent.occurred_at).desc(), col(ContactEvent.id).desc())
    )
    for row in rows.all():
        if row.properties.get("metric") == metric:
            return UsageSignal.model_validate(row.properties) if row.type == USAGE_DROPPED else None
    return None
