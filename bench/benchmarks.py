"""The benchmarks of issues 7 and 15: each figure for the journeys, the peer and the bare baseline.

Each benchmark takes a `Stack` and the run's `Sizes` and returns its figures.
The product side always runs the real worker process (and the real gateway
where events come in by HTTP); the peer side runs `bench.peer.PeerWelcomeSeries`
(the welcome series written by hand) and the bare side
`bench.baseline.BareJourney`, each on a worker process of its own. Every
benchmark names its workflows and contacts apart (`prefix`), so that a quick
run's benchmarks can share one stack.
"""

from __future__ import annotations

import asyncio
import itertools
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
from bench.contact_import import import_rate
from bench.peer import EMAILS, PeerInput, peer_workflow_id
from bench.peer_activities import PEER_JOURNEY
from bench.report import Figure, Target, held_to, percentile
from bench.segments import segment_figures
from bench.stack import (
    BARE_QUEUE,
    EMAIL_CAP,
    PEER_QUEUE,
    SETTLE_WINDOW,
    Stack,
    WorkerKind,
    WorkerProcess,
    closed_workflows,
    count_sent,
    gateway,
    gather_limited,
    is_sent,
    seed_contacts,
    until,
    watch_sent,
    worker_process,
    worker_processes,
)
from models.experiments import HOLDOUT
from models.journeys import JourneyInput, JourneyState, JourneyStatus
from models.renewals import RenewalInput
from rules.experiment_split import assign_arm
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
        population: Contacts a new segment is evaluated over (segments).
        import_rows: Contacts in the imported file (contact-import).
    """

    journeys: int = 150
    samples: int = 100
    wakeups: int = 300
    parked: int = 10_000
    unsubscribes: int = 60
    others: int = 1_000
    roundtrips: int = 2_000
    cli_runs: int = 10
    population: int = 100_000
    import_rows: int = 100_000


QUICK = Sizes(
    journeys=10,
    samples=6,
    wakeups=10,
    parked=30,
    unsubscribes=3,
    others=10,
    roundtrips=200,
    cli_runs=1,
    population=2_000,
    import_rows=500,
)
"""The smoke test's sizes: every figure, on one shared stack, in under two minutes."""

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
which no worker changes."""
EMAIL_COUNT = len(WelcomeSeries.emails)
OUTCOMES = ("sent", "deferred")
"""Send outcomes of the throughput run counted from the product worker's metrics: every email
`sent` (which checks the metric is read), and how many the policy `deferred` first."""

# Temporal server 1.29 defaults (the dev server overrides neither; temporalio/cli
# internal/devserver/server.go sets only the history cache size, the visibility RPS and
# the CHASM flags; nor does the local cluster's, starter/dev/temporal_cluster.py
# DYNAMIC_CONFIG), from temporalio/temporal common/dynamicconfig/constants.go:
# HistoryCountSuggestContinueAsNew "limit.historyCount.suggestContinueAsNew" = 4*1024 and
# HistorySizeSuggestContinueAsNew "limit.historySize.suggestContinueAsNew" = 4*1024*1024.
SUGGEST_CONTINUE_AS_NEW_EVENTS = 4 * 1024
SUGGEST_CONTINUE_AS_NEW_BYTES = 4 * 1024 * 1024


def welcome_steps(day_seconds: float) -> tuple[float, ...]:
    """The welcome series' steps (five emails, then the route), in seconds from enrolment."""
    return tuple(step.day * day_seconds for step in WelcomeSeries.plan)


@dataclass(frozen=True)
class Three:
    """A benchmark's raw result for each side."""

    journeys: Any
    peer: Any
    bare: Any


def _latency_figures(
    key: str,
    label: str,
    samples: Three,
    *,
    note: str,
    p99_target: Target | None = None,
    details: dict[str, Any] | None = None,
) -> list[Figure]:
    """p50 and p99 (milliseconds) of latencies given in seconds (`samples`: three lists)."""
    return [
        Figure(
            f"{key}_p{q}",
            f"{label} p{q}",
            "ms",
            percentile(samples.journeys, q) * 1000,
            percentile(samples.peer, q) * 1000,
            percentile(samples.bare, q) * 1000,
            note,
            p99_target if q == 99 else None,
            {"samples": len(samples.journeys), **(details or {})},
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
    """Post one event; returns when the request was sent (epoch seconds, taken before it)."""
    sent = time.time()
    response = await http.post(
        "/v1/events",
        json={
            "event_id": f"{event_type}-{contact_id}",
            "contact_id": contact_id,
            "type": event_type,
        },
    )
    if response.status_code != 202:
        raise RuntimeError(f"the gateway answered {response.status_code}: {response.text}")
    return sent


def _start_bare(
    stack: Stack, workflow_id: str, bare: BareInput, **options: Any
) -> Awaitable[WorkflowHandle[Any, Any]]:
    return stack.bare_client.start_workflow(
        BARE_WORKFLOW, bare, id=workflow_id, task_queue=BARE_QUEUE, **options
    )


def _start_peer(
    stack: Stack, peer: PeerInput, **options: Any
) -> Awaitable[WorkflowHandle[Any, Any]]:
    return stack.peer_client.start_workflow(
        PEER_JOURNEY, peer, id=peer_workflow_id(peer.contact_id), task_queue=PEER_QUEUE, **options
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


def outside_holdouts(prefix: str, count: int, *journeys: type[Journey]) -> list[str]:
    """The first `count` contact ids `{prefix}{n}` that no holdout of `journeys` keeps out.

    A subscriber in the welcome series' holdout (`welcome-subject`: 10% of them, held
    out of the journey) gets no welcome series, and a benchmark waiting for its email
    or its exit would wait in vain. The draw is a hash of the experiment and the
    contact id (`rules.experiment_split.assign_arm`), so the contacts are picked ahead;
    those picked still go through the draw in the journeys, as every subscriber does.
    """

    def held_out(contact_id: str) -> bool:
        return any(
            assign_arm(e.name, contact_id, e.arms, holdout_percent=e.holdout_percent) == HOLDOUT
            for journey in journeys
            for e in journey.experiments
        )

    candidates = (f"{prefix}{n}" for n in itertools.count())
    return list(itertools.islice((c for c in candidates if not held_out(c)), count))


def _peer_key(contact_id: str, step: str = "") -> str:
    """The idempotency key (or, without `step`, its prefix) of the peer's messages."""
    return f"{peer_workflow_id(contact_id)}/{step}"


def _journey_key(journey: type[Journey], contact_id: str, step: str = "") -> str:
    """The idempotency key (or, without `step`, its prefix) of a journey's messages."""
    return f"{journey.workflow_id_for(JourneyInput(contact_id=contact_id))}/{step}"


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

    def events_per_step(self) -> float:
        """History events per journey step."""
        return self.events / self.steps

    def bytes_per_step(self) -> float:
        """History bytes per journey step."""
        return self.size / self.steps

    def steps_before_suggestion(self) -> float:
        """Steps a journey may take before the server suggests continue-as-new."""
        return min(
            SUGGEST_CONTINUE_AS_NEW_EVENTS / self.events_per_step(),
            SUGGEST_CONTINUE_AS_NEW_BYTES / self.bytes_per_step(),
        )


def history_figures(histories: Three) -> list[Figure]:
    """History events and bytes per journey step, and steps before continue-as-new."""
    how = (
        f"median of {histories.journeys.runs} completed welcome series of the throughput run "
        "(6 steps: 5 emails and the route; start and end included) against as many peer "
        "welcome series and bare workflows with the same steps; history length and size as "
        "the server counts them (`describe`)."
    )
    raw = {side: asdict(getattr(histories, side)) for side in ("journeys", "peer", "bare")}

    def figure(
        key: str, label: str, unit: str, of: Callable[[History], float], note: str
    ) -> Figure:
        return Figure(
            key,
            label,
            unit,
            of(histories.journeys),
            of(histories.peer),
            of(histories.bare),
            note,
            details=raw if key.endswith("events_per_step") else {},
        )

    return [
        figure(
            "history_events_per_step",
            "History events per journey step",
            "events",
            History.events_per_step,
            how,
        ),
        figure(
            "history_bytes_per_step",
            "History bytes per journey step",
            "bytes",
            History.bytes_per_step,
            how,
        ),
        figure(
            "steps_before_continue_as_new",
            "Projected steps before the continue-as-new suggestion",
            "steps",
            History.steps_before_suggestion,
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
        cpu: CPU seconds used meanwhile by the worker process (`worker`), the Temporal
            server (`server`) and, on the cluster, PostgreSQL (`database`: Temporal's
            persistence and visibility, and the journeys database); see `_cpu_seconds`.
        history: The median history of (some of) them.
    """

    count: int
    makespan: float
    cpu: dict[str, float]
    history: History

    def rate(self, journey_length: float) -> float:
        """Journeys per second beyond the wait each journey must do anyway."""
        return self.count / (self.makespan - journey_length)

    def worker_cpu_ms(self) -> float:
        """Worker CPU milliseconds per journey."""
        return self.cpu["worker"] / self.count * 1000

    def details(self) -> dict[str, float]:
        """Makespan and CPU milliseconds per journey: worker, server (and PostgreSQL)."""
        return {
            "makespan_s": self.makespan,
            **{f"{name}_cpu_ms": cpu / self.count * 1000 for name, cpu in self.cpu.items()},
        }


def _cpu_seconds(stack: Stack, worker: WorkerProcess) -> dict[str, float]:
    """CPU time used so far by the worker process and by the servers (`Servers.cpu_seconds`)."""
    return {"worker": worker.cpu_seconds(), **stack.servers.cpu_seconds()}


async def _burst(
    stack: Stack,
    worker: WorkerProcess,
    id_prefix: str,
    starts: Sequence[Awaitable[object]],
    steps: int,
) -> Burst:
    """Start all at once; wait until every workflow whose id starts with `id_prefix` completed."""
    cpu_before = _cpu_seconds(stack, worker)
    await gather_limited(starts)
    timeout = 120 + 3 * len(starts)
    query = f"WorkflowId STARTS_WITH '{id_prefix}'"
    executions = await closed_workflows(stack.client, query, len(starts), timeout=timeout)
    failed = [e.id for e in executions if e.status != WorkflowExecutionStatus.COMPLETED]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(starts)} did not complete, e.g. {failed[0]}")
    first = min(e.start_time for e in executions)
    last = max(e.close_time for e in executions if e.close_time is not None)
    cpu_after = _cpu_seconds(stack, worker)
    return Burst(
        len(starts),
        (last - first).total_seconds(),
        {name: cpu_after[name] - before for name, before in cpu_before.items()},
        await History.of(stack.client, [e.id for e in executions[:HISTORY_SAMPLE]], steps),
    )


async def _send_outcomes(worker: WorkerProcess, status: str) -> float:
    """Send outcomes of `status` the product's worker recorded so far (`journeys_messages`)."""
    return await worker.metric("journeys_messages", journey=WelcomeSeries.name, status=status)


async def throughput(stack: Stack, sizes: Sizes) -> list[Figure]:
    """Journeys completed per second, and worker CPU per journey: welcome series, peer, bare.

    Also the history figures (`history_figures`), from journeys of each burst.
    """
    steps = welcome_steps(DAY_SECONDS)
    count = sizes.journeys
    async with worker_process(stack, WorkerKind.BARE) as worker:
        bare = await _burst(
            stack,
            worker,
            "throughput-bare-",
            [
                _start_bare(stack, f"throughput-bare-{i}", BareInput(steps=steps))
                for i in range(count)
            ],
            len(steps),
        )
    peers = [f"peer-throughput-{i}" for i in range(count)]
    await seed_contacts(stack.engine, peers, **HANDED_OFF)
    async with worker_process(stack, WorkerKind.PEER) as worker:
        peer = await _burst(
            stack,
            worker,
            peer_workflow_id("peer-throughput-"),
            [_start_peer(stack, PeerInput(contact_id=c, day_seconds=DAY_SECONDS)) for c in peers],
            len(steps),
        )
    contacts = [f"throughput-{i}" for i in range(count)]
    await seed_contacts(stack.engine, contacts, **HANDED_OFF)
    async with worker_process(stack, WorkerKind.JOURNEYS) as worker:
        outcomes = {status: await _send_outcomes(worker, status) for status in OUTCOMES}
        journeys = await _burst(
            stack,
            worker,
            f"{WelcomeSeries.name}-throughput-",
            [
                _start_journey(
                    stack, WelcomeSeries, JourneyInput(contact_id=c, day_seconds=DAY_SECONDS)
                )
                for c in contacts
            ],
            len(WelcomeSeries.plan),
        )
        for status in OUTCOMES:
            outcomes[status] = await _send_outcomes(worker, status) - outcomes[status]
    sent = Three(
        await count_sent(stack.engine, f"{WelcomeSeries.name}-throughput-"),
        await count_sent(stack.engine, peer_workflow_id("peer-throughput-")),
        None,
    )
    if not sent.journeys == sent.peer == outcomes["sent"] == count * EMAIL_COUNT:
        raise RuntimeError(f"sent {sent} ({outcomes['sent']} counted), not 5 per journey each")
    follow_ups = await stack.client.count_workflows(
        f"WorkflowType IN ('{Nurture.name}', '{LeadSla.name}')"
    )
    length = steps[-1]
    quiet = f"{stack.settings.quiet_hours_start:%H:%M}–{stack.settings.quiet_hours_end:%H:%M} UTC"
    how = (
        f"{count} welcome series (5 emails over 7 days of {DAY_SECONDS} s, then the route "
        "step) started at once, against as many peer welcome series (the same steps, written "
        "by hand) and bare workflows with the same 4 timers and 6 activities. Contacts are "
        "already with sales, so the route starts no nurture or lead-sla. The product's "
        f"messaging policy is on: quiet hours {quiet}, caps {EMAIL_CAP} a day and a week."
    )
    details = {
        "journeys": count,
        "day_seconds": DAY_SECONDS,
        "cpu": {"journeys": journeys.details(), "peer": peer.details(), "bare": bare.details()},
        "emails_sent": {"journeys": sent.journeys, "peer": sent.peer},
        "sends_deferred_by_policy": outcomes["deferred"],
        "follow_up_journeys_started": follow_ups.count,
    }
    return [
        Figure(
            "throughput",
            "Sustained journey throughput",
            "journeys/s",
            journeys.rate(length),
            peer.rate(length),
            bare.rate(length),
            how + " Rate: journeys / (first start to last completion − the 7 s each waits).",
            held_to(peer=0.9, bare=0.5, at_least=True),
            details,
        ),
        Figure(
            "worker_cpu_per_journey",
            "Worker CPU per journey",
            "ms",
            journeys.worker_cpu_ms(),
            peer.worker_cpu_ms(),
            bare.worker_cpu_ms(),
            "CPU time (user + system, /proc/<pid>/stat) of each worker process during its "
            "throughput burst, per journey.",
            held_to(peer=1.2),
        ),
        *history_figures(Three(journeys.history, peer.history, bare.history)),
    ]


# --- 2. event-to-send latency ------------------------------------------------------------


async def _until_sent(stack: Stack, key: str) -> float:
    """Wait for the message-log row `key` to be `sent`; when it was seen (epoch seconds)."""
    await until(lambda: is_sent(stack.engine, key), every=POLL, timeout=60, what=f"{key} sent")
    return time.time()


async def _event_to_send(stack: Stack, http: httpx.AsyncClient, contact_id: str) -> float:
    """From `subscribed` sent to the gateway to the Day-0 email in the message log as sent."""
    sent = await _post_event(http, contact_id, "subscribed")
    key = _journey_key(WelcomeSeries, contact_id, WelcomeSeries.emails[0].id)
    return await _until_sent(stack, key) - sent


async def _peer_event_to_send(stack: Stack, contact_id: str) -> float:
    """From a signal-with-start of the peer (`subscribed`) sent to its Day-0 email sent."""
    sent = time.time()
    await _start_peer(
        stack,
        PeerInput(contact_id=contact_id),
        start_signal="event",
        start_signal_args=["subscribed"],
    )
    return await _until_sent(stack, _peer_key(contact_id, EMAILS[0][0])) - sent


async def _signal_to_step(stack: Stack, workflow_id: str) -> float:
    """From a signal-with-start of a bare workflow sent to its one activity running."""
    sent = time.time()
    handle = await _start_bare(stack, workflow_id, BareInput(steps=(0,)), start_signal="event")
    ran: list[float] = await handle.result()
    return ran[0] - sent


async def event_to_send(stack: Stack, sizes: Sizes) -> list[Figure]:
    """From the event sent to the Day-0 email's message-log row, one at a time."""
    contacts = outside_holdouts("event-", sizes.samples + 1, WelcomeSeries)
    samples = Three([], [], [])
    async with (
        worker_processes(stack, WorkerKind.BARE, WorkerKind.PEER, WorkerKind.JOURNEYS),
        gateway(stack) as http,
    ):
        for contact_id in contacts:
            await _upsert_with_consent(http, contact_id)
            await _upsert_with_consent(http, f"peer-{contact_id}")
        for contact_id in contacts:  # in turns, so all see the same machine load
            samples.journeys.append(await _event_to_send(stack, http, contact_id))
            samples.peer.append(await _peer_event_to_send(stack, f"peer-{contact_id}"))
            samples.bare.append(await _signal_to_step(stack, f"event-bare-{contact_id}"))
    return _latency_figures(
        "event_to_send",
        "Event-to-send latency",
        Three(samples.journeys[1:], samples.peer[1:], samples.bare[1:]),  # first: warm-up
        note=f"{sizes.samples} `subscribed` events posted one at a time for contacts upserted "
        "with email consent (`PUT /v1/contacts`): from just before `POST /v1/events` is sent "
        "to the Day-0 email's message-log row `sent` (polled every "
        f"{POLL * 1000:.0f} ms). Peer: the gateway knows no peer, so from just before the "
        "client's signal-with-start of the peer welcome series (`event` `subscribed`) to its "
        "Day-0 row `sent`, polled alike. Bare: from just before a signal-with-start to its one "
        "activity running.",
        p99_target=held_to(peer=1.5, below=250),
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


def _sent_at(
    stack: Stack, key_prefix: str, count: int
) -> Callable[[datetime], Coroutine[Any, Any, list[float]]]:
    """When each of `count` messages whose key starts with `key_prefix` was seen sent."""

    async def ran(due: datetime) -> list[float]:
        sent = await watch_sent(
            stack.engine, key_prefix, count, every=WATCH_POLL, timeout=600 + count
        )
        return list(sent.values())

    return ran


async def timer_lateness(stack: Stack, sizes: Sizes) -> list[Figure]:
    """How late steps run when many journeys wake at the same instant."""
    count = sizes.wakeups

    async def bare_ran(due: datetime) -> list[float]:
        await asyncio.sleep((due - datetime.now(UTC)).total_seconds())
        handles = (stack.bare_client.get_workflow_handle(f"wake-bare-{i}") for i in range(count))
        results: list[list[float]] = await gather_limited(handle.result() for handle in handles)
        return [steps[0] for steps in results]

    bare, bare_spare = await _wake_together(
        stack,
        Wakeup(
            WorkerKind.BARE,
            lambda i, due: _start_bare(stack, f"wake-bare-{i}", BareInput(steps=(0,), origin=due)),
            bare_ran,
        ),
        count,
    )
    indices = range(-_calibration_size(count), count)
    await seed_contacts(stack.engine, [f"peer-wake{i}" for i in indices])
    peer, peer_spare = await _wake_together(
        stack,
        Wakeup(
            WorkerKind.PEER,
            lambda i, due: _start_peer(
                stack, PeerInput(contact_id=f"peer-wake{i}", origin=due.timestamp())
            ),
            _sent_at(stack, peer_workflow_id("peer-wake"), count),
        ),
        count,
    )
    await seed_contacts(stack.engine, [f"wake{i}" for i in indices])
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
            _sent_at(stack, f"{RenewalCountdown.name}-wake", count),
        ),
        count,
    )
    spare = Three(journeys_spare, peer_spare, bare_spare)
    return _latency_figures(
        "timer_lateness",
        "Timer lateness",
        Three(journeys, peer, bare),
        note=f"{count:,} renewal countdowns (real clock) whose 1-day reminder is due at the same "
        "instant: when the reminder's message-log row is `sent` (polled every "
        f"{WATCH_POLL * 1000:.0f} ms) minus that instant. Peer: as many peer welcome series "
        "whose Day-0 email is due at one instant, its row `sent` alike. Bare: as many bare "
        "workflows waking at one instant, when their activity ran."
        + (
            ""
            if min(asdict(spare).values()) > 0
            else " Not every journey was parked before the instant!"
        ),
        p99_target=held_to(bare=2),
        details={"parked_s_before_due": asdict(spare)},
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


@dataclass(frozen=True)
class Parking:
    """How to park journeys of one kind.

    Attributes:
        kind: The worker they run on.
        start: Starts journey `i`.
        done: A worker metric that counts one per journey for what comes before its park.
    """

    kind: WorkerKind
    start: Callable[[int], Awaitable[object]]
    done: Callable[[WorkerProcess], Awaitable[float]]


async def _park(stack: Stack, parking: Parking, checkpoints: Sequence[int]) -> list[MemorySample]:
    """Park journeys up to each checkpoint, sampling the worker's memory (idle first).

    Journeys are parked once `parking.done` has grown by the checkpoint and the worker
    is idle again (a shared worker's metric counts what earlier benchmarks did too).
    """
    async with worker_process(stack, parking.kind) as worker:
        await worker.settle()
        already = await parking.done(worker)
        cached_before = await worker.metric("temporal_sticky_cache_size")
        samples = [MemorySample(0, worker.rss_bytes(), 0)]
        for previous, checkpoint in zip([0, *checkpoints], checkpoints, strict=False):
            await gather_limited(parking.start(i) for i in range(previous, checkpoint))

            async def parked(checkpoint: int = checkpoint) -> bool:
                return await parking.done(worker) - already >= checkpoint

            await until(parked, every=0.25, timeout=120 + checkpoint, what=f"{checkpoint} parked")
            await worker.settle()
            cached = await worker.metric("temporal_sticky_cache_size") - cached_before
            samples.append(MemorySample(checkpoint, worker.rss_bytes(), int(cached)))
        return samples


def _activities_done(
    activity_type: str, *, local: bool = False
) -> Callable[[WorkerProcess], Awaitable[float]]:
    metric = f"temporal_{'local_' if local else ''}activity_execution_latency_count"
    return lambda worker: worker.metric(metric, activity_type=activity_type)


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
        Parking(
            WorkerKind.BARE,
            lambda i: _start_bare(stack, f"parked-bare-{i}", PARKED),
            lambda worker: worker.metric(
                "temporal_workflow_task_execution_latency_count", workflow_type=BARE_WORKFLOW
            ),
        ),
        checkpoints,
    )
    peers = [f"peer-parked-{i}" for i in range(count)]
    await seed_contacts(stack.engine, peers)
    peer = await _park(
        stack,
        Parking(
            WorkerKind.PEER,
            lambda i: _start_peer(stack, PeerInput(contact_id=peers[i])),
            _activities_done("send_welcome_email"),
        ),
        checkpoints,
    )
    contacts = [f"parked-{i}" for i in range(count)]
    await seed_contacts(stack.engine, contacts)
    journeys = await _park(
        stack,
        Parking(
            WorkerKind.JOURNEYS,
            lambda i: _start_journey(stack, Nurture, JourneyInput(contact_id=contacts[i])),
            _activities_done("record_journey_run", local=True),
        ),
        checkpoints,
    )
    samples = Three(journeys, peer, bare)

    def at(found: list[MemorySample], parked: int) -> MemorySample:
        return next(sample for sample in found if sample.parked == parked)

    def per_thousand(found: list[MemorySample]) -> float:
        grown = at(found, count).rss - at(found, warm).rss
        return grown / (count - warm) * 1000 / MIB

    def per_cached(found: list[MemorySample]) -> float:
        full, reference = at(found, cache_bound), at(found, warm)
        return (full.rss - reference.rss) / max(full.cached - reference.cached, 1) / 1024

    def three(of: Callable[[list[MemorySample]], float]) -> tuple[float, float, float]:
        return of(samples.journeys), of(samples.peer), of(samples.bare)

    how = (
        "nurture journeys (real clock) started and parked on their Day-7 timer after their "
        "first (local) activity, the journey-run log, against peer welcome series parked on their "
        "Day-1 timer after their Day-0 email, and bare workflows parked on a 7-day timer "
        f"from their start; RSS from /proc/<pid>/status of each worker process, {warm:,} "
        "journeys parked first (one-time costs) and the growth counted from there."
    )
    details = {
        "samples": {
            side: [asdict(s) for s in getattr(samples, side)]
            for side in ("journeys", "peer", "bare")
        },
        "max_cached_workflows": CACHE_SIZE,
    }
    return [
        Figure(
            "memory_per_1000_parked",
            "Worker memory per 1,000 parked journeys",
            "MiB",
            *three(per_thousand),
            f"RSS growth from {warm:,} to {count:,} parked, per 1,000; " + how,
            details=details,
        ),
        Figure(
            "memory_per_cached_workflow",
            "Worker memory per cached journey",
            "KiB",
            *three(per_cached),
            f"RSS growth from {warm:,} to {cache_bound:,} parked, per workflow added to the "
            "sticky cache (`temporal_sticky_cache_size`).",
            held_to(peer=1.5),
        ),
        Figure(
            "memory_rss_parked",
            f"Worker RSS with {count:,} parked journeys",
            "MiB",
            *three(lambda found: at(found, count).rss / MIB),
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
    """From `unsubscribed` sent to the gateway to the contact's last journey closed (seconds)."""
    sent = await _post_event(http, contact_id, "unsubscribed")
    closed = []
    for journey in (WelcomeSeries, PricingAbandon):
        handle = stack.client.get_workflow_handle(
            journey.workflow_id_for(JourneyInput(contact_id=contact_id)), result_type=JourneyState
        )
        state = await handle.result()
        if state.status != JourneyStatus.EXITED or state.exit_reason != "unsubscribed":
            raise RuntimeError(f"{handle.id} ended {state.status} ({state.exit_reason})")
        closed.append((await handle.describe()).close_time)
    return max(when.timestamp() for when in closed if when is not None) - sent


async def _signal_to_close(handle: WorkflowHandle[Any, Any]) -> float:
    """From an `exit` signal sent to a parked workflow (peer or bare) to its close (seconds)."""
    sent = time.time()
    await handle.signal("exit")
    await handle.result()
    closed = (await handle.describe()).close_time
    assert closed is not None
    return closed.timestamp() - sent


async def unsubscribe_to_exit(stack: Stack, sizes: Sizes) -> list[Figure]:
    """From an `unsubscribed` sent to every journey of the contact exited."""
    measured = outside_holdouts("leaving-", sizes.unsubscribes + 1, WelcomeSeries, PricingAbandon)
    others = [f"other-{i}" for i in range(sizes.others)]
    await seed_contacts(stack.engine, others + [f"peer-{c}" for c in others + measured])
    samples = Three([], [], [])
    async with (
        worker_processes(stack, WorkerKind.BARE, WorkerKind.PEER, WorkerKind.JOURNEYS) as workers,
        gateway(stack) as http,
    ):
        await gather_limited(
            _start_bare(stack, f"unsubscribe-bare-other-{i}", PARKED) for i in range(sizes.others)
        )
        await gather_limited(_start_peer(stack, PeerInput(contact_id=f"peer-{c}")) for c in others)
        await gather_limited(
            _start_journey(stack, Nurture, JourneyInput(contact_id=c)) for c in others
        )
        bare_leaving = await gather_limited(
            _start_bare(stack, f"unsubscribe-bare-{c}", PARKED) for c in measured
        )
        peer_leaving = await gather_limited(
            _start_peer(stack, PeerInput(contact_id=f"peer-{c}")) for c in measured
        )
        for contact_id in measured:
            await _upsert_with_consent(http, contact_id)
            await _post_event(http, contact_id, "subscribed")
            await _post_event(http, contact_id, "pricing_page_viewed")
        for prefix, waited in (
            (f"{WelcomeSeries.name}-leaving-", measured),
            (peer_workflow_id("peer-leaving-"), measured),
            (peer_workflow_id("peer-other-"), others),
        ):
            await watch_sent(stack.engine, prefix, len(waited), every=1, timeout=120 + len(waited))
        for worker in workers:
            await worker.settle()
        for contact_id, peer, bare in zip(measured, peer_leaving, bare_leaving, strict=True):
            samples.journeys.append(await _unsubscribe_to_exit(stack, http, contact_id))
            samples.peer.append(await _signal_to_close(peer))
            samples.bare.append(await _signal_to_close(bare))
    return _latency_figures(
        "unsubscribe_to_exit",
        "Unsubscribe-to-exit latency",
        Three(samples.journeys[1:], samples.peer[1:], samples.bare[1:]),  # first: warm-up
        note=f"{sizes.unsubscribes} contacts, each in a welcome series and a pricing-abandon "
        "journey (both parked), unsubscribed one at a time by `POST /v1/events`: from just "
        "before the request is sent to the later of the two journeys closed, exited "
        f"`unsubscribed` (server close time), while {sizes.others:,} other contacts each have "
        "a nurture journey parked on its timer. Peer (which the gateway does not know) and "
        "bare: from just before an `exit` signal to a parked peer welcome series or bare "
        "workflow to its close, with as many others of its kind parked.",
        p99_target=held_to(bare=3, below=300),
    )


BENCHMARKS: dict[str, Callable[[Stack, Sizes], Awaitable[list[Figure]]]] = {
    "throughput": throughput,
    "event-to-send": event_to_send,
    "lateness": timer_lateness,
    "memory": memory,
    "unsubscribe": unsubscribe_to_exit,
    "codec": lambda stack, sizes: codec_cost(stack, sizes.roundtrips),
    "cli-read": lambda stack, sizes: cli_read(stack, sizes.cli_runs),
    "segments": lambda stack, sizes: segment_figures(stack, sizes.population, sizes.samples),
    "contact-import": lambda stack, sizes: import_rate(stack, sizes.import_rows),
}
"""Every benchmark, in the issue's order, by the name `--only` takes (`throughput` also
reports worker CPU per journey and the history figures, item 5, from the journeys it
completed)."""

NOT_ON_THE_CLUSTER = {
    "codec": "the payload codec's cost is measured in the benchmark's own process, without "
    "Temporal or the database (the data key is cached): the same on the cluster as on the "
    "dev server; run it without --cluster",
}
"""Benchmarks `--cluster` leaves out, and why. The others all go through Temporal (and the
journeys database), or measure the journeys database, which is PostgreSQL there."""
