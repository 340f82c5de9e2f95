"""Weekly nurture: four emails for a cold lead (score 0–10), one a week (seed 000).

Day 7 Email 1: Industry insight
Day 14 Email 2: Customer story
Day 21 Email 3: Practical how-to checklist
Day 28 Email 4: Roundup + invitation to reply or book a call

Days count from enrolment, so every email goes out on the same weekday at
the same time as the enrolment ("nurture emails: same day/time each week").
They are marketing emails: quiet hours defer one to the end of the night,
and the next still falls on its own day. The contact workflow starts the
journey when a contact finishes the welcome series below the MQL band.

Exits at once, at any step, on `unsubscribed` or `purchased`; the contact
workflow ends it with the `exit` signal (reason `handed-to-sales`) when the
lead reaches MQL. It waits only with `wait_until_day`, so it can continue as
new at any wait.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory


@workflow.defn(name="nurture")
class Nurture(Journey):
    """Keep a cold lead warm with one useful email a week for four weeks."""

    name = "nurture"
    title = "Weekly nurture"
    category = MessageCategory.MARKETING
    exit_on = frozenset({"purchased"})
    started_by = "the welcome series, for a lead below MQL"
    exit_reasons = (("handed-to-sales", "the lead reaches MQL (the contact workflow ends it)"),)
    plan = (
        PlanStep("week1", day=7, title="Email 1: Industry insight", channel=Channel.EMAIL),
        PlanStep("week2", day=14, title="Email 2: Customer story", channel=Channel.EMAIL),
        PlanStep(
            "week3", day=21, title="Email 3: Practical how-to checklist", channel=Channel.EMAIL
        ),
        PlanStep(
            "week4",
            day=28,
            title="Email 4: Roundup + invitation to reply or book a call",
            channel=Channel.EMAIL,
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the contact and run the weekly emails."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each email on its day (its template is `nurture/{step}`)."""
        for step in self.plan:
            await self.wait_until_day(step.day)
            await self.send(step.id)
