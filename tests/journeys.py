"""Journeys used only by tests: two emails a minute apart (frequency caps); texts and emails
in turn (an SMS STOP stops the texts, not the emails); a send of a step not in the plan; a
relative wait; an A/B test with a step-level holdout (and the same test reweighted)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.experiments import Experiment, Goal
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL, SMS = Channel.EMAIL, Channel.SMS
WELCOME_DAY0, WELCOME_DAY1, WELCOME_DAY2 = (
    "welcome-series/day0",
    "welcome-series/day1",
    "welcome-series/day2",
)
OFFER = "test-offer"
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


OFFER_TEST = Experiment(
    "test-offer",
    arms={"a": 1, "b": 1},
    goal=Goal("offer_redeemed", window=timedelta(days=7)),
    holdout_percent=20,
)
"""An A/B test of two messages with a 20% step-level holdout (arm b sends `…/day0@b`); its
goal, `offer_redeemed`, starts no journey."""


@workflow.defn(name="test-ab")
class OfferTest(Journey):
    """Day 0 offer and Day 1 reminder in the contact's arm of `test-offer`; Day 2 thanks."""

    name = "test-ab"
    category = MessageCategory.TRANSACTIONAL  # no quiet hours: the test checks the times
    title = "Test A/B"
    reentry_days = 0
    experiments = (OFFER_TEST,)
    plan = (
        PlanStep(
            "offer", day=0, title="Offer", channel=EMAIL, template=WELCOME_DAY0, experiment=OFFER
        ),
        PlanStep(
            "reminder",
            day=1,
            title="Reminder",
            channel=EMAIL,
            template=WELCOME_DAY0,
            experiment=OFFER,
        ),
        PlanStep("thanks", day=2, title="Thanks", channel=EMAIL, template=WELCOME_DAY2),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the three sends."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Offer, reminder (both in the arm), thanks, a day apart."""
        await self.send("offer")
        await self.wait_until_day(1)
        await self.send("reminder")
        await self.wait_until_day(2)
        await self.send("thanks")


@workflow.defn(name="test-ab-reweighted")
class ReweightedOfferTest(OfferTest):
    """`test-ab` after its weights changed to 1:99."""

    name = "test-ab-reweighted"
    experiments = (replace(OFFER_TEST, arms={"a": 1, "b": 99}),)

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the three sends."""
        return await self.run_journey(journey_input)


@workflow.defn(name="test-ab-undeclared")
class SplitsAnUndeclaredExperiment(Journey):
    """Splits on an experiment whose name is computed and that it does not declare."""

    name = "test-ab-undeclared"
    category = MessageCategory.TRANSACTIONAL
    title = "Test undeclared experiment"
    plan = (PlanStep("day0", day=0, title="Email", channel=EMAIL, template=WELCOME_DAY1),)

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Run the split."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """A split on `test-nope`, then the email."""
        await self.split("-".join(("test", "nope")))
        await self.send("day0")
