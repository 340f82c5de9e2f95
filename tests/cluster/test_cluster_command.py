"""`journeys cluster` (`make cluster`): the production topology with the demo, one command.

Run in a folder of its own, it starts PostgreSQL (5433), the four Temporal
services (frontend on 7233), `journeys setup`, two workers and the gateway, and
the demo; both workers send, `journeys list` finds the demo's journeys, and
Ctrl-C stops every process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from starter.dev.cluster_stack import APP_DATABASE, POSTGRES_PORT
from starter.dev.ports import free_port, port_in_use
from tests.cli import JOURNEYS, journeys

FRONTEND = 7233


@pytest.fixture
def checkout() -> Iterator[Path]:
    """A folder to run the command in, which the `postgres` user can enter (pytest's
    `tmp_path` is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="journeys-cluster-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(300)
async def test_journeys_cluster_runs_the_demo_on_two_workers_and_stops_on_ctrl_c(
    checkout: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env.pop("DATABASE_URL", None)
    env |= {"LOG_FORMAT": "json", "API_PORT": str(free_port())}
    process = await asyncio.create_subprocess_exec(
        str(JOURNEYS), "cluster", cwd=checkout, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    printed: list[str] = []
    try:
        async with asyncio.timeout(180):
            while not any("Press Ctrl-C" in line for line in printed):
                line = (await process.stdout.readline()).decode()
                assert line, f"journeys cluster exited early:\n{''.join(printed)}"
                printed.append(line)
        assert "enrolled demo-ada → welcome-series-demo-ada" in "".join(printed)

        cli_env = env | {
            "TEMPORAL_ADDRESS": f"127.0.0.1:{FRONTEND}",
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{POSTGRES_PORT}/{APP_DATABASE}",
        }
        listed = await journeys("list", "--journey", "welcome-series", "--json", env=cli_env)
        assert listed.returncode == 0, listed.stderr
        assert "welcome-series-demo-ada" in {row["workflow_id"] for row in listed.json()}
        logs = checkout / ".data" / "cluster" / "logs"
        async with asyncio.timeout(60):
            while not all(
                b'"message sent"' in (logs / f"journeys-worker-{n}.log").read_bytes()
                for n in (1, 2)
            ):
                await asyncio.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0
    assert not port_in_use(FRONTEND), "Ctrl-C must stop Temporal"
    assert not port_in_use(POSTGRES_PORT), "Ctrl-C must stop PostgreSQL"
