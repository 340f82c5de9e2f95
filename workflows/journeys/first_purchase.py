"""First purchase: a sign-up with no purchase a week later gets an offer, the favourites and
a person to talk to (seed 003's new-user nurture: "registered, no order after 7 days").

Started when the contact enters the segment `signed-up-no-purchase` (`segments.toml`:
subscribed 7 to 30 days ago, nothing bought), by the contact workflow or the segment
sweep, which notices a week passing without any event. Contacts already in the segment
when it is first evaluated do not start it (a deploy does not mail every old sign-up).
Ends at once when the contact leaves the segment (it buys: `act_purchased`), or on
`purchased` itself.

Day 0  Email 1: A welcome offer: 15% off the first year, code FIRST15
Day 2  Email 2: What teams like theirs use most (the favourites)
Day 6  CRM task: customer success offers a 1:1 call (seed 003: "Day 7 1:1 reminder")

A contact goes through it once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.toolkit import Journey, PlanStep
from workflows.toolkit.account import open_crm_task
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.crm import AssigneeRole, CrmTaskKind, CrmTaskRequest, TaskPriority
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory

EMAIL = Channel.EMAIL
SEGMENT = "signed-up-no-purchase"
CALL_DUE = timedelta(days=2)
"""Customer success has two journey days to offer the call."""


@workflow.defn(name="first-purchase")
class FirstPurchase(Journey):
    """Turn a sign-up who has not bought after a week into a customer; ends on a purchase."""

    name = "first-purchase"
    title = "First purchase"
    category = MessageCategory.MARKETING
    trigger = Trigger.on_segment(SEGMENT)
    segment_exit = SEGMENT
    exit_on = frozenset({"purchased"})
    started_by = (
        "entering the segment `signed-up-no-purchase` (subscribed 7 to 30 days ago, nothing "
        "bought; `segment_left` is leaving it); once per contact"
    )
    plan = (
        PlanStep("offer", day=0, title="Email 1: 15% off the first year", channel=EMAIL),
        PlanStep("favourites", day=2, title="Email 2: What teams like yours use", channel=EMAIL),
        PlanStep("call", day=6, title="CRM task: customer success offers a 1:1 call"),
    )

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the sign-up and run the journey."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """The offer, the favourites, then a person (leaving the segment ends it at any step)."""
        await self.send("offer")
        await self.wait_until_day(2)
        await self.send("favourites")
        await self.wait_until_day(6)
        await self.run_once("call", self._offer_a_call)

    async def _offer_a_call(self) -> None:
        await open_crm_task(
            CrmTaskRequest(
                idempotency_key=self.idempotency_key("call"),
                contact_id=self.contact_id,
                kind=CrmTaskKind.FIRST_PURCHASE_CALL,
                assignee_role=AssigneeRole.CUSTOMER_SUCCESS,
                title="Signed up nearly two weeks ago, no purchase: offer a 1:1 call",
                details=(
                    "The contact signed up more than 13 days ago and has not bought. The offer "
                    "and the favourites went out; call or write to offer 15 minutes to set "
                    "up their first campaign, and note what holds them back."
                ),
                due_at=workflow.now() + self.day * (CALL_DUE / timedelta(days=1)),
                priority=TaskPriority.NORMAL,
            )
        )
