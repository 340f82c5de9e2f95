"""Journeys used only by tests: two emails a minute apart (frequency caps); texts and emails
in turn (an SMS STOP stops the texts, not the emails)."""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory


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


@workflow.defn(name="test-texts-and-emails")
class TextsAndEmails(Journey):
    """Day 0 SMS, Day 1 email, Day 2 SMS, Day 3 email (marketing)."""

    name = "test-texts-and-emails"
    category = MessageCategory.MARKETING
    title = "Test texts and emails"
    plan = (
        PlanStep("day0-sms", day=0, title="SMS"),
        PlanStep("day1-email", day=1, title="Email"),
        PlanStep("day2-sms", day=2, title="SMS"),
        PlanStep("day3-email", day=3, title="Email"),
    )
    templates = frozenset(
        {
            ("pricing-abandon/day2", Channel.SMS),
            ("welcome-series/day1", Channel.EMAIL),
            ("welcome-series/day2", Channel.EMAIL),
        }
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the four sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """A text, an email, a text, an email, a day apart."""
        await self.send("day0-sms", template="pricing-abandon/day2", channel=Channel.SMS)
        await self.wait_until_day(1)
        await self.send("day1-email", template="welcome-series/day1")
        await self.wait_until_day(2)
        await self.send("day2-sms", template="pricing-abandon/day2", channel=Channel.SMS)
        await self.wait_until_day(3)
        await self.send("day3-email", template="welcome-series/day2")
