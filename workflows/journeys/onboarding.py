"""Onboarding: a new customer's first 30 days, to the key features and the community (seed 000).

Trigger: `purchased` (once per contact). A pricing follow-up that sees the
purchase starts it too (the same workflow, never twice). `trial_started` does
not: a trial user is not a customer yet (the trial has its own journey, the
lead score counts it), and onboarding's milestones, stalled alert and
`stage_customer_active` are about someone who paid.

Day 0 (right after the purchase) Email: Welcome aboard
Day 1 Email: Set up in ten minutes (skipped once a key feature is in use)
Day 3, 7, 14 Email: the next key feature the contact neither uses nor was taught
Day `stalled_day` (10) no key feature adopted yet → a task and a notification for
    the contact's owner (or the customer-success queue of `sales.toml`), and an
    SMS nudge (needs SMS consent and a phone)
Day 30 Email: 30-day check-in; the journey ends
On activation (every key feature adopted, any day): tag `stage_customer_active`,
    then Email: community invitation (once)

The key features, their order and education emails, and the stalled day are
configured in `onboarding.toml` (`rules/onboarding.py`); the journey reads them
through an activity when it starts, with the features the contact already
uses: `act_adopted_<feature>` tags, and `feature_used` events stored before
the journey started (during a trial, or in the same batch as the purchase).
Later `feature_used` events (property `feature`) reach the journey as they
happen: each newly adopted key feature is recorded on the contact as the tag
`act_adopted_<feature>` within the same workflow task, whatever the journey is
waiting for. An education email is chosen when it is due, so it never teaches
a feature adopted before then (one adopted while the chosen email waits out
quiet hours or a frequency cap still goes; the send is decided).

Category: marketing. The education emails and the community invitation are
there to get a customer using more of the product: under CAN-SPAM's primary
purpose test that is commercial content, and under GDPR/PECR an existing
customer may get it (soft opt-in) only with a working opt-out. So the emails
need email marketing consent, count against the frequency caps, carry the
unsubscribe link, and an unsubscribe (or a hard bounce, or an erasure) ends
the journey at once, stalled alert included. What a customer must get whatever
they chose (receipts, account access, renewal notices) is not onboarding: the
billing system and the renewal countdown (transactional) send it. A buyer who
never consented still runs through the journey: the emails are skipped (no
consent), adoption is still recorded and the account team still alerted.

Adoption is followed for the 30 days the journey runs; `stage_customer_active`
is the seed's lifecycle tag and sits next to the lead band's `stage_…` tag
(the contact workflow only replaces the tags it set itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.toolkit import CRM_RETRY_POLICY, CRM_TIMEOUT, Journey, PlanStep, activity_classes
from workflows.toolkit.account import alert_account_owner
from workflows.toolkit.local_steps import run_step
from workflows.toolkit.retries import UNTIL_DONE_RETRY_POLICY
from workflows.triggers import Trigger

with workflow.unsafe.imports_passed_through():
    from models.crm import AccountAlert, CrmTaskKind, TaskPriority
    from models.journeys import JourneyInput, JourneyState
    from models.messages import Channel, MessageCategory
    from models.onboarding import (
        CUSTOMER_ACTIVE_TAG,
        KeyFeature,
        OnboardingStart,
        TagRequest,
        adopted_tag,
    )
    from rules.onboarding import FEATURE_USED, next_to_teach, used_feature

EMAIL, SMS = Channel.EMAIL, Channel.SMS
EDUCATION_DAYS = (3, 7, 14)
"""The days an education email teaches the next key feature not yet adopted."""
CHECK_IN_DAY = 30
"""The last email, and the end of onboarding."""
DEFAULT_STALLED_DAY = 10
"""The stalled day the catalog shows (`onboarding.toml` sets the one a run uses)."""
STALLED_TASK_DUE_DAYS = 2
"""The account team has this many journey days to reach a stalled customer."""
LEARN_PREFIX = "learn-"
"""Education steps are `learn-<feature>`: a feature is taught once, whichever day."""
ADOPTED_PREFIX = "adopted-"
"""Adoption steps are `adopted-<feature>`: the contact is tagged once per feature."""


class _Kind(IntEnum):
    """What a milestone does; on the same day, in this order."""

    SETUP = 1
    EDUCATION = 2
    STALLED = 3
    CHECK_IN = 4


@dataclass(frozen=True)
class _Milestone:
    day: float
    kind: _Kind


def _learn_step(feature: KeyFeature, day: int) -> PlanStep:
    return PlanStep(
        f"{LEARN_PREFIX}{feature.id}",
        day=day,
        title=f"Email: {feature.title} (next key feature not yet adopted)",
        channel=EMAIL,
        template=feature.education_template,
    )


def _stalled_steps(day: int) -> tuple[PlanStep, PlanStep]:
    return (
        PlanStep(
            "stalled",
            day=day,
            title="No key feature adopted: task and notification for the owner "
            "(or customer success)",
        ),
        PlanStep(
            "stalled-sms",
            day=day,
            title="SMS: need a hand? (no key feature adopted; needs SMS consent and a phone)",
            channel=SMS,
            template="onboarding/stalled",
        ),
    )


WELCOME = PlanStep("welcome", day=0, title="Email: Welcome aboard", channel=EMAIL)
SETUP = PlanStep(
    "setup",
    day=1,
    title="Email: Set up in ten minutes (unless a key feature is in use)",
    channel=EMAIL,
)
CHECK_IN = PlanStep("check-in", day=CHECK_IN_DAY, title="Email: 30-day check-in", channel=EMAIL)
ACTIVATED = PlanStep(
    "activated",
    day=CHECK_IN_DAY,
    when="On activation",
    title="Every key feature adopted: tag stage_customer_active",
)
COMMUNITY = PlanStep(
    "community",
    day=CHECK_IN_DAY,
    when="On activation",
    title="Email: Community invitation (once)",
    channel=EMAIL,
)


@workflow.defn(name="onboarding")
class Onboarding(Journey):
    """Onboard a new customer: milestones, one key feature at a time, community, stalled alert."""

    name = "onboarding"
    title = "Onboarding"
    category = MessageCategory.MARKETING
    trigger = Trigger("purchased")
    started_by = "a won deal (`deal_won` derives the purchase)"
    listens_to = frozenset({FEATURE_USED})
    plan = (
        WELCOME,
        SETUP,
        PlanStep(
            "learn",
            day=EDUCATION_DAYS[0],
            when="Day 3, 7, 14",
            title="Email: the next key feature not yet adopted (onboarding.toml)",
        ),
        *_stalled_steps(DEFAULT_STALLED_DAY),
        CHECK_IN,
        ACTIVATED,
        COMMUNITY,
    )

    def __init__(self) -> None:
        """Start without the configuration; `steps()` loads it first."""
        super().__init__()
        self._start: OnboardingStart | None = None

    @workflow.run
    async def run(self, journey_input: JourneyInput) -> JourneyState:
        """Enrol the customer and run onboarding."""
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Welcome at once; each milestone on its day, recording adoption as it happens."""
        self._start = await self._load_start()
        self.publish_progress()
        await self.send("welcome", quiet_hours_exempt=True)
        await self._record_adoption()
        for milestone in self._milestones():
            while await self.wait_until_day(milestone.day, until=self._adoption_to_record):
                await self._record_adoption()
            await self._reach(milestone)

    # --- the plan -------------------------------------------------------------------

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """The plan for this customer: the features each education day teaches (done, or
        the next not yet adopted), without the steps that can no longer happen."""
        if self._start is None:
            return self.plan
        adopted = self._adopted()
        planned = [WELCOME]
        if self.done(SETUP.id) or not adopted:
            planned.append(SETUP)
        planned += self._education_steps()
        if self.done("stalled") or not adopted:
            planned += _stalled_steps(self._start.stalled_day)
        planned += [CHECK_IN, ACTIVATED, COMMUNITY]
        return tuple(sorted(planned, key=lambda step: step.day))

    def _milestones(self) -> list[_Milestone]:
        assert self._start is not None
        milestones = [
            _Milestone(SETUP.day, _Kind.SETUP),
            *(_Milestone(day, _Kind.EDUCATION) for day in EDUCATION_DAYS),
            _Milestone(self._start.stalled_day, _Kind.STALLED),
            _Milestone(CHECK_IN_DAY, _Kind.CHECK_IN),
        ]
        return sorted(milestones, key=lambda milestone: (milestone.day, milestone.kind))

    def _education_steps(self) -> list[PlanStep]:
        """Each education day with the feature it taught, or the one it will teach as things
        stand (the next not adopted and not taught, in configured order)."""
        taught = self._taught()
        features = {feature.id: feature for feature in self._features()}
        adopted = self._adopted()
        upcoming = [
            feature
            for feature in self._features()
            if feature.id not in adopted and feature.id not in taught
        ]
        steps = [
            _learn_step(features[feature], day)
            for feature, day in zip(taught, EDUCATION_DAYS, strict=False)
        ]
        remaining_days = EDUCATION_DAYS[len(steps) :]
        steps += [
            _learn_step(feature, day)
            for feature, day in zip(upcoming, remaining_days, strict=False)
        ]
        return steps

    # --- adoption -------------------------------------------------------------------

    def _features(self) -> list[KeyFeature]:
        assert self._start is not None
        return self._start.features

    def _adopted(self) -> set[str]:
        """Key features the contact uses: before the journey, and `feature_used` since."""
        assert self._start is not None
        keys = {feature.id for feature in self._features()}
        used = {used_feature(event.type, event.properties) for event in self.events}
        return keys & (set(self._start.adopted) | used)

    def _activated(self) -> bool:
        """Every key feature adopted."""
        return len(self._adopted()) == len(self._features())

    def _taught(self) -> list[str]:
        """The features an education email was sent (or attempted) for, in order."""
        steps = self.state().steps_done
        return [step.removeprefix(LEARN_PREFIX) for step in steps if step.startswith(LEARN_PREFIX)]

    def _adoption_to_record(self) -> bool:
        """An adopted feature not tagged yet, or an activation not acted on."""
        if any(not self.done(ADOPTED_PREFIX + feature) for feature in self._adopted()):
            return True
        return self._activated() and not self.done(COMMUNITY.id)

    async def _record_adoption(self) -> None:
        """Tag each newly adopted key feature; on activation, tag and invite to the community."""
        for feature in self._features():
            if feature.id in self._adopted():
                await self._tag_once(ADOPTED_PREFIX + feature.id, adopted_tag(feature.id))
        if self._activated():
            await self.run_once("activated", lambda: self._tag(CUSTOMER_ACTIVE_TAG))
            await self.send("community")

    async def _tag_once(self, step: str, tag: str) -> None:
        await self.run_once(step, lambda: self._tag(tag))

    # --- the milestones -------------------------------------------------------------

    async def _reach(self, milestone: _Milestone) -> None:
        adopted = self._adopted()
        if milestone.kind == _Kind.SETUP:
            if not adopted:
                await self.send("setup")
        elif milestone.kind == _Kind.EDUCATION:
            feature = next_to_teach(self._features(), adopted=adopted, taught=self._taught())
            if feature is not None:
                await self.send(f"{LEARN_PREFIX}{feature.id}")
        elif milestone.kind == _Kind.STALLED:
            if not adopted:
                await self.run_once("stalled", self._alert_stalled)
                await self.send("stalled-sms")
        else:
            await self.send("check-in")

    # --- activities -----------------------------------------------------------------

    async def _load_start(self) -> OnboardingStart:
        return await run_step(
            activity_classes.onboarding().onboarding_start,
            self.contact_id,
            local=True,
            timeout=CRM_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Read the key features and what the customer already uses",
        )

    async def _tag(self, tag: str) -> None:
        try:
            await workflow.execute_activity_method(
                activity_classes.crm().tag_contact,
                TagRequest(contact_id=self.contact_id, tags=[tag]),
                start_to_close_timeout=CRM_TIMEOUT,
                retry_policy=CRM_RETRY_POLICY,
                summary=f"Tag the contact {tag}",
            )
        except ActivityError as error:
            workflow.logger.warning("tagging %s failed: %s", tag, error.cause or error)

    async def _alert_stalled(self) -> None:
        assert self._start is not None
        day = self._start.stalled_day
        sent = ", ".join(self.state().steps_done)
        alert = AccountAlert(
            idempotency_key=self.idempotency_key("stalled"),
            contact_id=self.contact_id,
            kind=CrmTaskKind.ONBOARDING_STALLED,
            title=f"Onboarding stalled: no key feature adopted by day {day}",
            lines=[
                f"Customer since {self.enrolled_at:%Y-%m-%d} (onboarding day {day} of "
                f"{CHECK_IN_DAY})",
                "Key features, none adopted yet: "
                + ", ".join(feature.title for feature in self._features()),
                f"Onboarding emails so far: {sent or 'none'}",
                "Offer a set-up call, find out what is in the way, and record what you learn.",
            ],
            due_at=workflow.now() + self.day * STALLED_TASK_DUE_DAYS,
            priority=TaskPriority.HIGH,
        )
        await alert_account_owner(alert)
