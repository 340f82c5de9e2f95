"""The report's pipeline section: seed 002's funnel and SLA figures, overall and per source.

Sources: the stage history (`pipeline_transitions`, written by
`rules.pipeline.record_transition`), the `rep_contacted` events (`events`), the
recorded SLA breaches (`sla_breaches`) and the contacts' `src_` tags.

The period is `[since, until)`; figures are measured as of its end (`as_of`:
`until`, or the time of the report when there is none), so a closed period
gives the same figures on every run.

Figures (the cohort, then the value):

- `lead_to_mql`, `mql_to_sql`, `sql_to_opportunity`, `recycled_to_mql`: the
  contacts whose first move to the first stage in the period falls in it; the
  share of them that moved to the second stage after that, by the end of the
  period. (A contact counts once per rate, however often it moved.)
- `median_first_touch`: the hand-offs (`mql` moves) in the period that were
  touched; minutes from the hand-off to the first `rep_contacted` event after
  it (and before the next hand-off and the end), median.
- `first_touch_sla_met`, `qualified_within_sla`: the hand-offs in the period
  whose deadline (hand-off + the SLA) has passed by the end; the share without
  a `first_touch` / `qualification` breach. A breach belongs to the contact's
  latest hand-off before its due time.
- `median_days_to_opportunity`: the contacts whose first `opportunity` move in
  the period falls in it and that have a `lead` move before it; days from the
  lead to the opportunity, median.

Per source, a contact counts under each of its `src_` tags (so sources may add
up to more than the whole); one without any counts under `unknown`. A source
is listed when one of its contacts moved in the period.
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from models.handoff import SlaKind, SlaPolicy
from models.pipeline import PipelineStage
from models.tables import Contact, ContactEvent, PipelineTransition, SlaBreach
from rules.pipeline import source_tags
from rules.pipeline_targets import SEED_002_TARGETS, Unit
from starter.services import dedupe
from starter.services.sla import sla_violations_by_rep

UNKNOWN_SOURCE = "unknown"
"""The source of a contact without a `src_` tag."""
FIRST_TOUCH_EVENT = "rep_contacted"
"""The event that is a rep's first touch of a handed-off lead."""

_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
"""The start of a period that has none (the duplicate rate needs one)."""

_RATES = (
    ("lead_to_mql", "lead → MQL", PipelineStage.LEAD, PipelineStage.MQL),
    ("mql_to_sql", "MQL → SQL", PipelineStage.MQL, PipelineStage.SQL),
    ("sql_to_opportunity", "SQL → opportunity", PipelineStage.SQL, PipelineStage.OPPORTUNITY),
    ("recycled_to_mql", "recycled → MQL again", PipelineStage.RECYCLED, PipelineStage.MQL),
)
"""Stage-to-stage rates: (key, label, from, to)."""
_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)


class Figure(BaseModel):
    """One figure of the pipeline section, with seed 002's target where it sets one.

    Attributes:
        label: What it is, e.g. `lead → MQL`.
        value: The figure (rounded to 0.1), or None when there was nothing to measure.
        unit: `%`, `min` or `days`.
        cohort: What it was measured over: contacts (rates), hand-offs (SLAs), samples
            (medians); none when the part that computes it does not say (duplicate rate).
        reached: For a share: how many of the cohort count.
        target: Seed 002's target (`20–35%`), if it sets one.
        met: Whether the value meets the target; None without a target or a value.
    """

    label: str
    value: float | None
    unit: Unit
    cohort: int | None
    reached: int | None = None
    target: str | None = None
    met: bool | None = None


class PipelineSection(BaseModel):
    """The pipeline figures of a period (see the module docstring for the definitions).

    Attributes:
        since: Start of the period (none: all time).
        until: End of the period, exclusive (none: now).
        as_of: When the figures were measured: `until`, or the time of the report.
        first_touch_minutes: The first-touch SLA the hand-offs were held to.
        qualification_hours: The qualification SLA.
        overall: Every figure over all contacts, by key.
        by_source: The same per `src_` tag (and `unknown`), sources in name order.
        duplicate_rate: Duplicates found on entry among the period's leads
            (`starter/services/dedupe.py: duplicate_rate`).
        sla_violations_by_rep: SLA violations per rep in the period, most first
            (`starter/services/sla.py: sla_violations_by_rep`).
    """

    since: datetime | None
    until: datetime | None
    as_of: datetime
    first_touch_minutes: float
    qualification_hours: float
    overall: dict[str, Figure]
    by_source: dict[str, dict[str, Figure]]
    duplicate_rate: Figure
    sla_violations_by_rep: dict[str, int]


@dataclass(frozen=True)
class Period:
    """`[since, as_of)`; `since` None is all time."""

    since: datetime | None
    as_of: datetime

    def __contains__(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and moment < self.as_of


@dataclass
class _History:
    """What one contact did: its moves, its reps' touches, its SLA breaches (oldest first)."""

    sources: list[str] = field(default_factory=list)
    moves: list[tuple[str, datetime]] = field(default_factory=list)
    touches: list[datetime] = field(default_factory=list)
    breaches: dict[str, list[datetime]] = field(default_factory=dict)

    def first_move(self, stage: str, period: Period) -> datetime | None:
        """When the contact first moved to `stage` in the period."""
        return next((at for moved, at in self.moves if moved == stage and at in period), None)

    def moved_after(self, stage: str, start: datetime, end: datetime) -> bool:
        """Whether it moved to `stage` at or after `start`, before `end`."""
        return any(moved == stage and start <= at < end for moved, at in self.moves)

    def handoffs(self, period: Period) -> list[datetime]:
        """Its hand-offs (`mql` moves) in the period."""
        return [at for moved, at in self.moves if moved == PipelineStage.MQL and at in period]

    def next_handoff(self, handoff: datetime) -> datetime | None:
        """The hand-off after `handoff`, if any."""
        later = (at for moved, at in self.moves if moved == PipelineStage.MQL and at > handoff)
        return min(later, default=None)

    def first_touch(self, handoff: datetime, as_of: datetime) -> datetime | None:
        """The first touch after `handoff`, before the next hand-off and `as_of`."""
        end = min(self.next_handoff(handoff) or as_of, as_of)
        return next((at for at in self.touches if handoff <= at < end), None)

    def breached(self, sla: str, handoff: datetime) -> bool:
        """Whether the hand-off's `sla` was breached: a breach due after it, before the next."""
        end = self.next_handoff(handoff)
        return any(
            handoff <= due and (end is None or due < end) for due in self.breaches.get(sla, [])
        )


async def pipeline_section(
    engine: AsyncEngine,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    sla: SlaPolicy,
) -> PipelineSection:
    """Count the pipeline section of `[since, until)` from the database.

    Args:
        engine: The journeys database.
        since: Start of the period (aware), or None for all time.
        until: End of the period (aware, exclusive), or None: up to `now`.
        now: The time of the report (the end when `until` is None).
        sla: The hand-off SLAs (the sales configuration's).
    """
    period = Period(since=since, as_of=until or now)
    histories = await _histories(engine, period)
    by_source: dict[str, list[_History]] = {}
    for history in histories:
        if any(at in period for _, at in history.moves):
            for source in history.sources:
                by_source.setdefault(source, []).append(history)
    return PipelineSection(
        since=since,
        until=until,
        as_of=period.as_of,
        first_touch_minutes=sla.first_touch_minutes,
        qualification_hours=sla.qualification_hours,
        overall=_figures(histories, period, sla),
        by_source={
            source: _figures(by_source[source], period, sla)
            for source in sorted(by_source, key=lambda name: (name == UNKNOWN_SOURCE, name))
        },
        duplicate_rate=await _duplicate_rate(engine, period),
        sla_violations_by_rep=await _violations_by_rep(engine, period),
    )


async def _duplicate_rate(engine: AsyncEngine, period: Period) -> Figure:
    """Duplicates found on entry / leads entered in the period (seed 002: ≤ 2%)."""
    found = await dedupe.duplicate_rate(engine, period.since or _BEGINNING, period.as_of)
    return _figure(
        "duplicate_rate",
        "duplicate rate",
        None if found.rate is None else found.rate * 100,
        "%",
        cohort=found.leads,
        reached=found.duplicates,
    )


async def _violations_by_rep(engine: AsyncEngine, period: Period) -> dict[str, int]:
    """SLA breaches per rep in the period, most first."""
    found = await sla_violations_by_rep(engine, period.since, period.as_of)
    return {rep.owner_id: rep.total for rep in found.reps}


async def _histories(engine: AsyncEngine, period: Period) -> list[_History]:
    """Every contact with a move before the end of the period, with what it did until then."""
    histories: dict[str, _History] = {}
    async with engine.connect() as connection:
        moves = await connection.execute(
            select(
                col(PipelineTransition.contact_id),
                col(PipelineTransition.stage),
                col(PipelineTransition.occurred_at),
            )
            .where(col(PipelineTransition.occurred_at) < period.as_of)
            .order_by(col(PipelineTransition.occurred_at), col(PipelineTransition.id))
        )
        for contact_id, stage, at in moves:
            histories.setdefault(contact_id, _History()).moves.append((stage, at))
        ids = (
            select(col(PipelineTransition.contact_id))
            .where(col(PipelineTransition.occurred_at) < period.as_of)
            .distinct()
        )  # a subquery: no limit on how many contacts
        tags = await connection.execute(
            select(col(Contact.id), col(Contact.tags)).where(col(Contact.id).in_(ids))
        )
        for contact_id, contact_tags in tags:
            histories[contact_id].sources = source_tags(contact_tags)
        touches = await connection.execute(
            select(col(ContactEvent.contact_id), col(ContactEvent.occurred_at))
            .where(col(ContactEvent.type) == FIRST_TOUCH_EVENT)
            .where(col(ContactEvent.contact_id).in_(ids))
            .order_by(col(ContactEvent.occurred_at))
        )
        for contact_id, at in touches:
            histories[contact_id].touches.append(at)
        breaches = await connection.execute(
            select(col(SlaBreach.contact_id), col(SlaBreach.sla), col(SlaBreach.due_at))
            .where(col(SlaBreach.contact_id).in_(ids))
            .where(col(SlaBreach.breached_at) < period.as_of)
        )
        for contact_id, sla, due in breaches:
            histories[contact_id].breaches.setdefault(sla, []).append(due)
    for history in histories.values():
        history.sources = history.sources or [UNKNOWN_SOURCE]
    return list(histories.values())


def _figures(histories: list[_History], period: Period, sla: SlaPolicy) -> dict[str, Figure]:
    """Every figure of the section over `histories`, in the report's order."""
    rates = {
        key: _rate(key, label, histories, period, start, end) for key, label, start, end in _RATES
    }
    return {
        "lead_to_mql": rates["lead_to_mql"],
        "mql_to_sql": rates["mql_to_sql"],
        "sql_to_opportunity": rates["sql_to_opportunity"],
        "median_first_touch": _median_first_touch(histories, period),
        "first_touch_sla_met": _sla_met(
            "first_touch_sla_met",
            f"first touch within {sla.first_touch_minutes:g} min",
            histories,
            period,
            SlaKind.FIRST_TOUCH,
            sla.first_touch,
        ),
        "qualified_within_sla": _sla_met(
            "qualified_within_sla",
            f"qualified within {sla.qualification_hours:g} h",
            histories,
            period,
            SlaKind.QUALIFICATION,
            sla.qualification,
        ),
        "median_days_to_opportunity": _median_days_to_opportunity(histories, period),
        "recycled_to_mql": rates["recycled_to_mql"],
    }


def _rate(
    key: str, label: str, histories: Iterable[_History], period: Period, start: str, end: str
) -> Figure:
    """Of the contacts that moved to `start` in the period, the share that moved to `end` after."""
    cohort = [(history, at) for history in histories if (at := history.first_move(start, period))]
    reached = sum(history.moved_after(end, at, period.as_of) for history, at in cohort)
    return _share(key, label, reached, len(cohort))


def _median_first_touch(histories: Iterable[_History], period: Period) -> Figure:
    """Minutes from hand-off to first touch, median over the period's touched hand-offs."""
    minutes = [
        (touch - handoff) / _MINUTE
        for history in histories
        for handoff in history.handoffs(period)
        if (touch := history.first_touch(handoff, period.as_of)) is not None
    ]
    return _median("median_first_touch", "median time to first touch", minutes, "min")


def _sla_met(
    key: str,
    label: str,
    histories: Iterable[_History],
    period: Period,
    sla: SlaKind,
    due: timedelta,
) -> Figure:
    """Of the period's hand-offs whose deadline has passed, the share without a breach."""
    due_handoffs = [
        (history, handoff)
        for history in histories
        for handoff in history.handoffs(period)
        if handoff + due <= period.as_of
    ]
    met = sum(not history.breached(sla, handoff) for history, handoff in due_handoffs)
    return _share(key, label, met, len(due_handoffs))


def _median_days_to_opportunity(histories: Iterable[_History], period: Period) -> Figure:
    """Days from lead to opportunity, median over the period's new opportunities."""
    days = []
    for history in histories:
        opportunity = history.first_move(PipelineStage.OPPORTUNITY, period)
        lead = next((at for stage, at in history.moves if stage == PipelineStage.LEAD), None)
        if opportunity is not None and lead is not None and lead <= opportunity:
            days.append((opportunity - lead) / _DAY)
    return _median("median_days_to_opportunity", "median days lead → opportunity", days, "days")


def _share(key: str, label: str, reached: int, cohort: int) -> Figure:
    value = reached / cohort * 100 if cohort else None
    return _figure(key, label, value, "%", cohort=cohort, reached=reached)


def _median(key: str, label: str, samples: list[float], unit: Unit) -> Figure:
    value = statistics.median(samples) if samples else None
    return _figure(key, label, value, unit, cohort=len(samples))


def _figure(
    key: str,
    label: str,
    value: float | None,
    unit: Unit,
    *,
    cohort: int | None,
    reached: int | None = None,
) -> Figure:
    """The figure, rounded to 0.1, with its target and mark (judged on the rounded value)."""
    rounded = None if value is None else round(value, 1)
    target = SEED_002_TARGETS.get(key)
    return Figure(
        label=label,
        value=rounded,
        unit=unit,
        cohort=cohort,
        reached=reached,
        target=None if target is None else str(target),
        met=None if target is None else target.met(rounded),
    )


# --- rendering ------------------------------------------------------------------------------


def cell(figure: Figure) -> str:
    """`25% (5/20) ✓`, `7.5 min (n=4) ✗`, `2.5% ✗` without a cohort, `-` without a value."""
    if figure.value is None:
        return "-"
    unit = figure.unit if figure.unit == "%" else f" {figure.unit}"
    if figure.cohort is None:
        size = ""
    elif figure.reached is None:
        size = f" (n={figure.cohort})"
    else:
        size = f" ({figure.reached}/{figure.cohort})"
    return f"{figure.value:g}{unit}{size}{_MARK[figure.met]}"


def title(section: PipelineSection) -> str:
    """`Pipeline 2025-03-01 00:00 – 2025-04-01 00:00 UTC (seed 002's targets)`; the start
    is `all time` without `since`."""
    start = "all time" if section.since is None else f"{section.since:%Y-%m-%d %H:%M}"
    return f"Pipeline {start} – {section.as_of:%Y-%m-%d %H:%M} UTC (seed 002's targets)"


def _columns(section: PipelineSection) -> list[tuple[Figure, list[Figure]]]:
    """Per figure: the overall one, and its value for all contacts then for each source."""
    return [
        (figure, [figure, *(figures[key] for figures in section.by_source.values())])
        for key, figure in section.overall.items()
    ]


def _header(section: PipelineSection) -> list[str]:
    return ["figure", "target", "all", *section.by_source]


def extras(section: PipelineSection) -> list[str]:
    """The lines for the figures other parts compute: duplicate rate, violations per rep."""
    duplicate = section.duplicate_rate
    per_rep = ", ".join(f"{rep} {count}" for rep, count in section.sla_violations_by_rep.items())
    return [
        f"duplicate rate: {cell(duplicate)} (target {duplicate.target})",
        f"SLA violations per rep: {per_rep or 'none'}",
    ]


def render_table(section: PipelineSection) -> list[str]:
    """The section as aligned text lines: a row per figure, a column per source."""
    grid = [_header(section)]
    grid += [
        [figure.label, figure.target or "-", *map(cell, shown)]
        for figure, shown in _columns(section)
    ]
    widths = [max(len(row[index]) for row in grid) for index in range(len(grid[0]))]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in grid
    ]
    return [title(section), *lines, *extras(section)]


def render_html(section: PipelineSection) -> str:
    """The section as an HTML `<section>` (escaped text; a cell met / not met has the class
    `met` / `unmet`)."""
    header = "".join(f"<th>{_escape(text)}</th>" for text in _header(section))
    lines = [
        '<section id="pipeline">',
        f"<h2>{_escape(title(section))}</h2>",
        "<table>",
        f"<thead><tr>{header}</tr></thead>",
        "<tbody>",
    ]
    for figure, shown in _columns(section):
        cells = "".join(
            f'<td class="n{_MARK_CLASS[value.met]}">{_escape(cell(value))}</td>' for value in shown
        )
        lines.append(
            f'<tr><th scope="row">{_escape(figure.label)}</th>'
            f"<td>{_escape(figure.target or '-')}</td>{cells}</tr>"
        )
    lines += ["</tbody>", "</table>", *(f"<p>{_escape(line)}</p>" for line in extras(section))]
    return "\n".join([*lines, "</section>"])


_MARK_CLASS = {True: " met", False: " unmet", None: ""}
_MARK = {True: " ✓", False: " ✗", None: ""}


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
