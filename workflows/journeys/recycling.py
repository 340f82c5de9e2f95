"""Recycling: a lead sales cannot take now gets a long-cycle sequence and a review every
90 days (seed 002, step 6, "再循环_03").

Started by a `lead_disqualified` event whose `reason` recycles the lead
(`no-budget`, `no-project`, `bad-timing`; another reason, or none, does not), and
by the sales hand-off (`lead-sla`) after 14 days without interaction after MQL
(reason `no-interaction`).

Day 0    The lead is recycled: pipeline stage `recycled` (cause: the reason), tag
         `stage_recycled`, its open follow-up and call tasks cancelled with the
         reason (its owner is kept: the ownership rule decides at the next hand-off).
         The contact workflow is told (`recycled` signal): from now on only a new key
         behaviour makes the lead MQL again, which hands it off again.
Day 30   Email 1: an industry insight
Day 60   Email 2: a case study
Day 90   Email 3: what changed since we last spoke (and a call), opening on the reason
Day 90, 180, 270, 360  A review task for the owner (or the sales queue, when the lead
         has no owner): review the score and behaviour, re-qualify or keep recycled.

Reviews stop after a year (four of them) and the journey completes: a lead that
stayed quiet that long is marketing's, not a yearly reminder in the sales queue.
It stays recycled, and a new key behaviour still makes it MQL again.

Exits at any step: `requalified` (the contact workflow, when a key behaviour puts
the lead back in the hand-off band), `lead_qualified` (a rep qualified it, at a
review say), a `lead_disqualified` whose reason does not recycle (a rep closed it
for good), `purchased` or `deal_won` (it bought), and, as a marketing journey,
`unsubscribed`. A lead recycled again later goes through it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, FailureError

from workflows.toolkit import CRM_RETRY_POLICY, CRM_TIMEOUT, Journey, PlanStep, activity_classes
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.events import BehaviorEvent
    from models.journeys import JourneyState
    from models.messages import Channel, MessageCategory
    from models.pipeline import RecycleNotice, RecyclingInput
    from models.recycling import (
        LeadDisqualifiedProperties,
        RecycledReview,
        RecycleRequest,
        recyclable,
    )

if TYPE_CHECKING:
    from activities.crm import CrmActivities

Request = TypeVar("Request", RecycleRequest, RecycledReview)
"""What a CRM activity of the journey takes."""

EMAIL = Channel.EMAIL
DISQUALIFIED = "lead_disqualified"
REVIEW_EVERY_DAYS = 90
"""Days between two reviews of a recycled lead (seed 002: 每90天复核)."""
REVIEWS = 4
"""How many reviews: a year of them, then the journey completes."""
REVIEW_DUE_DAYS = 7
"""A review task is due a week after it opens."""

RECYCLE = PlanStep(
    "recycle",
    day=0,
    title="Stage recycled, tag stage_recycled, sales tasks cancelled; contact workflow told",
)
TOUCHES = (
    PlanStep("insight", day=30, title="Email 1: an industry insight", channel=EMAIL),
    PlanStep("case-study", day=60, title="Email 2: a case study", channel=EMAIL),
    PlanStep("what-changed", day=90, title="Email 3: what changed since we spoke", channel=EMAIL),
)
REVIEW_STEPS = tuple(
    PlanStep(
        f"review-{number}",
        day=REVIEW_EVERY_DAYS * number,
        title=f"Review task {number}/{REVIEWS} (owner or sales queue): re-qualify or keep recycled",
    )
    for number in range(1, REVIEWS + 1)
)


def recycling_input(event: BehaviorEvent, day_seconds: int) -> RecyclingInput | None:
    """The journey a `lead_disqualified` event starts, or None when its reason does not
    recycle the lead."""
    reason = recyclable(LeadDisqualifiedProperties.model_validate(event.properties).reason)
    if reason is None:
        return None
    return RecyclingInput(contact_id=event.contact_id, day_seconds=day_seconds, reason=reason)


@workflow.defn(name="recycling")
class Recycling(Journey):
    """Take a lead out of the sales queue; touch it at 30, 60 and 90 days, review it every 90."""

    name = "recycling"
    title = "Recycling"
    category = MessageCategory.MARKETING
    trigger = Trigger(DISQUALIFIED, input_from=recycling_input)
    exit_on = frozenset({"lead_qualified", "purchased", "deal_won"})
    listens_to = frozenset({DISQUALIFIED})
    reentry_days = 0
    versioning_behavior = VersioningBehavior.AUTO_UPGRADE  # a year of reviews
    started_by = (
        "when its `reason` is `no-budget`, `no-project` or `bad-timing`; the sales hand-off, "
        "after 14 days without interaction after MQL (`no-interaction`); again if recycled again"
    )
    exit_reasons = (
        ("requalified", "the contact workflow: a key behaviour put the lead back in hand-off"),
        (DISQUALIFIED, "disqualified for a reason that does not recycle (closed for good)"),
    )
    input_model = RecyclingInput
    plan = (RECYCLE, *TOUCHES, *REVIEW_STEPS)

    @workflow.run
    async def run(self, journey_input: RecyclingInput) -> JourneyState:
        """Recycle the lead and run the long-cycle sequence."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Recycle at once; each touch on its day; a review task every 90 days for a year."""
        await self.run_once(RECYCLE.id, self._recycle)
        for touch in TOUCHES:
            await self.wait_until_day(touch.day)
            await self.send(touch.id, variables={"reason": self._reason()})
        for number, review in enumerate(REVIEW_STEPS, start=1):
            await self.wait_until_day(review.day)
            await self.run_once(review.id, partial(self._review, number))

    def ends_journey(self, event: BehaviorEvent) -> bool:
        """The exit events, and a disqualification for a reason that does not recycle."""
        if event.type == DISQUALIFIED:
            reason = event.properties.get("reason")
            return recyclable(reason if isinstance(reason, str) else None) is None
        return super().ends_journey(event)

    def _reason(self) -> str:
        recycling = self.journey_input
        assert isinstance(recycling, RecyclingInput)
        return recycling.reason

    async def _recycle(self) -> None:
        """Move the lead to `recycled` in the CRM, then tell the contact workflow."""
        request = RecycleRequest(
            idempotency_key=self.idempotency_key(RECYCLE.id),
            contact_id=self.contact_id,
            reason=self._reason(),
            recycled_at=self.enrolled_at,
        )
        await self._crm(
            activity_classes.crm().recycle_lead,
            request,
            summary=f"Recycle the lead ({request.reason}): stage, tag, sales tasks",
        )
        notice = RecycleNotice(recycled_at=self.enrolled_at, reason=request.reason)
        try:
            await workflow.get_external_workflow_handle(f"contact-{self.contact_id}").signal(
                "recycled", notice
            )
        except FailureError:
            workflow.logger.warning("no contact workflow to tell the lead was recycled")

    async def _review(self, number: int) -> None:
        review = RecycledReview(
            idempotency_key=self.idempotency_key(f"review-{number}"),
            contact_id=self.contact_id,
            reason=self._reason(),
            recycled_at=self.enrolled_at,
            review=number,
            of=REVIEWS,
            due_at=workflow.now() + self.day * REVIEW_DUE_DAYS,
        )
        await self._crm(
            activity_classes.crm().open_recycled_review,
            review,
            summary=f"Review task {number}/{REVIEWS} for the owner or the sales queue",
        )

    async def _crm(
        self,
        activity: Callable[[CrmActivities, Request], Awaitable[object]],
        request: Request,
        *,
        summary: str,
    ) -> None:
        """Run a CRM activity with the CRM retries; one that keeps failing is logged and the
        sequence goes on (a task is no reason to stop the lead's emails)."""
        try:
            await workflow.execute_activity_method(
                activity,
                request,
                start_to_close_timeout=CRM_TIMEOUT,
                retry_policy=CRM_RETRY_POLICY,
                summary=summary,
            )
        except ActivityError as error:
            workflow.logger.warning("%s failed: %s", summary, error.cause or error)
