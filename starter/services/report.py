"""Marketing's funnel per journey and step, counted from the database (`journeys report`).

Sources: `journey_runs` (one row per run: how it ended), `message_log` (one
row per message) and the `email_opened` / `email_clicked` events the email
provider's webhook stores with the message's `journey` and `step`.

Journey figures (`JourneyFunnel`), over the runs started since `since`:

- `entered`: runs started; `running`: not ended yet; `completed`: ran to the end.
- `exited`: runs that exited early, per exit reason.
- `converted`: exited runs whose reason is in `CONVERSION_REASONS` (they are
  also counted in `exited`).

Step figures (`StepFunnel`):

- `entered`: message-log rows written for the step since `since`, any status;
  `sent`, `pending`, `deferred`, `suppressed`, `failed` and `cancelled` split
  them by their current status, so they add up to `entered`. `suppressed` is
  every message the messaging policy refused: `suppressed` (suppression list),
  `skipped_no_consent`, `skipped_no_address` and `skipped_sunset`.
- `opened` / `clicked`: distinct contacts with an `email_opened` /
  `email_clicked` event for the journey and step since `since` (a contact who
  opens twice counts once).
- `converted` / `exited`: runs (started since `since`) that exited at this
  step with a conversion reason / per exit reason.

With `until`, only what happened before it counts (the period is `[since, until)`).

Without a journey filter the report also has a pipeline section (seed 002's
funnel and SLA figures with their targets, overall and per source); see
`starter/services/pipeline_report.py` for its definitions.

Steps come in the order of the journey's plan (every plan step is listed, even
with nothing counted), after `enrolled` (runs that exited before their first
step) and before steps the plan does not name (journeys whose plan depends on
their input, renamed steps), which come in the order they were first written.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    and_,
    distinct,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped
from sqlmodel import col

from models.deliverability import PauseView
from models.handoff import SlaPolicy
from models.journeys import JourneyStatus
from models.messages import DeliveryStatus
from models.tables import ContactEvent, JourneyRun, MessageLog, SendPause, utc_now
from starter.services import pipeline_report
from starter.services.pipeline_report import PipelineSection

CONVERSION_REASONS = frozenset(
    {"purchased", "converted", "checkout_started", "renewed", "usage_recovered", "reactivated"}
    | {"requalified", "lead_qualified"}
)
"""Exit reasons that count as a conversion: the contact bought (`purchased`;
`converted` is how pricing-abandon says it), started checkout, renewed, their usage
recovered (churn prevention), or they came back (`reactivated`: re-engagement's goal);
a recycled lead became MQL again (`requalified`) or a rep qualified it (`lead_qualified`)."""

ENROLLED = "enrolled"
"""The step a run is at before its first step (see `workflows/toolkit/journey.py`)."""

OPENED = "email_opened"
CLICKED = "email_clicked"

_STATUS_COLUMNS: dict[str, str] = {
    DeliveryStatus.PENDING: "pending",
    DeliveryStatus.DEFERRED: "deferred",
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.SUPPRESSED: "suppressed",
    DeliveryStatus.SKIPPED_NO_CONSENT: "suppressed",
    DeliveryStatus.SKIPPED_NO_ADDRESS: "suppressed",
    DeliveryStatus.SKIPPED_SUNSET: "suppressed",
    DeliveryStatus.CANCELLED: "cancelled",
    DeliveryStatus.FAILED: "failed",
}
"""The `StepFunnel` column each message-log status is counted in."""

_COUNT_COLUMNS = (
    "entered",
    "sent",
    "pending",
    "deferred",
    "suppressed",
    "failed",
    "cancelled",
    "opened",
    "clicked",
    "converted",
)
"""The step columns of the table and HTML outputs, in order (`exited` comes last)."""

_CHART = (
    ("entered", "#9aa5b1"),
    ("sent", "#3e7cb1"),
    ("opened", "#2a9d8f"),
    ("clicked", "#e9c46a"),
    ("converted", "#e76f51"),
)
"""The bars of the HTML funnel chart per step, with their colours."""


class ReportFormat(StrEnum):
    """Output formats of `journeys report`."""

    TABLE = "table"
    JSON = "json"
    HTML = "html"


class StepFunnel(BaseModel):
    """The funnel figures of one journey step (see the module docstring).

    Attributes:
        step: Step id, e.g. `day1`.
        label: The plan's label (`Day 1 → Email 2: …`); none for a step the plan does not name.
        entered: Messages written for the step, any status.
        sent: Delivered to the provider.
        pending: Written, the provider has not answered yet.
        deferred: Held back (quiet hours, frequency cap), still waiting.
        suppressed: Refused by the messaging policy: suppressed address, no consent, no address.
        failed: The provider failed for good.
        cancelled: Deferred, then called off (the journey exited, an event called it off).
        opened: Distinct contacts who opened the step's email.
        clicked: Distinct contacts who clicked in the step's email.
        converted: Runs that exited at this step with a conversion reason.
        exited: Runs that exited at this step, per exit reason.
    """

    step: str
    label: str | None = None
    entered: int = 0
    sent: int = 0
    pending: int = 0
    deferred: int = 0
    suppressed: int = 0
    failed: int = 0
    cancelled: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    exited: dict[str, int] = Field(default_factory=dict)


class JourneyFunnel(BaseModel):
    """The funnel of one journey: its runs, then each step.

    Attributes:
        journey: Journey type, e.g. `welcome-series`.
        title: Human name, e.g. `Welcome series`; none for a journey no longer registered.
        entered: Runs started.
        running: Runs not ended yet.
        completed: Runs that went to the end.
        exited: Runs that exited early, per exit reason (most frequent first).
        converted: Exited runs whose reason is in `CONVERSION_REASONS`.
        steps: Per step, in the order of the plan.
        send_pauses: Pauses of its marketing sends (the deliverability guard's circuit
            breaker, or an operator) in force or made in the period, oldest first.
    """

    journey: str
    title: str | None = None
    entered: int = 0
    running: int = 0
    completed: int = 0
    exited: dict[str, int] = Field(default_factory=dict)
    converted: int = 0
    steps: list[StepFunnel] = Field(default_factory=list)
    send_pauses: list[PauseView] = Field(default_factory=list)


class FunnelReport(BaseModel):
    """Funnel figures of every journey with activity (runs, messages or email events).

    Attributes:
        since: Only runs started, messages written and events that occurred
            from then on; none for all time.
        until: And before then; none for up to now.
        journeys: In the order of the journey registry, then by name.
        pipeline: The pipeline section; none in a report of one journey.
    """

    since: datetime | None = None
    until: datetime | None = None
    journeys: list[JourneyFunnel] = Field(default_factory=list)
    pipeline: PipelineSection | None = None


def parse_since(text: str) -> datetime:
    """Parse `--since` (or `--until`): an ISO 8601 date or datetime; one without an offset
    is UTC.

    Raises:
        ValueError: `text` is neither.
    """
    try:
        return _as_utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):  # OverflowError: out of range in UTC (year 9999-…)
        raise ValueError(
            f"expected an ISO date or datetime (2025-03-01, 2025-03-01T09:00:00Z), got {text!r}"
        ) from None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def full_report(
    engine: AsyncEngine,
    *,
    journey: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sla: SlaPolicy,
    now: datetime | None = None,
) -> FunnelReport:
    """The report `journeys report` and `GET /v1/report` give: the funnel of every journey
    (or of `journey`), and without `journey` the pipeline section.

    Args:
        engine: The journeys database.
        journey: Only this journey's funnel, and no pipeline section.
        since: Start of the period (a naive datetime is UTC); none for all time.
        until: End of the period, exclusive (a naive datetime is UTC); none for up to now.
        sla: The hand-off SLAs the pipeline section holds hand-offs to.
        now: The time of the report (default: the clock's).
    """
    report = await funnel_report(engine, journey=journey, since=since, until=until)
    if journey is None:
        report.pipeline = await pipeline_report.pipeline_section(
            engine,
            since=report.since,
            until=report.until,
            now=now or utc_now(),
            sla=sla,
        )
    return report


async def funnel_report(
    engine: AsyncEngine,
    *,
    journey: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> FunnelReport:
    """Count the funnel of every journey (or of `journey`) from the database.

    Args:
        engine: The journeys database.
        journey: Only this journey type.
        since: Only runs started, messages written and events that occurred
            from then on (a naive datetime is UTC).
        until: And before then (a naive datetime is UTC).

    Returns:
        The report (without its pipeline section); without any activity, one with no journeys.
    """
    period = _Period(
        since=None if since is None else _as_utc(since),
        until=None if until is None else _as_utc(until),
    )
    async with engine.connect() as connection:
        runs = (await connection.execute(_run_counts(journey, period))).all()
        messages = (await connection.execute(_message_counts(journey, period))).all()
        engagement = (await connection.execute(_engagement_counts(journey, period))).all()
        pauses = (await connection.execute(_send_pauses(journey, period))).all()

    tally = _Tally()
    for journey_type, step, status, reason, count in runs:
        funnel = tally.journey(journey_type)
        funnel.entered += count
        if status == JourneyStatus.COMPLETED:
            funnel.completed += count
        elif status == JourneyStatus.EXITED:
            reason = reason or "unknown"
            converted = count if reason in CONVERSION_REASONS else 0
            at_step = tally.step(journey_type, step)
            for counted in (funnel, at_step):
                counted.converted += converted
                counted.exited[reason] = counted.exited.get(reason, 0) + count
        else:
            funnel.running += count

    for journey_type, step, status, count, first in messages:
        at_step = tally.step(journey_type, step)
        at_step.entered += count
        column = _STATUS_COLUMNS.get(status)
        if column is not None:
            setattr(at_step, column, getattr(at_step, column) + count)
        key = (journey_type, step)
        tally.first_written[key] = min(first, tally.first_written.get(key, first))

    for event_type, journey_type, step, contacts in engagement:
        at_step = tally.step(journey_type, step)
        if event_type == OPENED:
            at_step.opened += contacts
        else:
            at_step.clicked += contacts

    for row in pauses:
        tally.journey(row.journey).send_pauses.append(PauseView.model_validate(row._mapping))

    return FunnelReport(since=period.since, until=period.until, journeys=tally.funnels())


@dataclass(frozen=True)
class _Period:
    since: datetime | None
    until: datetime | None

    def conditions(self, moment: Mapped[datetime]) -> list[ColumnElement[bool]]:
        """Where-clauses keeping the rows whose `moment` is in `[since, until)`."""
        clauses = [] if self.since is None else [moment >= self.since]
        return clauses if self.until is None else [*clauses, moment < self.until]


_PAUSE_COLUMNS = (
    col(SendPause.journey),
    col(SendPause.paused_at),
    col(SendPause.paused_by),
    col(SendPause.reason),
    col(SendPause.resumed_at),
    col(SendPause.resumed_by),
)


def _send_pauses(
    journey: str | None, period: _Period
) -> Select[str, datetime, str, str, datetime | None, str | None]:
    """Pauses in force, or made or ended in the period, oldest first."""
    statement = select(*_PAUSE_COLUMNS).order_by(col(SendPause.paused_at))
    if journey is not None:
        statement = statement.where(col(SendPause.journey) == journey)
    made, ended = (
        period.conditions(col(SendPause.paused_at)),
        period.conditions(cast("Mapped[datetime]", SendPause.resumed_at)),
    )
    if not made:
        return statement
    return statement.where(or_(col(SendPause.resumed_at).is_(None), and_(*made), and_(*ended)))


def _run_counts(journey: str | None, period: _Period) -> Select[str, str, str, str | None, int]:
    """Runs per journey, step, status and exit reason."""
    keys = (
        col(JourneyRun.journey),
        col(JourneyRun.step),
        col(JourneyRun.status),
        col(JourneyRun.exit_reason),
    )
    statement = select(*keys, func.count()).group_by(*keys)
    if journey is not None:
        statement = statement.where(col(JourneyRun.journey) == journey)
    return statement.where(*period.conditions(col(JourneyRun.started_at)))


def _message_counts(journey: str | None, period: _Period) -> Select[str, str, str, int, datetime]:
    """Messages per journey, step and status, with when the step's first one was written."""
    keys = (col(MessageLog.journey), col(MessageLog.step), col(MessageLog.status))
    statement = select(*keys, func.count(), func.min(col(MessageLog.created_at))).group_by(*keys)
    if journey is not None:
        statement = statement.where(col(MessageLog.journey) == journey)
    return statement.where(*period.conditions(col(MessageLog.created_at)))


def _engagement_counts(journey: str | None, period: _Period) -> Select[str, str, str, int]:
    """Distinct contacts per email event type (opened, clicked), journey and step."""
    properties = type_coerce(col(ContactEvent.properties), JSON)
    keys = (
        col(ContactEvent.type),
        properties["journey"].as_string(),
        properties["step"].as_string(),
    )
    statement = (
        select(*keys, func.count(distinct(col(ContactEvent.contact_id))))
        .where(col(ContactEvent.type).in_((OPENED, CLICKED)))
        .where(keys[1].is_not(None), keys[2].is_not(None))
        .group_by(*keys)
    )
    if journey is not None:
        statement = statement.where(keys[1] == journey)
    return statement.where(*period.conditions(col(ContactEvent.occurred_at)))


class _Tally:
    """The figures being counted, per journey and step."""

    def __init__(self) -> None:
        self.journeys: dict[str, JourneyFunnel] = {}
        self.steps: dict[str, dict[str, StepFunnel]] = {}
        self.plans: dict[str, list[str]] = {}
        self.first_written: dict[tuple[str, str], datetime] = {}

    def journey(self, journey: str) -> JourneyFunnel:
        """The journey's figures; a journey seen first gets every step of its plan."""
        if journey not in self.journeys:
            from workflows import catalog  # a journey's file loads when its funnel is made

            journey_class = (
                catalog.journey_class(journey) if journey in catalog.journey_names() else None
            )
            plan = journey_class.plan if journey_class else ()
            self.journeys[journey] = JourneyFunnel(
                journey=journey, title=journey_class.title if journey_class else None
            )
            self.steps[journey] = {
                planned.id: StepFunnel(step=planned.id, label=planned.label) for planned in plan
            }
            self.plans[journey] = [planned.id for planned in plan]
        return self.journeys[journey]

    def step(self, journey: str, step: str) -> StepFunnel:
        """The step's figures (a step the plan does not name is added)."""
        self.journey(journey)
        return self.steps[journey].setdefault(step, StepFunnel(step=step))

    def funnels(self) -> list[JourneyFunnel]:
        """Every journey (catalog ones first), by name, with its steps in order."""
        from workflows import catalog

        registry = catalog.journey_names()
        ordered = sorted(
            self.journeys,
            key=lambda journey: (
                registry.index(journey) if journey in registry else len(registry),
                journey,
            ),
        )
        return [self._finished(journey) for journey in ordered]

    def _finished(self, journey: str) -> JourneyFunnel:
        """The journey with its exit reasons sorted and its steps in order.

        `enrolled` first, then the plan's steps, then the others as they were
        first written (by name when nothing was written for them).
        """
        never = datetime.max.replace(tzinfo=UTC)
        planned = self.plans[journey]

        def order(step: StepFunnel) -> tuple[int, int, datetime, str]:
            if step.step == ENROLLED:
                return (0, 0, never, "")
            if step.step in planned:
                return (1, planned.index(step.step), never, "")
            return (2, 0, self.first_written.get((journey, step.step), never), step.step)

        funnel = self.journeys[journey]
        funnel.exited = _by_count(funnel.exited)
        funnel.steps = sorted(self.steps[journey].values(), key=order)
        for step in funnel.steps:
            step.exited = _by_count(step.exited)
        return funnel


def _by_count(counts: dict[str, int]) -> dict[str, int]:
    """Exit reasons, most frequent first (then by name)."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def render(report: FunnelReport, output_format: ReportFormat) -> str:
    """The report as text in `output_format` (JSON: the `FunnelReport` model)."""
    if output_format == ReportFormat.JSON:
        return report.model_dump_json(indent=2)
    if output_format == ReportFormat.HTML:
        return render_html(report)
    return render_table(report)


def render_table(report: FunnelReport) -> str:
    """The report as plain aligned text for a terminal: per journey its runs, then its steps."""
    lines = [_title(report)]
    if not report.journeys:
        lines.append("no journey activity")
    for funnel in report.journeys:
        rows: list[tuple[str, ...]] = [("step", *_COUNT_COLUMNS, "exited")]
        rows += [
            (step.step, *(str(getattr(step, column)) for column in _COUNT_COLUMNS), _reasons(step))
            for step in funnel.steps
        ]
        widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
        lines += ["", _heading(funnel), _runs_summary(funnel)]
        lines += [pause.describe() for pause in funnel.send_pauses]
        for step_id, *counts, exited in rows:
            cells = [step_id.ljust(widths[0])]
            cells += [count.rjust(width) for count, width in zip(counts, widths[1:], strict=False)]
            lines.append("  ".join([*cells, exited]))
    if report.pipeline is not None:
        lines += ["", *pipeline_report.render_table(report.pipeline)]
    return "\n".join(lines)


def render_html(report: FunnelReport) -> str:
    """The report as a standalone HTML page: per journey a table and an inline-SVG funnel chart.

    The page needs nothing else (no scripts, stylesheets or images) and all
    text in it is HTML-escaped.
    """
    sections = [_html_journey(funnel) for funnel in report.journeys]
    return html_page(
        _title(report),
        [
            *(sections or ["<p>No journey activity.</p>"]),
            *([] if report.pipeline is None else [pipeline_report.render_html(report.pipeline)]),
        ],
    )


def html_page(title: str, body: Sequence[str], *, style: str = "") -> str:
    """A standalone HTML page (no scripts, stylesheets or images): `title` as its title and
    heading (escaped here), then `body`, already HTML; `style` adds CSS rules to the
    reports' own."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{_escape(title)}</title>",
            f"<style>{_STYLE}{style}</style>",
            "</head>",
            "<body>",
            f"<h1>{_escape(title)}</h1>",
            *body,
            "</body>",
            "</html>",
        ]
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2933}"
    "table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #cbd2d9;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "td{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "th[scope=row]{min-width:16rem}th small{font-weight:normal;color:#52606d}"
    "svg text{font-size:12px;fill:#1f2933}svg text.step{font-weight:bold}"
)

_BAR_X = 90
"""Where the chart's bars start (the metric names are to their left)."""
_BAR_MAX = 420
"""Length of the longest bar of a journey's chart."""
_ROW = 18
"""Height of one line of the chart (a step name or one bar)."""
_CHART_WIDTH = _BAR_X + _BAR_MAX + 60


def _html_journey(funnel: JourneyFunnel) -> str:
    """One journey's section: heading, run figures, step table, funnel chart."""
    header = "".join(
        f"<th>{_escape(column)}</th>" for column in ("step", *_COUNT_COLUMNS, "exited")
    )
    rows = []
    for step in funnel.steps:
        label = f"<br><small>{_escape(step.label)}</small>" if step.label else ""
        counts = "".join(f'<td class="n">{getattr(step, column)}</td>' for column in _COUNT_COLUMNS)
        rows.append(
            f'<tr><th scope="row">{_escape(step.step)}{label}</th>{counts}'
            f"<td>{_escape(_reasons(step))}</td></tr>"
        )
    return "\n".join(
        [
            "<section>",
            f"<h2>{_escape(_heading(funnel))}</h2>",
            f"<p>{_escape(_runs_summary(funnel))}</p>",
            *(f'<p class="paused">{_escape(pause.describe())}</p>' for pause in funnel.send_pauses),
            "<table>",
            f"<thead><tr>{header}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            _svg_chart(funnel),
            "</section>",
        ]
    )


def _svg_chart(funnel: JourneyFunnel) -> str:
    """Horizontal bars per step (entered → sent → opened → clicked → converted), with numbers.

    Bars share one scale per journey: the largest figure of the chart is the longest bar.
    """
    scale = max([1, *(getattr(step, metric) for step in funnel.steps for metric, _ in _CHART)])
    parts = []
    y = 0
    for step in funnel.steps:
        parts.append(f"<g><title>{_escape(step.label or step.step)}</title>")
        parts.append(f'<text class="step" x="0" y="{y + 13}">{_escape(step.step)}</text>')
        y += _ROW
        for metric, colour in _CHART:
            value: int = getattr(step, metric)
            length = value / scale * _BAR_MAX
            parts += [
                f'<text x="10" y="{y + 12}">{metric}</text>',
                f'<rect x="{_BAR_X}" y="{y + 2}" width="{length:.1f}" height="{_ROW - 4}"'
                f' fill="{colour}"/>',
                f'<text x="{_BAR_X + length + 4:.1f}" y="{y + 12}">{value}</text>',
            ]
            y += _ROW
        parts.append("</g>")
        y += _ROW // 2
    description = _escape(f"Funnel per step of {funnel.journey}")
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_CHART_WIDTH}" height="{y}"'
            f' viewBox="0 0 {_CHART_WIDTH} {y}" role="img" aria-label="{description}">',
            *parts,
            "</svg>",
        ]
    )


def _title(report: FunnelReport) -> str:
    since, until = report.since, report.until
    if until is None:
        return (
            "Journey funnel, all time"
            if since is None
            else f"Journey funnel since {since:%Y-%m-%d %H:%M} UTC"
        )
    start = "all time" if since is None else f"{since:%Y-%m-%d %H:%M}"
    return f"Journey funnel {start} – {until:%Y-%m-%d %H:%M} UTC"


def _heading(funnel: JourneyFunnel) -> str:
    return f"{funnel.title} ({funnel.journey})" if funnel.title else funnel.journey


def _runs_summary(funnel: JourneyFunnel) -> str:
    exited = sum(funnel.exited.values())
    reasons = f" ({_reasons(funnel)})" if exited else ""
    return (
        f"runs: {funnel.entered} entered, {funnel.running} running, "
        f"{funnel.completed} completed, {exited} exited{reasons}, {funnel.converted} converted"
    )


def _reasons(counted: JourneyFunnel | StepFunnel) -> str:
    """`unsubscribed 2, purchased 1`, or `-` when none exited."""
    return ", ".join(f"{reason} {count}" for reason, count in counted.exited.items()) or "-"


def _escape(text: str) -> str:
    return html.escape(text, quote=True)
