"""Welcome series: the five emails after a lead-magnet sign-up (seed 000).

Day 0 (immediately) Email 1: Welcome + lead magnet delivery
Day 1 Email 2: Value story + quick win
Day 2 Email 3: Introduction + why we're different
Day 4 Email 4: Common mistake to avoid
Day 7 Email 5: Soft CTA + resource offer
[Exit to Nurture Sequence or Sales Sequence based on engagement]

Days count from enrolment. Email 1's subject line is an A/B test
(`welcome-subject`: the template `day0` against `day0@b`), judged on purchases
within 14 days, with 10% of the subscribers held out of the series to measure
what the whole series adds. Exits at once, at any step, on `unsubscribed`
or `purchased`. After the last email the contact is routed on its lead band
as the CRM records it: at or above the hand-off band (MQL) → the sales
hand-off (`lead-sla`), unless it was already handed off; below → the weekly
nurture.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.toolkit import CRM_TIMEOUT, Journey, PlanStep, activity_classes, start_journey
from workflows.toolkit.retries import UNTIL_DONE_RETRY_POLICY
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.experiments import Experiment, Goal, HoldoutLevel
    from models.handoff import LeadBand, LeadSlaInput
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL = Channel.EMAIL
"""The channel of the five welcome emails."""

ROUTING_PATCH = "route-after-welcome"
"""Runs started before routing existed complete without it (replay-safe)."""


@workflow.defn(name="welcome-series")
class WelcomeSeries(Journey):
    """Welcome a new subscriber over seven days, then route them to sales or nurture."""

    name = "welcome-series"
    title = "Welcome series"
    category = MessageCategory.MARKETING
    exit_on = frozenset({"purchased"})
    trigger = Trigger("subscribed")
    started_by = "once per contact, for good"
    experiments = (
        Experiment(
            "welcome-subject",
            title="Email 1's subject: the lead magnet is ready (a) or the 3-step plan (b)",
            arms={"a": 50, "b": 50},
            goal=Goal("purchased", window=timedelta(days=14)),
            holdout_percent=10,
            holdout_level=HoldoutLevel.JOURNEY,
            baseline_rate=0.05,
            minimum_detectable_effect=0.03,
        ),
    )
    emails = (
        PlanStep(
            "day0",
            day=0,
            title="Email 1: Welcome + lead magnet delivery",
            channel=EMAIL,
            experiment="welcome-subject",
        ),
        PlanStep("day1", day=1, title="Email 2: Value story + quick win", channel=EMAIL),
        PlanStep("day2", day=2, title="Email 3: Introduction + why we're different", channel=EMAIL),
        PlanStep("day4", day=4, title="Email 4: Common mistake to avoid", channel=EMAIL),
        PlanStep("day7", day=7, title="Email 5: Soft CTA + resource offer", channel=EMAIL),
    )
    plan = (
        *emails,
        PlanStep("route", day=7, title="Route: MQL or above → sales hand-off; below → nurture"),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the contact and run the series."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each email on its day (its template is `welcome-series/{step}`); then the routing."""
        for step in self.emails:
            await self.wait_until_day(step.day)
            # The Day-0 email delivers what the contact just asked for: no quiet hours.
            await self.send(step.id, quiet_hours_exempt=step.day == 0)
        if workflow.patched(ROUTING_PATCH):
            await self.run_once("route", self._route)

    async def _route(self) -> None:
        status = await workflow.execute_activity_method(
            activity_classes.contacts().lead_status,
            self.contact_id,
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Route: read the lead band",
        )
        if status.sales_ready and status.owner_id is not None:
            workflow.logger.info("already handed off to %s; not routed again", status.owner_id)
            return
        if status.sales_ready and status.band is not None:
            band = LeadBand(band=status.band, score=status.score)
            await start_journey(
                "lead-sla",
                LeadSlaInput(contact_id=self.contact_id, band=band),
                why=f"{band.band} after the welcome series",
            )
        else:
            await start_journey(
                "nurture",
                JourneyInput(
                    contact_id=self.contact_id, day_seconds=self.journey_input.day_seconds
                ),
                why="after the welcome series",
            )
