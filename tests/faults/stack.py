"""The parts a fault test breaks: a restartable Temporal dev server and worker processes.

The dev server keeps its state in a database file, so stopping it and starting
it again on the same port is an outage and a recovery, not a new cluster.
Workers are real `journeys worker` processes (JSON logs to a file), killed with
SIGKILL or stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.search_attributes import ALL_SEARCH_ATTRIBUTES
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore
from starter.dev.ports import free_port
from starter.dev.toolchain import start_dev_server
from tests.cli import JOURNEYS


class DevServer:
    """`temporal server start-dev` on a fixed port with `--db-filename`, restartable.

    Its client encrypts and decrypts with `keys`, the data keys of the test's workers.
    """

    def __init__(self, directory: Path, keys: KeyStore) -> None:
        self.port = free_port()
        self.database = directory / "temporal.db"
        self._keys = keys
        self._env: WorkflowEnvironment | None = None

    @property
    def address(self) -> str:
        """`host:port` of the frontend."""
        return f"127.0.0.1:{self.port}"

    @property
    def client(self) -> Client:
        """The client of the running server."""
        assert self._env is not None, "the dev server is stopped"
        return self._env.client

    async def start(self) -> None:
        """Start the server on its port and database file."""
        self._env = await start_dev_server(
            port=self.port,
            search_attributes=ALL_SEARCH_ATTRIBUTES,
            dev_server_database_filename=str(self.database),
            data_converter=encrypting_data_converter(self._keys),
        )

    async def stop(self) -> None:
        """Stop the server (its state stays in the database file)."""
        env, self._env = self._env, None
        if env is not None:
            await env.shutdown()


class WorkerProcess:
    """One `journeys worker` process; its JSON log lines go to `<name>.log`."""

    def __init__(self, name: str, env: dict[str, str], directory: Path) -> None:
        self.name = name
        self.log_path = directory / f"{name}.log"
        self._env = env
        self._process: asyncio.subprocess.Process | None = None

    async def start(self, *, ready_within: float = 90) -> None:
        """Start the process and wait for its "worker started" line.

        Raises:
            AssertionError: it exited first, or did not start in time (with its log).
        """
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                str(JOURNEYS), "worker", env=self._env, stdout=log, stderr=log
            )
        seen = self.log_path.stat().st_size if self.log_path.exists() else 0
        async with asyncio.timeout(ready_within):
            while b'"worker started"' not in self.log_path.read_bytes()[seen:]:
                assert self._process.returncode is None, f"{self.name} exited:\n{self.tail()}"
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities are lost mid-way."""
        assert self._process is not None
        self._process.kill()

    async def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit code (kills it after 60 s), None if not running."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return None
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def wait_killed(self) -> None:
        """Wait until a killed process is gone."""
        assert self._process is not None
        await self._process.wait()
        self._process = None

    def tail(self, lines: int = 40) -> str:
        """The end of its log, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
