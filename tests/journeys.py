"""Journeys used only by tests: two emails a minute apart (frequency caps); texts and emails
in turn (an SMS STOP stops the texts, not the emails); a send of a step not in the plan; a
relative wait."""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL, SMS = Channel.EMAIL, Channel.SMS
WELCOME_DAY1, WELCOME_DAY2 = "welcome-series/day1", "welcome-series/day2"
PRICING_SMS = "pricing-abandon/day2"


@workflow.defn(name="test-burst")
class BurstJourney(Journey):
    """Sends two marketing emails one minute apart."""

    name = "test-burst"
    category = MessageCategory.MARKETING
    title = "Test burst"
    plan = (
        PlanStep("first", day=0, title="Email: first", channel=EMAIL, template=WELCOME_DAY1),
        PlanStep("second", day=0, title="Email: second", channel=EMAIL, template=WELCOME_DAY2),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the two sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """First email, a minute, second email."""
        await self.send("first")
        await self.wait(minutes=1, label="1 minute")
        await self.send("second")


@workflow.defn(name="test-texts-and-emails")
class TextsAndEmails(Journey):
    """Day 0 SMS, Day 1 email, Day 2 SMS, Day 3 email (marketing)."""

    name = "test-texts-and-emails"
    category = MessageCategory.MARKETING
    title = "Test texts and emails"
    plan = (
        PlanStep("day0-sms", day=0, title="SMS", channel=SMS, template=PRICING_SMS),
        PlanStep("day1-email", day=1, title="Email", channel=EMAIL, template=WELCOME_DAY1),
        PlanStep("day2-sms", day=2, title="SMS", channel=SMS, template=PRICING_SMS),
        PlanStep("day3-email", day=3, title="Email", channel=EMAIL, template=WELCOME_DAY2),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the four sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """A text, an email, a text, an email, a day apart."""
        await self.send("day0-sms")
        await self.wait_until_day(1)
        await self.send("day1-email")
        await self.wait_until_day(2)
        await self.send("day2-sms")
        await self.wait_until_day(3)
        await self.send("day3-email")


@workflow.defn(name="test-plan-runtime")
class SendsAComputedStepNotInThePlan(Journey):
    """Sends a step whose id is computed (no check can read it) and not in its plan."""

    name = "test-plan-runtime"
    category = MessageCategory.MARKETING
    title = "Test plan at run time"
    plan = (
        PlanStep(
            "day0", day=0, title="Email", channel=Channel.EMAIL, template="welcome-series/day0"
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Day 0 (in the plan), day 1 (not in it)."""
        for day in (0, 1):
            await self.send(f"day{day}")


@workflow.defn(name="test-relative-wait")
class RelativeWait(Journey):
    """An email, a 6-hour wait (relative), another email."""

    name = "test-relative-wait"
    category = MessageCategory.TRANSACTIONAL  # no quiet hours: the test checks the times
    title = "Test relative wait"
    plan = (
        PlanStep("first", day=0, title="Email", channel=EMAIL, template=WELCOME_DAY1),
        PlanStep("second", day=0, title="Email", channel=EMAIL, template=WELCOME_DAY2),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the two sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """First email, 6 hours, second email."""
        await self.send("first")
        await self.wait(hours=6, label="Wait 6 hours")
        await self.send("second")
