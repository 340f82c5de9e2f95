"""Churn prevention: a customer whose usage dropped, or whose renewal lapsed (seed 000:
usage monitoring alerts, churn prevention flows).

Trigger: `usage_dropped`, which the contact workflow's ingest derives from
`usage_reported` events (`rules/usage.py`, `churn.toml`: a value below 50% of
the metric's average over the last 4 weeks); the renewal countdown starts it
too when a renewal date passes without a renewal (cause `renewal_lapsed`).

- Day 0: the contact is tagged `stage_churn-risk`; the account owner gets a
  CRM task (high priority, due in 2 days: check in with the customer) and a
  notification, both with the numbers (metric, value, trailing average, share)
  or the lapsed subscription.
- Day 2: email "checking in" from the account team: what changed, and a call.
- Day 9 (a week later): email with the save offer.

It exits at once, at any step, on `usage_recovered` (usage back at or above
the drop's threshold), `renewed`, `purchased` (the offer taken) and
`unsubscribed`. The flag itself is cleared by the ingest on `renewed` or
`usage_recovered`, whether or not this journey still runs. A contact enters
at most once per 30 days: a second drop inside the window does not restart it.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep
from workflows.toolkit.account import alert_account_owner, mark_churn_risk
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.crm import AccountAlert, CrmTaskKind, TaskPriority
    from models.events import BehaviorEvent
    from models.journeys import JourneyState
    from models.messages import Channel, MessageCategory
    from models.usage import USAGE_DROPPED, USAGE_RECOVERED, ChurnInput, UsageSignal

CHECK_IN_DUE_DAYS = 2
"""The owner's task is due when the check-in email goes out."""
CHECK_IN = "Check in with the customer: what changed, and what would help?"


def churn_input(event: BehaviorEvent, day_seconds: int) -> ChurnInput:
    """The journey a `usage_dropped` event starts: with the drop's numbers."""
    return ChurnInput(
        contact_id=event.contact_id,
        day_seconds=day_seconds,
        cause="usage_dropped",
        usage=UsageSignal.model_validate(event.properties),
    )


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def alert_text(churn: ChurnInput) -> tuple[str, list[str]]:
    """The owner's task title and the context lines: the numbers, or the lapsed subscription."""
    usage = churn.usage
    if usage is None and churn.subscription_id is not None:
        return f"Churn risk: renewal of {churn.subscription_id} lapsed", [
            f"Subscription {churn.subscription_id} reached its renewal date without a renewal.",
            "Check in with the customer: what is holding the renewal up?",
        ]
    if usage is None:  # enrolled by hand (`journeys enroll`)
        return "Churn risk", ["Enrolled in churn prevention by hand.", CHECK_IN]
    return f"Churn risk: {usage.metric} down to {usage.share:.0%} of its average", [
        f"Metric: {usage.metric}",
        f"Value reported: {_number(usage.value)}",
        f"Trailing average: {_number(usage.trailing_average)} "
        f"({usage.reports} reports over the last {usage.window_days} days)",
        f"Share: {usage.share:.0%} (a drop is below {_number(usage.threshold)})",
        CHECK_IN,
    ]


@workflow.defn(name="churn-prevention")
class ChurnPrevention(Journey):
    """Flag a customer at risk, put the account owner on it, check in, then make a save offer."""

    name = "churn-prevention"
    title = "Churn prevention"
    category = MessageCategory.MARKETING
    trigger = Trigger(USAGE_DROPPED, input_from=churn_input)
    exit_on = frozenset({USAGE_RECOVERED, "renewed", "purchased"})
    reentry_days = 30
    started_by = (
        "derived from `usage_reported` (below 50% of the 4-week average, `churn.toml`); "
        "the renewal countdown, when a renewal lapses; at most once per 30 days"
    )
    input_model = ChurnInput
    plan = (
        PlanStep("flag", day=0, title="Tag stage_churn-risk"),
        PlanStep(
            "alert-owner",
            day=0,
            title="CRM task and notification for the account owner, with the numbers",
        ),
        PlanStep(
            "check-in",
            day=2,
            title="Email: checking in from the account team",
            channel=Channel.EMAIL,
        ),
        PlanStep("save-offer", day=9, title="Email: the save offer", channel=Channel.EMAIL),
    )

    @workflow.run
    async def run(self, journey_input: ChurnInput) -> JourneyState:
        """Enrol the customer and run the churn-prevention flow."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Flag and alert at once; the check-in on Day 2, the save offer on Day 9."""
        await self.run_once("flag", self._flag)
        await self.run_once("alert-owner", self._alert_owner)
        await self.wait_until_day(2)
        await self.send("check-in")
        await self.wait_until_day(9)
        await self.send("save-offer")

    def _churn(self) -> ChurnInput:
        churn = self.journey_input
        assert isinstance(churn, ChurnInput)
        return churn

    async def _flag(self) -> None:
        await mark_churn_risk(self.contact_id, subscription_id=self._churn().subscription_id)

    async def _alert_owner(self) -> None:
        title, lines = alert_text(self._churn())
        await alert_account_owner(
            AccountAlert(
                idempotency_key=self.idempotency_key("alert-owner"),
                contact_id=self.contact_id,
                kind=CrmTaskKind.CHURN_RISK,
                title=title,
                lines=lines,
                due_at=workflow.now() + self.day * CHECK_IN_DUE_DAYS,
                priority=TaskPriority.HIGH,
            )
        )
