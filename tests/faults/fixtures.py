"""Fixtures shared by the fault tests and the cluster tests: data keys, an email API, workers.

A conftest that imports them defines `temporal_address`, the `host:port` of the
test's Temporal frontend (a dev server's, or a cluster's), and may override
`settings` (e.g. to put the test's database on PostgreSQL).

The workers encrypt every payload (a real provider: the start-up guard refuses
the built-in master key, so they get the tests' own, `PRODUCTION_MASTER_KEYS`).
Their data keys live in the test's database, named explicitly as
PAYLOAD_KEYS_DATABASE_URL, so that a worker pointed at another DATABASE_URL
keeps them there too, and the test's client decodes with the same keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from models.db import create_engine, migrate
from models.settings import Settings
from runtime.keys import KeyStore, key_store
from tests.cli import cli_environment
from tests.fake_api import LedgerServer
from tests.faults.email_api import EmailApi
from tests.faults.stack import WorkerProcess
from tests.gateway import PRODUCTION_MASTER_KEYS, REAL_PROVIDER_ENVIRONMENT

PROVIDER_TIMEOUT_SECONDS = 1.5


@pytest.fixture
async def payload_keys(settings: Settings) -> KeyStore:
    """The data keys of the test's workers and client: in the test's (migrated) database."""
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    return key_store(
        settings.model_copy(
            update={
                "payload_master_keys": PRODUCTION_MASTER_KEYS,
                "payload_keys_database_url": settings.database_url,
            }
        )
    )


@pytest.fixture
def email_api() -> Iterator[EmailApi]:
    """The email API the workers deliver to."""
    with EmailApi() as api:
        yield api


@pytest.fixture
def worker_env(
    settings: Settings, temporal_address: str, email_api: LedgerServer
) -> dict[str, str]:
    """Environment of a worker process: the test's server, database, queue and email API."""
    return {
        **cli_environment(settings, temporal_address),
        **email_api.worker_environment(),
        # A real provider: the start-up guard asks for secrets and keys of one's own.
        **REAL_PROVIDER_ENVIRONMENT,
        "PAYLOAD_KEYS_DATABASE_URL": settings.database_url,
        "PROVIDER_TIMEOUT_SECONDS": str(PROVIDER_TIMEOUT_SECONDS),
    }


@pytest.fixture
async def worker_process(
    worker_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Callable[..., WorkerProcess]]:
    """Make worker processes (`make("a")`, or with extra environment); all stopped at the end."""
    made: list[WorkerProcess] = []

    def make(name: str, **environment: str) -> WorkerProcess:
        worker = WorkerProcess(name, {**worker_env, **environment}, tmp_path)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop()
