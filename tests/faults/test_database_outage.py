"""The database goes away for a while in the middle of the journeys: nothing lost, nothing twice.

- PostgreSQL is stopped (every connection cut, new ones refused), then started again.
- The SQLite file is locked by another process's write transaction for longer
  than the worker's busy timeout (30 s), so writes fail with "database is locked".

Sends, journey-run records and routing fail meanwhile; Temporal retries them
until the database is back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from models.db import create_engine, migrate
from models.settings import Settings
from starter.dev.postgres import PostgresCluster, postgres_unavailable
from tests.faults.email_api import EmailApi
from tests.faults.fleet import (
    add_contacts,
    assert_each_email_delivered_once,
    enroll_all,
    fleet,
    wait_for_journeys,
)
from tests.faults.stack import DevServer, WorkerProcess

POSTGRES_OUTAGE_SECONDS = 10
SQLITE_LOCK_SECONDS = 35
"""Longer than the 30 s SQLite busy timeout of the worker's connections."""


@pytest.fixture
async def postgres() -> AsyncIterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster."""
    with PostgresCluster() as cluster:
        yield cluster


async def first_burst_out(email_api: EmailApi, contacts: list[str]) -> None:
    """Wait until every Day-0 email was delivered."""
    async with asyncio.timeout(60):
        while len(email_api.deliveries) < len(contacts):
            await asyncio.sleep(0.05)


def failed_attempts(worker: WorkerProcess, marker: str) -> int:
    """Log lines of the worker that mention `marker` (an error of the outage)."""
    return sum(marker in line for line in worker.log_path.read_text().splitlines())


@pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable()))
async def test_postgresql_stopped_and_restarted_mid_journeys(
    postgres: PostgresCluster,
    dev_server: DevServer,
    settings: Settings,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    engine = create_engine(postgres.url)
    try:
        await migrate(engine)
        contacts = fleet(8)
        await add_contacts(engine, contacts)
        worker = worker_process("worker", DATABASE_URL=postgres.url)
        await worker.start()
        await enroll_all(dev_server.client, engine, contacts, task_queue=settings.task_queue)
        await first_burst_out(email_api, contacts)

        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(POSTGRES_OUTAGE_SECONDS)
        await asyncio.to_thread(postgres.start)

        await wait_for_journeys(dev_server.client, contacts, within=300)
        await assert_each_email_delivered_once(engine, email_api, contacts)
        assert failed_attempts(worker, "Connect call failed") > 0, worker.tail()
    finally:
        await engine.dispose()


def hold_write_lock(database: Path, seconds: float) -> None:
    """Hold an exclusive write transaction on the SQLite file for `seconds`."""
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def test_sqlite_file_locked_longer_than_the_busy_timeout(
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    contacts = fleet(8)
    await add_contacts(engine, contacts)
    worker = worker_process("worker")
    await worker.start()
    await enroll_all(dev_server.client, engine, contacts, task_queue=settings.task_queue)
    await first_burst_out(email_api, contacts)

    database = make_url(settings.database_url).database
    assert database is not None
    await asyncio.to_thread(hold_write_lock, Path(database), SQLITE_LOCK_SECONDS)

    await wait_for_journeys(dev_server.client, contacts, within=300)
    await assert_each_email_delivered_once(engine, email_api, contacts)
    assert failed_attempts(worker, "database is locked") > 0, worker.tail()
