"""Shared fixtures: real Temporal servers, a real SQLite file, a real outbox folder.

The Java time-skipping test server (Day-N logic in seconds) and the Temporal
CLI dev server (visibility, search attributes, the CLI end to end) are each
started once per test session with the binaries the project builds itself
(`starter/toolchain.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import time
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
from starter.cluster import register_search_attributes
from starter.toolchain import start_dev_server, start_time_skipping_server
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


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server, shared by the session."""
    env = await start_time_skipping_server(
        data_converter=pydantic_data_converter, interceptors=[_STARTED]
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(autouse=True)
async def end_leftover_workflows(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Terminate the workflows a test left running on the time-skipping server.

    Their worker is gone once the test ends: a timer of theirs firing later
    would schedule a workflow task nobody takes, and the server stops skipping
    time for every later test. Children (a nurture started by a welcome
    series) are found in their parents' histories.
    """
    first = len(_STARTED.ids)
    yield
    if "time_skipping_env" not in request.fixturenames:
        return
    client: Client = request.getfixturevalue("time_skipping_env").client
    pending, seen = list(_STARTED.ids[first:]), set()
    while pending:
        workflow_id = pending.pop()
        if workflow_id in seen:
            continue
        seen.add(workflow_id)
        handle = client.get_workflow_handle(workflow_id)
        try:
            async for event in handle.fetch_history_events():
                if event.HasField("child_workflow_execution_started_event_attributes"):
                    child = event.child_workflow_execution_started_event_attributes
                    pending.append(child.workflow_execution.workflow_id)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test over")
        except RPCError:
            continue


@pytest.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal CLI dev server with the custom search attributes registered."""
    db_file = tmp_path_factory.mktemp("temporal") / "temporal.db"
    env = await start_dev_server(
        data_converter=pydantic_data_converter,
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_database_filename=str(db_file),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of one test: its own database file, outbox and task queue.

    Quiet hours are off: schedule tests run at whatever time of day CI runs.
    The quiet-hours tests turn them on.
    """
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'journeys.db'}",
        outbox_dir=tmp_path / "outbox",
        task_queue=f"test-{uuid.uuid4()}",
        quiet_hours_start=time(0, 0),
        quiet_hours_end=time(0, 0),
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database file for one test."""
    engine = create_engine(settings.database_url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def make_worker(settings: Settings, engine: AsyncEngine) -> Callable[[Client], Worker]:
    """Build the real worker (real activities, DB and outbox) for a client."""

    def make(client: Client) -> Worker:
        return build_worker(client, settings, engine)

    return make
