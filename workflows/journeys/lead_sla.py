"""Sales hand-off with SLAs (seed 002: MQL → sales, first touch ≤ 10 min, qualified ≤ 48 h).

Started by the contact workflow when a lead enters the hand-off band (MQL by
default), or by the welcome series for a sales-ready lead that was never
handed off:

- hand-off: an owner is assigned (territory rules, else round robin), a
  follow-up task is opened (SQL: priority follow-up; Hot: call now) and the
  owner is notified with the score, its breakdown, the last actions and the
  source;
- first touch: the owner is reminded at half the SLA (`reminder_fraction`);
  at the deadline the breach is recorded and the owner's manager gets an
  escalation; met by `rep_contacted`;
- qualification: the same, from the hand-off, met by `lead_qualified` or
  `lead_disqualified`. The journey completes when it is met or breached.

While it runs, the contact workflow's `band_changed` signal raises the
priority when the lead moves up (SQL: priority follow-up, Hot: immediate call
task), once per band.

The SLAs run in real minutes and hours (the input's `day_seconds` does not
scale them). It is not a marketing journey: an unsubscribe does not end it,
an erasure does. A lead can be handed off again later (a new run, with its
own idempotency keys).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.toolkit import CRM_RETRY_POLICY, CRM_TIMEOUT, Journey, PlanStep, activity_classes

with workflow.unsafe.imports_passed_through():
    from models.handoff import (
        HandOff,
        HandOffRequest,
        LeadBand,
        LeadSlaInput,
        PriorityRequest,
        SlaKind,
        SlaNotice,
        SlaPolicy,
    )
    from models.journeys import JourneyState
    from models.messages import MessageCategory

if TYPE_CHECKING:
    from activities.sales import SalesActivities

    SlaActivity = Callable[[SalesActivities, SlaNotice], Awaitable[None]]
    """Remind the owner or escalate a breach (`remind_sla`, `escalate_sla_breach`)."""

FIRST_TOUCH = frozenset({"rep_contacted"})
"""Events that meet the first-touch SLA."""
QUALIFIED = frozenset({"lead_qualified", "lead_disqualified"})
"""Events that meet the qualification SLA (either verdict)."""


def _sla_plan(sla: SlaPolicy, day: timedelta) -> tuple[PlanStep, ...]:
    """Hand-off, then a reminder and a deadline per SLA, in journey days of length `day`."""
    steps = [
        PlanStep(
            "handoff",
            day=0,
            title="Assign an owner, open a task, notify the rep",
            when="Hand-off",
        )
    ]
    for kind, due in (
        (SlaKind.FIRST_TOUCH, sla.first_touch),
        (SlaKind.QUALIFICATION, sla.qualification),
    ):
        what = "first touch" if kind == SlaKind.FIRST_TOUCH else "qualification"
        left = _duration(due * (1 - sla.reminder_fraction))
        steps += [
            PlanStep(
                f"{kind}-reminder",
                day=due * sla.reminder_fraction / day,
                title=f"Remind the owner: {what} due in {left}",
                when=f"+{_duration(due * sla.reminder_fraction)}",
            ),
            PlanStep(
                f"{kind}-breach",
                day=due / day,
                when=f"+{_duration(due)}",
                title=f"No {what} within {_duration(due)}: breach, escalate to the manager",
            ),
        ]
    return tuple(steps)


def _duration(value: timedelta) -> str:
    minutes = value.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:g} min"
    return f"{minutes / 60:g} h"


@workflow.defn(name="lead-sla")
class LeadSla(Journey):
    """Hand a lead to sales and hold the team to its first-touch and qualification SLAs."""

    name = "lead-sla"
    title = "Sales hand-off SLA"
    category = MessageCategory.TRANSACTIONAL  # it messages the sales team, not the contact
    listens_to = FIRST_TOUCH | QUALIFIED
    reentry_days = 0
    started_by = "the contact workflow, when the lead enters the hand-off band (MQL)"
    exit_reasons = (
        ("hand-off failed: …", "no owner could be assigned (e.g. the contact was erased)"),
    )
    input_model = LeadSlaInput
    plan = ()

    @workflow.init
    def __init__(self, journey_input: LeadSlaInput) -> None:
        """Hold the input at once: `band_changed` may come with the start, before `run`."""
        super().__init__(journey_input)
        self._raised_to: LeadBand | None = None

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
        return _sla_plan(SlaPolicy(), timedelta(days=1))

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """Hand-off, then a reminder and a deadline per SLA, on the SLA clock."""
        return _sla_plan(self._sla(), self.day)

    async def steps(self) -> None:
        """Hand off, then each SLA in turn: a reminder, then the deadline."""
        try:
            await self.run_once("handoff", self._hand_off)
        except ActivityError as error:  # e.g. the contact was erased, the owner unconfigured
            self.leave(f"hand-off failed: {error.cause or error}")
        sla = self._sla()
        await self._hold_to(SlaKind.FIRST_TOUCH, FIRST_TOUCH, sla.first_touch)
        await self._hold_to(SlaKind.QUALIFICATION, QUALIFIED, sla.qualification)

    async def _hold_to(self, kind: SlaKind, met_by: frozenset[str], due: timedelta) -> None:
        """Remind at the reminder time, escalate at the deadline, unless one of `met_by` arrives."""

        def met() -> bool:
            return self.received(met_by) is not None

        def raised_or_met() -> bool:
            return met() or self._raised_to is not None

        reminder = due * self._sla().reminder_fraction
        sales = activity_classes.sales()
        for step, at, activity in (
            (f"{kind}-reminder", reminder, sales.remind_sla),
            (f"{kind}-breach", due, sales.escalate_sla_breach),
        ):
            while True:
                await self.wait_until_day(self._days(at), until=raised_or_met)
                if self._raised_to is None:
                    break
                await self._raise_priority()
            if met():
                return
            notice = SlaNotice(
                idempotency_key=self.idempotency_key(step),
                contact_id=self.contact_id,
                owner_id=self._handoff().owner_id,
                sla=kind,
                due_at=self.enrolled_at + due,
            )
            reminding = activity is sales.remind_sla
            summary = f"{'Remind the owner' if reminding else 'Escalate'}: {kind} SLA"
            await self.run_once(step, partial(self._sla_notice, activity, notice, summary))

    async def _sla_notice(self, activity: SlaActivity, notice: SlaNotice, summary: str) -> None:
        """Remind or escalate; a notice that keeps failing is logged, the SLA goes on."""
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
