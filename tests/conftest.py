"""Shared fixtures: real Temporal servers, a real SQLite file, a real outbox folder.

The Java time-skipping test server (Day-N logic in seconds) and the Temporal
CLI dev server (visibility, search attributes, the CLI end to end) are each
started once per test session with the binaries the project builds itself
(`starter/dev/toolchain.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.db import create_engine, migrate
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore, key_store
from starter.dev.cluster import register_search_attributes
from starter.dev.postgres import PostgresCluster, postgres_unavailable
from starter.dev.toolchain import start_dev_server, start_time_skipping_server
from tests.contact_kit import Contacts
from tests.kit import JourneyKit, kit_settings, recording_histories, running_kit
from worker import build_worker


class StartedWorkflows(Interceptor):
    """Remembers the id of every workflow a client starts."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RecordStarts(next, self.ids)


class _RecordStarts(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, ids: list[str]) -> None:
        super().__init__(next)
        self._ids = ids

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        self._ids.append(input.id)
        return await super().start_workflow(input)


_STARTED = StartedWorkflows()


class TimeSkippingServer:
    """The Java time-skipping test server, started again when it stops skipping time.

    The test server is known to lose track of its time-skipping lock around
    child workflows, signals and terminations (sdk-java#1618, #1138, #3088):
    from then on time runs at wall-clock speed and every `sleep` hangs. Each
    test checks that skipping an hour takes less than `HEALTH_CHECK_TIMEOUT`
    seconds and gets a fresh server when it does not.
    """

    def __init__(self, keys: KeyStore) -> None:
        self.env: WorkflowEnvironment | None = None
        self._keys = keys
        self._module = ""

    async def healthy_env(self, module: str) -> WorkflowEnvironment:
        """The server, checked; a fresh one for each test module.

        A module's tests leave journeys whose timers lie days or months ahead
        (inactivity, onboarding, renewals) beyond what the health check skips;
        the next module's first long `sleep` would fire them with no worker to
        take their tasks, and the server would stop skipping time.
        """
        if module != self._module:
            self._module = module
            await self.stop()
        if self.env is not None:
            try:
                await asyncio.wait_for(self.env.sleep(timedelta(hours=1)), HEALTH_CHECK_TIMEOUT)
                return self.env
            except (TimeoutError, RPCError):
                await self.stop()
        converter = (
            pydantic_data_converter
            if recording_histories()
            else encrypting_data_converter(self._keys)
        )
        self.env = await start_time_skipping_server(
            data_converter=converter, interceptors=[_STARTED]
        )
        await register_search_attributes(self.env.client)
        return self.env

    async def stop(self) -> None:
        env, self.env = self.env, None
        if env is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(env.shutdown(), HEALTH_CHECK_TIMEOUT)


HEALTH_CHECK_TIMEOUT = 5


@pytest.fixture(scope="session")
async def codec_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """The data keys of the session's Temporal clients (a SQLite file of their own).

    Every client and worker of a test environment encrypts with these keys;
    a worker's erasure destroys keys here (see `worker.build_worker`). The
    CLI's subprocesses find them through PAYLOAD_KEYS_DATABASE_URL.
    """
    database_url = f"sqlite:///{tmp_path_factory.mktemp('codec') / 'keys.db'}"
    engine = create_engine(database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    os.environ["PAYLOAD_KEYS_DATABASE_URL"] = database_url  # for the CLI's subprocesses
    return key_store(Settings(database_url=database_url))


@pytest.fixture(scope="session")
async def time_skipping_server(codec_keys: KeyStore) -> AsyncIterator[TimeSkippingServer]:
    """The session's time-skipping server (see `TimeSkippingServer`)."""
    server = TimeSkippingServer(codec_keys)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def time_skipping_env(
    request: pytest.FixtureRequest, time_skipping_server: TimeSkippingServer
) -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server, shared by the session while it works.

    After the test, the workflows it left running are terminated: their worker
    is gone, and a timer of theirs firing later would schedule a workflow task
    nobody takes, which stops the server skipping time. Children (a nurture
    started by a welcome series) are found in their parents' histories.
    """
    env = await time_skipping_server.healthy_env(request.module.__name__)
    first = len(_STARTED.ids)
    yield env
    await _terminate_running(env.client, _STARTED.ids[first:])


async def _terminate_running(client: Client, workflow_ids: list[str]) -> None:
    pending, seen = list(workflow_ids), set()
    while pending:
        workflow_id = pending.pop()
        if workflow_id in seen:
            continue
        seen.add(workflow_id)
        handle = client.get_workflow_handle(workflow_id)
        with contextlib.suppress(RPCError):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test over")
        with contextlib.suppress(RPCError):
            async for event in handle.fetch_history_events():
                if event.HasField("child_workflow_execution_started_event_attributes"):
                    child = event.child_workflow_execution_started_event_attributes
                    pending.append(child.workflow_execution.workflow_id)


@pytest.fixture(scope="session")
async def dev_env(
    tmp_path_factory: pytest.TempPathFactory, codec_keys: KeyStore
) -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal CLI dev server with the custom search attributes registered."""
    db_file = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await start_dev_server(
        data_converter=encrypting_data_converter(codec_keys),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(db_file),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of one test: its own database file, outbox and task queue (`kit_settings`)."""
    return kit_settings(tmp_path)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database file for one test."""
    engine = create_engine(settings.database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                postgres_unavailable() is not None, reason=str(postgres_unavailable())
            ),
        ),
    ]
)
async def database(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[AsyncEngine]:
    """The test's SQLite file, or a migrated throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        engine = create_engine(settings.database_url)
        await migrate(engine)
        yield engine
        await engine.dispose()
        return
    with PostgresCluster() as cluster:
        engine = create_engine(cluster.url)
        await migrate(engine)
        yield engine
        await engine.dispose()


@pytest.fixture
def contacts(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> Contacts:
    """Events sent to contact workflows as the gateway sends them, on the time-skipping server."""
    return Contacts(time_skipping_env, settings, engine)


@pytest.fixture
async def worker(
    time_skipping_env: WorkflowEnvironment, make_worker: Callable[[Client], Worker]
) -> AsyncIterator[Worker]:
    """The project's worker, running on the time-skipping server for one test."""
    async with make_worker(time_skipping_env.client) as running:
        yield running


@pytest.fixture
def make_worker(settings: Settings, engine: AsyncEngine) -> Callable[[Client], Worker]:
    """Build the real worker (real activities, DB and outbox) for a client."""

    def make(client: Client) -> Worker:
        return build_worker(client, settings, engine)

    return make


@pytest.fixture
async def journey_kit(
    time_skipping_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[JourneyKit]:
    """The real worker on the time-skipping server, with `simulate` (see `tests.kit`)."""
    async with running_kit(time_skipping_env, settings, engine) as running:
        yield running
