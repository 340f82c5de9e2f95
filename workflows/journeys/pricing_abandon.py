"""Pricing-page abandon: a nudge after a pricing visit that did not convert (seed 000).

Trigger: `pricing_page_viewed`.
Wait 30 minutes. Started checkout (or bought)? → exit, converted.
Email: "Quick question about [Product]".
Wait 2 days. Bought? → exit, converted, and start onboarding.
SMS (optional: only with SMS consent and a phone number).

A conversion counts whenever the journey received it: a checkout 5 minutes
after the visit ends the 30-minute wait at once, and one that arrived before
the wait began counts too. A conversion while a message waits out quiet hours
or a frequency cap calls the message off. Whenever the journey sees a
purchase, the contact is enrolled in onboarding (`onboarding`, the customer's
first 30 days; once per contact, so a buyer whose `purchased` event already
started it keeps that run). Runs started before onboarding existed enrolled the
buyer in the welcome series instead and replay so (`ONBOARDING_PATCH`). Exits
at once, at any step, on `unsubscribed`.

A contact enters at most once per 30 days (`JourneyInput.reentry_days`
overrides it): the workflow stays open for the window, so a second pricing
visit inside it does not restart the journey.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep, start_journey
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

CONVERSION = frozenset({"checkout_started", "purchased"})
"""Before the email: either one means the visit converted."""
PURCHASE = frozenset({"purchased"})
"""After the email: only a purchase counts as converted."""
AFTER_THE_VISIT = timedelta(minutes=30)
"""The email goes Day 0 + 30 minutes (journey time); the SMS Day 2 + 30 minutes, 2 days
after the email was due (an email held back does not move it)."""
ONBOARDING = "onboarding"
"""The journey a buyer is enrolled in."""
BEFORE_ONBOARDING = "welcome-series"
"""What runs from before `ONBOARDING_PATCH` enrolled a buyer in."""
ONBOARDING_PATCH = "buyer-to-onboarding"
"""Runs from before it started the welcome series for a buyer, and replay so."""


@workflow.defn(name="pricing-abandon")
class PricingAbandon(Journey):
    """Follow up a pricing-page visit that did not convert: an email, then an SMS."""

    name = "pricing-abandon"
    title = "Pricing-page abandon"
    category = MessageCategory.MARKETING
    listens_to = CONVERSION
    trigger = Trigger("pricing_page_viewed")
    reentry_days = 30
    started_by = "at most once per 30 days"
    exit_reasons = (("converted", "started checkout before the email, or bought before the SMS"),)
    plan = (
        PlanStep(
            "email",
            day=0,
            title="Email: Quick question about [Product] (30 min after the visit, unless they "
            "started checkout)",
            after=AFTER_THE_VISIT,
            channel=Channel.EMAIL,
        ),
        PlanStep(
            "day2-sms",
            day=2,
            title="SMS: Have questions? (2 days after the email, unless they bought; "
            "needs SMS consent and a phone)",
            after=AFTER_THE_VISIT,
            channel=Channel.SMS,
            template="pricing-abandon/day2",
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the contact and run the follow-up."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """The seed's plan: wait, check, email, wait, check, SMS.

        Waits end at the steps' times (not durations) and the first part is skipped
        once the email is done, so a run that continued as new carries on where
        it was, and a checkout after the email is not taken for an early one.
        """
        if not self.done("email"):
            await self.wait_for(CONVERSION, until_step="email", label="Wait 30 min for checkout")
            await self._exit_if_converted(CONVERSION)
            await self.send("email", unless=CONVERSION)
            await self._exit_if_converted(CONVERSION)  # while the email waited out quiet hours
        await self.wait_for(PURCHASE, until_step="day2-sms", label="Wait 2 days for a purchase")
        await self._exit_if_converted(PURCHASE)
        # The send activity skips it (and says why) without SMS consent or a phone.
        await self.send("day2-sms", unless=PURCHASE)
        await self._exit_if_converted(PURCHASE)

    async def _exit_if_converted(self, conversions: frozenset[str]) -> None:
        """Exit `converted` if one of `conversions` was received; a buyer gets onboarding."""
        if self.received(conversions) is None:
            return
        if self.received(PURCHASE) is not None:
            await self._start_onboarding()
        self.leave("converted")

    async def _start_onboarding(self) -> None:
        """Start onboarding for the contact; one already in or through it is left alone."""
        onboarding_input = JourneyInput(
            contact_id=self.contact_id, day_seconds=self.journey_input.day_seconds
        )
        journey = ONBOARDING if workflow.patched(ONBOARDING_PATCH) else BEFORE_ONBOARDING
        await start_journey(journey, onboarding_input, why=f"bought after {self.name}")
