"""`journeys cluster` (what `make cluster` calls): the production topology on this machine.

Starts, in the foreground, on loopback:

* PostgreSQL (Debian's server; data in `.data/cluster/postgres`, port 5433);
* a Temporal cluster on it: frontend (7233), history, matching and worker as
  separate `temporal-server` processes (`starter/dev/temporal_cluster.py`);
* `journeys setup` (the namespace and the search attributes);
* two `journeys worker` processes and the gateway (`journeys api`, :8000), with
  the app's database (`journeys`) on the same PostgreSQL;
* the demo of `make run` on it, unless `--no-demo`.

Logs go to `.data/cluster/logs/`. Ctrl-C stops everything; running it again
reuses the saved state.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import typer

from models.settings import ApiKey, Settings
from runtime.keys import key_store
from runtime.shutdown import wait_for_shutdown_signal
from runtime.temporal import connect
from starter.dev import demo
from starter.dev.cluster import register_namespace, register_search_attributes
from starter.dev.defaults import (
    DEMO_DAY_SECONDS,
    DEMO_DELIVERABILITY_CHECK_SECONDS,
    DEMO_SEGMENT_SWEEP_SECONDS,
)
from starter.dev.ports import port_in_use
from starter.dev.postgres import PostgresCluster
from starter.dev.processes import ServiceProcess
from starter.dev.stack import DATA_DIR, LOCAL_KEY_FILE, local_api_key
from starter.dev.temporal_cluster import ClusterPorts, TemporalCluster
from starter.dev.toolchain import temporal_server_bundle
from starter.services.operations import OperationError

CLUSTER_DIR = DATA_DIR / "cluster"
POSTGRES_PORT = 5433
APP_DATABASE = "journeys"
WORKERS = 2
NAMESPACE_RETENTION = timedelta(days=30)
JOURNEYS = Path(sys.executable).parent / "journeys"
WORKER_READY_SECONDS = 120


def app_environment(
    settings: Settings, *, temporal_address: str, database_url: str, key: ApiKey
) -> dict[str, str]:
    """The environment of the cluster's `journeys worker` and `journeys api` processes."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "DATABASE_URL": database_url,
        "TASK_QUEUE": settings.task_queue,
        "OUTBOX_DIR": str(settings.outbox_dir.resolve()),
        "API_KEYS": json.dumps([{"name": key.name, "key": key.key.get_secret_value()}]),
        "DAY_SECONDS": str(settings.day_seconds) if settings.day_seconds else "",
        "ALLOW_ACCELERATED_CLOCK": str(settings.allow_accelerated_clock).lower(),
        "SEGMENT_SWEEP_SECONDS": str(settings.segment_sweep_seconds),
        "DELIVERABILITY_CHECK_SECONDS": str(settings.deliverability_check_seconds),
        "LOG_FORMAT": "json",
    }


@contextmanager
def running_processes(processes: list[ServiceProcess]) -> Iterator[list[ServiceProcess]]:
    """Start the processes; stop them (SIGTERM) when the block exits."""
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in reversed(processes):
            process.stop()


async def wait_for_line(process: ServiceProcess, line: bytes, *, timeout: float) -> None:
    """Wait until the process's log has `line`.

    Raises:
        OperationError: it exited first or did not log it in time (with its log).
    """
    try:
        async with asyncio.timeout(timeout):
            while line not in process.log_path.read_bytes():
                if not process.running:
                    raise OperationError(f"{process.name} exited:\n{process.tail()}")
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise OperationError(f"{process.name} did not start:\n{process.tail()}") from None


async def run_cluster(settings: Settings, *, with_demo: bool = True) -> None:
    """Run the local cluster until Ctrl-C (see the module docstring)."""
    from worker import sweep_segments_once  # the journeys load here only

    ports = ClusterPorts.standard()
    service_ports = [
        port
        for service in ports.services.values()
        for port in (service.grpc, service.membership, service.http)
        if port is not None
    ]
    busy = [
        port for port in (POSTGRES_PORT, settings.api_port, *service_ports) if port_in_use(port)
    ]
    if busy:
        raise OperationError(
            f"port(s) {', '.join(map(str, busy))} already in use: is `make run` or another "
            "`make cluster` running? Stop it first."
        )
    DATA_DIR.mkdir(exist_ok=True)
    typer.echo("Getting the Temporal server (built with Go the first time)…")
    bundle = await asyncio.to_thread(temporal_server_bundle)
    key = local_api_key()
    if with_demo:
        settings = settings.model_copy(
            update={
                "day_seconds": DEMO_DAY_SECONDS,
                "allow_accelerated_clock": True,
                "segment_sweep_seconds": DEMO_SEGMENT_SWEEP_SECONDS,
                "deliverability_check_seconds": DEMO_DELIVERABILITY_CHECK_SECONDS,
            }
        )
    shutdown = asyncio.create_task(wait_for_shutdown_signal())
    logs = CLUSTER_DIR / "logs"
    with ExitStack() as stack:
        stack.callback(shutdown.cancel)
        typer.echo(f"Starting PostgreSQL on 127.0.0.1:{POSTGRES_PORT}…")
        postgres = stack.enter_context(
            PostgresCluster(CLUSTER_DIR / "postgres", port=POSTGRES_PORT)
        )
        postgres.create_database(APP_DATABASE)
        settings = settings.model_copy(update={"database_url": postgres.database_url(APP_DATABASE)})
        typer.echo("Starting Temporal: frontend, history, matching, worker…")
        temporal = stack.enter_context(
            TemporalCluster(CLUSTER_DIR / "temporal", bundle=bundle, postgres=postgres, ports=ports)
        )
        await temporal.wait_ready()
        client = await connect(target_host=temporal.address, keys=key_store(settings))
        await register_namespace(client, retention=NAMESPACE_RETENTION)
        await register_search_attributes(client)
        env = app_environment(
            settings,
            temporal_address=temporal.address,
            database_url=settings.database_url,
            key=key,
        )
        workers = [
            ServiceProcess(
                f"journeys-worker-{index}",
                [str(JOURNEYS), "worker"],
                log_path=logs / f"journeys-worker-{index}.log",
                env=env,
            )
            for index in range(1, WORKERS + 1)
        ]
        gateway = ServiceProcess(
            "journeys-api", [str(JOURNEYS), "api"], log_path=logs / "journeys-api.log", env=env
        )
        stack.enter_context(running_processes([*workers, gateway]))
        for worker in workers:
            await wait_for_line(worker, b'"worker started"', timeout=WORKER_READY_SECONDS)
        typer.echo(f"{WORKERS} workers and the gateway are running.")
        if with_demo:
            await sweep_segments_once(client, settings)
            typer.echo(f"Demo: {demo.SUMMARY} (1 journey day = {DEMO_DAY_SECONDS} s)")
            await demo.run_demo(client, settings, day_seconds=DEMO_DAY_SECONDS)
        typer.echo(
            "\n"
            f"  Temporal frontend: {temporal.address}  "
            "(e.g. `temporal workflow list --address 127.0.0.1:7233`)\n"
            f"  PostgreSQL:        {postgres.url}  (Temporal's databases and `{APP_DATABASE}`)\n"
            "  Journeys:          TEMPORAL_ADDRESS=127.0.0.1:7233 "
            f"DATABASE_URL={settings.database_url} .venv/bin/journeys list\n"
            f"  HTTP API:          http://{settings.api_host}:{settings.api_port}/docs  "
            f"(key in {LOCAL_KEY_FILE})\n"
            f"  Logs:              {logs}/\n"
            "\nPress Ctrl-C to stop.\n"
        )
        await shutdown
    typer.echo("Stopped the workers, the gateway, Temporal and PostgreSQL.")
