"""Running the real `journeys` command line (and the real `temporal` CLI) from tests."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.settings import PROJECT_ROOT, Settings

JOURNEYS = Path(sys.executable).parent / "journeys"


@dataclass(frozen=True)
class Completed:
    """Exit code and output of a finished command."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli_environment(settings: Settings, temporal_address: str) -> dict[str, str]:
    """Environment that points the CLI at a test's server, database and task queue."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": settings.task_queue,
        "OUTBOX_DIR": str(settings.outbox_dir),
        "SEGMENTS_FILE": str(settings.segments_file),
        "ALLOW_ACCELERATED_CLOCK": str(settings.allow_accelerated_clock).lower(),
        "LOG_FORMAT": "json",
    }


async def run(
    *args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: float = 60
) -> Completed:
    """Run a command without blocking the event loop (a worker may share it).

    One still running after `timeout` seconds is killed (a `journeys worker` that was
    expected to refuse to start would otherwise outlive the test).
    """
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, stdout.decode(), stderr.decode())


async def journeys(*args: str, env: dict[str, str]) -> Completed:
    """Run `journeys <args>`."""
    return await run(str(JOURNEYS), *args, env=env)
