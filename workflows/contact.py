"""The contact workflow (`contact-{id}`): one ordered stream of a contact's behaviour events.

Every event of a contact is signalled here (signal-with-start, so the first
event creates it). For each batch of new events it:

1. drops duplicates: event ids it remembers (the most recent
   `REMEMBERED_EVENT_IDS`), then, in the ingest activity, ids already stored
   in the database (older retries); the ingest also writes the suppression of
   an `unsubscribed` / hard `email_bounced` contact at once;
2. scores the events (the scoring profile, `scoring.toml` by default: fit and
   behaviour points, decay, bands, the MQL rule) and keeps the score current:
   `LeadScore` / `FitScore` / `BehaviorScore` / `LifecycleStage` search
   attributes and the CRM (total, fit, behaviour, breakdown, `stage_…`,
   `act_…`, `src_…`, `int_…`, `eng_…` tags);
3. starts the journey the event triggers (each journey declares its
   `trigger`; the table comes from `workflows.catalog`) and forwards each
   event to the journeys concerned by its type;
4. on unsubscribe / hard bounce, makes the marketing journeys exit with that
   reason: every one for an unsubscribe from all channels; for one on a single
   channel (the email link, an SMS STOP, a hard bounce) those left with no
   channel that reaches the contact (see `_exit_unreachable_journeys`);
5. hands a lead to sales when it enters the hand-off band (`lead-sla-{id}`),
   raises the priority when it moves up, and ends its weekly nurture; a lead
   the `recycled` signal recycled is held below the hand-off band until a key
   behaviour after the recycling, and on re-entering it `recycling-{id}` exits
   with `requalified`;
6. keeps the contact's inactivity timer: it runs from the last contact-initiated
   event (`models.events.is_contact_initiated`: opens, clicks, replies, visits,
   purchases…; never our deliveries, bounces, renewal schedules or rep contacts),
   or from the first event before any. At `DORMANT_AFTER` (30 days) the contact
   is tagged `eng_dormant_30d` and, once per inactive period, a customer
   (`act_purchased`, or a `stage_customer…` tag) starts `win-back`, anyone else
   `re-engagement`, if marketing email still reaches them. Any contact-initiated
   event ends the journeys that declare `exit_on_activity` (re-engagement:
   `reactivated`) and lifts a sunset (see `sunset`);
7. keeps the contact's segments current: after new events or a change of score it
   evaluates them (`activities/segments.py: refresh_segments`) and routes the
   `segment_entered` / `segment_left` events of the segments journeys follow, which
   start (`Trigger.on_segment`) or end (`segment_exit`) them. Changes with time alone
   or with a profile update come from the segment sweep, as signalled events.

Decay is re-evaluated on a durable timer set to the next instant a point
decays (or the contact turns dormant), so a lead that cools drops a band on
time without polling. The `forget` signal erases the contact: every journey
exits (those that do not within seconds are terminated), the database forgets
it (only hashed suppressions and the id's tombstone stay), its data key is
destroyed so its Temporal histories can no longer be read, and the workflow
ends. A run started for an erased id anyway (past the gateway) finds the
tombstone at its first ingest, stores nothing, erases again and ends. It
continues as new when the history grows, carrying only bounded state.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import FailureError

from workflows.toolkit import Journey, activity_classes, start_journey
from workflows.toolkit.local_steps import run_step
from workflows.toolkit.retries import UNTIL_DONE_RETRY_POLICY, UNTIL_DONE_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from models import search_attributes
    from models.contact_workflow import (
        MAX_EVENT_BATCH,
        ContactCarryOver,
        ContactInput,
        ContactState,
        ContactWorkflows,
        EraseRequest,
        EventBatch,
        IngestRequest,
        IngestResult,
        JourneyEnrolment,
        LeadScoreUpdate,
        SunsetRequest,
    )
    from models.events import (
        MAX_EVENTS_PAYLOAD_BYTES,
        BehaviorEvent,
        is_contact_initiated,
        json_size,
    )
    from models.handoff import LeadBand, LeadSlaInput
    from models.journeys import ExitRequest, JourneyInput
    from models.lead_score import ScoreBreakdown, ScoredAction
    from models.merges import MERGED_REASON, AbsorbRequest, MergeNotice
    from models.messages import SUNSET_TAG
    from models.pipeline import RecycleNotice
    from models.segments import SegmentRefresh
    from rules.opt_outs import COMPLAINED, suppression_scope
    from rules.scoring import (
        ActionKey,
        ScoringModel,
        add_action,
        next_change,
        next_inactivity_change,
        sales_qualified,
        score,
        stage_tag,
        worth_points,
    )
    from workflows import catalog

REMEMBERED_EVENT_IDS = 2_000
"""How many recent event ids the workflow itself remembers (older duplicates
are caught by the database)."""
RESCORE_GRANULARITY = timedelta(hours=1)
"""Decay is applied at most this late (when boundaries crowd together, else on time)."""
CARRIED_EVENTS = 2 * MAX_EVENT_BATCH
"""Most unprocessed events handed over to the next run when continuing as new."""
CRYPTO_SHREDDING_PATCH = "crypto-shredding"
"""Erasures from before it neither waited for the journeys to end nor destroyed the data key."""
BATCH_BYTES_PATCH = "event-batches-by-bytes"
"""Runs that formed a batch or a carry-over larger than `MAX_EVENTS_PAYLOAD_BYTES` before it
was bounded replay unchanged."""
CHANNEL_SCOPED_PATCH = "channel-scoped-unsubscribe"
COMPLAINT_EVENT_PATCH = "complaint-event-suppresses"
"""`email_complained` (a provider's spam report) ends journeys like an unsubscribe; before
it, the type was a custom event that only scored."""
"""Runs that made every marketing journey exit on an unsubscribe from one channel replay so."""
TOMBSTONE_PATCH = "erased-contact-tombstone"
"""A run started for an erased contact (its ingest finds the tombstone) erases again and ends;
guarded for safety, though runs before it never saw a tombstone."""
LOCAL_STEPS_PATCH = "ingest-as-local-activity"
"""The ingest and the scoring model run as local activities, inside the workflow task that
asks for them: an event is stored and scored, and its journey started, without a round trip
through the server per step. They still retry until done (past a minute of failures the
SDK waits for each retry on a durable timer), and the ingest is idempotent on its
`batch_key`, which a workflow task run again after a worker crash keeps. Runs from before
it scheduled them as activities."""
EXITS_TOGETHER_PATCH = "exit-signals-together"
"""The journeys told to exit are signalled all at once; runs from before it signalled them one
after the other (a workflow task each, even for a journey that is not running)."""
DERIVED_EVENTS_PATCH = "derived-usage-events"
"""Events the ingest derives (a usage drop or recovery, `rules/usage.py`) are routed like
the others: they trigger and are forwarded, they are not scored. Runs from before it never
had any."""
SCORE_PARTS_PATCH = "fit-and-behavior-search-attributes"
"""The `FitScore` and `BehaviorScore` search attributes are upserted with `LeadScore`; runs
from before it upserted the total and the band only."""
REQUALIFIED_PATCH = "recycling-exits-requalified"
"""A recycled lead re-entering the hand-off band tells `recycling-{id}` to exit with
`requalified`; guarded for safety, though runs before it were never recycled."""
SEGMENTS_PATCH = "segment-membership"
"""After a batch of events or a change of score, the contact's segments are evaluated (a
local activity) and the entering or leaving of a segment a journey follows is routed as
an event (it starts or ends that journey). Runs from before it kept no segments."""
RECYCLING = "recycling"
REQUALIFIED = "requalified"
DERIVED_PURCHASE_PATCH = "derived-purchase-makes-customer"
"""The purchase derived from a won deal makes the contact a customer (`act_purchased`: win-back,
not re-engagement, when it goes quiet) and counts as its activity, as a `purchased` it sent
does. Runs from before it only routed it."""
JOURNEYS_BEFORE_THE_CATALOG = frozenset(
    {"welcome-series", "pricing-abandon", "renewal-countdown", "nurture", "lead-sla"}
)
"""The journeys that existed before journeys were found by file. Any other journey is
known to a run only through the patch `journey-<name>`: a run recorded before that
journey was added replays without starting or signalling it (see `_knows`)."""
DORMANT_AFTER = timedelta(days=30)
"""No contact-initiated event for this long (no event at all, in runs from before
`INACTIVITY_PATCH`): the contact is tagged `eng_dormant_30d` and re-engagement or win-back
starts."""
INACTIVITY_PATCH = "inactivity-timer"
"""Runs from before it counted dormancy from any event (a delivery too), started no journey
at 30 days, sent no `reactivated` exits and kept no sunset; they replay so."""
DORMANT_TAG = "eng_dormant_30d"
CUSTOMER_TAG = "act_purchased"
"""Set on the first `purchased`: the contact is a customer (win-back instead of re-engagement)."""
RE_ENGAGEMENT = "re-engagement"
WIN_BACK = "win-back"
MAX_TAGS = 100
"""Most tags the workflow manages for a contact."""


def _slug(value: object) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", str(value).lower()).strip("-")[:60]


@workflow.defn(name="contact")
class ContactWorkflow:
    """A contact's events, lead score, lifecycle stage, journeys and hand-off."""

    versioning_behavior = VersioningBehavior.AUTO_UPGRADE
    """It never ends: a deploy moves it to the new release (`workflows/versioning.py`)."""

    @workflow.init
    def __init__(self, contact_input: ContactInput) -> None:
        """State from the input (signals that start the workflow arrive before `run`)."""
        self._input = contact_input
        self._contact_id = contact_input.contact_id
        self._pending: deque[BehaviorEvent] = deque()
        self._seen: deque[str] = deque(maxlen=REMEMBERED_EVENT_IDS)
        self._seen_set: set[str] = set()
        self._actions: dict[ActionKey, ScoredAction] = {}
        self._journeys: dict[str, str] = {}
        self._score = 0
        self._fit = 0
        self._behavior = 0
        self._awaiting_key_behavior = False
        self._key_behavior_at: datetime | None = None
        self._recycled_at: datetime | None = None
        self._recycle_unscored = False
        self._band: str | None = None
        self._breakdown: dict[str, int] = {}
        self._tags: set[str] = set()
        self._fit_fields: dict[str, str] = {}
        self._last_event_at: datetime | None = None
        self._accepted = 0
        self._duplicates = 0
        self._contact_exists = False
        self._reachable: frozenset[str] = frozenset()
        self._model: ScoringModel | None = None
        self._model_digest = ""
        self._batches = 0
        self._next_rescore_at: datetime | None = None
        self._last_decay_wake: datetime | None = None
        self._erase: EraseRequest | None = None
        self._erased = False
        self._last_active_at: datetime | None = None
        self._inactivity_handled_for: datetime | None = None
        self._sunset_since: datetime | None = None
        self._retag = False
        self._absorbed: set[str] = set()
        self._merged_into: str | None = None
        self._segments_stale = False
        self._segment_refreshes = 0
        if contact_input.carry is not None:
            self._restore(contact_input.carry)

    # --- signals and query -------------------------------------------------------

    @workflow.signal
    def event(self, event: BehaviorEvent) -> None:
        """One behaviour event of the contact (duplicates by `event_id` are dropped)."""
        if not isinstance(event, BehaviorEvent):  # null: the SDK does not validate it
            workflow.logger.warning("dropped an `event` signal without an event: %r", event)
            return
        self._take(event)

    @workflow.signal
    def events(self, batch: EventBatch) -> None:
        """Several events of the contact, in order."""
        if not isinstance(batch, EventBatch):
            workflow.logger.warning("dropped an `events` signal without a batch: %r", batch)
            return
        for event in batch.events:
            self._take(event)

    @workflow.signal
    def journey_enrolled(self, enrolment: JourneyEnrolment) -> None:
        """A journey started outside this workflow (e.g. `journeys enroll`): forward it events."""
        self._journeys[enrolment.workflow_id] = enrolment.journey

    @workflow.signal
    def forget(self, request: EraseRequest) -> None:
        """Erase the contact: end its journeys, delete its personal data, end this workflow."""
        self._erase = self._erase or request

    @workflow.signal
    def sunset(self, request: SunsetRequest) -> None:
        """Re-engagement got no response: no more marketing until the contact does something.

        Ignored when a contact-initiated event arrived since the journey began. The
        `eng_sunset` tag is written at once; `_reactivate` lifts it.
        """
        if self._last_active_at is not None and self._last_active_at > request.journey_started_at:
            return
        self._sunset_since = self._sunset_since or workflow.now()
        self._retag = True

    @workflow.signal
    async def absorb(self, request: AbsorbRequest) -> None:
        """A contact was merged into this one: its scored actions and tags count here from now
        on (the run loop rescores: CRM, search attributes, hand-off); no journey is triggered.
        A second request for the same loser changes nothing."""
        if request.loser in self._absorbed or self._erase is not None:
            return
        self._absorbed.add(request.loser)
        if self._model is None:
            await self._load_model()
        for action in request.actions:
            add_action(self._scoring_model(), self._actions, action)
        self._tags |= set(request.tags[: max(MAX_TAGS - len(self._tags), 0)])
        self._contact_exists = True  # the merge found the survivor in the CRM
        self._retag = True

    @workflow.signal
    def merged_into(self, notice: MergeNotice) -> None:
        """This contact was merged into another: its journeys exit (`merged`), events not
        processed yet go to the survivor, and the workflow ends."""
        self._merged_into = self._merged_into or notice.survivor

    @workflow.signal
    def recycled(self, notice: RecycleNotice) -> None:
        """The lead was recycled: hold it below the hand-off band until a key behaviour after
        `notice.recycled_at` (the rescore after this signal moves its band and tags)."""
        if self._recycled_at is None or notice.recycled_at > self._recycled_at:
            self._recycled_at = notice.recycled_at
        self._retag = self._recycle_unscored = True

    @workflow.query
    def state(self) -> ContactState:
        """The contact's score (total, fit, behaviour), band, journeys and counters."""
        return ContactState(
            contact_id=self._contact_id,
            score=self._score,
            fit=self._fit,
            behavior=self._behavior,
            awaiting_key_behavior=self._awaiting_key_behavior,
            key_behavior_at=self._key_behavior_at,
            recycled_at=self._recycled_at,
            band=self._band,
            breakdown=self._breakdown,
            journeys=self._journeys,
            events_accepted=self._accepted,
            duplicates_dropped=self._duplicates,
            last_event_at=self._last_event_at,
            next_rescore_at=self._next_rescore_at,
            erased=self._erased,
            last_active_at=self._last_active_at,
            sunset_since=self._sunset_since,
        )

    # --- the run -------------------------------------------------------------------

    @workflow.run
    async def run(self, contact_input: ContactInput) -> ContactState:
        """Process events as they come and rescore when decay is due, until erased."""
        workflow.upsert_search_attributes(
            [search_attributes.CONTACT_ID.value_set(self._contact_id)]
        )
        if contact_input.carry is not None:
            await self._load_model()
            for action in contact_input.carry.actions:
                add_action(self._scoring_model(), self._actions, action)
            await self._rescore()
        self._publish()
        while True:
            timeout = self._until_next_rescore()
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(self._pending)
                        or self._erase is not None
                        or self._cycle_due()
                        or self._retag
                        or self._merged_into is not None
                    ),
                    timeout=timeout,
                    timeout_summary="Rescore: decay or dormancy" if timeout else None,
                )
            except TimeoutError:
                self._last_decay_wake = workflow.now()
            if self._retag:
                await self._ready_to_retag()
            if self._erase is not None:
                return await self._erase_contact(self._erase)
            if self._merged_into is not None:
                return await self._end_merged(self._merged_into)
            if self._recycle_unscored:  # the band falls before the events that came with it
                self._recycle_unscored = False
                await self._rescore()
            while self._pending and self._erase is None and not self._may_continue_as_new():
                await self._process(self._next_batch())
            if self._erase is None:
                await self._rescore()
                await self._refresh_segments()
                await self._start_inactivity_journey()
                if self._may_continue_as_new():
                    workflow.continue_as_new(self._carry_over())

    def _next_batch(self) -> list[BehaviorEvent]:
        """The oldest pending events: at most `MAX_EVENT_BATCH`, and `MAX_EVENTS_PAYLOAD_BYTES`."""
        batch: list[BehaviorEvent] = []
        size = 0
        while self._pending and len(batch) < MAX_EVENT_BATCH:
            size += json_size(self._pending[0])
            if batch and size > MAX_EVENTS_PAYLOAD_BYTES and workflow.patched(BATCH_BYTES_PATCH):
                break
            batch.append(self._pending.popleft())
        return batch

    def _take(self, event: BehaviorEvent) -> None:
        if event.contact_id != self._contact_id:
            workflow.logger.warning("dropped event %s of another contact", event.event_id)
            return
        if event.event_id in self._seen_set:
            self._duplicates += 1
            return
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(event.event_id)
        self._seen_set.add(event.event_id)
        self._pending.append(event)

    async def _process(self, batch: list[BehaviorEvent]) -> None:
        """Store, score, route and forward a batch of events new to this workflow."""
        self._batches += 1
        request = IngestRequest(
            batch_key=f"{workflow.info().run_id}/{self._batches}",
            contact_id=self._contact_id,
            events=batch,
        )
        ingest: IngestResult = await run_step(
            activity_classes.contacts().ingest_events,
            request,
            local=workflow.patched(LOCAL_STEPS_PATCH),
            timeout=UNTIL_DONE_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary=f"Store {len(batch)} event(s)",
        )
        if ingest.contact_erased and workflow.patched(TOMBSTONE_PATCH):
            workflow.logger.warning("contact was erased: events dropped, workflow ends")
            self._pending.clear()
            self._erase = self._erase or EraseRequest()
            return
        self._contact_exists = ingest.contact_exists
        self._reachable = frozenset(ingest.reachable_channels)
        self._fit_fields = ingest.fit_fields
        if ingest.scoring_digest != self._model_digest:
            await self._load_model()
        accepted = set(ingest.accepted_event_ids)
        self._segments_stale = self._segments_stale or bool(accepted)
        self._duplicates += len(batch) - len(accepted)
        for event in batch:
            if event.event_id in accepted:
                self._score_event(event)
                await self._route(event)
        if ingest.derived_events and workflow.patched(DERIVED_EVENTS_PATCH):
            for event in ingest.derived_events:
                if event.type == "purchased" and workflow.patched(DERIVED_PURCHASE_PATCH):
                    self._note_activity(event)  # a won deal: a customer, as a purchase makes
                await self._route(event)

    def _score_event(self, event: BehaviorEvent) -> None:
        model = self._scoring_model()
        self._accepted += 1
        if self._last_event_at is None or event.occurred_at > self._last_event_at:
            self._last_event_at = event.occurred_at
        self._note_activity(event)
        if model.is_key_behavior(event.type) and (
            self._key_behavior_at is None or event.occurred_at > self._key_behavior_at
        ):
            self._key_behavior_at = event.occurred_at
        rule = model.rule_for(event.type, event.properties)
        if rule is not None:
            action = ScoredAction(event_type=event.type, occurred_at=event.occurred_at)
            add_action(model, self._actions, action)
        new_tags = {rule.tag} if rule is not None and rule.tag else set()
        for prefix, keys in (("src_", ("source", "utm_source")), ("int_", ("interest", "topic"))):
            value = next((event.properties[key] for key in keys if event.properties.get(key)), None)
            if value is not None and _slug(value):
                new_tags.add(prefix + _slug(value))
        if len(self._tags) < MAX_TAGS:
            self._tags |= new_tags

    async def _route(self, event: BehaviorEvent) -> None:
        """Suppression exits, trigger rules, then forwarding to the journeys concerned."""
        scope = suppression_scope(event)
        if event.type == COMPLAINED and not workflow.patched(COMPLAINT_EVENT_PATCH):
            scope = None
        if scope is not None:
            if scope.all_channels or not workflow.patched(CHANNEL_SCOPED_PATCH):
                await self._exit_journeys(scope.reason, marketing_only=True)
            else:
                await self._exit_unreachable_journeys(scope.reason)
            return
        if is_contact_initiated(event) and self._timer_patched():
            await self._reactivate()
        started: str | None = None
        trigger = catalog.trigger_for(event)
        if trigger is not None and self._contact_exists and self._knows(trigger.journey):
            journey_input = trigger.input_for(event, self._input.day_seconds)
            if journey_input is not None:
                started = await self._start(trigger.journey, journey_input, f"on {event.type}")
        for workflow_id in self._journey_ids(lambda journey: journey.concerned_by(event.type)):
            if workflow_id != started:
                await self._signal(workflow_id, "event", event)

    async def _start(self, journey: str, journey_input: JourneyInput, why: str) -> str | None:
        """Start a journey by name (left alone if it is running) and remember it.

        Returns:
            Its id if it started now, None if it was running (or done).
        """
        workflow_id = catalog.journey_class(journey).workflow_id_for(journey_input)
        started = self._journeys.get(workflow_id) != journey and await start_journey(
            journey, journey_input, why=why
        )
        self._journeys[workflow_id] = journey
        self._publish()
        return workflow_id if started else None

    def _journey_ids(self, wanted: Callable[[type[Journey]], bool]) -> list[str]:
        """Ids of the contact's journeys whose class `wanted` selects.

        Journeys with the plain id `{journey}-{contact}` are addressed whether
        or not this workflow started them (another journey may have); others
        (a renewal per subscription) when registered.
        """
        journeys = {
            journey.name: journey for journey in catalog.all_journeys() if self._knows(journey.name)
        }
        ids = {
            f"{name}-{self._contact_id}": name
            for name, journey in journeys.items()
            if wanted(journey)
        }
        ids |= {
            workflow_id: name
            for workflow_id, name in self._journeys.items()
            if name in journeys and wanted(journeys[name])
        }
        return sorted(ids)

    @staticmethod
    def _knows(journey: str) -> bool:
        """Whether this run may start or signal `journey`.

        Adding a journey file must not change what a recorded run did when it is
        replayed: a new journey's trigger, or one more journey to tell about an
        unsubscribe, would be commands the history lacks. So a journey added
        after the catalog is known through a patch marker, set the first time a
        run meets it; a run recorded before the journey existed replays without it.
        """
        return journey in JOURNEYS_BEFORE_THE_CATALOG or workflow.patched(f"journey-{journey}")

    async def _signal(self, workflow_id: str, signal: str, arg: object) -> bool:
        """Signal a journey; one that is closed or never existed is forgotten."""
        try:
            await workflow.get_external_workflow_handle(workflow_id).signal(signal, arg)
        except FailureError:
            self._journeys.pop(workflow_id, None)
            return False
        return True

    async def _exit_unreachable_journeys(self, reason: str) -> None:
        """After an opt-out or bounce on one channel: the marketing journeys with nothing left to
        send exit (none of their channels reaches the contact any more); the others go on, and
        the send activity refuses their messages on the suppressed channel."""
        await self._signal_exit(
            self._journey_ids(
                lambda journey: journey.is_marketing() and not journey.channels() & self._reachable
            ),
            reason,
        )

    async def _exit_journeys(self, reason: str, *, marketing_only: bool) -> None:
        await self._signal_exit(
            self._journey_ids(lambda journey: journey.is_marketing() or not marketing_only), reason
        )

    async def _signal_exit(self, workflow_ids: list[str], reason: str) -> None:
        """Signal `exit` to the journeys: all at once (one workflow task), not one by one."""
        request = ExitRequest(reason=reason)
        if workflow.patched(EXITS_TOGETHER_PATCH):
            await asyncio.gather(*(self._signal(wid, "exit", request) for wid in workflow_ids))
            return
        for workflow_id in workflow_ids:
            await self._signal(workflow_id, "exit", request)

    # --- scoring -------------------------------------------------------------------

    async def _load_model(self) -> None:
        self._model = await run_step(
            activity_classes.contacts().scoring_model,
            local=workflow.patched(LOCAL_STEPS_PATCH),
            timeout=UNTIL_DONE_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Load the scoring model",
        )
        self._model_digest = self._model.digest()

    def _scoring_model(self) -> ScoringModel:
        assert self._model is not None, "loaded with the first batch"
        return self._model

    async def _rescore(self) -> None:
        """Score now; publish and act on what changed (CRM, search attributes, hand-off)."""
        if self._model is None:
            return
        model = self._model
        now = workflow.now()
        self._actions = {
            key: action for key, action in self._actions.items() if worth_points(model, action, now)
        }
        result = score(
            model,
            self._actions.values(),
            now,
            contact_fields=self._fit_fields,
            inactive_since=self._inactive_since(),
            qualified=sales_qualified(
                model, key_behavior_at=self._key_behavior_at, recycled_at=self._recycled_at
            ),
        )
        tags = self._managed_tags(model, result, now)
        self._next_rescore_at = self._next_rescore(model, now)
        breakdown = dict(result.by_event_type)
        if result.fit_points:
            breakdown["fit"] = result.fit_points
        if result.inactivity_points and model.inactivity is not None:
            breakdown[model.inactivity.key] = result.inactivity_points
        self._fit, self._behavior = result.fit_points, result.behavior_points
        self._awaiting_key_behavior = result.awaiting_key_behavior
        changed = (result.total, result.band, breakdown) != (
            self._score,
            self._band,
            self._breakdown,
        )
        if not changed and tags == self._tags:
            self._publish()
            return
        previous_band, previous_tags = self._band, self._tags
        self._score, self._band, self._breakdown, self._tags = (
            result.total,
            result.band,
            breakdown,
            tags,
        )
        self._upsert_score(result)
        self._publish()
        if not self._contact_exists:
            return
        self._segments_stale = True
        await workflow.execute_activity_method(
            activity_classes.contacts().update_lead_score,
            LeadScoreUpdate(
                contact_id=self._contact_id,
                score=result.total,
                fit=result.fit_points,
                behavior=result.behavior_points,
                band=result.band,
                breakdown=breakdown,
                tags=sorted(tags),
                removed_tags=sorted(previous_tags - tags),
            ),
            start_to_close_timeout=UNTIL_DONE_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary=f"CRM: score {result.total}, {result.band}",
        )
        if result.band != previous_band:
            await self._hand_off_if_rising(
                model, previous_band, LeadBand(band=result.band, score=result.total)
            )

    @staticmethod
    def _upsert_score(result: ScoreBreakdown) -> None:
        """Publish the score as search attributes: total and band (fit and behaviour too in
        runs with `SCORE_PARTS_PATCH`)."""
        updates: list[SearchAttributeUpdate[Any]] = [
            search_attributes.LEAD_SCORE.value_set(result.total),
            search_attributes.LIFECYCLE_STAGE.value_set(result.band),
        ]
        if workflow.patched(SCORE_PARTS_PATCH):
            updates += [
                search_attributes.FIT_SCORE.value_set(result.fit_points),
                search_attributes.BEHAVIOR_SCORE.value_set(result.behavior_points),
            ]
        workflow.upsert_search_attributes(updates)

    def _managed_tags(self, model: ScoringModel, result: ScoreBreakdown, now: datetime) -> set[str]:
        """Accumulated action/source/interest tags, plus the current stage and engagement."""
        tags = {tag for tag in self._tags if not tag.startswith(("stage_", "eng_"))}
        tags.add(stage_tag(result.band))
        if model.sales_ready(result.band):
            tags.add("eng_high")
        inactive_since = self._inactive_since()
        if inactive_since is not None and now - inactive_since >= DORMANT_AFTER:
            tags.add(DORMANT_TAG)
        if self._sunset_since is not None:
            tags.add(SUNSET_TAG)
        return tags

    def _next_rescore(self, model: ScoringModel, now: datetime) -> datetime | None:
        """The next decay boundary, the moment the inactivity points apply (a profile with
        an `[inactivity]` rule), or the moment the contact turns dormant.

        Wake-ups for decay are at least `RESCORE_GRANULARITY` apart, so hundreds
        of actions decaying minutes apart cost a few wake-ups.
        """
        inactive_since = self._inactive_since()
        changes = (
            next_change(model, self._actions.values(), now),
            next_inactivity_change(model, inactive_since, now),
        )
        candidates = [moment for moment in changes if moment is not None]
        if inactive_since is not None and inactive_since + DORMANT_AFTER > now:
            candidates.append(inactive_since + DORMANT_AFTER)
        if not candidates:
            return None
        if self._last_decay_wake is None:
            return min(candidates)
        return max(min(candidates), self._last_decay_wake + RESCORE_GRANULARITY)

    def _until_next_rescore(self) -> timedelta | None:
        if self._next_rescore_at is None:
            return None
        return max(self._next_rescore_at - workflow.now(), timedelta(seconds=1))

    async def _hand_off_if_rising(
        self, model: ScoringModel, previous: str | None, band: LeadBand
    ) -> None:
        """Entering the hand-off band: start lead-sla, end nurture (and recycling, for a
        recycled lead). Moving up: raise priority."""
        if not model.sales_ready(band.band):
            return
        if previous is not None and model.rank(band.band) <= model.rank(previous):
            return
        if self._recycled_at is not None and workflow.patched(REQUALIFIED_PATCH):
            self._recycled_at = None  # requalified: no longer recycled
            await self._signal(
                f"{RECYCLING}-{self._contact_id}", "exit", ExitRequest(reason=REQUALIFIED)
            )
        if await self._signal(f"lead-sla-{self._contact_id}", "band_changed", band):
            return
        await self._start(
            "lead-sla",
            LeadSlaInput(contact_id=self._contact_id, band=band),
            f"{band.band}, score {band.score}",
        )
        if previous is None or not model.sales_ready(previous):
            await self._signal(
                f"nurture-{self._contact_id}",
                "exit",
                ExitRequest(reason="handed-to-sales"),
            )

    # --- segments ------------------------------------------------------------------------

    async def _refresh_segments(self) -> None:
        """After new events or a new score: evaluate the contact's segments, and route the
        events of the followed segments it entered or left (see `SEGMENTS_PATCH`)."""
        if not self._segments_stale or not self._contact_exists:
            return
        self._segments_stale = False
        if not workflow.patched(SEGMENTS_PATCH):
            return
        self._segment_refreshes += 1
        refresh = SegmentRefresh(
            contact_id=self._contact_id,
            refresh_key=f"{workflow.info().run_id}/segments/{self._segment_refreshes}",
            at=workflow.now(),
        )
        events = await workflow.execute_local_activity_method(
            activity_classes.segments().refresh_segments,
            refresh,
            start_to_close_timeout=UNTIL_DONE_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Evaluate the contact's segments",
        )
        for event in events:
            await self._route(event)

    # --- inactivity: re-engagement, win-back, sunset -----------------------------------

    @staticmethod
    def _timer_patched() -> bool:
        """Whether this run keeps the inactivity timer (see `INACTIVITY_PATCH`)."""
        return workflow.patched(INACTIVITY_PATCH)

    def _note_activity(self, event: BehaviorEvent) -> None:
        """Move the inactivity timer's start: a contact-initiated event resets it; the first
        event of all starts it. A purchase makes the contact a customer (`act_purchased`)."""
        if self._last_active_at is None or (
            is_contact_initiated(event) and event.occurred_at > self._last_active_at
        ):
            self._last_active_at = event.occurred_at
        if event.type == "purchased" and self._timer_patched() and len(self._tags) < MAX_TAGS:
            self._tags.add(CUSTOMER_TAG)

    async def _ready_to_retag(self) -> None:
        """Make the rescore write the tags a signal changed (a sunset), also for a contact
        whose workflow has ingested no event yet (one enrolled directly, as in the demo)."""
        self._retag = False
        if self._model is None:
            await self._load_model()
            self._contact_exists = True  # a journey ran for it; the CRM skips a missing one

    def _inactive_since(self) -> datetime | None:
        """Where dormancy counts from: the last contact-initiated event (any event, before
        `INACTIVITY_PATCH`)."""
        return self._last_active_at if self._timer_patched() else self._last_event_at

    def _is_customer(self) -> bool:
        """A contact who bought (`act_purchased`) or whom the CRM stages as a customer."""
        return any(tag == CUSTOMER_TAG or tag.startswith("stage_customer") for tag in self._tags)

    async def _start_inactivity_journey(self) -> None:
        """At `DORMANT_AFTER` without a contact-initiated event, once per inactive period:
        win-back for a customer, re-engagement for anyone else, if marketing email reaches
        them (consent, address, no suppression, as the last ingest found). Not for a
        recycled lead: the recycling journey is its long-cycle sequence."""
        since = self._last_active_at
        if since is None or since == self._inactivity_handled_for or not self._contact_exists:
            return
        if workflow.now() - since < DORMANT_AFTER or not self._timer_patched():
            return
        self._inactivity_handled_for = since
        journey = WIN_BACK if self._is_customer() else RE_ENGAGEMENT
        if self._recycled_at is not None:
            return
        if "email" not in self._reachable or not self._knows(journey):
            return
        journey_input = JourneyInput(
            contact_id=self._contact_id, day_seconds=self._input.day_seconds
        )
        # A run of an earlier inactive period may still be registered: start it again.
        self._journeys.pop(catalog.journey_class(journey).workflow_id_for(journey_input), None)
        await self._start(journey, journey_input, f"inactive since {since:%Y-%m-%d}")

    async def _reactivate(self) -> None:
        """The contact did something: lift a sunset, and end the running journeys that
        declare `exit_on_activity` with their reason (re-engagement: `reactivated`)."""
        if self._sunset_since is not None:
            self._sunset_since = None  # the tag goes with the rescore after this batch
        exits: dict[str, list[str]] = {}
        for workflow_id, name in sorted(self._journeys.items()):  # the registered ones only
            reason = self._activity_exit(name)
            if reason is not None:
                exits.setdefault(reason, []).append(workflow_id)
        for reason, workflow_ids in exits.items():
            await self._signal_exit(workflow_ids, reason)
            for workflow_id in workflow_ids:  # it ends now: no need to tell it again
                self._journeys.pop(workflow_id, None)

    def _activity_exit(self, journey: str) -> str | None:
        """The reason `journey` ends with on any contact-initiated event, if it declares one."""
        if journey not in catalog.journey_names():
            return None
        reason = catalog.journey_class(journey).exit_on_activity
        return reason if reason and self._knows(journey) else None

    # --- erasure and continue-as-new -------------------------------------------------

    async def _erase_contact(self, request: EraseRequest) -> ContactState:
        await self._exit_journeys(request.reason, marketing_only=False)
        shred = workflow.patched(CRYPTO_SHREDDING_PATCH)
        if shred:
            await workflow.execute_activity_method(
                activity_classes.contacts().end_contact_workflows,
                ContactWorkflows(
                    contact_id=self._contact_id, workflow_ids=self._journey_ids(lambda _: True)
                ),
                start_to_close_timeout=UNTIL_DONE_TIMEOUT,
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=UNTIL_DONE_RETRY_POLICY,
                summary="End the contact's journeys",
            )
        await workflow.execute_activity_method(
            activity_classes.contacts().erase_contact,
            self._contact_id,
            start_to_close_timeout=UNTIL_DONE_TIMEOUT,
            retry_policy=UNTIL_DONE_RETRY_POLICY,
            summary="Erase the contact's personal data",
        )
        if shred:  # last: its result (None) is the last payload the workflow reads
            await workflow.execute_activity_method(
                activity_classes.contacts().shred_contact_key,
                self._contact_id,
                start_to_close_timeout=UNTIL_DONE_TIMEOUT,
                retry_policy=UNTIL_DONE_RETRY_POLICY,
                summary="Destroy the contact's data key (its histories become unreadable)",
            )
        self._pending.clear()
        self._actions, self._tags, self._fit_fields, self._breakdown = {}, set(), {}, {}
        self._erased = True
        self._publish()
        return self.state()

    async def _end_merged(self, survivor: str) -> ContactState:
        """Merged into `survivor`: every journey exits with `merged`; events not processed
        yet are handed to the survivor's workflow (its own id on them)."""
        await self._exit_journeys(MERGED_REASON, marketing_only=False)
        if self._pending:
            events = [e.model_copy(update={"contact_id": survivor}) for e in self._pending]
            self._pending.clear()
            for start in range(0, len(events), MAX_EVENT_BATCH):
                batch = EventBatch(events=events[start : start + MAX_EVENT_BATCH])
                await self._signal(f"contact-{survivor}", "events", batch)
        workflow.logger.info("contact merged into another: journeys ended, workflow ends")
        return self.state()

    def _may_continue_as_new(self) -> bool:
        """Due, and few enough events waiting to carry them over (else process some first)."""
        if not self._cycle_due() or len(self._pending) > CARRIED_EVENTS:
            return False
        carried = sum(map(json_size, self._pending))
        return carried <= MAX_EVENTS_PAYLOAD_BYTES or not workflow.patched(BATCH_BYTES_PATCH)

    def _cycle_due(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._input.history_limit
        )

    def _carry_over(self) -> ContactInput:
        return self._input.model_copy(
            update={
                "carry": ContactCarryOver(
                    seen_event_ids=list(self._seen),
                    actions=list(self._actions.values()),
                    pending=list(self._pending),
                    journeys=self._journeys,
                    score=self._score,
                    band=self._band,
                    breakdown=self._breakdown,
                    fit=self._fit,
                    behavior=self._behavior,
                    tags=sorted(self._tags),
                    fit_fields=self._fit_fields,
                    last_event_at=self._last_event_at,
                    events_accepted=self._accepted,
                    duplicates_dropped=self._duplicates,
                    last_active_at=self._last_active_at,
                    inactivity_handled_for=self._inactivity_handled_for,
                    sunset_since=self._sunset_since,
                    key_behavior_at=self._key_behavior_at,
                    recycled_at=self._recycled_at,
                )
            }
        )

    def _restore(self, carry: ContactCarryOver) -> None:
        for event_id in carry.seen_event_ids:
            self._seen.append(event_id)
        self._seen_set = set(self._seen)
        self._pending.extend(carry.pending)
        self._journeys = dict(carry.journeys)
        self._score, self._band = carry.score, carry.band
        self._breakdown, self._fit, self._behavior = (
            dict(carry.breakdown),
            carry.fit,
            carry.behavior,
        )
        self._tags = set(carry.tags)
        self._fit_fields = dict(carry.fit_fields)
        self._last_event_at = carry.last_event_at
        self._accepted, self._duplicates = carry.events_accepted, carry.duplicates_dropped
        self._last_active_at = (
            carry.last_active_at
            if "last_active_at" in carry.model_fields_set
            else carry.last_event_at
        )
        self._inactivity_handled_for = carry.inactivity_handled_for
        self._sunset_since = carry.sunset_since
        self._key_behavior_at, self._recycled_at = carry.key_behavior_at, carry.recycled_at

    def _publish(self) -> None:
        """Current details for the Temporal UI: score, breakdown, journeys, next rescore."""
        band = self._band or "unscored"
        lines = [
            f"**Contact** `{self._contact_id}` · score **{self._score}** "
            f"(fit {self._fit}, behaviour {self._behavior}) · {band}",
            f"Events: {self._accepted} accepted, {self._duplicates} duplicates dropped",
        ]
        if self._awaiting_key_behavior:
            lines.append("Held below the hand-off band until a key behaviour")
        if self._recycled_at is not None:
            lines.append(f"Recycled {self._recycled_at:%Y-%m-%d %H:%M} UTC")
        if self._breakdown:
            parts = ", ".join(f"{kind} {points}" for kind, points in self._breakdown.items())
            lines.append(f"Breakdown: {parts}")
        if self._next_rescore_at is not None:
            lines.append(f"Next rescore (decay): {self._next_rescore_at:%Y-%m-%d %H:%M:%S} UTC")
        if self._journeys:
            lines += ["", "Journeys:"] + [f"- `{wid}`" for wid in sorted(self._journeys)]
        if self._erased:
            lines.append("**Erased**: personal data deleted, journeys ended.")
        workflow.set_current_details("\n".join(lines))
