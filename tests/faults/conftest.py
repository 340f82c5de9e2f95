"""Fixtures of the fault tests: a restartable dev server, an email API, worker processes.

Each test gets its own dev server (a database file in its tmp folder), its own
task queue and SQLite file, an email API on loopback, and starts `journeys
worker` processes pointed at all three. Workers still running at the end are
stopped; their logs stay in the test's tmp folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from models.settings import Settings
from tests.cli import cli_environment
from tests.faults.email_api import EmailApi
from tests.faults.stack import DevServer, WorkerProcess

PROVIDER_TIMEOUT_SECONDS = 1.5


@pytest.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    """A dev server of the test's own, started."""
    server = DevServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def email_api() -> Iterator[EmailApi]:
    """The email API the workers deliver to."""
    with EmailApi() as api:
        yield api


@pytest.fixture
def worker_env(settings: Settings, dev_server: DevServer, email_api: EmailApi) -> dict[str, str]:
    """Environment of a worker process: the test's server, database, queue and email API."""
    return {
        **cli_environment(settings, dev_server.address),
        "EMAIL_PROVIDER": "http",
        # A real provider: the start-up guard asks for production-grade link settings.
        "UNSUBSCRIBE_SECRET": "fault-tests-unsubscribe-secret-of-32-bytes-or-more",
        "PUBLIC_BASE_URL": "https://journeys.example.test",
        "EMAIL_API_URL": email_api.url,
        "EMAIL_API_KEY": "fault-tests-key",
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
