"""Welcome series: the five emails after a lead-magnet sign-up (seed 000).

Day 0 (immediately) Email 1: Welcome + lead magnet delivery
Day 1 Email 2: Value story + quick win
Day 2 Email 3: Introduction + why we're different
Day 4 Email 4: Common mistake to avoid
Day 7 Email 5: Soft CTA + resource offer

Days count from enrolment. Exits at once, at any step, on `unsubscribed`
or `purchased`.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel


@workflow.defn(name="welcome-series")
class WelcomeSeries(Journey):
    """Welcome a new subscriber over seven days."""

    name = "welcome-series"
    title = "Welcome series"
    exit_on = frozenset({"unsubscribed", "purchased"})
    plan = (
        PlanStep("day0", day=0, title="Email 1: Welcome + lead magnet delivery"),
        PlanStep("day1", day=1, title="Email 2: Value story + quick win"),
        PlanStep("day2", day=2, title="Email 3: Introduction + why we're different"),
        PlanStep("day4", day=4, title="Email 4: Common mistake to avoid"),
        PlanStep("day7", day=7, title="Email 5: Soft CTA + resource offer"),
    )

    templates = frozenset((f"welcome-series/{step.id}", Channel.EMAIL) for step in plan)

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the contact and run the series."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each email on its day, templates named after the step."""
        for step in self.plan:
            await self.wait_until_day(step.day)
            # The Day-0 email delivers what the contact just asked for: no quiet hours.
            await self.send(
                step.id, template=f"{self.name}/{step.id}", quiet_hours_exempt=step.day == 0
            )
