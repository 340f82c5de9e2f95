"""`Journey`: the base class of every journey workflow, composed of the toolkit's parts.

A journey subclasses `Journey`, declares its `plan` (the steps an operator
sees, with the channel of those that send a message) and `exit_on` (event
types that end it at any step), and writes its `steps()` as the marketer's
plan::

    await self.send("day0")
    await self.wait_until_day(1)
    await self.send("day1")

The toolkit provides the rest: the `event`, `exit`, `pause`, `resume` and
`skip_wait` signals, the `state` query, search attributes and current details
for the Temporal UI (`progress`), idempotency keys, the journey clock
(`clock`), the inbox of events (`inbox`), sending with deferrals (`sending`),
the arms of its experiments (`experiments`), the run log (`run_log`), the
re-entry window (`reentry`) and continue-as-new (`carry_over`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar, NoReturn

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ApplicationError

from workflows.toolkit import carry_over, progress, reentry, run_log
from workflows.toolkit.clock import JourneyClock
from workflows.toolkit.experiments import Arms
from workflows.toolkit.inbox import Inbox
from workflows.toolkit.plan import PlanStep, find_step, journey_time
from workflows.toolkit.sending import Sender
from workflows.versioning import DEFAULT_BEHAVIOR

with workflow.unsafe.imports_passed_through():
    from pydantic import JsonValue

    from models.events import SEGMENT_LEFT, BehaviorEvent
    from models.experiments import HOLDOUT, Experiment, HoldoutLevel
    from models.journeys import (
        ContactMemo,
        ExitRequest,
        JourneyInput,
        JourneyRunRecord,
        JourneyState,
        JourneyStatus,
    )
    from models.messages import Channel, DeliveryStatus, MessageCategory, SendRequest, SendResult

if TYPE_CHECKING:
    from workflows.triggers import Trigger


class _DerivedTemplates:
    """`Journey.templates`: every (template, channel) of the journey's `message_steps()`,
    with each experiment arm's variant (`day0@b`)."""

    def __get__(self, instance: object, owner: type[Journey]) -> frozenset[tuple[str, Channel]]:
        return frozenset(
            (template, step.channel or Channel.EMAIL)
            for step in owner.message_steps()
            for template in owner.step_templates(step)
        )


def _plan_error(message: str) -> ApplicationError:
    """The failure of a run whose code names a step its plan lacks (not retried)."""
    return ApplicationError(message, type="PlanError", non_retryable=True)


def _held_out(idempotency_key: str) -> SendResult:
    """The outcome of an experiment's message for a contact in its holdout: not sent."""
    return SendResult(
        status=DeliveryStatus.HELD_OUT,
        idempotency_key=idempotency_key,
        reason="held out of the experiment",
    )


class _Exited(Exception):
    """Unwinds a journey's steps when it must exit."""


class Journey:
    """Base class of every journey workflow (see the module docstring)."""

    name: ClassVar[str]
    """Journey type and workflow type, e.g. `welcome-series`."""
    title: ClassVar[str]
    """Human name, e.g. `Welcome series`."""
    plan: ClassVar[tuple[PlanStep, ...]]
    """The steps, in order, shown in the UI and the `state` query."""
    templates = _DerivedTemplates()
    """Every (template, channel) the journey may send, derived from `message_steps()`;
    the worker refuses to start when one of them is missing from `templates/`."""
    category: ClassVar[MessageCategory]
    """What the journey's messages are, declared by every journey: `MARKETING`
    (consent, quiet hours, caps; the journey exits at once on `unsubscribed`, a
    spam complaint, a hard bounce or an erasure) or `TRANSACTIONAL` (service messages: no marketing
    consent needed, not capped, never to a hard-bounced, suppressed-for-all or
    erased address; the journey goes on after an unsubscribe)."""
    exit_on: ClassVar[frozenset[str]] = frozenset()
    """Event types that end the journey at once, whatever step it is in (besides
    `unsubscribed`, which ends every marketing journey)."""
    listens_to: ClassVar[frozenset[str]] = frozenset()
    """Other event types the journey acts on; the contact workflow forwards it
    these and the `exit_on` ones (and no others)."""
    segment_exit: ClassVar[str | None] = None
    """A segment (`segments.toml`) whose leaving ends the journey at once, at any step,
    with the reason `segment_left`; the contact workflow forwards the journey that
    segment's `segment_left` events. Usually the segment of `Trigger.on_segment`."""
    exit_on_activity: ClassVar[str | None] = None
    """The reason the journey ends with, at any step, when the contact does anything
    (any contact-initiated event, `models.events.is_contact_initiated`), e.g.
    `reactivated`; the contact workflow signals it. None: activity does not end it."""
    reentry_days: ClassVar[float | None] = None
    """None: a contact goes through the journey once. A number: the journey may
    run again for the contact, but at most once per that many days; the
    workflow stays open for the window so a new trigger inside it does not
    restart the journey (0: again as soon as it has ended)."""
    versioning_behavior: ClassVar[VersioningBehavior] = DEFAULT_BEHAVIOR
    """How a deploy meets the journey's runs when the workers are versioned
    (`WORKER_BUILD_ID`): `PINNED` (the default), they finish on the release they started
    on; `AUTO_UPGRADE`, they move to the new release at their next task, and every change
    to the journey needs `workflow.patched`. A journey whose runs may last longer than
    `MAX_PINNED_DAYS` declares `AUTO_UPGRADE` (see `workflows/versioning.py`)."""
    experiments: ClassVar[tuple[Experiment, ...]] = ()
    """The journey's A/B tests (`models/experiments.py`): `split` assigns a contact's arm,
    and a plan step naming one sends its arm's template."""
    input_model: ClassVar[type[JourneyInput]] = JourneyInput
    """The journey's input model (a subclass of `JourneyInput` for extra fields): its
    fields are the enrolment options of the CLI (`--option`) and the gateway."""
    trigger: ClassVar[Trigger | None] = None
    """The event that starts the journey, if one does (see `workflows/triggers.py`)."""
    started_by: ClassVar[str] = ""
    """How else the journey starts, for people (e.g. `the welcome series, below MQL`);
    listed with the trigger by `journeys catalog` and the README's journey table."""
    exit_reasons: ClassVar[tuple[tuple[str, str], ...]] = ()
    """The reasons the journey ends early besides its exit events, each with when, e.g.
    `("converted", "started checkout or bought")`. A literal `self.leave("…")` reason
    must be declared here or be an exit event (the worker refuses to start otherwise);
    reasons signalled from outside (e.g. `handed-to-sales` by the contact workflow)
    belong here too."""

    # --- what the journey declares ---------------------------------------------------

    @classmethod
    def workflow_id_for(cls, journey_input: JourneyInput) -> str:
        """Workflow id of this journey for an input: `{journey}-{contact_id}`."""
        return f"{cls.name}-{journey_input.contact_id}"

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Refuse a journey that does not say whether it is marketing or transactional,
        or that lists its templates apart from its plan."""
        super().__init_subclass__(**kwargs)
        if "templates" in cls.__dict__:
            raise TypeError(
                f"journey {cls.__name__} lists its templates: give the plan steps that "
                "send a channel (and a template if not `{journey}/{step}`) instead"
            )
        if not isinstance(getattr(cls, "category", None), MessageCategory):
            raise TypeError(
                f"journey {cls.__name__} must declare its category: "
                "MessageCategory.MARKETING or MessageCategory.TRANSACTIONAL"
            )

    @classmethod
    def exit_events(cls) -> frozenset[str]:
        """Event types that end the journey: `exit_on`, `unsubscribed` for marketing, and
        `segment_left` for one with a `segment_exit`."""
        marketing = frozenset({"unsubscribed"}) if cls.is_marketing() else frozenset()
        segment = frozenset({SEGMENT_LEFT}) if cls.segment_exit else frozenset()
        return cls.exit_on | marketing | segment

    @classmethod
    def concerned_by(cls, event_type: str) -> bool:
        """Whether the journey acts on events of this type (`exit_events` or `listens_to`)."""
        return event_type in cls.exit_events() or event_type in cls.listens_to

    @classmethod
    def declared_steps(cls) -> tuple[PlanStep, ...]:
        """Every step the journey may take, for the checks made before it runs: `plan`.

        Journeys whose plan is computed per input (`journey_plan`) override it
        to return every step they may take.
        """
        return cls.plan

    @classmethod
    def message_steps(cls) -> tuple[PlanStep, ...]:
        """The declared steps that send a message, each with its template named."""
        return tuple(step.resolved(cls.name) for step in cls.declared_steps() if step.channel)

    @classmethod
    def declared_experiment(cls, name: str) -> Experiment | None:
        """The experiment `name` of `experiments`, naming this journey; None if undeclared."""
        declared = next((e for e in cls.experiments if e.name == name), None)
        return None if declared is None else replace(declared, journey=cls.name)

    @classmethod
    def entry_holdouts(cls) -> tuple[Experiment, ...]:
        """The experiments whose holdout keeps contacts out of the journey (journey-level)."""
        return tuple(
            replace(declared, journey=cls.name)
            for declared in cls.experiments
            if declared.holdout_level == HoldoutLevel.JOURNEY and declared.holdout_percent
        )

    @classmethod
    def step_templates(cls, step: PlanStep) -> tuple[str, ...]:
        """The templates a message step (with its template named) may send: its own, and
        `{template}@{arm}` for each arm but control of the experiment it names."""
        template = step.template or ""
        declared = cls.declared_experiment(step.experiment) if step.experiment else None
        if declared is None:
            return (template,)
        return tuple(
            dict.fromkeys(declared.variant_template(template, arm) for arm in declared.arms)
        )

    @classmethod
    def channels(cls) -> frozenset[str]:
        """The channels the journey sends on (from `message_steps`)."""
        return frozenset(str(step.channel) for step in cls.message_steps())

    @classmethod
    def is_marketing(cls) -> bool:
        """Whether the journey's category is marketing (it exits on an unsubscribe)."""
        return cls.category == MessageCategory.MARKETING

    def __init__(self, journey_input: JourneyInput | None = None) -> None:
        """Start with an empty state; `run_journey` fills it from the input.

        Args:
            journey_input: The input, for journeys whose `@workflow.init` needs it
                before `run` (signal handlers that read it).
        """
        self._input = journey_input or JourneyInput(contact_id="unknown")
        self._contact_id = ""
        self._day = timedelta(days=1)
        self._clock = JourneyClock()
        self._inbox = Inbox()
        self._sender = Sender()
        self._arms = Arms()
        self._step = "enrolled"
        self._status = JourneyStatus.RUNNING
        self._exit_reason: str | None = None
        self._next: PlanStep | None = None
        self._next_wake_at: datetime | None = None
        self._results: dict[str, SendResult] = {}
        self._actions: dict[str, datetime] = {}
        self._window_released = False
        self._waiting = False
        self._skip_wait = False
        self._log_runs = False

    # --- what a journey reads ---------------------------------------------------

    @property
    def contact_id(self) -> str:
        """The contact the journey runs for."""
        return self._contact_id

    @property
    def journey_input(self) -> JourneyInput:
        """The journey's input; a journey whose input changes while it runs (a moved
        renewal date) sets it, and a run that continues as new starts with it."""
        return self._input

    @journey_input.setter
    def journey_input(self, journey_input: JourneyInput) -> None:
        self._input = journey_input

    @property
    def day(self) -> timedelta:
        """One journey day (the input's `day_seconds`)."""
        return self._day

    @property
    def enrolled_at(self) -> datetime:
        """When the contact was enrolled (the first run's start)."""
        return self._clock.enrolled_at

    @property
    def elapsed(self) -> timedelta:
        """Journey time since enrolment (the journey clock: pauses and skipped waits count)."""
        return self._clock.elapsed(workflow.now())

    @property
    def events(self) -> tuple[BehaviorEvent, ...]:
        """The events the journey received (the newest `REMEMBERED_EVENTS`), oldest first."""
        return self._inbox.events

    def received(self, event_types: Collection[str]) -> BehaviorEvent | None:
        """The first event of one of `event_types` the journey has received, if any."""
        return self._inbox.received(event_types)

    def done(self, step: str) -> bool:
        """Whether `step` is done: its message was attempted, or it ran with `run_once`."""
        return step in self._results or step in self._actions

    def idempotency_key(self, step: str) -> str:
        """`{workflow_id}/{step}`: the key a side effect of `step` is idempotent on."""
        prefix = reentry.key_prefix(
            workflow.info().workflow_id,
            reentry=self.reentry_days is not None,
            enrolled_at=self._clock.enrolled_at,
        )
        return f"{prefix}/{step}"

    def journey_plan(self) -> tuple[PlanStep, ...]:
        """The plan of this run (shown in the UI, named by `wait_until_day`): `plan`.

        Journeys whose steps depend on the input override it (renewal-countdown:
        days before a renewal date that may move).
        """
        return self.plan

    def ends_journey(self, event: BehaviorEvent) -> bool:
        """Whether `event` ends the journey at once: its type is in `exit_events()` (for
        `segment_left`, leaving the journey's `segment_exit`).

        Journeys override it to look at the properties too (renewal-countdown:
        `renewed` for another subscription of the contact does not end it).
        """
        if event.type == SEGMENT_LEFT:
            return event.properties.get("segment") == self.segment_exit
        return event.type in self.exit_events()

    # --- what a journey writes -------------------------------------------------

    async def steps(self) -> None:
        """The journey itself; subclasses implement it with the helpers below."""
        raise NotImplementedError

    async def send(
        self,
        step: str,
        *,
        quiet_hours_exempt: bool = False,
        unless: Collection[str] = (),
        variables: Mapping[str, JsonValue] | None = None,
    ) -> SendResult:
        """Send the message of plan step `step` (once, even across retries).

        The send activity applies the messaging policy right before delivery.
        When it defers the message (quiet hours, frequency cap), the journey
        waits durably until the time it names and asks again. Waits while the
        journey is paused; exits instead if an exit arrived. An `unless` event
        received before the message goes out (also while it is deferred) calls
        it off: a purchase at 23:00 stops the 08:00 "still thinking?" nudge.

        Args:
            step: Id of a plan step with a channel: its template and channel
                are sent; with the workflow id it forms the idempotency key
                `{workflow_id}/{step}`.
            quiet_hours_exempt: Send even in the contact's quiet hours.
            unless: Event types that call the message off (see above).
            variables: Template variables besides the contact's fields (e.g. the
                cart an abandoned-cart reminder shows); rendered as text.

        Returns:
            What happened: sent, suppressed, skipped (and why) or failed; or,
            `cancelled` when an `unless` event called it off.

        Raises:
            ApplicationError: (non-retryable, `PlanError`) the plan has no step
                `step`, or it sends no message.
        """
        planned = self._message_step(step)
        recorded = self._results.get(step)
        if recorded is not None:  # sent before this run continued as new
            return recorded
        await self._checkpoint()
        self._enter_step(step)
        template = await self._template_of(planned)
        if template is None:
            return self._record_result(step, _held_out(self.idempotency_key(step)))
        request = SendRequest(
            idempotency_key=self.idempotency_key(step),
            contact_id=self._contact_id,
            journey=self.name,
            step=step,
            template=template,
            channel=planned.channel or Channel.EMAIL,
            category=self.category,
            quiet_hours_exempt=quiet_hours_exempt,
            day_seconds=self._input.day_seconds,
            clock_origin=self._clock.origin,
            variables=dict(variables or {}),
        )
        result = await self._sender.deliver(
            request, called_off=lambda: self.received(unless), wait_until=self._wait_until_time
        )
        return self._record_result(step, result)

    async def split(self, experiment: str) -> str:
        """The contact's arm in `experiment` (declared in `experiments`): control, another
        arm, or `holdout`.

        Assigned once from the contact id and the experiment's name (the same on
        replay and on re-entry), recorded as the contact's exposure, and kept for
        the rest of the journey, also across continue-as-new. After the
        experiment is stopped, a new entrant gets the winner, or control.

        Raises:
            ApplicationError: (non-retryable, `PlanError`) the journey declares no
                experiment `experiment`.
        """
        declared = self.declared_experiment(experiment)
        if declared is None:
            known = ", ".join(e.name for e in self.experiments) or "none"
            raise _plan_error(
                f"journey {self.name} splits on experiment {experiment!r}, which it does not "
                f"declare (declared: {known})"
            )
        arm = await self._arms.assign(declared, contact_id=self._contact_id)
        self.publish_progress()
        return arm

    @property
    def arms(self) -> Mapping[str, str]:
        """The contact's arm in each experiment split so far in this journey."""
        return dict(self._arms.arms)

    async def run_once(self, step: str, action: Callable[[], Awaitable[object]]) -> bool:
        """Run a side effect other than a message (a CRM task, an escalation…) for `step`, once.

        Like a send, the step is recorded and carried over when the journey
        continues as new: replaying `steps()` in a new run, or coming back to
        the step after a change of plan, does not run it again. The action must
        still be idempotent on `idempotency_key(step)` (activity retries).
        Waits while paused; exits instead if an exit arrived.

        Args:
            step: Step id from the plan.
            action: Starts the side effect, e.g. `lambda: workflow.execute_activity_method(…)`.

        Returns:
            True if the action ran now, False if the step was done before.
        """
        if step in self._actions:
            return False
        await self._checkpoint()
        self._enter_step(step)
        await action()
        self._actions[step] = workflow.now()
        self.publish_progress()
        return True

    async def wait_until_day(self, day: float, *, until: Callable[[], bool] | None = None) -> bool:
        """Wait until Day `day` of the journey (counted from enrolment).

        Args:
            day: Journey day, counted from enrolment.
            until: Ends the wait early when it holds (checked whenever the
                journey receives a signal), e.g. a renewal date that moved.

        Returns:
            True when `until` holds at the end of the wait (it ended it early,
            or held when the day came).
        """
        step = next((s for s in self.journey_plan() if s.day == day and not self.done(s.id)), None)
        await self._wait_until(self._day * day, step, until=until or (lambda: False))
        return until is not None and until()

    async def wait(
        self,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        label: str = "",
        key: str | None = None,
    ) -> None:
        """Wait a duration of journey time, as written: `wait(minutes=30)`, `wait(days=2)`.

        Its deadline is kept when the journey continues as new: the new run
        replays `steps()`, and this wait ends when it was due instead of
        starting again. The deadline is found by the wait's key (`key`, else
        `label`, else the duration) and how many waits of that key came before
        in `steps()`.

        Args:
            days: Journey days (scaled by `day_seconds`), added to the rest.
            hours: Journey hours.
            minutes: Journey minutes.
            label: The timer's summary, e.g. `Wait 30 min`.
            key: Names the wait's deadline across runs; give one when the label
                may change while journeys wait.
        """
        duration = journey_time(self._day, days, hours, minutes)
        summary = label or f"Wait {duration}"
        await self._wait_until(self._deadline(key or summary, duration), None, summary=summary)

    async def wait_for(
        self,
        event_types: Collection[str],
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        until_day: float | None = None,
        until_step: str | None = None,
        label: str = "",
        next_step: str | None = None,
        key: str | None = None,
    ) -> BehaviorEvent | None:
        """Wait up to a duration of journey time (or until a step's time) for one of `event_types`.

        An event that arrived before the wait began also counts: every event
        the journey received since it started is considered, so a checkout that
        happened while the journey was busy (or already waiting) is not missed.

        Args:
            event_types: The event types that end the wait.
            days: Duration, in journey days (added to `hours` and `minutes`).
            hours: Duration, in journey hours.
            minutes: Duration, in journey minutes.
            until_day: Wait until this Day of the journey instead of for a
                duration (counted from enrolment, like `wait_until_day`).
            until_step: Wait until the time of this plan step (its `day` plus
                its `after`) instead; it is also the `next_step`.
            label: The timer's summary, e.g. `Wait 30 min for checkout`.
            next_step: Id of the plan step that follows if the time runs out;
                the UI and the `state` query show it as next.
            key: Names a duration's deadline across continue-as-new (see `wait`).

        Returns:
            The first matching event received, or None when the time ran out.

        Raises:
            ApplicationError: (non-retryable, `PlanError`) `until_step` is not in the plan.
        """
        types = frozenset(event_types)
        summary = label or f"Wait for {' or '.join(sorted(types))}"
        next_step = next_step or until_step
        if until_step is not None:
            offset = self._plan_step(until_step).offset(self._day)
        elif until_day is not None:
            offset = self._day * until_day
        else:
            offset = self._deadline(key or summary, journey_time(self._day, days, hours, minutes))
        await self._wait_until(
            offset,
            find_step(self.journey_plan(), next_step),
            summary=summary,
            until=lambda: self.received(types) is not None,
        )
        return self.received(types)

    def leave(self, reason: str) -> NoReturn:
        """End the journey now from its own steps (e.g. `converted`), recording why."""
        self._exit_reason = reason
        raise _Exited

    def publish_progress(self) -> None:
        """Show the journey's progress in the Temporal UI (current details)."""
        details = progress.render_details(
            title=self.title,
            contact_id=self._contact_id,
            status=self.state().status,
            step=self._step,
            exit_reason=self._exit_reason,
            next_step=self._next,
            next_wake_at=self._next_wake_at,
            plan=self.journey_plan(),
            results=self._results,
            actions=self._actions,
            arms=self._arms.arms,
        )
        workflow.set_current_details(details)

    def carry_over_input(self) -> JourneyInput:
        """The input of the next run when continuing as new: `journey_input` with the progress.

        Journeys whose input changes while they run (e.g. a moved renewal date)
        keep `journey_input` up to date, so the new run starts with it.
        """
        carried = carry_over.carry_over(
            self._clock, self._inbox, self._results, self._actions, self._arms.arms
        )
        return self._input.model_copy(update={"carry": carried})

    # --- signals and queries every journey has --------------------------------

    @workflow.signal
    def event(self, event: BehaviorEvent) -> None:
        """A behaviour event of the contact; duplicates (same `event_id`) are ignored."""
        if self._inbox.add(event) and self.ends_journey(event):
            self._request_exit(event.type)

    @workflow.signal
    def exit(self, request: ExitRequest) -> None:
        """End the journey now, recording `request.reason` (also ends a re-entry window)."""
        self._request_exit(request.reason)
        self._window_released = True

    @workflow.signal
    def pause(self) -> None:
        """Stop the journey clock: nothing is sent until `resume`."""
        if self._exit_reason is None and self._clock.pause(workflow.now()):
            self.publish_progress()

    @workflow.signal
    def resume(self) -> None:
        """Restart the journey clock; waits are extended by the time paused."""
        if self._clock.resume(workflow.now()):
            self.publish_progress()

    @workflow.signal
    def skip_wait(self) -> None:
        """Fire the current wait now (staging, support): the journey clock jumps
        forward by what was left of it, so later days keep their spacing."""
        if self._waiting:
            self._skip_wait = True

    @workflow.query
    def state(self) -> JourneyState:
        """Where the journey is: step, status, next wake-up, messages sent."""
        status = self._status
        if status == JourneyStatus.RUNNING and self._clock.paused:
            status = JourneyStatus.PAUSED
        return JourneyState(
            journey=self.name,
            contact_id=self._contact_id,
            step=self._step,
            status=status,
            enrolled_at=self._clock.enrolled_at,
            next_wake_at=self._next_wake_at,
            next_step=self._next.id if self._next else None,
            messages_sent=sum(r.status == DeliveryStatus.SENT for r in self._results.values()),
            steps_done=list(self._results),
            actions_done=list(self._actions),
            exit_reason=self._exit_reason,
            arms=dict(self._arms.arms),
        )

    # --- the run ---------------------------------------------------------------

    async def run_journey(self, journey_input: JourneyInput) -> JourneyState:
        """Run `steps()` for the contact; the `@workflow.run` of every journey calls this.

        Returns:
            The final state: completed, or exited with the reason.
        """
        self._input = journey_input
        self._contact_id = journey_input.contact_id
        self._day = timedelta(seconds=journey_input.day_seconds)
        self._clock.start(workflow.now())
        self._arms.restore(journey_input.arms)
        if journey_input.carry is not None:
            self._restore(journey_input)
        workflow.upsert_search_attributes(
            progress.identity_attributes(self._contact_id, self.name, self._step)
        )
        self.publish_progress()
        self._log_runs = workflow.patched(run_log.RUN_LOG_PATCH)
        if journey_input.carry is None:
            memo = await self._record_run()
            if memo is not None:
                workflow.upsert_memo({"contact": memo.model_dump(mode="json")})
        try:
            await self._checkpoint()
            await self.steps()
            self._status = JourneyStatus.COMPLETED
        except _Exited:
            self._status = JourneyStatus.EXITED
            workflow.logger.info("journey exited: %s", self._exit_reason)
            await self._sender.cancel_deferred(f"journey exited: {self._exit_reason}")
        self._next, self._next_wake_at = None, None
        self.publish_progress()
        await self._record_run()
        await self._hold_reentry_window()
        return self.state()

    def _restore(self, journey_input: JourneyInput) -> None:
        """Carry on from the previous run's progress (`journey_input.carry`)."""
        assert journey_input.carry is not None
        carry_over.restore(journey_input.carry, self._clock, self._inbox)
        self._results = dict(journey_input.carry.results)
        self._actions = dict(journey_input.carry.actions)
        self._arms.restore(journey_input.carry.arms)
        if self._results:
            self._step = list(self._results)[-1]

    async def _record_run(self) -> ContactMemo | None:
        """Write the run's status to the journey-run log (what `journeys report` counts);
        returns the contact's non-sensitive attributes, for the memo."""
        if not self._log_runs:
            return None
        info = workflow.info()
        state = self.state()
        return await run_log.record_run(
            JourneyRunRecord(
                run_key=f"{info.workflow_id}/{info.first_execution_run_id}",
                workflow_id=info.workflow_id,
                journey=self.name,
                contact_id=self._contact_id,
                status=state.status,
                step=state.step,
                exit_reason=state.exit_reason,
                messages_sent=state.messages_sent,
                at=workflow.now(),
            )
        )

    async def _hold_reentry_window(self) -> None:
        """Stay open until the re-entry window ends, so a new trigger cannot restart it.

        An `exit` signal (an erasure, an operator) ends the window at once.
        """
        days = self._input.reentry_days or self.reentry_days
        if days is None:
            return
        remaining = self._day * days - self.elapsed
        if remaining > timedelta(0):
            self._next_wake_at = workflow.now() + remaining
            self.publish_progress()
            await reentry.hold_window(remaining, days=days, released=lambda: self._window_released)
            self._next_wake_at = None

    # --- steps, waits and exits -------------------------------------------------

    def _message_step(self, step: str) -> PlanStep:
        """The plan step `step`, which sends a message, with its template named."""
        planned = find_step(self.journey_plan(), step)
        if planned is None or planned.channel is None:
            problem = "is not in its plan" if planned is None else "has no channel in its plan"
            raise _plan_error(f"journey {self.name} sends step {step!r}, which {problem}")
        return planned.resolved(self.name)

    async def _template_of(self, planned: PlanStep) -> str | None:
        """The template a message step sends: its own, or its experiment arm's variant;
        None for a contact held out of the message."""
        template = planned.template or ""
        if planned.experiment is None:
            return template
        arm = await self.split(planned.experiment)
        declared = self.declared_experiment(planned.experiment)
        assert declared is not None  # split refuses an undeclared experiment
        return None if arm == HOLDOUT else declared.variant_template(template, arm)

    def _record_result(self, step: str, result: SendResult) -> SendResult:
        """Remember a step's outcome (carried over; shown in the UI)."""
        self._results[step] = result
        self.publish_progress()
        return result

    def _plan_step(self, step: str) -> PlanStep:
        """The plan step `step` (of `journey_plan()`).

        Raises:
            ApplicationError: (non-retryable, `PlanError`) the plan has no step `step`.
        """
        planned = find_step(self.journey_plan(), step)
        if planned is None:
            raise _plan_error(
                f"journey {self.name} waits for step {step!r}, which is not in its plan"
            )
        return planned

    def _deadline(self, key: str, duration: timedelta) -> timedelta:
        """The deadline of a relative wait (kept across continue-as-new: `JourneyClock`)."""
        return self._clock.deadline(key, duration, workflow.now())

    async def _wait_until_time(self, at: datetime, summary: str, until: Callable[[], bool]) -> None:
        """Wait until `at` (a deferral's time), pausable, or until `until()` holds."""
        await self._wait_until(
            self.elapsed + (at - workflow.now()), None, summary=summary, until=until
        )

    async def _wait_until(
        self,
        offset: timedelta,
        step: PlanStep | None,
        *,
        summary: str = "",
        until: Callable[[], bool] = lambda: False,
    ) -> None:
        """Wait until `offset` on the journey clock, or until `until()` holds.

        Pausing extends the wait; an exit ends it at once; a long history
        continues the journey as new (the new run comes back to this wait).
        """
        self._next = step
        summary = summary or (step.label if step else "")
        while not until():
            await self._checkpoint()
            await self._continue_as_new_if_due()
            remaining = offset - self.elapsed
            if remaining <= timedelta(0):
                break
            self._next_wake_at = workflow.now() + remaining
            self.publish_progress()
            self._waiting = True
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._exit_reason is not None
                        or self._clock.paused
                        or until()
                        or self._continue_as_new_due()
                        or self._skip_wait
                    ),
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                break
            finally:
                self._waiting = False
            if self._skip_wait:
                self._skip_wait = False
                self._clock.skip_to(offset, workflow.now())
                workflow.logger.info("wait skipped: %s", summary)
                break
        self._next_wake_at = None
        await self._checkpoint()

    def _continue_as_new_due(self) -> bool:
        """Due when the server suggests it or the history reached the input's `history_limit`.

        Waits also end when it becomes due (events signalled during a long
        wait grow the history), so a journey waiting for months stays bounded.
        """
        return carry_over.continue_as_new_due(self._input.history_limit)

    async def _continue_as_new_if_due(self) -> None:
        """Continue as new when the history is long (journeys that wait for months)."""
        if self._continue_as_new_due():
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(self.carry_over_input())

    async def _checkpoint(self) -> None:
        """Hold while paused; unwind if an exit was requested."""
        if self._clock.paused:
            await workflow.wait_condition(
                lambda: not self._clock.paused or self._exit_reason is not None
            )
        if self._exit_reason is not None:
            raise _Exited

    def _request_exit(self, reason: str) -> None:
        if self._exit_reason is None and self._status == JourneyStatus.RUNNING:
            self._exit_reason = reason

    def _enter_step(self, step: str) -> None:
        self._step = step
        self._next = None
        workflow.upsert_search_attributes(progress.step_attribute(step))
