"""Fixtures of the cluster tests: a real Temporal cluster on PostgreSQL, workers, a gateway.

The session shares one PostgreSQL server and one Temporal cluster on it (five
`temporal-server` processes: frontend, matching, worker and two history hosts;
`starter/dev/temporal_cluster.py`), prepared by
the real `journeys setup`. Each test gets a database of its own on that
PostgreSQL (the app's tables and the workers' data keys), its own task queue,
an email API on loopback, and starts `journeys worker` processes and a
`journeys api` gateway pointed at all of them (`tests/faults/fixtures.py`).

Every test under `tests/cluster/` is marked `cluster`: `make test` leaves them
out, `make cluster-test` (which `.ci/run` runs too) runs only them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

from models.settings import Settings
from runtime.keys import KeyStore
from runtime.temporal import connect
from starter.dev.postgres import PostgresCluster, postgres_unavailable
from starter.dev.temporal_cluster import TemporalCluster
from starter.dev.toolchain import temporal_server_bundle
from tests.cli import JOURNEYS, Completed, run
from tests.faults.fixtures import email_api, payload_keys, worker_env, worker_process

__all__ = ["email_api", "payload_keys", "worker_env", "worker_process"]  # fixtures used here

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `cluster` (before `-m` selects)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@dataclass
class LocalCluster:
    """The session's cluster, and what `journeys setup` printed when it prepared it."""

    temporal: TemporalCluster
    postgres: PostgresCluster
    first_setup: Completed

    @property
    def address(self) -> str:
        """The frontend's `host:port`."""
        return self.temporal.address


@pytest.fixture(scope="session")
def cluster_postgres() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL server (Temporal's databases and one per test)."""
    if reason := postgres_unavailable():
        pytest.fail(f"the cluster tests need a PostgreSQL server: {reason}")
    with PostgresCluster() as server:
        yield server


@pytest.fixture(scope="session")
async def cluster(
    cluster_postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalCluster]:
    """The session's Temporal cluster (two history hosts), prepared by `journeys setup`."""
    bundle = await asyncio.to_thread(temporal_server_bundle)
    with TemporalCluster(
        tmp_path_factory.mktemp("temporal-cluster"),
        bundle=bundle,
        postgres=cluster_postgres,
        history_hosts=2,
    ) as temporal:
        await temporal.wait_ready()
        setup = await run(
            str(JOURNEYS), "setup", env={**os.environ, "TEMPORAL_ADDRESS": temporal.address}
        )
        assert setup.returncode == 0, f"{setup.stderr}\n{temporal.log_tails()}"
        yield LocalCluster(temporal, cluster_postgres, setup)


@pytest.fixture
def settings(settings: Settings, cluster_postgres: PostgresCluster) -> Settings:
    """The test's settings with its database on the cluster's PostgreSQL."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    cluster_postgres.create_database(database)
    return settings.model_copy(update={"database_url": cluster_postgres.database_url(database)})


@pytest.fixture
def temporal_address(cluster: LocalCluster) -> str:
    """The cluster's frontend, for the workers."""
    return cluster.address


@pytest.fixture
async def client(cluster: LocalCluster, payload_keys: KeyStore) -> Client:
    """A client of the cluster that encrypts and decrypts with the workers' data keys."""
    return await connect(target_host=cluster.address, keys=payload_keys)
