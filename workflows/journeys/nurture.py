"""Nurture by interest and band: useful emails on a fixed weekday and hour (seed 000).

The contact workflow starts it when a contact finishes the welcome series below
the MQL band. Before each slot the journey reads the contact (one local
activity, `nurture_profile`: tags, band, time zone, downloads, pricing visits)
and decides what, if anything, goes out:

- **Send time:** slots fall on the contact's local calendar at a fixed hour
  (`send_hour`, 10:00 by default), DST-correct: the main slot on the weekday of
  enrolment every week (Days 7, 14, 21…), and a mid-week slot three days later
  (Days 3, 10, 17…). "Nurture emails: same day/time each week."
- **Cadence by band:** Cold gets the main slots only (weekly); Warming gets every
  slot (twice a week: "Warming → increase frequency"); a band change counts from
  the next slot. Reaching MQL ends it: the contact workflow sends `exit` with
  `handed-to-sales`, and a slot that finds the lead sales-ready leaves so too.
- **Content tracks:** `automation`, `ecommerce` and `general`, chosen by `int_`
  then `src_` tags (`rules/nurture.py`). An interest gained mid-way moves the
  contact to its track at the next email.
- **Asset consumption:** each content email offers one asset; one the contact
  downloaded (`content_downloaded` with `asset`, before enrolment too) or was
  offered already is skipped for the next one, of the track, then of general.
- **High-intent offer:** a pricing visit during nurture turns the next slot's
  email into the high-intent offer (`nurture/offer`), once however many visits.
  It takes that slot (the pricing follow-up already writes within 30 minutes of
  the visit), so it keeps the weekday and hour and adds no third email that day.
- Three content emails, then the roundup (`nurture/roundup`: reply or book a
  call); the roundup comes early when every asset is used up.

Exits at once, at any step, on `unsubscribed` or `purchased`. Runs started
before the tracks (no `nurture-tracks` patch marker) keep the four weekly
emails `week1`…`week4` on the enrolment's weekday and time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from workflows.toolkit import CRM_TIMEOUT, Journey, PlanStep, activity_classes
from workflows.toolkit.retries import UNTIL_DONE_RETRY_POLICY

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyState
    from models.messages import Channel, MessageCategory
    from models.nurture import NurtureInput, NurtureProfile, NurtureProfileRequest
    from rules import nurture as rules

TRACKS_PATCH = "nurture-tracks"
"""Runs from before it send the four weekly emails of `WEEKLY_PLAN`."""
OFFER = "offer"
ROUNDUP = "roundup"
ONE_DAY = timedelta(days=1)
WEEKLY_PLAN = (
    PlanStep("week1", day=7, title="Email 1: Industry insight", channel=Channel.EMAIL),
    PlanStep("week2", day=14, title="Email 2: Customer story", channel=Channel.EMAIL),
    PlanStep("week3", day=21, title="Email 3: Practical how-to checklist", channel=Channel.EMAIL),
    PlanStep(
        "week4",
        day=28,
        title="Email 4: Roundup + invitation to reply or book a call",
        channel=Channel.EMAIL,
    ),
)
"""The plan of runs started before the tracks (same weekday and time as enrolment)."""


def track_plan(track: rules.Track) -> tuple[PlanStep, ...]:
    """The content emails of `track`, week by week (Cold cadence; Warming runs faster)."""
    return tuple(
        PlanStep(
            track.step(asset),
            day=7 * week,
            when=f"Week {week}",
            title=f"{track.title}: {asset.title}",
            channel=Channel.EMAIL,
            template=track.template(asset),
        )
        for week, asset in enumerate(track.assets, start=1)
    )


OFFER_STEP = PlanStep(
    OFFER,
    day=0,
    when="After a pricing visit",
    title="Email: high-intent offer (the next slot, once)",
    channel=Channel.EMAIL,
)
ROUNDUP_STEP = PlanStep(
    ROUNDUP,
    day=7 * (rules.CONTENT_EMAILS + 1),
    when=f"Week {rules.CONTENT_EMAILS + 1}",
    title="Email: roundup + invitation to reply or book a call",
    channel=Channel.EMAIL,
)


@workflow.defn(name="nurture")
class Nurture(Journey):
    """Keep a lead below MQL warm: its track's content, weekly (Cold) or twice a week (Warming)."""

    name = "nurture"
    title = "Nurture by interest and band"
    category = MessageCategory.MARKETING
    exit_on = frozenset({"purchased"})
    started_by = "the welcome series, for a lead below MQL"
    exit_reasons = (
        (
            "handed-to-sales",
            "the lead reaches MQL (the contact workflow ends it, or a slot finds it)",
        ),
    )
    input_model = NurtureInput
    plan = (*track_plan(rules.GENERAL), OFFER_STEP, ROUNDUP_STEP)

    def __init__(self) -> None:
        """Runs before the tracks are told apart in `run`."""
        super().__init__()
        self._tracks = True
        self._timezone: str = rules.DEFAULT_TIMEZONE

    @classmethod
    def declared_steps(cls) -> tuple[PlanStep, ...]:
        """Every track's emails, the offer, the roundup, and the weekly plan of older runs."""
        content = tuple(step for track in rules.TRACKS for step in track_plan(track))
        return (*WEEKLY_PLAN, *content, OFFER_STEP, ROUNDUP_STEP)

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """Older runs: the weekly plan. Else what was sent, then the current track's rest."""
        if not self._tracks:
            return WEEKLY_PLAN
        every = {step.id: step for step in self.declared_steps()}
        done = [every[step] for step in self._done_steps() if step in every]
        track = rules.track_named(self._nurture_input.track) or rules.GENERAL
        ahead = [step for step in track_plan(track) if step not in done]
        ahead = ahead[: max(rules.CONTENT_EMAILS - len(self._content_sent()), 0)]
        rest = [step for step in (OFFER_STEP, ROUNDUP_STEP) if step not in done]
        return (*done, *ahead, *rest)

    @workflow.run
    async def run(self, journey_input: NurtureInput) -> JourneyState:
        """Enrol the contact and run the nurture."""
        self._tracks = workflow.patched(TRACKS_PATCH)
        return await self.run_journey(journey_input)

    async def steps(self) -> None:
        """Older runs: the four weekly emails. Else slot by slot until the roundup."""
        if not self._tracks:
            for step in WEEKLY_PLAN:
                await self.wait_until_day(step.day)
                await self.send(step.id)
            return
        profile = await self._read_profile()  # each run: the zone its first wait is set in
        if self._nurture_input.anchor is None:
            self._keep(anchor=rules.local_date(self.enrolled_at, profile.timezone))
        while ROUNDUP not in self._done_steps():
            await self._serve_slot()

    async def _serve_slot(self) -> None:
        """Wait for the next slot, read the contact, and send what the slot calls for."""
        index = self._nurture_input.slot
        profile = await self._wait_for_slot(index)
        if profile.sales_ready:
            self.leave("handed-to-sales")
        if rules.sent_this_slot(index, profile.band):
            await self.send(self._step_for(profile))
        self._keep(slot=index + 1)

    async def _wait_for_slot(self, index: int) -> NurtureProfile:
        """Wait until slot `index` in the contact's zone; the contact as read at the slot.

        The wait is set in the zone read last; the contact is read when it ends, and
        if its zone moved the slot, the journey waits on to the slot in the new zone.
        """
        journey_input = self._nurture_input
        assert journey_input.anchor is not None
        timezone = self._timezone
        while True:
            due = rules.slot_time(
                journey_input.anchor, index, hour=journey_input.send_hour, timezone=timezone
            )
            if due > self._journey_now():
                kind = "weekly" if rules.is_main_slot(index) else "mid-week (Warming)"
                await self.wait_for(
                    (),
                    until_day=(due - self.enrolled_at) / ONE_DAY,
                    label=f"Wait for the {kind} slot: {_local(due, timezone)}",
                )
            profile = await self._read_profile()
            if profile.timezone == timezone:
                return profile
            timezone = profile.timezone

    def _step_for(self, profile: NurtureProfile) -> str:
        """The offer after a pricing visit (once), else the next content email, else the roundup.

        Also moves the contact to the track its tags choose, and remembers the tags.
        """
        journey_input = self._nurture_input
        track = rules.choose_track(
            profile.tags, seen=journey_input.tags_seen, current=journey_input.track
        )
        self._keep(track=track.id, tags_seen=sorted(profile.tags))
        if profile.pricing_viewed and not self.done(OFFER):
            return OFFER
        if len(self._content_sent()) >= rules.CONTENT_EMAILS:
            return ROUNDUP
        found = rules.next_asset(track, offered=self._done_steps(), downloaded=profile.downloaded)
        return ROUNDUP if found is None else found[0].step(found[1])

    async def _read_profile(self) -> NurtureProfile:
        """The contact as the CRM has it now (a local activity: no round trip)."""
        profile: NurtureProfile = await workflow.execute_local_activity_method(
            activity_classes.contacts().nurture_profile,
            NurtureProfileRequest(contact_id=self.contact_id, since=self.enrolled_at),
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Read the contact: tags, band, time zone, downloads",
        )
        self._timezone = profile.timezone
        return profile

    def _journey_now(self) -> datetime:
        """The journey's wall clock: real time on real days, faster on an accelerated clock."""
        return self.enrolled_at + (self.elapsed / self.day) * ONE_DAY

    def _done_steps(self) -> list[str]:
        """The steps whose message was attempted, in order."""
        return self.state().steps_done

    def _content_sent(self) -> list[str]:
        return [step for step in self._done_steps() if step not in (OFFER, ROUNDUP)]

    @property
    def _nurture_input(self) -> NurtureInput:
        journey_input = self.journey_input
        if isinstance(journey_input, NurtureInput):
            return journey_input
        return NurtureInput.model_validate(journey_input.model_dump())

    def _keep(self, **changes: object) -> None:
        """Update the input the journey keeps (carried over when continuing as new)."""
        self.journey_input = self._nurture_input.model_copy(update=changes)


def _local(moment: datetime, timezone: str) -> str:
    """`Tue 10:00 Europe/Paris`: a slot as the contact sees it."""
    local = moment.astimezone(rules.zone_of(timezone))
    return f"{local:%a %Y-%m-%d %H:%M} {timezone}"
