"""A throwaway PostgreSQL cluster on a free loopback port, for tests that need a real server.

Uses the server binaries installed on the machine (Debian's `postgresql`;
`.ci/run` installs it). Running as root, the server runs as `postgres`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.test_dev_stack import free_port


def postgres_bin_dir() -> Path | None:
    """The newest directory holding `pg_ctl`, `initdb` and `postgres`, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
        reverse=True,
    )
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).resolve()))
    for candidate in candidates:
        bin_dir = Path(candidate).parent
        if all((bin_dir / tool).is_file() for tool in ("pg_ctl", "initdb", "postgres")):
            return bin_dir
    return None


def postgres_unavailable() -> str | None:
    """Why a throwaway PostgreSQL cluster cannot be started here, or None if it can."""
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (pg_ctl, initdb, postgres) on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, initdb refuses root and there is no `postgres` user"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing to run initdb as `postgres`"
    return None


class PostgresCluster:
    """A cluster in a temporary folder (trust auth, no socket file), started and stopped at will.

    `with PostgresCluster() as cluster: cluster.url …`; `stop()` / `start()` in
    between simulate an outage (the port and the data are kept).
    """

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None, postgres_unavailable()
        self._bin = bin_dir
        self._run_as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        # Not pytest's tmp_path: its base folder is private to its owner, and when
        # running as root the server runs as `postgres`, which could not enter it.
        self._base = Path(tempfile.mkdtemp(prefix="journeys-pg-"))
        if owner is not None:
            os.chown(self._base, owner.pw_uid, owner.pw_gid)
        self._data, self._log = self._base / "data", self._base / "server.log"
        self.port = 0

    @property
    def url(self) -> str:
        """`postgresql://` URL of the `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> PostgresCluster:
        try:
            self._pg("initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--no-sync")  # fmt: skip
            for _ in range(3):  # another process may take the free port before the server does
                self.port = free_port()
                with (self._data / "postgresql.conf").open("a", encoding="utf-8") as conf:
                    conf.write(
                        f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                        "unix_socket_directories = ''\nfsync = off\n"
                    )
                try:
                    self.start()
                    return self
                except subprocess.CalledProcessError:
                    continue
            server_log = self._log.read_text(encoding="utf-8") if self._log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{server_log[-2000:]}")
        except BaseException:
            shutil.rmtree(self._base, ignore_errors=True)
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self._base, ignore_errors=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._pg("pg_ctl", "-D", str(self._data), "-l", str(self._log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut), if it runs."""
        if (self._data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop")

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._run_as, str(self._bin / tool), *args],
            check=True, capture_output=True, timeout=120, cwd=self._base, text=True,
        )  # fmt: skip
