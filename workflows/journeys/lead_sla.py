"""Sales hand-off with SLAs (seed 002: MQL → sales, first touch ≤ 10 min, qualified ≤ 48 h,
SQL → first demo or deep-dive ≤ 72 h, recycled after 14 days without interaction).

Started by the contact workflow when a lead enters the hand-off band (MQL by
default), or by the welcome series for a sales-ready lead that was never
handed off:

- hand-off: an owner is assigned (territory rules, else round robin; kept
  while the ownership lock lasts), the lead moves to the `mql` pipeline stage,
  a follow-up task (SQL: priority follow-up; Hot: call now) and a BANT/CHAMP
  checklist task are opened and the owner is notified with the score, its
  breakdown, the last actions and the source;
- first touch: before the deadline the owner is reminded at
  `reminder_fraction` of the SLA and/or warned (with their manager)
  `warn_before_minutes` before it is due, as `sales.toml` says per SLA; at
  the deadline the breach is recorded and the owner's manager gets an
  escalation; met by `rep_contacted`;
- qualification: the same, from the hand-off, met by `lead_qualified` or
  `lead_disqualified` (which completes the journey);
- SQL follow-up: after `lead_qualified`, the same, from the qualification,
  met by `meeting_held` (a demo or deep-dive); the journey then completes;
- no interaction: while the lead is not qualified (after the qualification
  SLA ran out, too), when `no_interaction_days` pass since the hand-off or its
  last interaction (a contact-initiated event, `rep_contacted`,
  `meeting_held`; read from the events stored), the `recycling` journey starts
  and this one leaves as `recycled`.

While it runs, the contact workflow's `band_changed` signal raises the
priority when the lead moves up (SQL: priority follow-up, Hot: immediate call
task), once per band.

The SLAs run in real minutes and hours (the input's `day_seconds` does not
scale them). It is not a marketing journey: an unsubscribe does not end it,
an erasure does. A lead can be handed off again later (a new run, with its
own idempotency keys). Runs started before the warnings, the SQL follow-up
and the recycling shipped keep their reminder-then-breach course
(`workflow.patched`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError

from workflows.toolkit import (
    CRM_RETRY_POLICY,
    CRM_TIMEOUT,
    Journey,
    PlanStep,
    activity_classes,
    start_journey,
)

with workflow.unsafe.imports_passed_through():
    from models.events import BehaviorEvent
    from models.handoff import (
        HandOff,
        HandOffRequest,
        InteractionQuery,
        LeadBand,
        LeadSlaInput,
        PriorityRequest,
        SlaAlerts,
        SlaKind,
        SlaNotice,
        SlaPolicy,
    )
    from models.journeys import JourneyState
    from models.messages import MessageCategory
    from models.pipeline import RecyclingInput

if TYPE_CHECKING:
    from activities.sales import SalesActivities

    SlaActivity = Callable[[SalesActivities, SlaNotice], Awaitable[None]]
    """Remind, warn or escalate (`remind_sla`, `warn_sla`, `escalate_sla_breach`)."""

FIRST_TOUCH = frozenset({"rep_contacted"})
"""Events that meet the first-touch SLA."""
QUALIFIED = frozenset({"lead_qualified", "lead_disqualified"})
"""Events that meet the qualification SLA (either verdict)."""
MEETING = frozenset({"meeting_held"})
"""Events that meet the SQL follow-up SLA (a demo or deep-dive meeting)."""
SQL_FOLLOW_UP_ENDS = MEETING | {"lead_disqualified"}
"""Events that end the SQL follow-up SLA: the meeting, or a disqualification after all."""

WARNINGS_PATCH = "lead-sla-warning-before-due"
"""Runs from before it have no warning before due (reminder, then breach)."""
SQL_FOLLOW_UP_PATCH = "lead-sla-sql-follow-up"
"""Runs from before it complete at the qualification (no SQL follow-up SLA)."""
RECYCLING_PATCH = "lead-sla-recycle-without-interaction"
"""Runs from before it complete at the qualification breach (no 14-day watch)."""

_WHAT = {
    SlaKind.FIRST_TOUCH: "first touch",
    SlaKind.QUALIFICATION: "qualification",
    SlaKind.SQL_FOLLOW_UP: "SQL follow-up meeting",
}


@dataclass(frozen=True)
class _Features:
    """What this run does besides the reminder-then-breach of today's first runs."""

    warnings: bool = True
    sql_follow_up: bool = True
    recycling: bool = True


@dataclass(frozen=True)
class _Alert:
    """One moment of an SLA: reminder, warning or breach, at `at` on the journey clock."""

    kind: SlaKind
    what: str  # reminder | warning | breach
    at: timedelta
    title: str
    when: str

    @property
    def step(self) -> str:
        return f"{self.kind}-{self.what}"


def _alerts(
    sla: SlaPolicy, kind: SlaKind, *, start: timedelta, warnings: bool, sql: str = ""
) -> list[_Alert]:
    """The reminder and/or warning (in time order) then the breach of SLA `kind` starting at
    `start`; without `warnings`, the reminder only (runs from before the warnings)."""
    due, what = sla.due(kind), _WHAT[kind]
    alerts = sla.alerts_for(kind) if warnings else SlaAlerts()
    found = []
    if alerts.reminder:
        at = due * sla.reminder_fraction
        left = _duration(due - at)
        found.append(
            _Alert(
                kind,
                "reminder",
                start + at,
                f"Remind the owner: {what} due in {left}",
                _when(sql, at),
            )
        )
    if alerts.warn_before is not None:
        at = due - alerts.warn_before
        found.append(
            _Alert(
                kind,
                "warning",
                start + at,
                f"Warn the owner and the manager: {what} due in {_duration(alerts.warn_before)}",
                _when(sql, at),
            )
        )
    found.sort(key=lambda alert: alert.at)
    breach = f"No {what} within {_duration(due)}: breach, escalate to the manager"
    return [*found, _Alert(kind, "breach", start + due, breach, _when(sql, due))]


def _when(prefix: str, offset: timedelta) -> str:
    """How the plan says when: `+5 min`, or `SQL +70 h` for a step counted from the SQL."""
    return f"{prefix}+{_duration(offset)}"


def _sla_plan(
    sla: SlaPolicy, day: timedelta, features: _Features, sql_at: timedelta | None
) -> tuple[PlanStep, ...]:
    """Hand-off, then a reminder/warning and a deadline per SLA, in journey days of length
    `day`; the SQL follow-up counted from `sql_at` (the qualification's deadline until known)."""
    steps = [
        PlanStep(
            "handoff",
            day=0,
            title="Assign an owner, open a task, notify the rep",
            when="Hand-off",
        )
    ]
    alerts = [
        *_alerts(sla, SlaKind.FIRST_TOUCH, start=timedelta(0), warnings=features.warnings),
        *_alerts(sla, SlaKind.QUALIFICATION, start=timedelta(0), warnings=features.warnings),
    ]
    if features.sql_follow_up:
        alerts += _alerts(
            sla,
            SlaKind.SQL_FOLLOW_UP,
            start=sla.qualification if sql_at is None else sql_at,
            warnings=features.warnings,
            sql="SQL ",
        )
    steps += [PlanStep(a.step, day=a.at / day, title=a.title, when=a.when) for a in alerts]
    if features.recycling:
        days = f"{sla.no_interaction_days:g}"
        steps.append(
            PlanStep(
                "recycle",
                day=sla.no_interaction / day,
                title=f"Not qualified, no interaction for {days} days: recycle the lead",
                when=f"+{days} d quiet",
            )
        )
    return tuple(steps)


def _duration(value: timedelta) -> str:
    minutes = value.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:g} min"
    return f"{minutes / 60:g} h"


@workflow.defn(name="lead-sla")
class LeadSla(Journey):
    """Hand a lead to sales and hold the team to its first-touch, qualification and SQL
    follow-up SLAs; recycle a lead that goes quiet before it is qualified."""

    name = "lead-sla"
    title = "Sales hand-off SLA"
    category = MessageCategory.TRANSACTIONAL  # it messages the sales team, not the contact
    listens_to = FIRST_TOUCH | QUALIFIED | MEETING
    reentry_days = 0
    versioning_behavior = VersioningBehavior.AUTO_UPGRADE  # as long as the lead keeps interacting
    started_by = "the contact workflow, when the lead enters the hand-off band (MQL)"
    exit_reasons = (
        ("hand-off failed: …", "no owner could be assigned (e.g. the contact was erased)"),
        (
            "recycled",
            "not qualified and no interaction for 14 days (`no_interaction_days`) since the "
            "hand-off: the `recycling` journey takes the lead",
        ),
    )
    input_model = LeadSlaInput
    plan = ()

    @workflow.init
    def __init__(self, journey_input: LeadSlaInput) -> None:
        """Hold the input at once: `band_changed` may come with the start, before `run`."""
        super().__init__(journey_input)
        self._raised_to: LeadBand | None = None
        self._features = _Features()
        self._sql_at: timedelta | None = None

    @workflow.run
    async def run(self, journey_input: LeadSlaInput) -> JourneyState:
        """Hand the lead off and watch its SLAs."""
        return await self.run_journey(journey_input)

    @workflow.signal
    def band_changed(self, band: LeadBand) -> None:
        """The lead moved up a band: raise the priority (once per band above the hand-off's)."""
        if band.band != self._lead_input().band.band:
            self._raised_to = band

    @classmethod
    def declared_steps(cls) -> tuple[PlanStep, ...]:
        """Every step a hand-off may take (their ids do not depend on the SLA policy)."""
        every_alert = SlaAlerts(reminder=True, warn_before_minutes=1)
        sla = SlaPolicy(alerts=dict.fromkeys(SlaKind, every_alert))
        return _sla_plan(sla, timedelta(days=1), _Features(), None)

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """Hand-off, then the reminders, warnings and deadlines of the SLAs, on the SLA clock."""
        return _sla_plan(self._sla(), self.day, self._features, self._sql_at)

    async def steps(self) -> None:
        """Hand off, then each SLA in turn; watch a lead not qualified for its interactions."""
        try:
            await self.run_once("handoff", self._hand_off)
        except ActivityError as error:  # e.g. the contact was erased, the owner unconfigured
            self.leave(f"hand-off failed: {error.cause or error}")
        self._features = _Features(
            warnings=workflow.patched(WARNINGS_PATCH),
            sql_follow_up=workflow.patched(SQL_FOLLOW_UP_PATCH),
            recycling=workflow.patched(RECYCLING_PATCH),
        )
        await self._hold_to(SlaKind.FIRST_TOUCH, FIRST_TOUCH, start=timedelta(0))
        await self._hold_to(SlaKind.QUALIFICATION, QUALIFIED, start=timedelta(0))
        if self._features.recycling:
            await self._recycle_when_quiet()
        verdict = self.received(QUALIFIED)
        if self._features.sql_follow_up and verdict is not None:
            if verdict.type == "lead_qualified":
                self._sql_at = self._offset_of(verdict)
                await self._hold_to(SlaKind.SQL_FOLLOW_UP, SQL_FOLLOW_UP_ENDS, start=self._sql_at)

    async def _hold_to(self, kind: SlaKind, met_by: frozenset[str], *, start: timedelta) -> None:
        """Remind and/or warn, then escalate at the deadline, unless one of `met_by` arrives."""

        def met() -> bool:
            return self.received(met_by) is not None

        sales = activity_classes.sales()
        activities: dict[str, SlaActivity] = {
            "reminder": sales.remind_sla,
            "warning": sales.warn_sla,
            "breach": sales.escalate_sla_breach,
        }
        summaries = {"reminder": "Remind the owner", "warning": "Warn", "breach": "Escalate"}
        due = start + self._sla().due(kind)
        for alert in _alerts(self._sla(), kind, start=start, warnings=self._features.warnings):
            await self._wait_raising(alert.at, met)
            if met():
                return
            notice = SlaNotice(
                idempotency_key=self.idempotency_key(alert.step),
                contact_id=self.contact_id,
                owner_id=self._handoff().owner_id,
                sla=kind,
                due_at=self.enrolled_at + due,
            )
            summary = f"{summaries[alert.what]}: {kind} SLA"
            await self.run_once(
                alert.step, partial(self._sla_notice, activities[alert.what], notice, summary)
            )

    async def _wait_raising(self, at: timedelta, until: Callable[[], bool]) -> None:
        """Wait until `at` on the journey clock or `until()`; raise the priority meanwhile."""
        while True:
            await self.wait_until_day(
                self._days(at), until=lambda: until() or self._raised_to is not None
            )
            if self._raised_to is None:
                return
            await self._raise_priority()

    async def _recycle_when_quiet(self) -> None:
        """Until a verdict: each time the lead has been quiet for `no_interaction_days` (since
        the hand-off or its last interaction, read from the events stored), recycle it."""
        quiet, last = self._sla().no_interaction, timedelta(0)

        def verdict() -> bool:
            return self.received(QUALIFIED) is not None

        while not verdict():
            await self._wait_raising(last + quiet, verdict)
            if verdict():
                return
            seen = await workflow.execute_activity_method(
                activity_classes.sales().last_interaction,
                InteractionQuery(contact_id=self.contact_id, since=self.enrolled_at),
                start_to_close_timeout=CRM_TIMEOUT,
                retry_policy=CRM_RETRY_POLICY,
                summary="Last interaction since the hand-off",
            )
            if seen.at is None or seen.at + quiet <= workflow.now():
                await self.run_once("recycle", self._recycle)
                self.leave("recycled")
            last = seen.at - self.enrolled_at

    async def _recycle(self) -> None:
        journey_input = self._lead_input()
        await start_journey(
            "recycling",
            RecyclingInput(
                contact_id=self.contact_id,
                reason="no-interaction",
                day_seconds=journey_input.day_seconds,
            ),
            why=f"no interaction for {self._sla().no_interaction_days:g} days after MQL",
        )

    async def _sla_notice(self, activity: SlaActivity, notice: SlaNotice, summary: str) -> None:
        """Remind, warn or escalate; a notice that keeps failing is logged, the SLA goes on."""
        try:
            await workflow.execute_activity_method(
                activity,
                notice,
                start_to_close_timeout=CRM_TIMEOUT,
                retry_policy=CRM_RETRY_POLICY,
                summary=summary,
            )
        except ActivityError as error:
            workflow.logger.warning("%s failed: %s", summary, error.cause or error)

    async def _hand_off(self) -> None:
        journey_input = self._lead_input()
        handoff = await workflow.execute_activity_method(
            activity_classes.sales().hand_off_lead,
            HandOffRequest(
                idempotency_key=self.idempotency_key("handoff"),
                contact_id=self.contact_id,
                band=journey_input.band,
            ),
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=CRM_RETRY_POLICY,
            summary=f"Hand off ({journey_input.band.band}, score {journey_input.band.score})",
        )
        self.journey_input = journey_input.model_copy(update={"handoff": handoff})

    async def _raise_priority(self) -> None:
        band, self._raised_to = self._raised_to, None
        if band is None:
            return
        request = PriorityRequest(
            idempotency_key=self.idempotency_key(f"priority-{band.band.lower()}"),
            contact_id=self.contact_id,
            owner_id=self._handoff().owner_id,
            band=band,
        )
        await self.run_once(
            f"priority-{band.band.lower()}",
            lambda: workflow.execute_activity_method(
                activity_classes.sales().raise_lead_priority,
                request,
                start_to_close_timeout=CRM_TIMEOUT,
                retry_policy=CRM_RETRY_POLICY,
                summary=f"Raise priority: {band.band} (score {band.score})",
            ),
        )

    def _lead_input(self) -> LeadSlaInput:
        journey_input = self.journey_input
        assert isinstance(journey_input, LeadSlaInput)
        return journey_input

    def _handoff(self) -> HandOff:
        handoff = self._lead_input().handoff
        assert handoff is not None, "the hand-off step runs first"
        return handoff

    def _sla(self) -> SlaPolicy:
        journey_input = self.journey_input
        handoff = journey_input.handoff if isinstance(journey_input, LeadSlaInput) else None
        return handoff.sla if handoff is not None else SlaPolicy()

    def _days(self, duration: timedelta) -> float:
        """A real duration in journey days (the SLAs are not accelerated)."""
        return duration / self.day

    def _offset_of(self, event: BehaviorEvent) -> timedelta:
        """When `event` occurred on the journey clock: not before the hand-off, not after now."""
        occurred = min(max(event.occurred_at, self.enrolled_at), workflow.now())
        return occurred - self.enrolled_at
