"""Operator commands on the dev server: `setup`, `list`, `skip-wait`, and search-attribute
queries answered by the real `temporal` CLI and the SDK as journeys advance."""

from __future__ import annotations

import asyncio
import json
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.settings import Settings
from starter.dev.toolchain import temporal_cli_path
from tests.cli import cli_environment, journeys, run
from tests.factories import add_contact
from tests.test_api import journey_state
from worker import running_worker


async def test_setup_creates_the_namespace_and_attributes_once(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    env = {
        **cli_environment(settings, dev_env.client.service_client.config.target_host),
        "TEMPORAL_NAMESPACE": f"ops-{uuid.uuid4().hex[:8]}",
    }
    first = await journeys("setup", "--retention-days", "3", env=env)
    assert first.returncode == 0, first.stderr
    assert f"namespace {env['TEMPORAL_NAMESPACE']}: created" in first.stdout
    assert (
        "search attributes: added ContactId, Journey, JourneyStep, LifecycleStage, LeadScore, "
        "FitScore, BehaviorScore" in first.stdout
    )
    again = await journeys("setup", env=env)
    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout
    assert "search attributes: all registered" in again.stdout


async def ids_matching(client: Client, query: str, expected: set[str]) -> set[str]:
    """Workflow ids the visibility query returns, once it returns `expected` (eventual)."""
    found: set[str] = set()
    for _ in range(100):
        found = {execution.id async for execution in client.list_workflows(query)}
        if found == expected:
            break
        await asyncio.sleep(0.1)
    return found


async def test_step_queries_follow_the_journeys_as_they_advance(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    client = dev_env.client
    address = client.service_client.config.target_host
    env = cli_environment(settings, address)
    prefix = f"sa{uuid.uuid4().hex[:6]}"
    ahead, behind = f"{prefix}-ahead", f"{prefix}-behind"
    for contact_id in (ahead, behind):
        await add_contact(engine, contact_id)
    query = "Journey = 'welcome-series' AND JourneyStep = '{step}' AND ContactId STARTS_WITH '{p}'"
    async with running_worker(client, settings):
        for contact_id in (ahead, behind):  # an hour a day: both wait for Day 1
            enrolled = await journeys(
                "enroll", "welcome-series", contact_id, "--day-seconds", "3600", env=env
            )
            assert enrolled.returncode == 0, enrolled.stderr
            await journey_state(client, f"welcome-series-{contact_id}", lambda s: s.step == "day0")

        skipped = await journeys("skip-wait", ahead, "welcome-series", env=env)
        assert skipped.stdout.strip() == f"skip-wait sent to welcome-series-{ahead}"
        await journey_state(client, f"welcome-series-{ahead}", lambda s: s.messages_sent == 2)

        day0, day1 = (query.format(step=step, p=prefix) for step in ("day0", "day1"))
        assert await ids_matching(client, day1, {f"welcome-series-{ahead}"}) == {
            f"welcome-series-{ahead}"
        }
        assert await ids_matching(client, day0, {f"welcome-series-{behind}"}) == {
            f"welcome-series-{behind}"
        }

        temporal = temporal_cli_path(install=False)
        assert temporal is not None
        listed = await run(
            str(temporal), "workflow", "list", "--address", address, "--query", day1,
            "--output", "json", env=env,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert [row["execution"]["workflowId"] for row in json.loads(listed.stdout)] == [
            f"welcome-series-{ahead}"
        ]

        ours = await journeys(
            "list", "--journey", "welcome-series", "--step", "day1", "--json", env=env
        )
        assert ours.returncode == 0, ours.stderr
        rows = [row for row in ours.json() if row["contact_id"].startswith(prefix)]
        assert [(row["workflow_id"], row["step"]) for row in rows] == [
            (f"welcome-series-{ahead}", "day1")
        ]
        unknown = await journeys("list", "--journey", "no-such", env=env)
        assert unknown.returncode == 1 and "unknown journey" in unknown.stderr

        status = await journeys("status", ahead, env=env)
        # enrolled directly, never drawn for the subject test: control, shown with its arm
        assert "step day1, 2 sent, A/B welcome-subject: a, next: day2 at " in status.stdout
        assert "None" not in status.stdout
        assert "welcome-series/day1 sent" in status.stdout  # last messages
