"""Win-back: a customer inactive for 30 days gets a reason and an offer to come back.

Started by the contact workflow (`workflows/contact.py`) when a customer (a
contact with a `purchased` event, tag `act_purchased`, or a `stage_customer…`
tag) has done nothing for 30 days and marketing email still reaches them.
Leads and subscribers get `re-engagement` instead.

Day 0  Email 1: "It's been a while": what changed since they last logged in
Day 3  Email 2: The offer: 20% off the next three months, code COMEBACK20
Day 10 Email 3: The offer ends in 48 hours (and an SMS, where the contact has SMS consent)

Exits at once, at any step, on `purchased` (a conversion in `journeys report`).
Other activity does not end it: the goal is the purchase, and opening the offer
is the first step towards it. A customer is not sunset: their account messages
go on, and the next inactive period brings a new win-back.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL = Channel.EMAIL


@workflow.defn(name="win-back")
class WinBack(Journey):
    """Bring an inactive customer back with news and an offer; ends on a purchase."""

    name = "win-back"
    title = "Win-back"
    category = MessageCategory.MARKETING
    exit_on = frozenset({"purchased"})
    reentry_days = 0
    started_by = (
        "the contact workflow, after 30 days without a contact-initiated event, for a customer "
        "(`act_purchased` or a `stage_customer…` tag)"
    )
    plan = (
        PlanStep("been-a-while", day=0, title="Email 1: It's been a while", channel=EMAIL),
        PlanStep("offer", day=3, title="Email 2: 20% off to come back", channel=EMAIL),
        PlanStep("offer-ends", day=10, title="Email 3: The offer ends in 48 hours", channel=EMAIL),
        PlanStep(
            "offer-ends-sms",
            day=10,
            title="SMS: The offer ends in 48 hours",
            channel=Channel.SMS,
            template="win-back/offer-ends",
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the customer and run the win-back."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each message on its day (a purchase ends the journey at any step)."""
        for step in self.plan:
            await self.wait_until_day(step.day)
            await self.send(step.id)
