"""What every benchmark runs on: a Temporal server, a database, worker processes, a gateway.

Each benchmark gets a stack of its own (`bench_stack`) in a folder of the
run's temporary directory: by default a Temporal CLI dev server whose database
is a file there, the journeys' SQLite database there too; with
`Topology.CLUSTER`, the local Temporal cluster on PostgreSQL and the journeys
database on the same PostgreSQL (`bench/servers.py`). The outbox folder and
the workers' logs are in the stack's folder either way. Workers run
as processes, as in production: the product's is `python -m worker` (the real
`worker.run_worker`: migrations, template checks, `running_worker`) and the
baseline's `python -m bench.worker_process`; both serve the SDK's Prometheus
metrics, which the benchmarks read (sticky cache size, activities completed).

The product's payloads are encrypted (the payload codec, `runtime/codec.py`),
the baseline's are not: the driver talks to each through a client of its kind
(`Stack.client`, `Stack.bare_client`), and the product's worker, gateway and
driver share the data keys in the journeys database.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecution

from bench.servers import Servers, Topology, cpu_seconds, running_servers
from models.db import create_engine, migrate, session_factory
from models.messages import DeliveryStatus
from models.settings import PROJECT_ROOT, ApiKey, Settings
from models.tables import Contact, MessageLog
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore, key_store
from runtime.temporal import SERVICE_RETRY, connect
from starter.api.server import running_api

T = TypeVar("T")

API_KEY = "bench-local-only-key-0123456789"
"""The gateway's key in benchmarks (a loopback server that lives for one benchmark)."""
JOURNEYS_QUEUE = "bench-journeys"
PEER_QUEUE = "bench-peer"
BARE_QUEUE = "bench-bare"
EMAIL_CAP = 50
"""The frequency caps of the benchmarks' workers (per day and per week): on, and far above
the welcome series' five emails, so they are evaluated but never defer."""
QUIET_WINDOW = timedelta(minutes=1)
QUIET_AHEAD = timedelta(hours=12)
"""Quiet hours are on: a one-minute window that starts 12 hours after the run starts (in UTC,
the seeded contacts' time zone), so that no journey on the real clock meets it."""
READY_TIMEOUT = 120.0
"""Seconds a worker process may take to start polling."""
STOP_TIMEOUT = 30.0
SETTLE_WINDOW = 0.5
IDLE_BELOW = 0.05
"""A worker is settled (every journey parked) once it used less than this share of a core
over `SETTLE_WINDOW` seconds."""


NOT_RUN = shutil.ignore_patterns(
    ".*",
    "__pycache__",
    "tests",
    "test-artifacts",
    "docs",
    "results",
    "reference",
    "*.md",
    "uv.lock",
)
"""What the workers do not need of the checkout."""


def snapshot_sources(target: Path) -> Path:
    """Copy the checkout's code and data files (templates, TOML, migrations) to `target`.

    Workers run this copy: the SDK's sandbox reads the workflow modules from disk again
    for every new workflow run, so a file edited during a long run (a `git pull`, a
    colleague's commit) would otherwise mix two versions in one worker.
    """
    shutil.copytree(PROJECT_ROOT, target, ignore=NOT_RUN)
    return target


class WorkerKind(StrEnum):
    """Which worker a process runs."""

    JOURNEYS = "journeys"
    PEER = "peer"
    BARE = "bare"


@dataclass(frozen=True)
class Stack:
    """One benchmark's Temporal server, settings and database.

    Attributes:
        root: The benchmark's folder (outbox, worker logs; the dev server's and the
            journeys' databases on the dev server topology).
        servers: The running Temporal server and journeys database (`bench/servers.py`),
            with a client (pydantic data converter, no codec).
        settings: The product's settings: database (data keys too) and outbox in
            `root`, the messaging policy on but never deferring (`quiet_hours`,
            `EMAIL_CAP`), accelerated clocks allowed, the gateway's key.
        engine: The journeys database (migrated).
        sources: The snapshot of the code the workers run (`snapshot_sources`).
        keys: The product's data keys (in the journeys database).
        client: The driver's client of the journeys: the product's data converter
            (encrypted with `keys`), on the server's connection.
        shared: The worker processes kept for the stack's life (a quick run), or None
            (each benchmark starts its own).
    """

    root: Path
    servers: Servers
    settings: Settings
    engine: AsyncEngine
    sources: Path
    keys: KeyStore
    client: Client
    shared: SharedWorkers | None = None

    @property
    def bare_client(self) -> Client:
        """The driver's client of the bare baseline: pydantic payloads, no codec."""
        return self.servers.client

    @cached_property
    def peer_client(self) -> Client:
        """The driver's client of the peer baseline: the SDK's default data converter."""
        return Client(self.bare_client.service_client, namespace=self.bare_client.namespace)

    @property
    def address(self) -> str:
        """The Temporal frontend, `host:port`."""
        return self.client.service_client.config.target_host


def quiet_hours(now: datetime) -> tuple[clock_time, clock_time]:
    """Quiet hours that are on but far from `now` (`QUIET_AHEAD`), `QUIET_WINDOW` long (UTC)."""
    start = (now + QUIET_AHEAD).replace(second=0, microsecond=0)
    return start.time(), (start + QUIET_WINDOW).time()


@asynccontextmanager
async def bench_stack(
    root: Path,
    sources: Path,
    *,
    shared_workers: bool = False,
    topology: Topology = Topology.DEV_SERVER,
) -> AsyncIterator[Stack]:
    """Start the servers of `topology` and migrate the journeys database.

    Workers will run the code in `sources`. With `shared_workers`, the three
    workers start now, together, and serve every benchmark on this stack.
    """
    root.mkdir(parents=True, exist_ok=True)
    async with running_servers(topology, root) as running:
        quiet_start, quiet_end = quiet_hours(datetime.now(UTC))
        settings = Settings(
            database_url=running.database_url,
            outbox_dir=root / "outbox",
            task_queue=JOURNEYS_QUEUE,
            quiet_hours_start=quiet_start,
            quiet_hours_end=quiet_end,
            email_cap_per_day=EMAIL_CAP,
            email_cap_per_week=EMAIL_CAP,
            api_keys=[ApiKey(name="bench", key=SecretStr(API_KEY))],
            allow_accelerated_clock=True,
            payload_keys_database_url=running.database_url,  # not one the environment may name
        )
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
            keys = key_store(settings)
            client = Client(
                running.client.service_client,
                namespace=running.client.namespace,
                data_converter=encrypting_data_converter(keys),
            )
            shared = SharedWorkers() if shared_workers else None
            stack = Stack(root, running, settings, engine, sources, keys, client, shared)
            try:
                if shared is not None:
                    await shared.get(stack, list(WorkerKind))
                yield stack
            finally:
                if shared is not None:
                    await shared.aclose()
        finally:
            await engine.dispose()


# --- worker processes -----------------------------------------------------------------


@dataclass(frozen=True)
class WorkerProcess:
    """A running worker process and what can be read about it.

    Attributes:
        kind: Product or baseline.
        task_queue: The queue it polls.
        process: The process.
        metrics_url: Its Prometheus page.
        log: Its output.
    """

    kind: WorkerKind
    task_queue: str
    process: asyncio.subprocess.Process
    metrics_url: str
    log: Path

    def rss_bytes(self) -> int:
        """Resident set size now (`VmRSS` of /proc/<pid>/status)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
        assert match is not None, "VmRSS missing from /proc/<pid>/status"
        return int(match.group(1)) * 1024

    def cpu_seconds(self) -> float:
        """CPU time the process used so far."""
        return cpu_seconds(self.process.pid)

    async def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of a Prometheus metric whose labels include `labels`."""
        async with httpx.AsyncClient(timeout=10) as http:
            page = (await http.get(self.metrics_url)).text
        total = 0.0
        for line in page.splitlines():
            sample = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
            if sample is None:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', sample.group(1) or ""))
            if all(found.get(key) == value for key, value in labels.items()):
                total += float(sample.group(2))
        return total

    async def settle(self) -> None:
        """Return once the process used less than `IDLE_BELOW` of a core over `SETTLE_WINDOW`."""
        while True:
            before = self.cpu_seconds()
            await asyncio.sleep(SETTLE_WINDOW)
            if self.cpu_seconds() - before < IDLE_BELOW * SETTLE_WINDOW:
                return


_QUEUES = {WorkerKind.PEER: PEER_QUEUE, WorkerKind.BARE: BARE_QUEUE}
"""The baselines' task queues (the product's is its settings')."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _worker_command(
    stack: Stack, kind: WorkerKind, metrics: str
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a worker process: it runs `stack.sources`.

    Both cache bytecode (in `<root>/pycache`): the SDK's sandbox imports the
    workflow modules afresh for every workflow run, and compiling them from
    source each time (PYTHONDONTWRITEBYTECODE with no cached bytecode) took
    10-15% of the product worker's CPU in a probe: a cost of the environment,
    not of the journeys.
    """
    env = snapshot_environment(stack)
    if kind != WorkerKind.JOURNEYS:
        command = ["-m", "bench.worker_process", "--kind", kind, "--address", stack.address]
        command += ["--task-queue", _QUEUES[kind], "--metrics", metrics]
        return [sys.executable, *command], product_environment(stack, env)
    return [sys.executable, "-m", "worker"], {
        **product_environment(stack, env),
        "METRICS_BIND_ADDRESS": metrics,
    }


def snapshot_environment(stack: Stack) -> dict[str, str]:
    """This process's environment, running the code of `stack.sources` with cached bytecode."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(stack.root / "pycache")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stack.sources), env.get("PYTHONPATH")]))
    return env


SWEEP_OUT_OF_THE_WAY = 86_400
"""The workers' segment sweep runs once a day: its first pass over the segments file would
otherwise hold the database while other figures are measured (the segment figures
evaluate a segment of their own)."""


def product_environment(stack: Stack, base: dict[str, str]) -> dict[str, str]:
    """`base` plus the settings that point a product process (worker, CLI) at the stack."""
    settings = stack.settings
    return {
        **base,
        "TEMPORAL_ADDRESS": stack.address,
        "TEMPORAL_NAMESPACE": "default",
        "DATABASE_URL": settings.database_url,
        "PAYLOAD_KEYS_DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "OUTBOX_DIR": str(settings.outbox_dir),
        "QUIET_HOURS_START": f"{settings.quiet_hours_start:%H:%M}",
        "QUIET_HOURS_END": f"{settings.quiet_hours_end:%H:%M}",
        "EMAIL_CAP_PER_DAY": str(settings.email_cap_per_day),
        "EMAIL_CAP_PER_WEEK": str(settings.email_cap_per_week),
        "ALLOW_ACCELERATED_CLOCK": "true",
        "SEGMENT_SWEEP_SECONDS": str(SWEEP_OUT_OF_THE_WAY),
        "LOG_FORMAT": "json",
    }


@asynccontextmanager
async def _spawned(stack: Stack, kind: WorkerKind) -> AsyncIterator[WorkerProcess]:
    """Start a worker process (output to `<root>/<kind>-worker.log`); SIGTERM it at the end."""
    metrics = f"127.0.0.1:{_free_port()}"
    command, env = _worker_command(stack, kind, metrics)
    log = stack.root / f"{kind}-worker.log"
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=stack.root, stdout=output, stderr=output
        )
    task_queue = _QUEUES.get(kind, stack.settings.task_queue)
    try:
        yield WorkerProcess(kind, task_queue, process, f"http://{metrics}/metrics", log)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _start(
    processes: AsyncExitStack, stack: Stack, kinds: Sequence[WorkerKind]
) -> list[WorkerProcess]:
    """Start worker processes together (stopped with `processes`); wait until each polls.

    Raises:
        RuntimeError: one exited or did not poll within `READY_TIMEOUT` (with its log's end).
    """
    workers = [await processes.enter_async_context(_spawned(stack, kind)) for kind in kinds]
    await asyncio.gather(*(_wait_polling(stack.client, worker) for worker in workers))
    return workers


class SharedWorkers:
    """Worker processes started once and kept until `aclose` (a quick run's stack)."""

    def __init__(self) -> None:
        """None running yet."""
        self._processes = AsyncExitStack()
        self._running: dict[WorkerKind, WorkerProcess] = {}

    async def get(self, stack: Stack, kinds: Sequence[WorkerKind]) -> list[WorkerProcess]:
        """The workers of `kinds`, starting those not running yet (together)."""
        missing = [kind for kind in kinds if kind not in self._running]
        self._running.update(
            zip(missing, await _start(self._processes, stack, missing), strict=True)
        )
        return [self._running[kind] for kind in kinds]

    async def aclose(self) -> None:
        """Stop them all."""
        await self._processes.aclose()


@asynccontextmanager
async def worker_processes(stack: Stack, *kinds: WorkerKind) -> AsyncIterator[list[WorkerProcess]]:
    """Worker processes of `kinds`, polling; stopped when the block ends unless shared.

    On a stack with shared workers, the running ones (`SharedWorkers`); otherwise
    new processes, started together.

    Raises:
        RuntimeError: one exited or did not poll within `READY_TIMEOUT` (with its log's end).
    """
    if stack.shared is not None:
        yield await stack.shared.get(stack, kinds)
        return
    async with AsyncExitStack() as processes:
        yield await _start(processes, stack, kinds)


@asynccontextmanager
async def worker_process(stack: Stack, kind: WorkerKind) -> AsyncIterator[WorkerProcess]:
    """One worker process (see `worker_processes`)."""
    async with worker_processes(stack, kind) as (worker,):
        yield worker


async def _wait_polling(client: Client, worker: WorkerProcess) -> None:
    identity = f"{worker.process.pid}@"
    deadline = time.monotonic() + READY_TIMEOUT
    for queue_type in (
        TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    ):
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=worker.task_queue),
            task_queue_type=queue_type,
        )
        while True:
            if worker.process.returncode is not None or time.monotonic() > deadline:
                tail = "\n".join(worker.log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"the {worker.kind} worker did not start polling:\n{tail}")
            pollers = (await client.workflow_service.describe_task_queue(request)).pollers
            if any(poller.identity.startswith(identity) for poller in pollers):
                break
            await asyncio.sleep(0.2)


# --- the gateway ------------------------------------------------------------------------


@asynccontextmanager
async def gateway(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Serve the real HTTP gateway on a free loopback port; yields a client holding its key."""

    async def temporal() -> Client:
        return await connect(
            target_host=stack.address, lazy=True, retry=SERVICE_RETRY, keys=stack.keys
        )

    async with (
        running_api(
            stack.settings, host="127.0.0.1", port=0, temporal=temporal, codec_keys=stack.keys
        ) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        ) as http,
    ):
        yield http


# --- the database -------------------------------------------------------------------------


async def seed_contacts(
    engine: AsyncEngine,
    contact_ids: Iterable[str],
    *,
    stage: str | None = None,
    owner_id: str | None = None,
) -> None:
    """Create contacts with an email address and email consent, in bulk.

    Args:
        engine: The journeys database.
        contact_ids: Their ids.
        stage: Their lifecycle stage (lead band), if any.
        owner_id: Their sales owner, if handed off.
    """
    now = datetime.now(UTC)
    rows = [
        Contact(
            id=contact_id,
            email=f"{contact_id}@bench.example",
            email_consent=True,
            email_consent_at=now,
            email_consent_source="bench",
            lifecycle_stage=stage,
            owner_id=owner_id,
        )
        for contact_id in contact_ids
    ]
    async with session_factory(engine)() as session:
        session.add_all(rows)
        await session.commit()


async def is_sent(engine: AsyncEngine, idempotency_key: str) -> bool:
    """Whether the message log has this message as sent."""
    statement = select(MessageLog.status).where(MessageLog.idempotency_key == idempotency_key)
    async with session_factory(engine)() as session:
        return (await session.exec(statement)).first() == DeliveryStatus.SENT


def _sent(key_prefix: str) -> Any:
    """Sent messages whose idempotency key starts with `key_prefix` (`{workflow id}/{step}`)."""
    return (col(MessageLog.idempotency_key).startswith(key_prefix, autoescape=True)) & (
        col(MessageLog.status) == DeliveryStatus.SENT
    )


async def watch_sent(
    engine: AsyncEngine, key_prefix: str, count: int, *, every: float, timeout: float
) -> dict[str, float]:
    """Poll the message log until `count` messages whose key starts with `key_prefix` are sent.

    Returns:
        When each was first seen sent (epoch seconds), by idempotency key.

    Raises:
        TimeoutError: fewer were sent within `timeout` seconds.
    """
    statement = select(MessageLog.idempotency_key).where(_sent(key_prefix))
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(seen)} of {count} {key_prefix}… sent in {timeout:.0f} s")
        async with session_factory(engine)() as session:
            keys = (await session.exec(statement)).all()
        now = time.time()
        seen.update((key, now) for key in keys if key not in seen)
        await asyncio.sleep(every)
    return seen


async def count_sent(engine: AsyncEngine, key_prefix: str) -> int:
    """How many messages whose key starts with `key_prefix` the message log has as sent."""
    statement = select(func.count(col(MessageLog.id))).where(_sent(key_prefix))
    async with session_factory(engine)() as session:
        return (await session.exec(statement)).one()


# --- waiting ----------------------------------------------------------------------------


async def until(
    check: Callable[[], Awaitable[bool]], *, every: float, timeout: float, what: str
) -> None:
    """Check every `every` seconds until `check()` holds.

    Raises:
        TimeoutError: not within `timeout` seconds (naming `what`).
    """
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(every)


async def gather_limited(awaitables: Iterable[Awaitable[T]], *, limit: int = 64) -> list[T]:
    """Await all, at most `limit` at a time; results in order."""
    slots = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[T]) -> T:
        async with slots:
            return await awaitable

    return await asyncio.gather(*(one(awaitable) for awaitable in awaitables))


async def closed_workflows(
    client: Client, query: str, count: int, *, timeout: float
) -> list[WorkflowExecution]:
    """Wait until `count` workflows matching the visibility `query` have closed; list them."""

    async def all_closed() -> bool:
        closed = await client.count_workflows(f"{query} AND ExecutionStatus != 'Running'")
        return closed.count >= count

    await until(all_closed, every=0.5, timeout=timeout, what=f"{count} closed for {query}")
    return [execution async for execution in client.list_workflows(query)]
