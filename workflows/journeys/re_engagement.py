"""Re-engagement: three emails to a lead or subscriber after 30 days of inactivity (seed 000).

Started by the contact workflow (`workflows/contact.py`) when a contact who is
not a customer has done nothing for 30 days (no contact-initiated event, see
`models.events.is_contact_initiated`) and marketing email still reaches them.
Customers get `win-back` instead.

Day 0  Email 1: "We miss you" (what is new, one link back)
Day 4  Email 2: The best of our content for their interest (`int_` tag; a general pick otherwise)
Day 9  Email 3: "Last chance": one click on "keep me subscribed" keeps them on the list
Day 14 No response: sunset. The contact keeps `eng_dormant_30d` and gets `eng_sunset`;
       marketing sends stop (list hygiene, not an unsubscribe: no consent change).

Any contact-initiated event (an open, a click, a visit, a purchase, the "keep me
subscribed" link's `subscription_confirmed`…) ends the journey at once as
`reactivated` (`exit_on_activity`; the contact workflow signals it) and lifts a
sunset. A contact may go through it again after a later inactive period.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import FailureError

from workflows.toolkit import Journey, PlanStep

with workflow.unsafe.imports_passed_through():
    from models.contact_workflow import SunsetRequest
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL = Channel.EMAIL


@workflow.defn(name="re-engagement")
class ReEngagement(Journey):
    """Win a dormant lead back over 14 days; no response sunsets them (marketing stops)."""

    name = "re-engagement"
    title = "Re-engagement"
    category = MessageCategory.MARKETING
    exit_on_activity = "reactivated"
    reentry_days = 0
    started_by = (
        "the contact workflow, after 30 days without a contact-initiated event (not a customer, "
        "email reaches them); again after a later inactive period"
    )
    emails = (
        PlanStep("we-miss-you", day=0, title="Email 1: We miss you", channel=EMAIL),
        PlanStep("best-content", day=4, title="Email 2: The best for your interest", channel=EMAIL),
        PlanStep(
            "last-chance", day=9, title="Email 3: Last chance: keep me subscribed", channel=EMAIL
        ),
    )
    plan = (
        *emails,
        PlanStep(
            "sunset", day=14, title="No response: sunset (marketing stops, not an unsubscribe)"
        ),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the contact and run the re-engagement."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Each email on its day; on Day 14 without a response, the sunset."""
        for step in self.emails:
            await self.wait_until_day(step.day)
            await self.send(step.id)
        await self.wait_until_day(14)
        await self.run_once("sunset", self._sunset)

    async def _sunset(self) -> None:
        """Tell the contact workflow, which owns the contact's tags, to sunset the contact."""
        try:
            await workflow.get_external_workflow_handle(f"contact-{self.contact_id}").signal(
                "sunset", SunsetRequest(journey_started_at=self.enrolled_at)
            )
        except FailureError:
            workflow.logger.warning("no contact workflow to sunset the contact")
