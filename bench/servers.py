"""What a benchmark stack's Temporal and journeys database run on: its topology.

- `Topology.DEV_SERVER` (the default): a fresh Temporal CLI dev server whose
  database is a file in the stack's folder (SQLite in WAL mode), and the
  journeys database on SQLite there too.
- `Topology.CLUSTER` (`python -m bench --cluster`): the production topology of
  `journeys cluster` (`starter/dev/cluster_stack.py`), fresh for the stack: a
  throwaway PostgreSQL, the Temporal server's four services as separate
  processes on it (`starter.dev.temporal_cluster.TemporalCluster`), the
  `default` namespace and the search attributes registered as `journeys setup`
  does, and the journeys database on the same PostgreSQL, in a database of its own.

Everything else (worker processes, the gateway, the peer and bare baselines) is
the same on both: the baselines run on the same server as the journeys, so the
ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from starter.dev.cluster import register_namespace, register_search_attributes
from starter.dev.postgres import PostgresCluster, postgres_bin_dir, postgres_unavailable
from starter.dev.temporal_cluster import ClusterError, TemporalCluster
from starter.dev.toolchain import (
    TEMPORAL_CLI_VERSION,
    TEMPORAL_SERVER_VERSION,
    start_dev_server,
    temporal_server_bundle,
)

NAMESPACE = "default"
SERVER_PRAGMAS = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
"""The dev server's SQLite file in WAL mode: with its default rollback journal, the server's
own writes are the bottleneck (the bare baseline alone ran 2-3x slower), which would hide
what the journeys cost."""
APP_DATABASE = "journeys"
"""The journeys database on the cluster's PostgreSQL (beside `temporal` and
`temporal_visibility`), as `journeys cluster` names it."""
RETENTION = timedelta(days=1)
"""The cluster namespace's retention: the shortest the server takes; a stack lives minutes."""
SEARCHABLE_TIMEOUT = 60.0
"""Seconds the frontend may take to accept queries on the search attributes just added."""


class Topology(StrEnum):
    """Where a benchmark stack's Temporal server and journeys database run."""

    DEV_SERVER = "dev-server"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class Servers:
    """The running Temporal server and the journeys database of one stack.

    Attributes:
        topology: Which topology they are.
        client: A client of the `default` namespace: pydantic payloads, no codec.
        database_url: The journeys database (SQLite file, or PostgreSQL on the cluster).
        temporal_pids: The Temporal server's processes (the dev server; the four services).
        database_pid: PostgreSQL's postmaster on the cluster; None on the dev server, where
            SQLite works inside the processes that use it.
        description: What ran, in a sentence, for the report.
    """

    topology: Topology
    client: Client
    database_url: str
    temporal_pids: tuple[int, ...]
    database_pid: int | None
    description: str

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the Temporal server's processes (`server`) and, on the
        cluster, by PostgreSQL (`database`, its backends included)."""
        used = {"server": sum(cpu_seconds(pid) for pid in self.temporal_pids)}
        if self.database_pid is not None:
            used["database"] = tree_cpu_seconds(self.database_pid)
        return used


def cpu_seconds(pid: int) -> float:
    """CPU time a process used so far, user and system (/proc/<pid>/stat)."""
    return _stat(pid).own / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children, running or exited (and waited for).

    PostgreSQL's backends are children of its postmaster: one per connection, gone
    when the connection closes, their time then added to the postmaster's.
    """
    parent = _stat(pid)
    ticks = parent.own + parent.children
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = _stat(int(entry.name))
        except OSError:  # exited meanwhile
            continue
        if child.ppid == pid:
            ticks += child.own
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class _ProcessStat:
    """What /proc/<pid>/stat says of a process's CPU, in clock ticks."""

    ppid: int
    own: int
    children: int


def _stat(pid: int) -> _ProcessStat:
    # The fields after the command name (which may hold spaces), from the 3rd on.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(field) for field in fields[11:15])
    return _ProcessStat(int(fields[1]), utime + stime, cutime + cstime)


def running_servers(topology: Topology, root: Path) -> AbstractAsyncContextManager[Servers]:
    """Start the servers of `topology` for a stack whose folder is `root`; stop them after."""
    return _on_cluster(root) if topology == Topology.CLUSTER else _on_dev_server(root)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr meanwhile (what a process started inside inherits)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@asynccontextmanager
async def _on_dev_server(root: Path) -> AsyncIterator[Servers]:
    """A dev server whose database is `root/temporal.db`; the journeys on `root/journeys.db`.

    The server's output goes to stderr: stdout is the report's.
    """
    database = root / "temporal.db"
    with _stdout_to_stderr():
        env = await start_dev_server(
            dev_server_database_filename=str(database),
            dev_server_extra_args=SERVER_PRAGMAS,
            search_attributes=ALL_SEARCH_ATTRIBUTES,
            data_converter=pydantic_data_converter,
        )
    try:
        yield Servers(
            Topology.DEV_SERVER,
            env.client,
            f"sqlite:///{root / 'journeys.db'}",
            (_pid_running(str(database)),),
            None,
            f"Temporal CLI {TEMPORAL_CLI_VERSION} dev server (one process), its database a "
            "SQLite file in WAL mode; the journeys database on SQLite",
        )
    finally:
        await env.shutdown()


def _pid_running(marker: str) -> int:
    """The process whose command line holds `marker` and whose parent's does not.

    The dev server: its database file; PostgreSQL's postmaster: its port (a new
    backend shows its postmaster's command line until it sets its own title).

    Raises:
        RuntimeError: no such process, or more than one.
    """
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in command:
                found[int(entry.name)] = _stat(int(entry.name)).ppid
        except OSError:  # exited meanwhile
            continue
    roots = [pid for pid, ppid in found.items() if ppid not in found]
    if len(roots) != 1:
        raise RuntimeError(f"{len(roots)} processes run with {marker!r}, not one")
    return roots[0]


@asynccontextmanager
async def _on_cluster(root: Path) -> AsyncIterator[Servers]:
    """PostgreSQL, the four Temporal services on it (in `root/temporal`), set up as by
    `journeys setup`; the journeys database on the same PostgreSQL.

    Raises:
        RuntimeError: PostgreSQL's server binaries are missing (names what is).
        ToolchainError: the Temporal server is not built and cannot be.
        ClusterError: the cluster did not start (with the end of its logs).
    """
    unavailable = postgres_unavailable()
    if unavailable is not None:
        raise RuntimeError(f"--cluster needs PostgreSQL: {unavailable}")
    bundle = await asyncio.to_thread(temporal_server_bundle)
    with (
        PostgresCluster() as postgres,
        TemporalCluster(root / "temporal", bundle=bundle, postgres=postgres) as cluster,
    ):
        await cluster.wait_ready()
        client = await Client.connect(
            cluster.address, namespace=NAMESPACE, data_converter=pydantic_data_converter
        )
        await register_namespace(client, retention=RETENTION)
        await register_search_attributes(client)
        await _until_searchable(client)
        postgres.create_database(APP_DATABASE)
        bin_dir = postgres_bin_dir()
        version = bin_dir.parent.name if bin_dir is not None else "?"
        yield Servers(
            Topology.CLUSTER,
            client,
            postgres.database_url(APP_DATABASE),
            tuple(service.pid for service in cluster.services.values() if service.pid),
            _pid_running(f"-p {postgres.port} "),
            f"Temporal server {TEMPORAL_SERVER_VERSION} as four processes (frontend, history, "
            f"matching, worker; {cluster.history_shards} history shards) on PostgreSQL "
            f"{version}; the journeys database on the same PostgreSQL",
        )


async def _until_searchable(client: Client) -> None:
    """Wait until the frontend accepts a query naming every search attribute just added.

    Raises:
        ClusterError: not within `SEARCHABLE_TIMEOUT` (with the server's answer).
    """
    query = " AND ".join(f"{key.name} IS NULL" for key in ALL_SEARCH_ATTRIBUTES)
    error: RPCError | None = None
    try:
        async with asyncio.timeout(SEARCHABLE_TIMEOUT):
            while True:
                try:
                    await client.count_workflows(query)
                    return
                except RPCError as refused:
                    error = refused
                    await asyncio.sleep(0.2)
    except TimeoutError:
        raise ClusterError(
            f"the search attributes were registered but not searchable within "
            f"{SEARCHABLE_TIMEOUT:.0f} s: {error}"
        ) from None
