"""`journeys worker` as a process: settings from the environment, JSON logs, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from models.settings import PROJECT_ROOT, Settings
from tests.cli import JOURNEYS, cli_environment, journeys, run


async def test_worker_runs_journeys_logs_json_and_stops_on_sigterm(
    dev_env: WorkflowEnvironment, settings: Settings, engine: object
) -> None:
    env = cli_environment(settings, dev_env.client.service_client.config.target_host)
    process = await asyncio.create_subprocess_exec(
        str(JOURNEYS), "worker", env=env, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    logs: list[dict[str, object]] = []
    async with asyncio.timeout(60):
        while not any(entry.get("event") == "worker started" for entry in logs):
            line = await process.stderr.readline()
            assert line, "worker exited before it started"
            logs.append(json.loads(line))
    assert logs[-1]["task_queue"] == settings.task_queue

    upsert = await journeys(
        "contact", "upsert", "proc-1", "--email", "p@example.com", "--email-consent", env=env
    )
    assert upsert.returncode == 0, upsert.stderr
    enrolled = await journeys("enroll", "welcome-series", "proc-1", "--day-seconds", "1", env=env)
    assert enrolled.returncode == 0, enrolled.stderr
    result = await dev_env.client.get_workflow_handle("welcome-series-proc-1").result()
    assert result["messages_sent"] == 5

    process.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(process.stderr.read(), 30)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    events = [json.loads(line)["event"] for line in rest.decode().splitlines()]
    assert "worker stopped" in events


async def test_worker_refuses_to_start_with_a_broken_template(
    settings: Settings, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    broken = templates / "welcome-series" / "day4.toml"
    source = broken.read_text()
    assert 'closing = """' in source
    broken.write_text(source.replace('closing = """', 'closing = """{{ brand.nmae }}', 1))
    env = {**cli_environment(settings, "127.0.0.1:1"), "TEMPLATES_DIR": str(templates)}

    result = await run(str(JOURNEYS), "worker", env=env)

    assert result.returncode == 1
    assert "error:" in result.stderr
    assert str(broken) in result.stderr
    assert "brand.nmae" in result.stderr
    assert "Traceback" not in result.stderr


async def test_worker_reports_an_unreachable_temporal_server_clearly(settings: Settings) -> None:
    env = cli_environment(settings, "127.0.0.1:1")

    result = await run(str(JOURNEYS), "worker", env=env)

    assert result.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


async def test_worker_refuses_to_start_when_a_journey_template_is_missing(
    settings: Settings, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    missing = templates / "pricing-abandon" / "day2.sms.toml"
    missing.unlink()
    env = {**cli_environment(settings, "127.0.0.1:1"), "TEMPLATES_DIR": str(templates)}

    result = await run(str(JOURNEYS), "worker", env=env)

    assert result.returncode == 1
    assert "journey pricing-abandon sends sms template 'pricing-abandon/day2'" in result.stderr
    assert str(missing) in result.stderr.replace("\n", "")
    assert "Traceback" not in result.stderr
