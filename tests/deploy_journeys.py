"""Two releases of one test journey, `drip`, as a deploy changes it (`tests/test_deploys.py`).

Release 1 sends a hello at once and a follow-up on Day 1. Release 2 gives the
follow-up new copy (another template) and adds a tip on Day 2: were a release-1
run to wake up on release-2 code, its contact would get release 2's follow-up and
the tip, which is what pinning prevents. The templates are the welcome series'.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

DRIP = "drip"
EMAIL = Channel.EMAIL


@workflow.defn(name=DRIP)
class DripRelease1(Journey):
    """A hello now, a follow-up on Day 1."""

    name = DRIP
    title = "Drip"
    category = MessageCategory.MARKETING
    plan = (
        PlanStep("hello", day=0, title="Hello", channel=EMAIL, template="welcome-series/day0"),
        PlanStep(
            "follow-up", day=1, title="Follow-up", channel=EMAIL, template="welcome-series/day1"
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the drip."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Hello, then the follow-up on Day 1."""
        await self.send("hello")
        await self.wait_until_day(1)
        await self.send("follow-up")


@workflow.defn(name=DRIP)
class DripRelease2(Journey):
    """A hello now, a follow-up with new copy on Day 1, a tip on Day 2."""

    name = DRIP
    title = "Drip"
    category = MessageCategory.MARKETING
    plan = (
        PlanStep("hello", day=0, title="Hello", channel=EMAIL, template="welcome-series/day0"),
        PlanStep(
            "follow-up", day=1, title="Follow-up", channel=EMAIL, template="welcome-series/day2"
        ),
        PlanStep("tip", day=2, title="Tip", channel=EMAIL, template="welcome-series/day4"),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the drip."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Hello, the follow-up on Day 1, the tip on Day 2."""
        await self.send("hello")
        await self.wait_until_day(1)
        await self.send("follow-up")
        await self.wait_until_day(2)
        await self.send("tip")
