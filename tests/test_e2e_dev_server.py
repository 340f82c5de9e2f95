"""End to end on the Temporal CLI dev server: worker + `journeys` CLI + `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from models.settings import Settings
from starter.dev.toolchain import temporal_cli_path
from tests.cli import cli_environment, journeys, run
from tests.outbox import read_outbox
from worker import running_worker


async def test_cli_enrols_contact_and_journey_completes_on_accelerated_clock(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    address = dev_env.client.service_client.config.target_host
    env = cli_environment(settings, address)
    client = dev_env.client

    upsert = await journeys(
        "contact", "upsert", "e2e-ada", "--email", "Ada@Example.com", "--first-name", "Ada",
        "--email-consent", "--consent-source", "form:e2e", "--json", env=env,
    )  # fmt: skip
    assert upsert.returncode == 0, upsert.stderr
    assert upsert.json()["email"] == "ada@example.com"

    async with running_worker(client, settings):
        enrolled = await journeys(
            "enroll", "welcome-series", "e2e-ada", "--day-seconds", "1", env=env
        )
        assert enrolled.returncode == 0, enrolled.stderr
        assert "welcome-series-e2e-ada" in enrolled.stdout
        handle = client.get_workflow_handle("welcome-series-e2e-ada")
        await asyncio.wait_for(handle.result(), timeout=60)

        again = await journeys("enroll", "welcome-series", "e2e-ada", env=env)
        assert again.returncode == 1
        assert "already enrolled" in again.stderr

        status = await journeys("status", "e2e-ada", "--json", env=env)
        assert status.returncode == 0, status.stderr

    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    runs = {run["workflow_id"]: run for run in status.json()["journeys"]}
    last = [(m["journey"], m["step"]) for m in status.json()["last_messages"]]
    assert ("welcome-series", "day7") in last  # the nurture's first email may follow it
    run_status = runs["welcome-series-e2e-ada"]
    assert "nurture-e2e-ada" in runs  # routed on: the contact is Cold
    assert run_status["execution_status"] == "COMPLETED"
    assert run_status["state"]["messages_sent"] == 5
    assert run_status["state"]["status"] == "completed"

    messages = await journeys(
        "messages", "e2e-ada", "--journey", "welcome-series", "--json", env=env
    )
    assert messages.returncode == 0, messages.stderr
    rows = messages.json()
    assert [(row["step"], row["status"]) for row in rows] == [
        (step, "sent") for step in ("day0", "day1", "day2", "day4", "day7")
    ]
    assert rows[0]["subject"] == "Your Email Marketing Playbook is ready! 📥"
    assert len([key for key in read_outbox(settings.outbox_dir) if "welcome" in key]) == 5

    temporal = temporal_cli_path(install=False)
    assert temporal is not None, "the project's Temporal CLI should have been built by make tools"
    listed: list[dict[str, Any]] = []
    for _ in range(50):  # visibility is eventually consistent
        result = await run(
            str(temporal), "workflow", "list", "--address", address,
            "--query", "ContactId='e2e-ada' AND Journey='welcome-series'", "--output", "jsonl",
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        listed = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        if listed:
            break
        await asyncio.sleep(0.2)
    assert [item["execution"]["workflowId"] for item in listed] == ["welcome-series-e2e-ada"]


async def test_cli_unsubscribe_event_exits_running_journey(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    address = dev_env.client.service_client.config.target_host
    env = cli_environment(settings, address)
    client = dev_env.client
    upsert = await journeys(
        "contact", "upsert", "e2e-bob", "--email", "bob@example.com", "--email-consent", env=env
    )
    assert upsert.returncode == 0, upsert.stderr

    async with running_worker(client, settings):
        enrolled = await journeys(
            "enroll", "welcome-series", "e2e-bob", "--day-seconds", "300", env=env
        )
        assert enrolled.returncode == 0, enrolled.stderr
        handle = client.get_workflow_handle("welcome-series-e2e-bob")
        for _ in range(100):  # wait for Day 0 to be sent and the journey to be listed
            if len(read_outbox(settings.outbox_dir)) == 1:
                break
            await asyncio.sleep(0.1)
        sent = await journeys("event", "e2e-bob", "unsubscribed", "--id", "evt-1", env=env)
        assert sent.returncode == 0, sent.stderr
        assert "accepted by contact-e2e-bob" in sent.stdout
        assert "warning" not in sent.stderr
        result = await asyncio.wait_for(handle.result(), timeout=30)

    assert result["status"] == "exited"
    assert result["exit_reason"] == "unsubscribed"
    assert sorted(read_outbox(settings.outbox_dir)) == ["welcome-series-e2e-bob/day0"]

    ghost = await journeys("event", "e2e-ghost", "subscribed", env=env)
    assert ghost.returncode == 0, ghost.stderr
    assert "warning: contact e2e-ghost does not exist yet" in ghost.stderr
    assert "starts no journey" in ghost.stderr
