"""A local PostgreSQL cluster on loopback: throwaway for tests, or kept for `journeys cluster`.

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

from starter.dev.ports import free_port

SUPERUSER = "postgres"
MAX_CONNECTIONS = 300
"""Room for a Temporal cluster's four services and the journeys' workers and gateway."""


class PostgresError(RuntimeError):
    """A PostgreSQL tool failed; the message has what it printed."""


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
    """Why a local PostgreSQL cluster cannot be started here, or None if it can."""
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (pg_ctl, initdb, postgres) on this machine"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root, initdb refuses root and there is no `postgres` user"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing to run initdb as `postgres`"
    return None


class PostgresCluster:
    """A cluster in a folder (trust auth, no socket file), started and stopped at will.

    `with PostgresCluster() as cluster: cluster.url …`; `stop()` / `start()` in
    between simulate an outage (the port and the data are kept). Without
    `directory` the cluster lives in a temporary folder removed on exit; with
    one, its data is kept there and reused by the next run (on the same port).
    """

    def __init__(self, directory: Path | None = None, *, port: int | None = None) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None, postgres_unavailable()
        self._bin = bin_dir
        self._run_as: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SUPERUSER)
            self._run_as = ["runuser", "-u", SUPERUSER, "--"]
        self._throwaway = directory is None
        # Not pytest's tmp_path: its base folder is private to its owner, and when
        # running as root the server runs as `postgres`, which could not enter it.
        self._base = (
            Path(tempfile.mkdtemp(prefix="journeys-pg-"))
            if directory is None
            else directory.resolve()
        )
        self._base.mkdir(parents=True, exist_ok=True)
        if owner is not None:
            os.chown(self._base, owner.pw_uid, owner.pw_gid)
        self._data, self._log = self._base / "data", self._base / "server.log"
        self._fixed_port = port
        self.port = 0

    @property
    def url(self) -> str:
        """`postgresql://` URL of the `postgres` database."""
        return self.database_url(SUPERUSER)

    def database_url(self, database: str) -> str:
        """`postgresql://` URL of one database of the cluster, as the superuser."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def __enter__(self) -> PostgresCluster:
        try:
            if not (self._data / "PG_VERSION").exists():
                self._pg("initdb", "-D", str(self._data), "-U", SUPERUSER, "--auth=trust",
                         "-E", "UTF8", "--no-sync")  # fmt: skip
            for _ in range(3):  # another process may take the free port before the server does
                self.port = self._fixed_port or free_port()
                try:
                    self.start()
                    return self
                except PostgresError:
                    if self._fixed_port:
                        break
            server_log = self._log.read_text(encoding="utf-8") if self._log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{server_log[-2000:]}")
        except BaseException:
            self._remove_if_throwaway()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            self._remove_if_throwaway()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c fsync=off -c max_connections={MAX_CONNECTIONS}"
        )
        self._pg("pg_ctl", "-D", str(self._data), "-l", str(self._log), "-o", options,
                 "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut), if it runs."""
        if (self._data / "postmaster.pid").exists():
            self._pg("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists."""
        try:
            self._pg("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        except PostgresError as error:
            if "already exists" not in str(error):
                raise

    def _remove_if_throwaway(self) -> None:
        if self._throwaway:
            shutil.rmtree(self._base, ignore_errors=True)

    def _pg(self, tool: str, *args: str) -> None:
        """Run a PostgreSQL tool (as `postgres` when root).

        Raises:
            PostgresError: it failed (with what it printed).
        """
        result = subprocess.run(
            [*self._run_as, str(self._bin / tool), *args],
            capture_output=True, timeout=120, cwd=self._base, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresError(
                f"PostgreSQL's {tool} failed (exit code {result.returncode}) in {self._base}:\n"
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
