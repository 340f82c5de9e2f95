"""Renewal countdown: reminders before a subscription renews, with the account team in the loop.

Started with a renewal date and a subscription id (`RenewalInput`); days count
back from the renewal date:

- 90, 60, 30, 7 and 1 days before (`reminder_days`): a reminder email, each
  with its own copy (`renewal-countdown/reminder-{N}d`);
- 60 and 30 days before: a follow-up task for the account owner in the CRM;
- 7 days before, still not renewed: an escalation task for the account
  owner's manager, high priority;
- the renewal date, still not renewed: the contact is tagged
  `stage_churn-risk`, the churn-prevention journey starts (cause
  `renewal_lapsed`: the account owner's task and notification, a check-in,
  a save offer), and the countdown ends: status `exited`, exit reason
  `churn-risk` (step `lapsed`). A later `renewed` clears the tag.

It exits at once, at any step, on `renewed` (reason `renewed`) for its
subscription (or with no subscription named). Its reminders are service
messages (`TRANSACTIONAL`): they need no marketing consent, do not count
against the marketing caps and carry the service footer, so an unsubscribe
neither ends the countdown nor stops them; a hard-bounced, suppressed-for-all
or erased address gets none, and the account team still gets its tasks.

The clock: days until renewal are calendar days from enrolment, waited on the
journey clock, so `day_seconds` accelerates a 90-day countdown for a demo too.
Steps already past when the date is set are skipped, not sent in a burst; one
less than `CATCH_UP_DAYS` overdue still goes out (an enrolment on the 90-day
mark itself, a few hours after it, sends the 90-day reminder).

A `renewal_scheduled` event whose `renewal_date` property (ISO 8601) differs
from the current date moves every remaining step: the current wait ends, the
schedule is computed again from the new date, and steps already done are not
repeated (they keep their step ids). Events for another subscription
(`subscription_id` property) and events older than the one that set the
current date are ignored.

It waits only with `wait_until_day` (absolute days) and records every side
effect (`send`, `run_once`), and `self.journey_input` always holds the current date,
so it can continue as new at any wait: the new run replays the schedule,
skipping what is done. A year of waiting, with events arriving all along,
keeps each run's history under the input's `history_limit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from temporalio import workflow
from temporalio.common import VersioningBehavior

from workflows.toolkit import (
    Journey,
    PlanStep,
    start_journey,
)
from workflows.toolkit.account import mark_churn_risk, open_crm_task
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.crm import (
        AssigneeRole,
        CrmTaskKind,
        CrmTaskRequest,
        TaskPriority,
    )
    from models.events import BehaviorEvent
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory
    from models.renewals import REMINDER_COPY_DAYS, RenewalInput
    from models.usage import ChurnInput

TASK_DAYS = (60, 30)
"""Days before renewal the account owner gets a follow-up task."""
ESCALATION_DAYS = 7
"""Days before renewal the account owner's manager is alerted, if still not renewed."""
CATCH_UP_DAYS = 1.0
"""A step less overdue than this when the date is set is still done, at once."""
FOLLOW_UP_DUE_DAYS = 7
ESCALATION_DUE_DAYS = 2
CHURN_PREVENTION = "churn-prevention"
"""The journey a lapsed renewal joins (started by name: journeys do not import each other)."""
LAPSE_JOINS_CHURN_PREVENTION_PATCH = "lapse-joins-churn-prevention"
"""A lapse starts the churn-prevention journey; countdowns that lapsed before only flagged."""


class _Kind(IntEnum):
    """What a milestone does; on the same day, in this order."""

    REMINDER = 1
    TASK = 2
    ESCALATION = 3
    LAPSE = 4


@dataclass(frozen=True)
class _Milestone:
    step: PlanStep
    kind: _Kind
    days_before: int


def _schedule(until_renewal: float, reminder_days: tuple[int, ...], date: str) -> list[_Milestone]:
    """Every milestone of a countdown, in the order they happen.

    Args:
        until_renewal: Journey day of the renewal date (from enrolment).
        reminder_days: Days before renewal a reminder email goes out.
        date: The renewal date, as the lapse step's title shows it.
    """

    def milestone(step: str, kind: _Kind, days: int, title: str) -> _Milestone:
        channel = Channel.EMAIL if kind == _Kind.REMINDER else None
        planned = PlanStep(step, day=until_renewal - days, title=title, channel=channel)
        return _Milestone(planned, kind, days)

    milestones = [
        milestone(f"reminder-{days}d", _Kind.REMINDER, days, f"Email: {days} days to renewal")
        for days in reminder_days
    ]
    milestones += [
        milestone(
            f"task-{days}d", _Kind.TASK, days, f"CRM task for the account owner ({days} days)"
        )
        for days in TASK_DAYS
    ]
    milestones.append(
        milestone(
            f"escalation-{ESCALATION_DAYS}d",
            _Kind.ESCALATION,
            ESCALATION_DAYS,
            f"Escalation to the account owner's manager ({ESCALATION_DAYS} days)",
        )
    )
    milestones.append(
        milestone("lapsed", _Kind.LAPSE, 0, f"Renewal date {date}, not renewed: churn risk")
    )
    return sorted(milestones, key=lambda m: (m.step.day, m.kind))


def _parse_date(value: object) -> datetime | None:
    """An ISO 8601 date or datetime (UTC when it names no offset), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def renewal_input(event: BehaviorEvent, day_seconds: int) -> RenewalInput:
    """The countdown a `renewal_scheduled` event starts: from its `subscription_id` and
    `renewal_date` (ISO 8601) properties."""
    return RenewalInput(
        contact_id=event.contact_id,
        day_seconds=day_seconds,
        subscription_id=event.properties.get("subscription_id"),
        renewal_date=event.properties.get("renewal_date"),
        rescheduled_by_event_at=event.occurred_at,
    )


@workflow.defn(name="renewal-countdown")
class RenewalCountdown(Journey):
    """Count down to a subscription's renewal: reminders, CRM tasks, escalation, churn risk."""

    name = "renewal-countdown"
    title = "Renewal countdown"
    category = MessageCategory.TRANSACTIONAL
    exit_on = frozenset({"renewed"})
    listens_to = frozenset({"renewal_scheduled"})
    trigger = Trigger("renewal_scheduled", input_from=renewal_input)
    versioning_behavior = VersioningBehavior.AUTO_UPGRADE  # a renewal date may be a year away
    started_by = (
        "properties `subscription_id`, `renewal_date`; one per subscription, a new date moves it"
    )
    exit_reasons = (
        ("churn-risk", "the renewal date passed without `renewed`: flagged, churn prevention"),
    )
    plan = ()
    """Computed from the renewal date: see `journey_plan`."""
    input_model = RenewalInput

    @classmethod
    def declared_steps(cls) -> tuple[PlanStep, ...]:
        """Every step a countdown may take: a reminder for each day with copy, the rest."""
        return tuple(milestone.step for milestone in _schedule(0.0, REMINDER_COPY_DAYS, "…"))

    @classmethod
    def workflow_id_for(cls, journey_input: JourneyInput) -> str:
        """One countdown per contact and subscription: `renewal-countdown-{contact}-{subscription}`.

        Raises:
            TypeError: the input is not a `RenewalInput`.
        """
        if not isinstance(journey_input, RenewalInput):
            raise TypeError(f"{cls.name} takes a RenewalInput, not {type(journey_input).__name__}")
        return f"{cls.name}-{journey_input.contact_id}-{journey_input.subscription_id}"

    @workflow.init
    def __init__(self, journey_input: RenewalInput) -> None:
        """Know the subscription from the start, so event handlers can match it."""
        super().__init__(journey_input)

    @workflow.run
    async def run(self, journey_input: RenewalInput) -> JourneyState:
        """Enrol the contact and count down to the renewal date."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each remaining milestone on its day; a moved date reschedules the rest."""
        while True:
            for milestone in self._remaining():
                if await self.wait_until_day(milestone.step.day, until=self._date_moved):
                    self._move_date()
                    break
                await self._reach(milestone)
            else:
                return

    # --- the schedule -------------------------------------------------------------

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """Steps done, and steps still to come for the current renewal date."""
        remaining = {milestone.step.id for milestone in self._remaining()}
        return tuple(
            milestone.step
            for milestone in self._milestones()
            if self.done(milestone.step.id) or milestone.step.id in remaining
        )

    def _milestones(self) -> list[_Milestone]:
        """Every milestone for the current renewal date, in the order they happen."""
        renewal = self._renewal()
        until_renewal = (renewal.renewal_date - self.enrolled_at) / timedelta(days=1)
        return _schedule(until_renewal, renewal.reminder_days, f"{renewal.renewal_date:%Y-%m-%d}")

    def _remaining(self) -> list[_Milestone]:
        """Milestones not done yet, without those already past when the date was set."""
        earliest = self._renewal().rescheduled_on_day - CATCH_UP_DAYS
        return [
            milestone
            for milestone in self._milestones()
            if not self.done(milestone.step.id)
            and (milestone.kind == _Kind.LAPSE or milestone.step.day > earliest)
        ]

    # --- a moved renewal date --------------------------------------------------------

    def _newest_date(self) -> tuple[datetime, datetime] | None:
        """The date named by the newest `renewal_scheduled` event of this subscription.

        Only events newer than the one that set the current date count.

        Returns:
            The date and the event's `occurred_at`, or None.
        """
        renewal = self._renewal()
        newest: tuple[datetime, datetime] | None = None
        for event in self.events:
            if event.type != "renewal_scheduled" or not self._for_this_subscription(event):
                continue
            if (
                renewal.rescheduled_by_event_at is not None
                and event.occurred_at <= renewal.rescheduled_by_event_at
            ):
                continue
            date = _parse_date(event.properties.get("renewal_date"))
            if date is not None and (newest is None or event.occurred_at >= newest[1]):
                newest = (date, event.occurred_at)
        return newest

    def _date_moved(self) -> bool:
        newest = self._newest_date()
        return newest is not None and newest[0] != self._renewal().renewal_date

    def _move_date(self) -> None:
        """Make the newest date the current one, from today on (the next run starts with it)."""
        newest = self._newest_date()
        assert newest is not None
        renewal = self._renewal()
        today = max(self.elapsed / self.day, 0.0)
        workflow.logger.info(
            "renewal date moved from %s to %s on day %.2f",
            renewal.renewal_date.isoformat(),
            newest[0].isoformat(),
            today,
        )
        self.journey_input = renewal.model_copy(
            update={
                "renewal_date": newest[0],
                "rescheduled_on_day": today,
                "rescheduled_by_event_at": newest[1],
            }
        )
        self.publish_progress()

    def ends_journey(self, event: BehaviorEvent) -> bool:
        """`renewed` ends the countdown, unless it names another subscription."""
        return super().ends_journey(event) and self._for_this_subscription(event)

    def _for_this_subscription(self, event: BehaviorEvent) -> bool:
        subscription = event.properties.get("subscription_id")
        return subscription is None or subscription == self._renewal().subscription_id

    def _renewal(self) -> RenewalInput:
        renewal = self.journey_input
        assert isinstance(renewal, RenewalInput)
        return renewal

    # --- what each milestone does ------------------------------------------------------

    async def _reach(self, milestone: _Milestone) -> None:
        step, days = milestone.step.id, milestone.days_before
        renewal = self._renewal()
        when = f"{renewal.renewal_date:%Y-%m-%d %H:%M} UTC"
        subscription = renewal.subscription_id
        if milestone.kind == _Kind.REMINDER:
            await self.send(step)
        elif milestone.kind == _Kind.TASK:
            await self.run_once(
                step,
                lambda: self._open_task(
                    step,
                    kind=CrmTaskKind.RENEWAL_FOLLOW_UP,
                    assignee_role=AssigneeRole.ACCOUNT_OWNER,
                    title=f"Renewal in {days} days: check in with the customer",
                    details=(
                        f"Subscription {subscription} is up for renewal on {when}. "
                        "Confirm they intend to renew, review their plan and usage, "
                        "and clear any blockers (budget, approvals, missing features)."
                    ),
                    due_in_days=FOLLOW_UP_DUE_DAYS,
                    priority=TaskPriority.NORMAL,
                ),
            )
        elif milestone.kind == _Kind.ESCALATION:
            await self.run_once(
                step,
                lambda: self._open_task(
                    step,
                    kind=CrmTaskKind.RENEWAL_ESCALATION,
                    assignee_role=AssigneeRole.ACCOUNT_OWNER_MANAGER,
                    title=f"Renewal in {days} days and not renewed: step in",
                    details=(
                        f"Subscription {subscription} is up for renewal on {when} and has "
                        f"not renewed {days} days before. Check with the account owner "
                        "and contact the customer if needed."
                    ),
                    due_in_days=ESCALATION_DUE_DAYS,
                    priority=TaskPriority.HIGH,
                ),
            )
        else:
            await self.run_once(step, self._lapse)
            self.leave("churn-risk")

    async def _open_task(
        self,
        step: str,
        *,
        kind: CrmTaskKind,
        assignee_role: AssigneeRole,
        title: str,
        details: str,
        due_in_days: float,
        priority: TaskPriority,
    ) -> None:
        await open_crm_task(
            CrmTaskRequest(
                idempotency_key=self.idempotency_key(step),
                contact_id=self.contact_id,
                kind=kind,
                assignee_role=assignee_role,
                title=title,
                details=details,
                due_at=workflow.now() + self.day * due_in_days,
                priority=priority,
            )
        )

    async def _lapse(self) -> None:
        """Flag the churn risk and, since `LAPSE_JOINS_CHURN_PREVENTION_PATCH`, start
        churn prevention."""
        subscription = self._renewal().subscription_id
        await mark_churn_risk(self.contact_id, subscription_id=subscription)
        if workflow.patched(LAPSE_JOINS_CHURN_PREVENTION_PATCH):
            await start_journey(
                CHURN_PREVENTION,
                ChurnInput(
                    contact_id=self.contact_id,
                    day_seconds=self.journey_input.day_seconds,
                    cause="renewal_lapsed",
                    subscription_id=subscription,
                ),
                why=f"renewal of {subscription} lapsed",
            )
