"""Release 2 of a journey deploys while runs of release 1 are mid-flight (Worker Versioning).

Two releases of the test journey `drip` (`tests/deploy_journeys.py`) run as two
versions of one worker deployment: workers built by `worker.build_worker` from
settings with their `WORKER_BUILD_ID`, on one task queue. Release 1 is current;
four drips start and park on their Day-1 timer (a journey day is an hour here), and
a contact workflow takes an event. Release 2's worker starts beside release 1's and
`journeys deploy-promote` makes it current; two more drips start. Then:

- `journeys deploy-status` shows release 1 draining with the four drips pinned to it;
- a release-1 drip that continues as new stays on release 1;
- the contact workflow (auto-upgrade) moves to release 2 at its next event;
- the parked drips are woken (`skip_wait`): release 1's finish with release 1's two
  emails, release 2's with release 2's three (new copy, and the tip);
- `journeys deploy-status` shows release 1 drained, nothing pinned to it.

The server is the `deploy_server` fixture: a dev server here; a test module of the
cluster tests may import this test and give it a cluster instead (with the same
dynamic config, see `DRAINAGE_CHECKS`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior
from temporalio.testing import WorkflowEnvironment

from models.db import session_factory
from models.events import BehaviorEvent
from models.journeys import JourneyInput
from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from models.settings import Settings
from models.tables import MessageLog
from runtime.codec import encrypting_data_converter
from runtime.contact_signals import signal_contact
from runtime.keys import KeyStore
from starter.dev.toolchain import start_dev_server
from starter.services.deploys import DeploymentStatus, VersionStatus, deployment_status
from tests.cli import cli_environment, journeys
from tests.deploy_journeys import DRIP, DripRelease1, DripRelease2
from tests.factories import add_contact
from worker import build_worker

DRAINAGE_CHECKS = {
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": '"1s"',
    "matching.wv.VersionDrainageStatusRefreshInterval": '"1s"',
}
"""Temporal judges a version drained 3 minutes after it stops being current, then every
3 minutes; the test's server does it every second."""
RELEASE_1, RELEASE_2 = "release-1", "release-2"
PINNED, AUTO_UPGRADE = VersioningBehavior.PINNED, VersioningBehavior.AUTO_UPGRADE
DAY_SECONDS = 3600
"""A journey day: long enough that a drip stays parked on its timer until woken."""
WAIT = 30.0
"""How long a step of the test may take before it fails."""

RELEASE_1_EMAILS = {("hello", "welcome-series/day0"), ("follow-up", "welcome-series/day1")}
RELEASE_2_EMAILS = {
    ("hello", "welcome-series/day0"),
    ("follow-up", "welcome-series/day2"),
    ("tip", "welcome-series/day4"),
}


@dataclass(frozen=True)
class TemporalServer:
    """A Temporal frontend a test runs against, and a client of it (with the codec)."""

    address: str
    client: Client


@pytest.fixture
async def deploy_server(codec_keys: KeyStore) -> AsyncIterator[TemporalServer]:
    """A dev server of the test's own, checking drainage every second (`DRAINAGE_CHECKS`)."""
    env = await start_dev_server(
        data_converter=encrypting_data_converter(codec_keys),
        search_attributes=ALL_SEARCH_ATTRIBUTES,
        dev_server_extra_args=[
            argument
            for key, value in DRAINAGE_CHECKS.items()
            for argument in ("--dynamic-config-value", f"{key}={value}")
        ],
    )
    try:
        yield TemporalServer(env.client.service_client.config.target_host, env.client)
    finally:
        await env.shutdown()


async def test_release_2_deploys_while_release_1_runs_finish_on_release_1(
    deploy_server: TemporalServer, settings: Settings, engine: AsyncEngine
) -> None:
    client = deploy_server.client
    deployment = f"journeys-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(
        update={"worker_deployment_name": deployment, "email_cap_per_day": 10}
    )
    cli_env = {
        **cli_environment(settings, deploy_server.address),
        "WORKER_DEPLOYMENT_NAME": deployment,
    }

    async def status() -> DeploymentStatus:
        return await deployment_status(client, deployment, ["contact", DRIP])

    release_1 = build_worker(client, _release(settings, RELEASE_1), engine, journeys=[DripRelease1])
    async with release_1:
        await _promote(cli_env, RELEASE_1)
        early = [await _start_drip(client, engine, settings, f"early-{n}") for n in range(3)]
        long_run = await _start_drip(client, engine, settings, "long", history_limit=20)
        contact = await signal_contact(
            client, "kim", "event", _event("kim"), task_queue=settings.task_queue
        )
        await _until(lambda: _sent_hello(engine, 4), "release 1's drips to send their hello")
        await _until(
            lambda: _runs_on(contact, RELEASE_1, AUTO_UPGRADE),
            "the contact workflow to run on release 1",
        )

        release_2 = build_worker(
            client, _release(settings, RELEASE_2), engine, journeys=[DripRelease2]
        )
        async with release_2:
            await _promote(cli_env, RELEASE_2)
            late = [await _start_drip(client, engine, settings, f"late-{n}") for n in range(2)]
            await _until(lambda: _sent_hello(engine, 6), "release 2's drips to send their hello")

            await _until(
                lambda: _shows(
                    status,
                    {RELEASE_1: (VersionStatus.DRAINING, 4), RELEASE_2: (VersionStatus.CURRENT, 2)},
                ),
                "release 1 to be draining with its 4 drips, release 2 current with 2",
            )
            shown = (await journeys("deploy-status", "--json", env=cli_env)).json()
            versions = {version["build_id"]: version for version in shown["versions"]}
            assert shown["current_build_id"] == RELEASE_2
            assert versions[RELEASE_1]["status"] == "draining"
            assert versions[RELEASE_1]["pinned_by_workflow"] == {DRIP: 4}
            assert versions[RELEASE_1]["auto_upgrade_last_here"] == 1  # the contact workflow
            assert not versions[RELEASE_1]["can_retire"]
            assert versions[RELEASE_2]["status"] == "current"
            assert versions[RELEASE_2]["pinned_by_workflow"] == {DRIP: 2}

            first_run = (await long_run.describe()).run_id
            await _continue_as_new(client, long_run.id, first_run)
            assert await _runs_on(client.get_workflow_handle(long_run.id), RELEASE_1, PINNED)

            await contact.signal("event", _event("kim"))
            await _until(
                lambda: _runs_on(contact, RELEASE_2, AUTO_UPGRADE),
                "the contact workflow to move to release 2",
            )

            await asyncio.gather(*(_finish(client, h.id) for h in [*early, long_run, *late]))
            assert await _emails(engine) == {
                **{f"early-{n}": RELEASE_1_EMAILS for n in range(3)},
                "long": RELEASE_1_EMAILS,
                **{f"late-{n}": RELEASE_2_EMAILS for n in range(2)},
            }

            await _until(
                lambda: _shows(
                    status,
                    {RELEASE_1: (VersionStatus.DRAINED, 0), RELEASE_2: (VersionStatus.CURRENT, 0)},
                ),
                "release 1 to be drained",
            )
            shown = (await journeys("deploy-status", env=cli_env)).stdout
            assert f"{RELEASE_1}: drained: its workers can be stopped" in shown, shown
            assert f"{RELEASE_2}: current: new runs start on it" in shown, shown


async def test_a_deployment_before_its_first_promotion_says_what_to_do(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    deployment = f"journeys-{uuid.uuid4().hex[:8]}"
    address = dev_env.client.service_client.config.target_host
    cli_env = {**cli_environment(settings, address), "WORKER_DEPLOYMENT_NAME": deployment}

    unversioned = await journeys("deploy-status", env=cli_env)
    assert unversioned.returncode == 1
    assert f"no worker deployment {deployment!r}" in unversioned.stderr
    assert "WORKER_BUILD_ID=<build id>" in unversioned.stderr

    settings = _release(settings.model_copy(update={"worker_deployment_name": deployment}), "r1")
    async with build_worker(dev_env.client, settings, engine, journeys=[DripRelease1]):
        async with asyncio.timeout(WAIT):
            while (shown := await journeys("deploy-status", env=cli_env)).returncode:
                await asyncio.sleep(0.3)  # until the worker's first poll
        assert "current none (new runs go to unversioned workers)" in shown.stdout
        assert "r1: not current: `journeys deploy-promote r1` makes it current" in shown.stdout

        unknown = await journeys("deploy-promote", "r9", env=cli_env)
        assert unknown.returncode == 1
        assert "no worker of deployment" in unknown.stderr
        assert "runs build 'r9' (known: r1)" in unknown.stderr
        assert "WORKER_BUILD_ID=r9" in unknown.stderr


def _release(settings: Settings, build_id: str) -> Settings:
    return settings.model_copy(update={"worker_build_id": build_id})


def _event(contact_id: str) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=f"evt-{uuid.uuid4()}",
        contact_id=contact_id,
        type="website_visited",
        occurred_at=datetime.now(UTC),
    )


async def _promote(env: dict[str, str], build_id: str) -> None:
    """`journeys deploy-promote`, once the version's worker has polled (Temporal knows it)."""
    async with asyncio.timeout(WAIT):
        while (done := await journeys("deploy-promote", build_id, env=env)).returncode:
            assert "no worker" in done.stderr, done.stderr
            await asyncio.sleep(0.3)
    assert f"{build_id} is current" in done.stdout


async def _start_drip(
    client: Client, engine: AsyncEngine, settings: Settings, contact_id: str, **options: Any
) -> WorkflowHandle[Any, Any]:
    await add_contact(engine, contact_id)
    return await client.start_workflow(
        DRIP,
        JourneyInput(contact_id=contact_id, day_seconds=DAY_SECONDS, **options),
        id=f"{DRIP}-{contact_id}",
        task_queue=settings.task_queue,
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until `check()` holds; fail naming `what` after `WAIT` seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not await check():
                await asyncio.sleep(0.3)
    except TimeoutError:
        pytest.fail(f"waited {WAIT:g} s for {what}")


async def _sent_hello(engine: AsyncEngine, count: int) -> bool:
    rows = await _messages(engine)
    return sum(row.step == "hello" and row.status == "sent" for row in rows) == count


async def _messages(engine: AsyncEngine) -> list[MessageLog]:
    """The drips' rows of the message log."""
    async with session_factory(engine)() as session:
        return list(await session.exec(select(MessageLog).where(MessageLog.journey == DRIP)))


async def _emails(engine: AsyncEngine) -> dict[str, set[tuple[str, str]]]:
    """The drips' emails, each sent: (step, template) per contact."""
    sent: dict[str, set[tuple[str, str]]] = {}
    for row in await _messages(engine):
        assert row.status == "sent", (row.contact_id, row.step, row.status, row.status_reason)
        sent.setdefault(row.contact_id, set()).add((row.step, row.template))
    return sent


async def _runs_on(
    handle: WorkflowHandle[Any, Any], build_id: str, behavior: VersioningBehavior
) -> bool:
    """Whether the run's last workflow task ran on version `build_id`, with `behavior`."""
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.deployment_version.build_id == build_id and info.behavior == behavior.value


async def _shows(
    status: Callable[[], Awaitable[DeploymentStatus]],
    expected: dict[str, tuple[VersionStatus, int]],
) -> bool:
    """Whether each version (build id) has its expected status and pinned runs."""
    shown = {v.build_id: (v.status, v.pinned_running) for v in (await status()).versions}
    return all(shown.get(build_id) == wanted for build_id, wanted in expected.items())


async def _continue_as_new(client: Client, workflow_id: str, first_run: str) -> None:
    """Send events to a parked drip until its history passes its limit and it continues as new."""
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(WAIT):
        while (await handle.describe()).run_id == first_run:
            await handle.signal("event", _event(workflow_id.removeprefix(f"{DRIP}-")))
            await asyncio.sleep(0.2)


async def _finish(client: Client, workflow_id: str) -> None:
    """Fire a parked drip's waits (`skip_wait`, as an operator would) until it completes."""
    handle = client.get_workflow_handle(workflow_id)
    result = asyncio.ensure_future(handle.result())
    async with asyncio.timeout(WAIT):
        while not result.done():
            await handle.signal("skip_wait")
            await asyncio.wait({result}, timeout=1)
    await result
