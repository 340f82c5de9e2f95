"""Fixtures of the fault tests: a restartable dev server, an email API, worker processes.

Each test gets its own dev server (a database file in its tmp folder), its own
task queue and SQLite file, an email API on loopback (the generic JSON one; a test
may override `email_api` with another `LedgerServer`, e.g. the Postmark fake), and starts `journeys
worker` processes pointed at all three (`tests/faults/fixtures.py`). Workers still
running at the end are stopped; their logs stay in the test's tmp folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.keys import KeyStore
from tests.faults.fixtures import email_api, payload_keys, worker_env, worker_process
from tests.faults.stack import DevServer

__all__ = ["email_api", "payload_keys", "worker_env", "worker_process"]  # fixtures used here


@pytest.fixture
async def dev_server(tmp_path: Path, payload_keys: KeyStore) -> AsyncIterator[DevServer]:
    """A dev server of the test's own, started; its client uses the workers' data keys."""
    server = DevServer(tmp_path, payload_keys)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def temporal_address(dev_server: DevServer) -> str:
    """The dev server's frontend, for the workers."""
    return dev_server.address
