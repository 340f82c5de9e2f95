"""The benchmarks of issue 7, each figure measured against the bare baseline in the same stack.

Each benchmark takes a fresh `Stack` and the run's `Sizes` and returns its
figures. The product side always runs the real worker process (and the real
gateway where events come in by HTTP); the baseline side runs
`bench.baseline.BareJourney` on its own worker process.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from bench.bare_input import BareInput
from bench.baseline import BARE_WORKFLOW
from bench.cli_read import cli_read
from bench.codec import codec_cost
from bench.report import Figure, Target, percentile
from bench.stack import (
    BARE_QUEUE,
    SETTLE_WINDOW,
    Stack,
    WorkerKind,
    WorkerProcess,
    closed_workflows,
    count_sent,
    cpu_seconds,
    gateway,
    gather_limited,
    is_sent,
    seed_contacts,
    until,
    watch_sent,
    worker_process,
    worker_processes,
)
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.renewals import RenewalInput
from workflows.journeys.lead_sla import LeadSla
from workflows.journeys.nurture import Nurture
from workflows.journeys.pricing_abandon import PricingAbandon
from workflows.journeys.renewal_countdown import RenewalCountdown
from workflows.journeys.welcome_series import WelcomeSeries
from workflows.toolkit import Journey

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does.

    Attributes:
        journeys: Welcome series started at once (throughput).
        samples: Events posted one after another (event-to-send latency).
        wakeups: Journeys waking at the same instant (timer lateness).
        parked: Journeys parked on a long timer with one worker (memory).
        unsubscribes: Contacts unsubscribed one after another (unsubscribe-to-exit).
        others: Other contacts with a running journey meanwhile (unsubscribe-to-exit).
        roundtrips: Payloads converted and back, per kind and converter (codec).
        cli_runs: Timed runs of each CLI read command (cli-read).
    """

    journeys: int = 150
    samples: int = 100
    wakeups: int = 300
    parked: int = 10_000
    unsubscribes: int = 60
    others: int = 1_000
    roundtrips: int = 2_000
    cli_runs: int = 10


QUICK = Sizes(
    journeys=10,
    samples=8,
    wakeups=20,
    parked=50,
    unsubscribes=4,
    others=20,
    roundtrips=200,
    cli_runs=2,
)
"""The smoke test's sizes: every figure, in about a minute and a half."""

DAY_SECONDS = 1
"""The accelerated journey clock of the throughput and history benchmarks (a day is 1 s)."""
HANDED_OFF: dict[str, Any] = {"stage": "MQL", "owner_id": "bench-owner"}
"""Contacts already with sales: the welcome series' route step reads the CRM and starts no
follow-up journey (nurture or lead-sla), so only the welcome series itself is measured."""
POLL = 0.005
"""Seconds between two looks at the message log for one message (latency resolution)."""
WATCH_POLL = 0.02
"""Seconds between two looks at the message log for many messages."""
LEAD = 2.0
LEAD_MARGIN = 1.5
"""Journeys made to wake together are due `LEAD` seconds plus `LEAD_MARGIN` times the time
they should take to park ahead, so that every one is parked on its timer before."""
PARKED_FOR = timedelta(days=7)
PARKED = BareInput(steps=(PARKED_FOR.total_seconds(),))
"""A bare workflow parked on a 7-day timer from its start."""
HISTORY_SAMPLE = 20
"""Completed journeys (of each kind) whose histories are measured."""
CACHE_SIZE = 1_000
"""Workflows a worker keeps in its sticky cache: the SDK's default `max_cached_workflows`,
which neither worker changes."""

# Temporal server 1.29 defaults (the dev server overrides neither; temporalio/cli
# internal/devserver/server.go sets only the history cache size, the visibility RPS and
# the CHASM flags), from temporalio/temporal common/dynamicconfig/constants.go:
# HistoryCountSuggestContinueAsNew "limit.historyCount.suggestContinueAsNew" = 4*1024 and
# HistorySizeSuggestContinueAsNew "limit.historySize.suggestContinueAsNew" = 4*1024*1024.
SUGGEST_CONTINUE_AS_NEW_EVENTS = 4 * 1024
SUGGEST_CONTINUE_AS_NEW_BYTES = 4 * 1024 * 1024


def welcome_steps(day_seconds: float) -> tuple[float, ...]:
    """The welcome series' steps (five emails, then the route), in seconds from enrolment."""
    return tuple(step.day * day_seconds for step in WelcomeSeries.plan)


def _latency_figures(
    key: str,
    label: str,
    journeys: Sequence[float],
    baseline: Sequence[float],
    *,
    note: str,
    p99_target: Target | None = None,
    details: dict[str, Any] | None = None,
) -> list[Figure]:
    """p50 and p99 (milliseconds) of latencies given in seconds."""
    return [
        Figure(
            f"{key}_p{q}",
            f"{label} p{q}",
            "ms",
            percentile(journeys, q) * 1000,
            percentile(baseline, q) * 1000,
            note,
            p99_target if q == 99 else None,
            {"samples": len(journeys), **(details or {})},
        )
        for q in (50, 99)
    ]


async def _upsert_with_consent(http: httpx.AsyncClient, contact_id: str) -> None:
    response = await http.put(
        f"/v1/contacts/{contact_id}",
        json={
            "email": f"{contact_id}@bench.example",
            "email_consent": {"granted": True, "source": "bench"},
        },
    )
    response.raise_for_status()


async def _post_event(http: httpx.AsyncClient, contact_id: str, event_type: str) -> float:
    """Post one event; returns when it was accepted (epoch seconds)."""
    response = await http.post(
        "/v1/events",
        json={
            "event_id": f"{event_type}-{contact_id}",
            "contact_id": contact_id,
            "type": event_type,
        },
    )
    accepted = time.time()
    if response.status_code != 202:
        raise RuntimeError(f"the gateway answered {response.status_code}: {response.text}")
    return accepted


def _start_bare(
    stack: Stack, workflow_id: str, bare: BareInput, **options: Any
) -> Awaitable[WorkflowHandle[Any, Any]]:
    return stack.bare_client.start_workflow(
        BARE_WORKFLOW, bare, id=workflow_id, task_queue=BARE_QUEUE, **options
    )


def _start_journey(
    stack: Stack, journey: type[Journey], journey_input: JourneyInput
) -> Awaitable[WorkflowHandle[Any, Any]]:
    return stack.client.start_workflow(
        journey.name,
        journey_input,
        id=journey.workflow_id_for(journey_input),
        task_queue=stack.settings.task_queue,
    )


# --- 1. throughput (and 5. history per step) ---------------------------------------


@dataclass(frozen=True)
class History:
    """Completed workflows' history, as the server counts it for its suggestion.

    How many events a run records varies a little with load (events that arrive
    together share a workflow task), hence the median of several.

    Attributes:
        events: History length (median).
        size: History size, bytes (median).
        steps: The journey's steps.
        runs: How many workflows the medians are of.
    """

    events: float
    size: float
    steps: int
    runs: int

    @classmethod
    async def of(cls, client: Client, workflow_ids: Sequence[str], steps: int) -> History:
        """The median history of closed workflows (from `describe`)."""
        descriptions = await gather_limited(
            client.get_workflow_handle(workflow_id).describe() for workflow_id in workflow_ids
        )
        infos = [d.raw_description.workflow_execution_info for d in descriptions]
        return cls(
            statistics.median(info.history_length for info in infos),
            statistics.median(info.history_size_bytes for info in infos),
            steps,
            len(infos),
        )

    def steps_before_suggestion(self) -> float:
        """Steps a journey may take before the server suggests continue-as-new."""
        return min(
            SUGGEST_CONTINUE_AS_NEW_EVENTS / (self.events / self.steps),
            SUGGEST_CONTINUE_AS_NEW_BYTES / (self.size / self.steps),
        )


def history_figures(journeys: History, bare: History) -> list[Figure]:
    """History events and bytes per journey step, and steps before continue-as-new."""
    how = (
        f"median of {journeys.runs} completed welcome series of the throughput run (6 steps: 5 "
        "emails and the route; start and end included) against as many bare workflows with the "
        "same steps; history length and size as the server counts them (`describe`)."
    )
    raw = {
        "journeys": {"events": journeys.events, "bytes": journeys.size, "runs": journeys.runs},
        "baseline": {"events": bare.events, "bytes": bare.size, "runs": bare.runs},
    }
    return [
        Figure(
            "history_events_per_step",
            "History events per journey step",
            "events",
            journeys.events / journeys.steps,
            bare.events / bare.steps,
            how,
            details=raw,
        ),
        Figure(
            "history_bytes_per_step",
            "History bytes per journey step",
            "bytes",
            journeys.size / journeys.steps,
            bare.size / bare.steps,
            how,
        ),
        Figure(
            "steps_before_continue_as_new",
            "Projected steps before the continue-as-new suggestion",
            "steps",
            journeys.steps_before_suggestion(),
            bare.steps_before_suggestion(),
            f"min({SUGGEST_CONTINUE_AS_NEW_EVENTS:,} events / events per step, 4 MiB / bytes "
            "per step): the server's defaults (limit.historyCount / limit.historySize "
            ".suggestContinueAsNew).",
        ),
    ]


@dataclass(frozen=True)
class Burst:
    """Journeys started at once and run to completion.

    Attributes:
        count: How many.
        makespan: Seconds from the first start to the last completion (server clock).
        worker_cpu: CPU seconds the worker process used meanwhile.
        server_cpu: CPU seconds the dev server used meanwhile.
        history: The median history of (some of) them.
    """

    count: int
    makespan: float
    worker_cpu: float
    server_cpu: float
    history: History

    def rate(self, journey_length: float) -> float:
        """Journeys per second beyond the wait each journey must do anyway."""
        return self.count / (self.makespan - journey_length)

    def per_journey_ms(self) -> dict[str, float]:
        """CPU milliseconds per journey, worker and server."""
        return {
            "worker_cpu_ms": self.worker_cpu / self.count * 1000,
            "server_cpu_ms": self.server_cpu / self.count * 1000,
        }


async def _burst(
    stack: Stack,
    worker: WorkerProcess,
    query: str,
    starts: Sequence[Awaitable[object]],
    steps: int,
) -> Burst:
    worker_cpu, server_cpu = worker.cpu_seconds(), cpu_seconds(stack.server_pid)
    await gather_limited(starts)
    timeout = 120 + 3 * len(starts)
    executions = await closed_workflows(stack.client, query, len(starts), timeout=timeout)
    failed = [e.id for e in executions if e.status != WorkflowExecutionStatus.COMPLETED]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(starts)} did not complete, e.g. {failed[0]}")
    first = min(e.start_time for e in executions)
    last = max(e.close_time for e in executions if e.close_time is not None)
    return Burst(
        len(starts),
        (last - first).total_seconds(),
        worker.cpu_seconds() - worker_cpu,
        cpu_seconds(stack.server_pid) - server_cpu,
        await History.of(stack.client, [e.id for e in executions[:HISTORY_SAMPLE]], steps),
    )


async def throughput(stack: Stack, sizes: Sizes) -> list[Figure]:
    """Journeys completed per second: welcome series vs a bare workflow with its steps.

    Also the history figures (`history_figures`), from journeys of each burst.
    """
    steps = welcome_steps(DAY_SECONDS)
    bare_input = BareInput(steps=steps)
    async with worker_process(stack, WorkerKind.BARE) as worker:
        bare = await _burst(
            stack,
            worker,
            f"WorkflowType = '{BARE_WORKFLOW}'",
            [_start_bare(stack, f"bare-{i}", bare_input) for i in range(sizes.journeys)],
            len(steps),
        )
    contacts = [f"throughput-{i}" for i in range(sizes.journeys)]
    await seed_contacts(stack.engine, contacts, **HANDED_OFF)
    async with worker_process(stack, WorkerKind.JOURNEYS) as worker:
        journeys = await _burst(
            stack,
            worker,
            f"WorkflowType = '{WelcomeSeries.name}'",
            [
                _start_journey(
                    stack, WelcomeSeries, JourneyInput(contact_id=c, day_seconds=DAY_SECONDS)
                )
                for c in contacts
            ],
            len(WelcomeSeries.plan),
        )
    sent = await count_sent(stack.engine, WelcomeSeries.name)
    if sent != sizes.journeys * len(WelcomeSeries.emails):
        raise RuntimeError(f"the welcome series sent {sent} emails, not 5 per journey")
    follow_ups = await stack.client.count_workflows(
        f"WorkflowType IN ('{Nurture.name}', '{LeadSla.name}')"
    )
    length = steps[-1]
    return [
        Figure(
            "throughput",
            "Sustained journey throughput",
            "journeys/s",
            journeys.rate(length),
            bare.rate(length),
            f"{sizes.journeys} welcome series (5 emails over 7 days of {DAY_SECONDS} s, then the "
            "route step) started at once, against as many bare workflows with the same 4 timers "
            "and 6 activities; journeys / (first start to last completion − the 7 s each waits). "
            "Contacts are already with sales, so the route starts no nurture or lead-sla.",
            Target("≥ 80% of baseline", lambda figure: figure.ratio >= 0.8),
            {
                "journeys": sizes.journeys,
                "day_seconds": DAY_SECONDS,
                "makespan_s": {"journeys": journeys.makespan, "baseline": bare.makespan},
                "journeys_cpu": journeys.per_journey_ms(),
                "baseline_cpu": bare.per_journey_ms(),
                "emails_sent": sent,
                "follow_up_journeys_started": follow_ups.count,
            },
        ),
        *history_figures(journeys.history, bare.history),
    ]


# --- 2. event-to-send latency ------------------------------------------------------------


async def _event_to_send(stack: Stack, http: httpx.AsyncClient, contact_id: str) -> float:
    """From `subscribed` accepted to the Day-0 email in the message log as sent (seconds)."""
    accepted = await _post_event(http, contact_id, "subscribed")
    journey = WelcomeSeries.workflow_id_for(JourneyInput(contact_id=contact_id))
    key = f"{journey}/{WelcomeSeries.emails[0].id}"
    await until(lambda: is_sent(stack.engine, key), every=POLL, timeout=60, what=f"{key} sent")
    return time.time() - accepted


async def _signal_to_step(stack: Stack, workflow_id: str) -> float:
    """From a signal-with-start of a bare workflow to its one activity running (seconds)."""
    handle = await _start_bare(stack, workflow_id, BareInput(steps=(0,)), start_signal="event")
    accepted = time.time()
    ran: list[float] = await handle.result()
    return ran[0] - accepted


async def event_to_send(stack: Stack, sizes: Sizes) -> list[Figure]:
    """From `POST /v1/events` accepted to the welcome email's message-log row, one at a time."""
    contacts = [f"event-{i}" for i in range(sizes.samples + 1)]
    journeys: list[float] = []
    baseline: list[float] = []
    async with (
        worker_processes(stack, WorkerKind.BARE, WorkerKind.JOURNEYS),
        gateway(stack) as http,
    ):
        for contact_id in contacts:
            await _upsert_with_consent(http, contact_id)
        for contact_id in contacts:  # alternately, so both see the same machine load
            journeys.append(await _event_to_send(stack, http, contact_id))
            baseline.append(await _signal_to_step(stack, f"bare-{contact_id}"))
    return _latency_figures(
        "event_to_send",
        "Event-to-send latency",
        journeys[1:],  # the first of each warms the worker up
        baseline[1:],
        note=f"{sizes.samples} `subscribed` events posted one at a time for contacts upserted "
        "with email consent: 202 to the Day-0 email's message-log row `sent` (polled every "
        f"{POLL * 1000:.0f} ms). Baseline: signal-with-start of a bare workflow to its one "
        "activity running.",
        p99_target=Target("< 500 ms", lambda figure: figure.journeys < 500),
    )


# --- 3. timer lateness --------------------------------------------------------------------


@dataclass(frozen=True)
class Wakeup:
    """Journeys of one kind made to wake at one instant.

    Attributes:
        kind: The worker they run on.
        start: Starts journey `i` due at an instant (calibration ones get negative `i`).
        ran: Given the instant, when each of the `count` journeys' step ran (epoch
            seconds); called before they are started, it watches from then on.
    """

    kind: WorkerKind
    start: Callable[[int, datetime], Awaitable[object]]
    ran: Callable[[datetime], Coroutine[Any, Any, list[float]]]


def _calibration_size(count: int) -> int:
    """Journeys parked first to time how long `count` take (enough to time throughput)."""
    return max(10, count // 10)


async def _wake_together(stack: Stack, wakeup: Wakeup, count: int) -> tuple[list[float], float]:
    """Park `count` journeys due at the same instant; how late each step ran (seconds).

    The instant is set from how long a tenth as many journeys (at least 10; due much
    later, so they never wake here) took to park on this machine, with `LEAD_MARGIN` to
    spare.

    Returns:
        The lateness of each, and how many seconds before the instant all were parked.
    """
    async with worker_process(stack, wakeup.kind) as worker:
        calibration = _calibration_size(count)
        began = time.monotonic()
        later = datetime.now(UTC) + PARKED_FOR
        await gather_limited(wakeup.start(-1 - i, later) for i in range(calibration))
        await worker.settle()
        per_journey = (time.monotonic() - began - SETTLE_WINDOW) / calibration
        due = datetime.now(UTC) + timedelta(seconds=LEAD + LEAD_MARGIN * per_journey * count)
        watching = asyncio.create_task(wakeup.ran(due))
        await gather_limited(wakeup.start(i, due) for i in range(count))
        await worker.settle()
        spare = (due - datetime.now(UTC)).total_seconds()
        return [when - due.timestamp() for when in await watching], spare


async def timer_lateness(stack: Stack, sizes: Sizes) -> list[Figure]:
    """How late steps run when many journeys wake at the same instant."""
    count = sizes.wakeups

    async def bare_ran(due: datetime) -> list[float]:
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds())
        handles = (stack.bare_client.get_workflow_handle(f"bare-{i}") for i in range(count))
        results: list[list[float]] = await gather_limited(handle.result() for handle in handles)
        return [steps[0] for steps in results]

    baseline, bare_spare = await _wake_together(
        stack,
        Wakeup(
            WorkerKind.BARE,
            lambda i, due: _start_bare(stack, f"bare-{i}", BareInput(steps=(0,), origin=due)),
            bare_ran,
        ),
        count,
    )

    async def journeys_ran(due: datetime) -> list[float]:
        sent = await watch_sent(
            stack.engine, RenewalCountdown.name, count, every=WATCH_POLL, timeout=600 + count
        )
        return list(sent.values())

    contacts = [f"wake{i}" for i in range(-_calibration_size(count), count)]
    await seed_contacts(stack.engine, contacts)
    journeys, journeys_spare = await _wake_together(
        stack,
        Wakeup(
            WorkerKind.JOURNEYS,
            lambda i, due: _start_journey(
                stack,
                RenewalCountdown,
                RenewalInput(
                    contact_id=f"wake{i}",
                    subscription_id="bench",
                    renewal_date=due + timedelta(days=1),
                    reminder_days=(1,),
                ),
            ),
            journeys_ran,
        ),
        count,
    )
    spare = min(bare_spare, journeys_spare)
    return _latency_figures(
        "timer_lateness",
        "Timer lateness",
        journeys,
        baseline,
        note=f"{count:,} renewal countdowns (real clock) whose 1-day reminder is due at the same "
        "instant: when the reminder's message-log row is `sent` (polled every "
        f"{WATCH_POLL * 1000:.0f} ms) minus that instant. Baseline: as many bare workflows "
        "waking at one instant, when their activity ran."
        + ("" if spare > 0 else " Not every journey was parked before the instant!"),
        details={"parked_s_before_due": {"journeys": journeys_spare, "baseline": bare_spare}},
    )


# --- 4. worker memory ------------------------------------------------------------------


@dataclass(frozen=True)
class MemorySample:
    """The worker's resident memory with some journeys parked.

    Attributes:
        parked: Journeys parked on their timer.
        rss: Resident set size, bytes.
        cached: Workflows in the worker's sticky cache.
    """

    parked: int
    rss: int
    cached: int


async def _park(
    stack: Stack,
    kind: WorkerKind,
    checkpoints: Sequence[int],
    start: Callable[[int], Awaitable[object]],
    done: Callable[[WorkerProcess], Awaitable[float]],
) -> list[MemorySample]:
    """Park journeys up to each checkpoint, sampling the worker's memory (idle first).

    Journeys are parked once `done` (a worker metric that counts one per journey for
    what comes before its park) reaches the checkpoint and the worker is idle again.
    """
    async with worker_process(stack, kind) as worker:
        await worker.settle()
        samples = [MemorySample(0, worker.rss_bytes(), 0)]
        for previous, checkpoint in zip([0, *checkpoints], checkpoints, strict=False):
            await gather_limited(start(i) for i in range(previous, checkpoint))

            async def parked(checkpoint: int = checkpoint) -> bool:
                return await done(worker) >= checkpoint

            await until(parked, every=0.25, timeout=120 + checkpoint, what=f"{checkpoint} parked")
            await worker.settle()
            cached = await worker.metric("temporal_sticky_cache_size")
            samples.append(MemorySample(checkpoint, worker.rss_bytes(), int(cached)))
        return samples


async def memory(stack: Stack, sizes: Sizes) -> list[Figure]:
    """Worker RSS per 1,000 parked journeys and per cached workflow.

    The first tenth of what the cache holds is parked before the reference sample, so
    one-time costs (imports inside the sandbox, database connections) are left out.
    """
    count = sizes.parked
    cache_bound = min(count, CACHE_SIZE)
    warm = cache_bound // 10
    if warm < 1:
        raise ValueError("park at least 10 journeys")
    checkpoints = sorted({warm, cache_bound, count})
    bare = await _park(
        stack,
        WorkerKind.BARE,
        checkpoints,
        lambda i: _start_bare(stack, f"bare-{i}", PARKED),
        lambda worker: worker.metric(
            "temporal_workflow_task_execution_latency_count", workflow_type=BARE_WORKFLOW
        ),
    )
    contacts = [f"parked-{i}" for i in range(count)]
    await seed_contacts(stack.engine, contacts)
    journeys = await _park(
        stack,
        WorkerKind.JOURNEYS,
        checkpoints,
        lambda i: _start_journey(stack, Nurture, JourneyInput(contact_id=contacts[i])),
        lambda worker: worker.metric(
            "temporal_activity_execution_latency_count", activity_type="record_journey_run"
        ),
    )

    def at(samples: list[MemorySample], parked: int) -> MemorySample:
        return next(sample for sample in samples if sample.parked == parked)

    def per_thousand(samples: list[MemorySample]) -> float:
        grown = at(samples, count).rss - at(samples, warm).rss
        return grown / (count - warm) * 1000 / MIB

    def per_cached(samples: list[MemorySample]) -> float:
        full, reference = at(samples, cache_bound), at(samples, warm)
        return (full.rss - reference.rss) / max(full.cached - reference.cached, 1) / 1024

    how = (
        "nurture journeys (real clock) started and parked on their Day-7 timer after their "
        "first activity (the journey-run log), against bare workflows parked on a 7-day timer "
        f"from their start; RSS from /proc/<pid>/status of each worker process, {warm:,} "
        "journeys parked first (one-time costs) and the growth counted from there."
    )
    details = {
        "samples": {
            "journeys": [asdict(sample) for sample in journeys],
            "baseline": [asdict(sample) for sample in bare],
        },
        "max_cached_workflows": CACHE_SIZE,
    }
    return [
        Figure(
            "memory_per_1000_parked",
            "Worker memory per 1,000 parked journeys",
            "MiB",
            per_thousand(journeys),
            per_thousand(bare),
            f"RSS growth from {warm:,} to {count:,} parked, per 1,000; " + how,
            details=details,
        ),
        Figure(
            "memory_per_cached_workflow",
            "Worker memory per cached workflow",
            "KiB",
            per_cached(journeys),
            per_cached(bare),
            f"RSS growth from {warm:,} to {cache_bound:,} parked, per workflow added to the "
            "sticky cache (`temporal_sticky_cache_size`).",
        ),
        Figure(
            "memory_rss_parked",
            f"Worker RSS with {count:,} parked journeys",
            "MiB",
            at(journeys, count).rss / MIB,
            at(bare, count).rss / MIB,
            f"The worker process's RSS once {count:,} journeys are parked; the sticky cache "
            f"holds at most {CACHE_SIZE:,} workflows, the others are evicted until they wake.",
            Target(
                "< 1 GiB with 10,000 parked",
                lambda figure: None if count < 10_000 else figure.journeys < 1024,
            ),
        ),
    ]


# --- 6. unsubscribe-to-exit latency ------------------------------------------------------


async def _unsubscribe_to_exit(stack: Stack, http: httpx.AsyncClient, contact_id: str) -> float:
    """From `unsubscribed` accepted to the contact's last journey closed (seconds)."""
    accepted = await _post_event(http, contact_id, "unsubscribed")
    closed = []
    for journey in (WelcomeSeries, PricingAbandon):
        handle = stack.client.get_workflow_handle(
            journey.workflow_id_for(JourneyInput(contact_id=contact_id)), result_type=JourneyState
        )
        state = await handle.result()
        if state.status != JourneyStatus.EXITED or state.exit_reason != "unsubscribed":
            raise RuntimeError(f"{handle.id} ended {state.status} ({state.exit_reason})")
        closed.append((await handle.describe()).close_time)
    return max(when.timestamp() for when in closed if when is not None) - accepted


async def _signal_to_close(handle: WorkflowHandle[Any, Any]) -> float:
    """From an `exit` signal to a parked bare workflow to its close (seconds)."""
    await handle.signal("exit")
    accepted = time.time()
    await handle.result()
    closed = (await handle.describe()).close_time
    assert closed is not None
    return closed.timestamp() - accepted


async def unsubscribe_to_exit(stack: Stack, sizes: Sizes) -> list[Figure]:
    """From an accepted `unsubscribed` to every journey of the contact exited."""
    measured = [f"leaving-{i}" for i in range(sizes.unsubscribes + 1)]
    others = [f"other-{i}" for i in range(sizes.others)]
    await seed_contacts(stack.engine, others)
    journeys: list[float] = []
    baseline: list[float] = []
    async with (
        worker_processes(stack, WorkerKind.BARE, WorkerKind.JOURNEYS) as workers,
        gateway(stack) as http,
    ):
        await gather_limited(
            _start_bare(stack, f"bare-other-{i}", PARKED) for i in range(sizes.others)
        )
        await gather_limited(
            _start_journey(stack, Nurture, JourneyInput(contact_id=c)) for c in others
        )
        leaving = await gather_limited(
            _start_bare(stack, f"bare-{contact_id}", PARKED) for contact_id in measured
        )
        for contact_id in measured:
            await _upsert_with_consent(http, contact_id)
            await _post_event(http, contact_id, "subscribed")
            await _post_event(http, contact_id, "pricing_page_viewed")
        await watch_sent(
            stack.engine, WelcomeSeries.name, len(measured), every=1, timeout=120 + len(measured)
        )
        for worker in workers:
            await worker.settle()
        for contact_id, handle in zip(measured, leaving, strict=True):
            journeys.append(await _unsubscribe_to_exit(stack, http, contact_id))
            baseline.append(await _signal_to_close(handle))
    return _latency_figures(
        "unsubscribe_to_exit",
        "Unsubscribe-to-exit latency",
        journeys[1:],  # the first of each warms the worker up
        baseline[1:],
        note=f"{sizes.unsubscribes} contacts, each in a welcome series and a pricing-abandon "
        "journey (both parked), unsubscribed one at a time by `POST /v1/events`: 202 to the "
        "later of the two journeys closed, exited `unsubscribed` (server close time), while "
        f"{sizes.others:,} other contacts each have a nurture journey running (parked on its "
        "timer). Baseline: an `exit` signal to a parked bare workflow to its close, with as "
        "many other bare workflows parked.",
        p99_target=Target("< 1 s", lambda figure: figure.journeys < 1000),
    )


BENCHMARKS: dict[str, Callable[[Stack, Sizes], Awaitable[list[Figure]]]] = {
    "throughput": throughput,
    "event-to-send": event_to_send,
    "lateness": timer_lateness,
    "memory": memory,
    "unsubscribe": unsubscribe_to_exit,
    "codec": lambda stack, sizes: codec_cost(stack, sizes.roundtrips),
    "cli-read": lambda stack, sizes: cli_read(stack, sizes.cli_runs),
}
"""Every benchmark, in the issue's order, by the name `--only` takes (`throughput` also
reports the history figures, item 5, from the journeys it completed)."""
