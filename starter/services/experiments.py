"""Experiment results and decisions (`journeys experiments`, `GET /v1/experiments`).

Sources: `experiment_exposures` (a contact's arm, once, with when), `message_log`
(the experiment's message step), the `events` table (opens, clicks and the goal
event) and `experiment_decisions` (the stop: who, when, the winner).

Per arm (every declared arm in order, the first is control; then `holdout` when the
experiment holds some out), counted as of `now`:

- `exposed`: contacts recorded in the arm (exposed at or before `now`);
- `sent`: exposed contacts of the arm with a `sent` message-log row for the message step
  (distinct contacts: a re-entry's second message counts once);
- `opened` / `clicked`: exposed contacts of the arm with an `email_opened` /
  `email_clicked` event whose `journey` and `step` are the message's;
- `closed` / `pending`: exposed contacts whose conversion window has closed
  (`exposed_at + window <= now`) / is still open;
- `converted`: contacts whose window closed with a goal event in
  `[exposed_at, exposed_at + window]` (with `goal.on_message`, only goal events whose
  `journey` and `step` are the message's); `converted_pending`: contacts whose window is
  still open and who converted already.

**Rates count closed windows only.** `rate = converted / closed`, with its 95% Wilson
interval. A contact exposed yesterday in a 14-day test has had one day to convert:
counting it as "not converted" would drag every rate down while the test runs and
shrink the intervals with contacts that have not been measured yet. Pending contacts
are reported beside the rate (`pending`, `converted_pending`) so a marketer sees the
counts are still moving, and the minimum sample counts closed windows only.

Comparisons: each non-control arm against control (the difference of rates with
Newcombe's interval, and the pooled two-proportion test); with a holdout, the
incremental effect: every declared arm pooled (they all got the journey, or the
message with a step-level holdout) against the holdout.

The verdict (`Verdict`), in this order: nobody measured yet → no winner; a
sample-ratio mismatch (chi-square of the exposures per arm, holdout included, against
the declared shares, flagged at p < 0.001) → no winner, the split is broken; an arm
below the minimum sample (`minimum_sample_size(baseline, effect)` contacts with a
closed window) → no winner yet; no arm significantly better than control → no winner;
otherwise the best of the significantly better arms. With several non-control arms the
significance level is Bonferroni-corrected: each comparison needs p < 0.05 / (arms − 1),
so the chance of any false winner stays at 5%. The holdout's own size does not hold
back a winner between the arms; a warning says when it is too small to measure the
incremental effect.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import JSON, ColumnElement, Select, and_, distinct, false, func, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from models.db import session_factory
from models.experiments import HOLDOUT, Experiment, ExperimentStatus
from models.messages import DeliveryStatus
from models.tables import ContactEvent, ExperimentDecision, ExperimentExposure, MessageLog
from rules import experiment_stats
from starter.services.operations import Conflict, InvalidRequest
from starter.services.report import CLICKED, OPENED, html_page

CONFIDENCE = 0.95
"""Of every interval in the report."""
SIGNIFICANCE = 0.05
"""Two-sided; split between the non-control arms (Bonferroni)."""
SAMPLE_RATIO_THRESHOLD = 0.001
"""A sample-ratio mismatch is flagged below this p-value (a strict level: a healthy
split flags once in a thousand reports)."""


class UnknownArm(InvalidRequest):
    """A winner that is not one of the experiment's declared arms."""


class AlreadyStopped(Conflict):
    """The experiment was stopped before (there is no restart)."""


class VerdictCode(StrEnum):
    """Why the report declares a winner or not."""

    NO_DATA = "no_data"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    COLLECTING = "collecting"
    NO_DIFFERENCE = "no_difference"
    WINNER = "winner"


class Estimate(BaseModel):
    """A rate and its 95% Wilson interval.

    Attributes:
        value: The rate (0.1 is 10%).
        low: The interval's lower bound.
        high: The interval's upper bound.
    """

    value: float
    low: float
    high: float


class Comparison(BaseModel):
    """A rate against a reference rate.

    Attributes:
        against: The reference: control's arm, or `holdout`.
        difference: This rate minus the reference's (0.07 is 7 points).
        low: Newcombe's 95% interval of the difference, lower bound.
        high: Its upper bound.
        p_value: The two-sided pooled two-proportion test of "no difference".
        significant: `p_value` is below the level this comparison is held to.
    """

    against: str
    difference: float
    low: float
    high: float
    p_value: float
    significant: bool


class ArmReport(BaseModel):
    """One arm's figures (see the module docstring for each count).

    Attributes:
        arm: The arm's name, or `holdout`.
        control: The control arm (the first declared).
        share: The declared share of exposures, in percent.
        exposed: Contacts exposed in the arm.
        sent: Of them, sent the message.
        opened: Of them, opened the message.
        clicked: Of them, clicked in the message.
        closed: Of them, contacts whose conversion window has closed.
        pending: Of them, contacts whose window is still open.
        converted: Contacts with a closed window who converted within it.
        converted_pending: Contacts with an open window who converted already.
        rate: `converted / closed` with its interval; none before a window closed.
        versus_control: The difference to control (non-control arms with data).
    """

    arm: str
    control: bool = False
    share: float
    exposed: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    closed: int = 0
    pending: int = 0
    converted: int = 0
    converted_pending: int = 0
    rate: Estimate | None = None
    versus_control: Comparison | None = None


class SampleRatio(BaseModel):
    """The sample-ratio check: exposures per arm against the declared shares.

    Attributes:
        chi_square: Pearson's statistic.
        p_value: Its p-value.
        mismatch: `p_value` < `SAMPLE_RATIO_THRESHOLD`: the split is broken.
    """

    chi_square: float
    p_value: float
    mismatch: bool


class Verdict(BaseModel):
    """Whether the data names a winner, and why (or why not).

    Attributes:
        code: The rule that decided.
        winner: The winning arm; none unless `code` is `winner`.
        reason: The same, for people.
    """

    code: VerdictCode
    winner: str | None = None
    reason: str


class Decision(BaseModel):
    """How an experiment was stopped (its audit row).

    Attributes:
        winner: The arm every new entrant gets; none: control.
        decided_by: Who stopped it (`cli:<user>`, `api:<key name>`).
        decided_at: When.
        note: Why, in their words.
    """

    winner: str | None
    decided_by: str
    decided_at: datetime
    note: str | None = None


class GoalView(BaseModel):
    """The goal an experiment is judged on.

    Attributes:
        event: The goal event type.
        window: How long after the exposure a goal event counts.
        on_message: Only goal events about the experiment's message count.
    """

    event: str
    window: timedelta
    on_message: bool


class ExperimentReport(BaseModel):
    """An experiment's results as of `as_of`.

    Attributes:
        experiment: Its name.
        title: What is tested.
        journey: The journey that declares it.
        message_step: The plan step that is its message; none if no step names it.
        goal: What conversion means.
        status: Running, or stopped.
        decision: How it was stopped (none while running).
        as_of: The moment counted up to.
        baseline_rate: The control rate assumed for the minimum sample.
        minimum_detectable_effect: The smallest difference worth detecting.
        minimum_sample: Contacts with a closed window each arm needs.
        significance: The p-value an arm's comparison to control must be below.
        arms: The declared arms in order, then the holdout.
        incremental_effect: Declared arms pooled against the holdout (with a holdout).
        sample_ratio: The split check (none before any exposure).
        warnings: What makes the figures not (yet) conclusive.
        verdict: The winner, or why there is none.
    """

    experiment: str
    title: str
    journey: str
    message_step: str | None
    goal: GoalView
    status: ExperimentStatus
    decision: Decision | None = None
    as_of: datetime
    baseline_rate: float
    minimum_detectable_effect: float
    minimum_sample: int
    significance: float
    arms: list[ArmReport]
    incremental_effect: Comparison | None = None
    sample_ratio: SampleRatio | None = None
    warnings: list[str] = Field(default_factory=list)
    verdict: Verdict


class ExperimentSummary(BaseModel):
    """One line of the experiments overview.

    Attributes:
        experiment: Its name.
        title: What is tested.
        journey: The journey that declares it.
        status: Running, or stopped.
        decision: How it was stopped.
        exposed: Contacts exposed, holdout included.
        headline: The comparison that matters most, in one line.
        verdict: The winner, or why there is none.
    """

    experiment: str
    title: str
    journey: str
    status: ExperimentStatus
    decision: Decision | None = None
    exposed: int
    headline: str
    verdict: Verdict


async def experiment_report(
    engine: AsyncEngine,
    experiment: Experiment,
    *,
    now: datetime,
    baseline_rate: float | None = None,
    minimum_detectable_effect: float | None = None,
) -> ExperimentReport:
    """Count an experiment's arms as of `now` and judge them (see the module docstring).

    Args:
        engine: The journeys database.
        experiment: The declared experiment (with its `journey`).
        now: The moment counted up to: later exposures, messages and events are left out.
        baseline_rate: The control rate for the minimum sample (default: the declaration's).
        minimum_detectable_effect: The smallest difference worth detecting (default:
            the declaration's).

    Raises:
        InvalidRequest: the baseline rate and effect do not give a minimum sample
            (a rate outside (0, 1), or a baseline + effect of 1 or more).
    """
    baseline = experiment.baseline_rate if baseline_rate is None else baseline_rate
    effect = (
        experiment.minimum_detectable_effect
        if minimum_detectable_effect is None
        else minimum_detectable_effect
    )
    minimum = minimum_sample(baseline, effect)
    step = message_step(experiment)
    arms = await _count_arms(engine, experiment, step, now)
    significance = SIGNIFICANCE / (len(experiment.arms) - 1)
    _compare_to_control(arms, significance)
    sample_ratio = _sample_ratio(arms)
    incremental = _incremental_effect(arms)
    decision = await _decision(engine, experiment.name)
    return ExperimentReport(
        experiment=experiment.name,
        title=experiment.title,
        journey=experiment.journey,
        message_step=step,
        goal=GoalView(
            event=experiment.goal.event,
            window=_window(experiment),
            on_message=experiment.goal.on_message,
        ),
        status=ExperimentStatus.RUNNING if decision is None else ExperimentStatus.STOPPED,
        decision=decision,
        as_of=now,
        baseline_rate=baseline,
        minimum_detectable_effect=effect,
        minimum_sample=minimum,
        significance=significance,
        arms=arms,
        incremental_effect=incremental,
        sample_ratio=sample_ratio,
        warnings=_warnings(arms, sample_ratio, minimum, _window(experiment)),
        verdict=_verdict(arms, sample_ratio, minimum, significance),
    )


def minimum_sample(baseline_rate: float, minimum_detectable_effect: float) -> int:
    """Contacts per arm to detect the effect over the baseline (80% power, 5% two-sided).

    Raises:
        InvalidRequest: a rate outside (0, 1), or baseline + effect not below 1.
    """
    if not 0 < minimum_detectable_effect < 1:
        raise InvalidRequest(
            f"minimum detectable effect {minimum_detectable_effect} is not in (0, 1): "
            "give an absolute difference of rates, e.g. 0.03 for 3 points"
        )
    try:
        return experiment_stats.minimum_sample_size(baseline_rate, minimum_detectable_effect)
    except ValueError:
        raise InvalidRequest(
            f"baseline rate {baseline_rate} and minimum detectable effect "
            f"{minimum_detectable_effect}: the baseline must be in (0, 1) and baseline + "
            "effect below 1"
        ) from None


def message_step(experiment: Experiment) -> str | None:
    """The id of the plan step that is the experiment's message, if its journey names one."""
    from workflows import catalog  # the journey's file loads for its plan

    if experiment.journey not in catalog.journey_names():
        return None
    steps = catalog.journey_class(experiment.journey).declared_steps()
    return next((step.id for step in steps if step.experiment == experiment.name), None)


def _window(experiment: Experiment) -> timedelta:
    window = experiment.goal.window
    assert window is not None  # a Goal refuses a missing window
    return window


def _shares(experiment: Experiment) -> dict[str, float]:
    """Each arm's declared share of exposures in percent, then the holdout's (if any)."""
    treated = 100 - experiment.holdout_percent
    total = sum(experiment.arms.values())
    shares = {arm: treated * weight / total for arm, weight in experiment.arms.items()}
    return shares | ({HOLDOUT: experiment.holdout_percent} if experiment.holdout_percent else {})


async def _count_arms(
    engine: AsyncEngine, experiment: Experiment, step: str | None, now: datetime
) -> list[ArmReport]:
    """Every arm's counts and rate (see the module docstring)."""
    arms = {
        arm: ArmReport(arm=arm, control=arm == experiment.control, share=share)
        for arm, share in _shares(experiment).items()
    }
    window = _window(experiment)
    async with engine.connect() as connection:
        exposures = (await connection.execute(_first_goals(experiment, step, now))).all()
        messages = (
            []
            if step is None
            else (await connection.execute(_sent_counts(experiment, step, now))).all()
        )
        engagement = (
            []
            if step is None
            else (await connection.execute(_engagement_counts(experiment, step, now))).all()
        )
    for arm, exposed_at, first_goal in exposures:
        counted = arms.get(arm)
        if counted is None:  # an arm no longer declared: not part of this report
            continue
        counted.exposed += 1
        converted = first_goal is not None and first_goal <= exposed_at + window
        if exposed_at + window <= now:
            counted.closed += 1
            counted.converted += converted
        else:
            counted.pending += 1
            counted.converted_pending += converted
    for arm, contacts in messages:
        if arm in arms:
            arms[arm].sent = contacts
    for event_type, arm, contacts in engagement:
        if arm in arms:
            setattr(arms[arm], "opened" if event_type == OPENED else "clicked", contacts)
    for counted in arms.values():
        if counted.closed:
            interval = experiment_stats.wilson_interval(
                counted.converted, counted.closed, confidence=CONFIDENCE
            )
            counted.rate = Estimate(
                value=counted.converted / counted.closed, low=interval.low, high=interval.high
            )
    return list(arms.values())


def _exposures_of(experiment: Experiment, now: datetime) -> ColumnElement[bool]:
    """The experiment's exposures recorded up to `now`."""
    return and_(
        col(ExperimentExposure.experiment) == experiment.name,
        col(ExperimentExposure.exposed_at) <= now,
    )


def _about_message(experiment: Experiment, step: str | None) -> ColumnElement[bool]:
    """An event whose `journey` and `step` properties are the experiment's message's."""
    if step is None:
        return false()
    about = type_coerce(col(ContactEvent.properties), JSON)
    return and_(
        about["journey"].as_string() == experiment.journey, about["step"].as_string() == step
    )


def _first_goals(
    experiment: Experiment, step: str | None, now: datetime
) -> Select[str, datetime, datetime | None]:
    """Per exposure: its arm, when, and the contact's first goal event since then (up to
    `now`). The first one decides: if it is outside the window, so are the later ones."""
    goal = [
        col(ContactEvent.contact_id) == col(ExperimentExposure.contact_id),
        col(ContactEvent.type) == experiment.goal.event,
        col(ContactEvent.occurred_at) >= col(ExperimentExposure.exposed_at),
        col(ContactEvent.occurred_at) <= now,
    ]
    if experiment.goal.on_message:
        goal.append(_about_message(experiment, step))
    return (
        select(
            col(ExperimentExposure.arm),
            col(ExperimentExposure.exposed_at),
            func.min(col(ContactEvent.occurred_at)),
        )
        .outerjoin(ContactEvent, and_(*goal))
        .where(_exposures_of(experiment, now))
        .group_by(
            col(ExperimentExposure.id),
            col(ExperimentExposure.arm),
            col(ExperimentExposure.exposed_at),
        )
    )


def _sent_counts(experiment: Experiment, step: str, now: datetime) -> Select[str, int]:
    """Per arm: exposed contacts with a `sent` message-log row for the message step."""
    return (
        select(col(ExperimentExposure.arm), func.count(distinct(col(MessageLog.contact_id))))
        .join(MessageLog, col(MessageLog.contact_id) == col(ExperimentExposure.contact_id))
        .where(
            _exposures_of(experiment, now),
            col(MessageLog.journey) == experiment.journey,
            col(MessageLog.step) == step,
            col(MessageLog.status) == DeliveryStatus.SENT,
            col(MessageLog.created_at) <= now,
        )
        .group_by(col(ExperimentExposure.arm))
    )


def _engagement_counts(experiment: Experiment, step: str, now: datetime) -> Select[str, str, int]:
    """Per email event type (opened, clicked) and arm: exposed contacts with such an
    event about the message."""
    return (
        select(
            col(ContactEvent.type),
            col(ExperimentExposure.arm),
            func.count(distinct(col(ContactEvent.contact_id))),
        )
        .join(ContactEvent, col(ContactEvent.contact_id) == col(ExperimentExposure.contact_id))
        .where(
            _exposures_of(experiment, now),
            col(ContactEvent.type).in_((OPENED, CLICKED)),
            _about_message(experiment, step),
            col(ContactEvent.occurred_at) <= now,
        )
        .group_by(col(ContactEvent.type), col(ExperimentExposure.arm))
    )


def _compare(arm: ArmReport, reference: ArmReport, level: float) -> Comparison | None:
    """`arm`'s rate against `reference`'s; none unless both have a closed window."""
    if not arm.closed or not reference.closed:
        return None
    counts = (arm.converted, arm.closed, reference.converted, reference.closed)
    interval = experiment_stats.difference_interval(*counts, confidence=CONFIDENCE)
    test = experiment_stats.two_proportion_test(*counts)
    return Comparison(
        against=reference.arm,
        difference=arm.converted / arm.closed - reference.converted / reference.closed,
        low=interval.low,
        high=interval.high,
        p_value=test.p_value,
        significant=test.p_value < level,
    )


def _compare_to_control(arms: list[ArmReport], level: float) -> None:
    """Set each non-control declared arm's comparison to control."""
    control = next(arm for arm in arms if arm.control)
    for arm in _declared(arms):
        if not arm.control:
            arm.versus_control = _compare(arm, control, level)


def _declared(arms: list[ArmReport]) -> list[ArmReport]:
    return [arm for arm in arms if arm.arm != HOLDOUT]


def _incremental_effect(arms: list[ArmReport]) -> Comparison | None:
    """Every declared arm pooled against the holdout; none without a holdout."""
    holdout = next((arm for arm in arms if arm.arm == HOLDOUT), None)
    if holdout is None:
        return None
    declared = _declared(arms)
    pooled = ArmReport(
        arm="treated",
        share=sum(arm.share for arm in declared),
        closed=sum(arm.closed for arm in declared),
        converted=sum(arm.converted for arm in declared),
    )
    return _compare(pooled, holdout, SIGNIFICANCE)


def _sample_ratio(arms: list[ArmReport]) -> SampleRatio | None:
    """Pearson's chi-square of the exposures per arm (holdout included) against the shares."""
    if not any(arm.exposed for arm in arms):
        return None
    test = experiment_stats.sample_ratio_mismatch(
        [arm.exposed for arm in arms], [arm.share for arm in arms]
    )
    return SampleRatio(
        chi_square=test.statistic,
        p_value=test.p_value,
        mismatch=test.p_value < SAMPLE_RATIO_THRESHOLD,
    )


async def _decision(engine: AsyncEngine, experiment: str) -> Decision | None:
    """The experiment's stop (its audit row), if it was stopped."""
    columns = (
        col(ExperimentDecision.winner),
        col(ExperimentDecision.decided_by),
        col(ExperimentDecision.decided_at),
        col(ExperimentDecision.note),
    )
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(*columns).where(col(ExperimentDecision.experiment) == experiment)
            )
        ).first()
    if row is None:
        return None
    winner, decided_by, decided_at, note = row
    return Decision(winner=winner, decided_by=decided_by, decided_at=decided_at, note=note)


def _warnings(
    arms: list[ArmReport], sample_ratio: SampleRatio | None, minimum: int, window: timedelta
) -> list[str]:
    """What makes the figures not (yet) conclusive, one sentence each."""
    warnings = (
        [] if sample_ratio is None or not sample_ratio.mismatch else [_mismatch(sample_ratio)]
    )
    short = [arm for arm in arms if arm.closed < minimum]
    if short:
        counts = ", ".join(f"{arm.arm} {arm.closed}" for arm in short)
        warnings.append(
            f"below the minimum sample of {minimum} contacts per arm whose {_days(window)} "
            f"window has closed: {counts}"
        )
    pending = sum(arm.pending for arm in arms)
    if pending:
        converted = sum(arm.converted_pending for arm in arms)
        warnings.append(
            f"{pending} exposed contacts are still inside their {_days(window)} window "
            f"({converted} converted so far): they are not in the rates yet, the counts will move"
        )
    return warnings


def _mismatch(sample_ratio: SampleRatio) -> str:
    return (
        "sample-ratio mismatch: the exposures per arm do not match the declared split "
        f"(chi-square {sample_ratio.chi_square:.1f}, p = {_p(sample_ratio.p_value)} < "
        f"{SAMPLE_RATIO_THRESHOLD}); the assignment or the exposure records are broken, "
        "so the results cannot be trusted: find the cause before reading them"
    )


def _verdict(
    arms: list[ArmReport], sample_ratio: SampleRatio | None, minimum: int, level: float
) -> Verdict:
    """The winner, or the first rule that holds one back (see the module docstring)."""
    declared = _declared(arms)
    control = declared[0]
    if sample_ratio is None or not any(arm.closed for arm in declared):
        return Verdict(
            code=VerdictCode.NO_DATA,
            reason="no winner: no exposed contact's conversion window has closed yet",
        )
    if sample_ratio.mismatch:
        return Verdict(
            code=VerdictCode.SAMPLE_RATIO_MISMATCH,
            reason="no winner: the split is broken (sample-ratio mismatch, "
            f"p = {_p(sample_ratio.p_value)})",
        )
    short = [arm.arm for arm in declared if arm.closed < minimum]
    if short:
        return Verdict(
            code=VerdictCode.COLLECTING,
            reason=f"no winner yet: arm(s) {', '.join(short)} have fewer than the minimum "
            f"sample of {minimum} contacts with a closed window",
        )
    better = [
        arm
        for arm in declared
        if arm.versus_control is not None
        and arm.versus_control.significant
        and arm.versus_control.difference > 0
    ]
    if not better:
        return Verdict(
            code=VerdictCode.NO_DIFFERENCE,
            reason=f"no winner: no arm converts significantly better than control "
            f"{control.arm} (p < {_p(level)} needed){_worse(declared, control)}",
        )
    best = max(better, key=lambda arm: arm.converted / arm.closed)
    assert best.versus_control is not None
    return Verdict(
        code=VerdictCode.WINNER,
        winner=best.arm,
        reason=f"{best.arm} wins: {_comparison_text(best.versus_control)} (p < {_p(level)} needed)",
    )


def _worse(declared: list[ArmReport], control: ArmReport) -> str:
    """`; b converts significantly worse: keep control a` when an arm does."""
    worse = [
        arm.arm
        for arm in declared
        if arm.versus_control is not None
        and arm.versus_control.significant
        and arm.versus_control.difference < 0
    ]
    if not worse:
        return ""
    return f"; {', '.join(worse)} converts significantly worse: keep control {control.arm}"


def _comparison_text(comparison: Comparison) -> str:
    """`+7.0 points vs a [+0.3, +13.8], p = 0.041`."""
    return (
        f"{comparison.difference * 100:+.1f} points vs {comparison.against} "
        f"[{comparison.low * 100:+.1f}, {comparison.high * 100:+.1f}], "
        f"p = {_p(comparison.p_value)}"
    )


def _p(value: float) -> str:
    """A p-value with three significant digits: `0.0405`, `1.22e-05`."""
    return f"{value:.3g}"


def _days(window: timedelta) -> str:
    """`14-day`; a window under a day as `H:MM:SS`."""
    days = window / timedelta(days=1)
    return f"{days:g}-day" if days >= 1 else f"{window}"


async def stop_experiment(
    engine: AsyncEngine,
    name: str,
    *,
    winner: str | None,
    decided_by: str,
    note: str | None = None,
    now: datetime,
) -> Decision:
    """Stop an experiment: from `now` on every new entrant gets `winner` (None: control).

    Writes the decision row (the audit: who, when, the winner); contacts already
    exposed keep their arm.

    Args:
        engine: The journeys database.
        name: The experiment's name.
        winner: A declared arm (not `holdout`), or None for control.
        decided_by: Who stops it, e.g. `cli:ada` or `api:dashboard`.
        note: Why, in their words.
        now: When.

    Raises:
        UnknownExperiment: no journey declares `name` (`workflows.catalog`).
        UnknownArm: `winner` is not a declared arm.
        AlreadyStopped: it was stopped before (the message says by whom and when).
    """
    from workflows import catalog

    experiment = catalog.experiment(name)
    if winner is not None and winner not in experiment.arms:
        raise UnknownArm(
            f"{winner!r} is not an arm of experiment {name!r}; the winner is one of "
            f"{', '.join(experiment.arms)} (or none, for control {experiment.control!r})"
        )
    decided = Decision(winner=winner, decided_by=decided_by, decided_at=now, note=note)
    try:
        async with session_factory(engine)() as session:
            session.add(ExperimentDecision(experiment=name, **decided.model_dump()))
            await session.commit()
    except IntegrityError:  # a decision row exists: stopped before (or just now, by another)
        earlier = await _decision(engine, name)
        assert earlier is not None
        raise AlreadyStopped(
            f"experiment {name!r} was already stopped by {earlier.decided_by} at "
            f"{earlier.decided_at:%Y-%m-%d %H:%M:%S} UTC "
            f"(winner: {earlier.winner or 'control'}); an experiment stops once"
        ) from None
    return decided


async def experiments_overview(engine: AsyncEngine, *, now: datetime) -> list[ExperimentSummary]:
    """Every declared experiment (by name): its journey, status, exposures and headline."""
    from workflows import catalog

    declared = catalog.experiments()
    return [
        _summary(await experiment_report(engine, declared[name], now=now))
        for name in sorted(declared)
    ]


def _summary(report: ExperimentReport) -> ExperimentSummary:
    return ExperimentSummary(
        experiment=report.experiment,
        title=report.title,
        journey=report.journey,
        status=report.status,
        decision=report.decision,
        exposed=sum(arm.exposed for arm in report.arms),
        headline=_headline(report),
        verdict=report.verdict,
    )


def _headline(report: ExperimentReport) -> str:
    """The best non-control arm against control, e.g. `b +7.0 points vs a [+0.3, +13.8], p =
    0.041`; before that, what is missing."""
    compared = [arm for arm in report.arms if arm.versus_control is not None]
    if not compared:
        return "nothing to compare yet"
    best = max(compared, key=lambda arm: arm.converted / arm.closed)
    assert best.versus_control is not None
    return f"{best.arm} {_comparison_text(best.versus_control)}"


class ExperimentFormat(StrEnum):
    """Output formats of `journeys experiments`."""

    TABLE = "table"
    JSON = "json"
    HTML = "html"


_COLUMNS = ("share", "exposed", "sent", "opened", "clicked", "closed", "pending", "converted")
"""The count columns of the table and HTML outputs, after the arm."""


def _rate_text(arm: ArmReport) -> str:
    """`10.0% [6.6%, 14.9%]`, or `-` before a window closed."""
    if arm.rate is None:
        return "-"
    return f"{arm.rate.value:.1%} [{arm.rate.low:.1%}, {arm.rate.high:.1%}]"


def _cells(arm: ArmReport) -> list[str]:
    """An arm's row of the table: name, counts, rate, comparison to control."""
    name = f"{arm.arm} (control)" if arm.control else arm.arm
    counts = [f"{arm.share:g}%", *(str(getattr(arm, column)) for column in _COLUMNS[1:])]
    versus = "-" if arm.versus_control is None else _comparison_text(arm.versus_control)
    return [name, *counts, _rate_text(arm), versus]


def _header_lines(report: ExperimentReport) -> list[str]:
    """What is tested, how it is judged, and where it stands."""
    message = f", message {report.message_step}" if report.message_step else ""
    on_message = " about the message" if report.goal.on_message else ""
    lines = [
        f"{report.experiment} ({report.journey}{message})"
        + (f": {report.title}" if report.title else ""),
        f"goal: {report.goal.event}{on_message} in the {_days(report.goal.window)} window "
        f"from the exposure; counted as of {report.as_of:%Y-%m-%d %H:%M} UTC",
        f"status: {_status_text(report)}",
        f"minimum sample: {report.minimum_sample} contacts per arm with a closed window "
        f"(baseline {report.baseline_rate:.1%}, minimum detectable effect "
        f"{report.minimum_detectable_effect * 100:+.1f} points, 80% power); an arm wins at "
        f"p < {_p(report.significance)}",
    ]
    return lines


def _status_text(report: ExperimentReport) -> str:
    decision = report.decision
    if decision is None:
        return "running"
    winner = decision.winner or f"none: control {report.arms[0].arm}"
    note = f" ({decision.note})" if decision.note else ""
    return (
        f"stopped by {decision.decided_by} at {decision.decided_at:%Y-%m-%d %H:%M} UTC, "
        f"winner {winner}{note}"
    )


def _footer_lines(report: ExperimentReport) -> list[str]:
    """The incremental effect, the split check, the warnings and the verdict."""
    lines = []
    if report.incremental_effect is not None:
        lines.append(
            "incremental effect (declared arms pooled vs holdout): "
            f"{_comparison_text(report.incremental_effect)}"
        )
    if report.sample_ratio is not None:
        check = "MISMATCH" if report.sample_ratio.mismatch else "ok"
        lines.append(
            f"sample ratio: chi-square {report.sample_ratio.chi_square:.2f}, "
            f"p = {_p(report.sample_ratio.p_value)} ({check}; flagged below "
            f"{SAMPLE_RATIO_THRESHOLD})"
        )
    lines += [f"warning: {warning}" for warning in report.warnings]
    return [*lines, f"verdict: {report.verdict.reason}"]


def render_table(report: ExperimentReport) -> str:
    """One experiment's report as aligned plain text for a terminal."""
    rows = [["arm", *_COLUMNS, "rate [95% interval]", "vs control"]]
    rows += [_cells(arm) for arm in report.arms]
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    table = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(cell.rjust(width) for cell, width in zip(row[1:-2], widths[1:-2], strict=True)),
                row[-2].ljust(widths[-2]),
                row[-1],
            ]
        ).rstrip()
        for row in rows
    ]
    return "\n".join([*_header_lines(report), "", *table, "", *_footer_lines(report)])


def render_overview_table(summaries: Sequence[ExperimentSummary]) -> str:
    """The experiments overview as aligned plain text."""
    if not summaries:
        return "no experiment is declared (a journey declares them in its `experiments`)"
    rows = [["experiment", "journey", "status", "exposed", "verdict", "headline"]]
    rows += [
        [
            summary.experiment,
            summary.journey,
            summary.status,
            str(summary.exposed),
            summary.verdict.winner or summary.verdict.code,
            summary.headline,
        ]
        for summary in summaries
    ]
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_html(reports: Sequence[ExperimentReport]) -> str:
    """The reports as one standalone page: per experiment its table, a chart of each arm's
    rate with its interval (inline SVG), the warnings and the verdict. No scripts, no
    external assets; every name is HTML-escaped."""
    title = f"Experiment {reports[0].experiment}" if len(reports) == 1 else "Experiments"
    sections = [_html_section(report) for report in reports]
    return html_page(title, sections or ["<p>No experiment is declared.</p>"], style=_STYLE)


_STYLE = (
    "p.verdict{font-weight:bold}ul.warnings li{color:#9b2c2c}td.versus{white-space:normal}"
    "svg line.interval{stroke:#3e7cb1;stroke-width:3}svg circle{fill:#1f2933}"
    "svg line.axis{stroke:#9aa5b1}svg line.control{stroke:#e76f51;stroke-dasharray:4 3}"
)


def _html_section(report: ExperimentReport) -> str:
    header = "".join(
        f"<th>{_escape(column)}</th>"
        for column in ("arm", *_COLUMNS, "rate [95% interval]", "vs control")
    )
    rows = []
    for arm in report.arms:
        name, *counts, rate, versus = _cells(arm)
        numbers = "".join(f'<td class="n">{_escape(count)}</td>' for count in counts)
        rows.append(
            f'<tr><th scope="row">{_escape(name)}</th>{numbers}'
            f'<td>{_escape(rate)}</td><td class="versus">{_escape(versus)}</td></tr>'
        )
    footer = _footer_lines(report)
    warnings = [f"<li>{_escape(line)}</li>" for line in footer if line.startswith("warning: ")]
    notes = [f"<p>{_escape(line)}</p>" for line in footer[:-1] if not line.startswith("warning: ")]
    return "\n".join(
        [
            f'<section id="{_escape(report.experiment)}">',
            f"<h2>{_escape(_header_lines(report)[0])}</h2>",
            *(f"<p>{_escape(line)}</p>" for line in _header_lines(report)[1:]),
            "<table>",
            f"<thead><tr>{header}</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            _rate_chart(report),
            *notes,
            *(['<ul class="warnings">', *warnings, "</ul>"] if warnings else []),
            f'<p class="verdict">{_escape(footer[-1])}</p>',
            "</section>",
        ]
    )


_LABEL = 130
"""Where the chart's scale starts (the arm names are to its left)."""
_PLOT = 400
"""Width of the chart's scale."""
_LINE = 26
"""Height of one arm's line of the chart."""


def _rate_chart(report: ExperimentReport) -> str:
    """Each arm's conversion rate (a dot) and its 95% interval (a bar) on one scale from 0,
    with control's rate as a dashed line and the scale's ticks below."""
    highest = max([0.05, *(arm.rate.high for arm in report.arms if arm.rate is not None)])
    top = -(-highest * 100 // 5) * 5 / 100  # up to the next 5%
    x = _scale(top)
    parts = []
    for index, arm in enumerate(report.arms):
        y = index * _LINE + _LINE // 2
        parts.append(f'<text x="0" y="{y + 4}">{_escape(arm.arm)}</text>')
        if arm.rate is None:
            parts.append(f'<text x="{_LABEL}" y="{y + 4}">no closed window yet</text>')
            continue
        parts += [
            f'<line class="interval" x1="{x(arm.rate.low)}" y1="{y}" x2="{x(arm.rate.high)}"'
            f' y2="{y}"/>',
            f'<circle cx="{x(arm.rate.value)}" cy="{y}" r="4"/>',
            f'<text x="{x(arm.rate.high) + 6:.1f}" y="{y + 4}">{_escape(_rate_text(arm))}</text>',
        ]
    bottom = len(report.arms) * _LINE
    control = report.arms[0].rate
    if control is not None:
        parts.append(
            f'<line class="control" x1="{x(control.value)}" y1="0" x2="{x(control.value)}"'
            f' y2="{bottom}"/>'
        )
    parts.append(
        f'<line class="axis" x1="{_LABEL}" y1="{bottom}" x2="{_LABEL + _PLOT}" y2="{bottom}"/>'
    )
    for tick in range(6):
        value = top * tick / 5
        parts.append(f'<text x="{x(value) - 10:.1f}" y="{bottom + 16}">{value:.0%}</text>')
    width, height = _LABEL + _PLOT + 160, bottom + 24
    label = _escape(f"Conversion rate per arm of {report.experiment}, with 95% intervals")
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" role="img" aria-label="{label}">',
            *parts,
            "</svg>",
        ]
    )


def _scale(top: float) -> Callable[[float], float]:
    """Where a rate goes on the chart (its x coordinate), rounded for the SVG."""
    return lambda rate: round(_LABEL + rate / top * _PLOT, 1)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def render(report: ExperimentReport, output_format: ExperimentFormat) -> str:
    """One experiment's report as text in `output_format` (JSON: the `ExperimentReport`)."""
    if output_format == ExperimentFormat.HTML:
        return render_html([report])
    if output_format == ExperimentFormat.JSON:
        return report.model_dump_json(indent=2)
    return render_table(report)
