"""The `journeys` CLI around the gateway: `journeys api` as a process, and exit / pause / resume."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from models.journeys import JourneyState
from models.settings import Settings
from starter.dev.ports import free_port
from tests.cli import JOURNEYS, cli_environment, journeys
from tests.factories import add_contact
from tests.gateway import FULL_KEY
from tests.test_api import journey_state
from worker import running_worker


async def test_api_command_refuses_to_start_without_keys(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    env.pop("API_KEYS", None)
    result = await journeys("api", "--port", str(free_port()), env=env)
    assert result.returncode == 1
    assert "no API keys configured: set API_KEYS" in result.stderr


async def test_api_command_serves_the_gateway_until_sigterm(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    port = free_port()
    env = {
        **cli_environment(settings, dev_env.client.service_client.config.target_host),
        "API_KEYS": json.dumps([{"name": "ops", "key": FULL_KEY}]),
    }
    process = await asyncio.create_subprocess_exec(
        str(JOURNEYS), "api", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {FULL_KEY}"}
        ) as http:
            async with asyncio.timeout(60):  # the process imports, checks Temporal, serves
                while True:
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            sent = await http.post("/v1/events", json={"contact_id": "cli-api", "type": "x"})
            assert sent.status_code == 202, sent.text
            assert sent.json()["results"][0]["workflow_id"] == "contact-cli-api"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert f"gateway listening on {url}" in log
    assert '"route": "/v1/events"' in log and '"api_key": "ops"' in log


async def test_exit_pause_resume_commands(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine
) -> None:
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    await add_contact(engine, "cli-steer")
    client = dev_env.client
    async with running_worker(client, settings):
        enrolled = await journeys(
            "enroll", "welcome-series", "cli-steer", "--day-seconds", "3", env=env
        )
        assert enrolled.returncode == 0, enrolled.stderr
        workflow_id = "welcome-series-cli-steer"
        await journey_state(client, workflow_id, lambda s: s.messages_sent == 1)

        paused = await journeys("pause", "cli-steer", "welcome-series", env=env)
        assert paused.stdout.strip() == f"pause sent to {workflow_id}"
        await journey_state(client, workflow_id, lambda s: s.status == "paused")
        resumed = await journeys("resume", "cli-steer", "welcome-series", env=env)
        assert resumed.returncode == 0
        await journey_state(client, workflow_id, lambda s: s.status == "running")
        exited = await journeys(
            "exit", "cli-steer", "welcome-series", "--reason", "asked by phone", env=env
        )
        assert exited.returncode == 0, exited.stderr
        result = await client.get_workflow_handle(workflow_id, result_type=JourneyState).result()
        assert (result.status, result.exit_reason) == ("exited", "asked by phone")

        again = await journeys("exit", "cli-steer", "welcome-series", env=env)
        assert again.returncode == 1
        assert "has no running welcome-series journey" in again.stderr
        unknown = await journeys("pause", "cli-steer", "no-such-journey", env=env)
        assert unknown.returncode == 1
        assert "unknown journey 'no-such-journey'" in unknown.stderr
