"""A journey used only by tests: two emails a minute apart (for frequency caps)."""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import MessageCategory


@workflow.defn(name="test-burst")
class BurstJourney(Journey):
    """Sends two marketing emails one minute apart."""

    name = "test-burst"
    category = MessageCategory.MARKETING
    title = "Test burst"
    plan = (
        PlanStep("first", day=0, title="Email: first"),
        PlanStep("second", day=0, title="Email: second"),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the two sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """First email, a minute, second email."""
        await self.send("first", template="welcome-series/day1")
        await self.wait(minutes=1, label="1 minute")
        await self.send("second", template="welcome-series/day2")
