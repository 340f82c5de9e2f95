"""Obtain real Temporal servers for local runs and tests.

The Temporal SDK downloads its dev server (the Temporal CLI) and its Java
time-skipping test server from temporal.download, which is unreachable on
machines that only reach package registries. This module gets both from
registries instead and caches them per user, keyed by version:

* the CLI is built with ``go install`` from the Go module proxy;
* the test server is fetched from Maven Central with ``mvn`` and started
  through a small ``exec java`` wrapper script;
* for a production-like cluster (``journeys cluster``), the Temporal server
  and its SQL schema tool are built with ``go install`` too, with the
  server module's PostgreSQL schemas beside them (``temporal_server_bundle``).

Explicit paths (``TEMPORAL_CLI_PATH`` / ``TEMPORAL_TEST_SERVER_PATH``) and a
``temporal`` on ``PATH`` take precedence. Without Go or Maven the resolvers
return ``None`` and the SDK's own download is used.

Run ``python -m starter.dev.toolchain`` to install both ahead of time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

TEMPORAL_CLI_VERSION = "v1.5.1"
TEST_SERVER_VERSION = "1.38.0"
TEMPORAL_SERVER_VERSION = "v1.29.1"
"""The server the CLI's dev server embeds: the cluster runs the same code."""

_CLI_MODULE = "github.com/temporalio/cli/cmd/temporal"
_SERVER_MODULE = "go.temporal.io/server"
_SERVER_COMMANDS = {"cmd/server": "temporal-server", "cmd/tools/sql": "temporal-sql-tool"}
"""Package of the server module → the name the bundle gives its binary."""
_POSTGRES_SCHEMAS = Path("schema/postgresql/v12")
_TEST_SERVER_MAIN = "io.temporal.testserver.TestServer"
_OUTPUT_TAIL_LINES = 30

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.contact-journeys</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


class ToolchainError(RuntimeError):
    """A Temporal server could not be found, installed or started."""


def cache_dir() -> Path:
    """Return the per-user cache directory for tools.

    Returns:
        ``$CONTACT_JOURNEYS_CACHE`` if set, else
        ``$XDG_CACHE_HOME/contact-journeys``, else ``~/.cache/contact-journeys``.
    """
    if explicit := os.environ.get("CONTACT_JOURNEYS_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "contact-journeys"


CACHE_DIR: Path = cache_dir()


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _from_env(var: str) -> Path | None:
    """Return the executable named by ``var``, or ``None`` if the variable is unset."""
    value = os.environ.get(var)
    if not value:
        return None
    path = Path(value).expanduser()
    if not _is_executable(path):
        raise ToolchainError(
            f"{var} is set to {value!r}, but that is not an executable file.\n"
            f"Point {var} at an existing executable, or unset it to let this project "
            "find or install one."
        )
    return path


@contextlib.contextmanager
def _lock(name: str) -> Iterator[Path]:
    """Hold an exclusive lock on ``name`` in the cache dir, so one process installs.

    Yields:
        The cache directory (created if needed).
    """
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.stderr.write(f"waiting for another process installing {name}…\n")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield root


def _run(cmd: list[str], *, what: str, fixes: str, **kwargs: Any) -> None:
    """Run ``cmd``, raising ToolchainError with the tail of its output on failure."""
    try:
        result = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs
        )
    except OSError as exc:
        raise ToolchainError(f"{what} failed: could not run {cmd[0]}: {exc}\n{fixes}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-_OUTPUT_TAIL_LINES:])
        raise ToolchainError(
            f"{what} failed (exit code {result.returncode}): {shlex.join(cmd)}\n"
            f"Last lines of output:\n{textwrap.indent(tail, '    ')}\n{fixes}"
        )


_CLI_FIXES = (
    "You can instead set TEMPORAL_CLI_PATH to an existing `temporal` binary, put `temporal` "
    "on PATH, or remove Go from PATH to let the Temporal SDK download the CLI "
    "(needs internet access)."
)
_TEST_SERVER_FIXES = (
    "You can instead set TEMPORAL_TEST_SERVER_PATH to an existing test server executable, "
    "or remove mvn from PATH to let the Temporal SDK download it (needs internet access)."
)


def temporal_cli_path(*, install: bool = True) -> Path | None:
    """Find the Temporal CLI (dev server), building it with Go if needed.

    Order: ``$TEMPORAL_CLI_PATH``, ``temporal`` on ``PATH``, the cached build,
    then (if ``install`` and Go is on ``PATH``) a fresh ``go install`` into the
    cache.

    Args:
        install: Whether to build the CLI when it is not found.

    Returns:
        The CLI executable, or ``None`` if the SDK should download it.

    Raises:
        ToolchainError: ``$TEMPORAL_CLI_PATH`` is invalid or the build failed.
    """
    if path := _from_env("TEMPORAL_CLI_PATH"):
        return path
    if found := shutil.which("temporal"):
        return Path(found)
    name = f"temporal-cli-{TEMPORAL_CLI_VERSION}"
    target = cache_dir() / name / "temporal"
    if _is_executable(target):
        return target
    go = shutil.which("go")
    if not install or go is None:
        return None
    with _lock(name) as root:
        if _is_executable(target):  # built by another process while we waited
            return target
        sys.stderr.write(
            f"building Temporal CLI {TEMPORAL_CLI_VERSION} with Go "
            "(first time only, several minutes)…\n"
        )
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as gobin:
            _run(
                [go, "install", f"{_CLI_MODULE}@{TEMPORAL_CLI_VERSION}"],
                what=f"Building the Temporal CLI {TEMPORAL_CLI_VERSION} with Go",
                fixes=_CLI_FIXES,
                env={**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"},
            )
            target.parent.mkdir(exist_ok=True)
            os.replace(Path(gobin) / "temporal", target)
    return target


@dataclass(frozen=True)
class ServerBundle:
    """The Temporal server, its SQL schema tool and the PostgreSQL schemas, in one folder."""

    root: Path

    @property
    def server(self) -> Path:
        """The `temporal-server` binary (`start --service …`)."""
        return self.root / _SERVER_COMMANDS["cmd/server"]

    @property
    def sql_tool(self) -> Path:
        """The `temporal-sql-tool` binary (create-database, setup-schema, update-schema)."""
        return self.root / _SERVER_COMMANDS["cmd/tools/sql"]

    @property
    def postgres_schemas(self) -> Path:
        """`schema/postgresql/v12` of the server module: `temporal/` and `visibility/`."""
        return self.root / _POSTGRES_SCHEMAS

    def complete(self) -> bool:
        """Whether both binaries and the schemas are there."""
        return (
            _is_executable(self.server)
            and _is_executable(self.sql_tool)
            and (self.postgres_schemas / "temporal" / "versioned").is_dir()
        )


_SERVER_FIXES = (
    "The Temporal server is built from the Go module proxy; check that `go` works and "
    "that the proxy is reachable (GOPROXY)."
)


def temporal_server_bundle(*, install: bool = True) -> ServerBundle:
    """Find the Temporal server bundle in the cache, building it with Go if needed.

    Args:
        install: Whether to build it when it is not cached.

    Raises:
        ToolchainError: it is not cached and cannot be built (no Go, or the build failed).
    """
    name = f"temporal-server-{TEMPORAL_SERVER_VERSION}"
    bundle = ServerBundle(cache_dir() / name)
    if bundle.complete():
        return bundle
    go = shutil.which("go")
    if not install or go is None:
        raise ToolchainError(
            f"the Temporal server {TEMPORAL_SERVER_VERSION} is not in {bundle.root} and "
            + ("`go` is not on PATH to build it." if go is None else "installing was not asked.")
        )
    with _lock(name) as root:
        if bundle.complete():  # built by another process while we waited
            return bundle
        sys.stderr.write(
            f"building Temporal server {TEMPORAL_SERVER_VERSION} and its SQL tool with Go "
            "(first time only, several minutes)…\n"
        )
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
            staged = Path(tmp) / "bundle"
            env = {**os.environ, "GOBIN": str(staged), "CGO_ENABLED": "0"}
            packages = [f"{_SERVER_MODULE}/{package}" for package in _SERVER_COMMANDS]
            _run(
                [go, "install", *(f"{package}@{TEMPORAL_SERVER_VERSION}" for package in packages)],
                what=f"Building the Temporal server {TEMPORAL_SERVER_VERSION} with Go",
                fixes=_SERVER_FIXES,
                env=env,
            )
            for package, final in _SERVER_COMMANDS.items():
                os.replace(staged / Path(package).name, staged / final)
            module = _module_dir(go, f"{_SERVER_MODULE}@{TEMPORAL_SERVER_VERSION}")
            shutil.copytree(module / _POSTGRES_SCHEMAS, staged / _POSTGRES_SCHEMAS)
            shutil.rmtree(bundle.root, ignore_errors=True)  # leftovers of a broken build
            staged.rename(bundle.root)
    return bundle


def _module_dir(go: str, module: str) -> Path:
    """The source folder of a Go module in the module cache (downloading it if needed)."""
    result = subprocess.run(
        [go, "mod", "download", "-json", module], capture_output=True, text=True, check=False
    )
    try:
        return Path(json.loads(result.stdout)["Dir"])
    except (ValueError, KeyError) as error:
        raise ToolchainError(
            f"`go mod download {module}` gave no source folder: {result.stderr or result.stdout}"
        ) from error


def _has_main_class(jar: Path) -> bool:
    if not jar.is_file():
        return False
    with zipfile.ZipFile(jar) as archive:
        return _TEST_SERVER_MAIN.replace(".", "/") + ".class" in archive.namelist()


def test_server_path(*, install: bool = True) -> Path | None:
    """Find the Java time-skipping test server, fetching it with Maven if needed.

    Order: ``$TEMPORAL_TEST_SERVER_PATH``, the cached wrapper script, then (if
    ``install`` and both ``mvn`` and ``java`` are on ``PATH``) a fresh fetch of
    ``io.temporal:temporal-test-server`` from Maven Central into the cache.

    Args:
        install: Whether to fetch the test server when it is not found.

    Returns:
        The test server executable, or ``None`` if the SDK should download it.

    Raises:
        ToolchainError: ``$TEMPORAL_TEST_SERVER_PATH`` is invalid or the fetch failed.
    """
    if path := _from_env("TEMPORAL_TEST_SERVER_PATH"):
        return path
    name = f"temporal-test-server-{TEST_SERVER_VERSION}"
    final = cache_dir() / name
    wrapper = final / "temporal-test-server"
    if _is_executable(wrapper):
        return wrapper
    mvn = shutil.which("mvn")
    if not install or mvn is None or shutil.which("java") is None:
        return None
    with _lock(name) as root:
        if _is_executable(wrapper):  # fetched by another process while we waited
            return wrapper
        sys.stderr.write(
            f"fetching Temporal test server {TEST_SERVER_VERSION} from Maven Central "
            "(first time only)…\n"
        )
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
            (Path(tmp) / "pom.xml").write_text(_POM.format(version=TEST_SERVER_VERSION))
            out = Path(tmp) / "out"
            _run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={out / 'jars'}",
                ],
                what=f"Fetching io.temporal:temporal-test-server:{TEST_SERVER_VERSION} with Maven",
                fixes=_TEST_SERVER_FIXES,
                cwd=tmp,
            )
            jar = out / "jars" / f"temporal-test-server-{TEST_SERVER_VERSION}.jar"
            if not _has_main_class(jar):
                raise ToolchainError(
                    f"Maven ran, but the jars it copied do not include {jar.name} with "
                    f"main class {_TEST_SERVER_MAIN}.\n"
                    f"{_TEST_SERVER_FIXES}"
                )
            script = out / wrapper.name
            classpath = shlex.quote(f"{final / 'jars'}/*")
            # exec: the SDK stops the server by killing its direct child only.
            script.write_text(f'#!/bin/sh\nexec java -cp {classpath} {_TEST_SERVER_MAIN} "$@"\n')
            script.chmod(0o755)
            shutil.rmtree(final, ignore_errors=True)  # leftovers without a wrapper
            out.rename(final)
    return wrapper


test_server_path.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _download_failed(what: str, tried: str, var: str, fix: str, cause: Exception) -> ToolchainError:
    return ToolchainError(
        f"Could not start the {what}: none was found locally and the Temporal SDK "
        f"could not download one.\n"
        f"Tried: ${var} (unset), {tried} and the SDK download ({cause}).\n"
        f"To fix, do one of:\n"
        f"  - {fix}, then run `python -m starter.dev.toolchain` to install it into the cache;\n"
        f"  - set {var} to an existing executable;\n"
        f"  - run with internet access so the SDK can download it."
    )


async def start_dev_server(**kwargs: Any) -> WorkflowEnvironment:
    """Start a local Temporal dev server (the CLI's ``server start-dev``).

    Args:
        **kwargs: Passed to ``WorkflowEnvironment.start_local`` (``port``, ``ui``,
            ``ui_port``, ``search_attributes``, ``dev_server_database_filename``,
            ``data_converter``, ``namespace``, ...).

    Returns:
        The started environment; use it as an async context manager to stop it.

    Raises:
        ToolchainError: The CLI could not be found, built or downloaded.
    """
    path = await asyncio.to_thread(temporal_cli_path)
    try:
        return await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(path) if path else None, **kwargs
        )
    except RuntimeError as exc:
        if path is None and "download" in str(exc):
            raise _download_failed(
                "Temporal dev server",
                f"`temporal` on PATH (not found), the cache in {cache_dir()} (empty), "
                "building with Go (`go` not on PATH)",
                "TEMPORAL_CLI_PATH",
                "install Go (https://go.dev/dl/)",
                exc,
            ) from exc
        raise


async def start_time_skipping_server(**kwargs: Any) -> WorkflowEnvironment:
    """Start the Java time-skipping test server.

    Args:
        **kwargs: Passed to ``WorkflowEnvironment.start_time_skipping``.

    Returns:
        The started environment; use it as an async context manager to stop it.

    Raises:
        ToolchainError: The test server could not be found, fetched or downloaded.
    """
    path = await asyncio.to_thread(test_server_path)
    kwargs.setdefault("test_server_startup_timeout", timedelta(seconds=60))
    try:
        return await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(path) if path else None, **kwargs
        )
    except RuntimeError as exc:
        if path is None and "download" in str(exc):
            raise _download_failed(
                "Temporal time-skipping test server",
                f"the cache in {cache_dir()} (empty), "
                "fetching with Maven (`mvn` or `java` not on PATH)",
                "TEMPORAL_TEST_SERVER_PATH",
                "install Maven and a Java runtime",
                exc,
            ) from exc
        raise


def ensure_all(*, cluster: bool = False) -> None:
    """Resolve or install the servers and report where each one is.

    Args:
        cluster: Also the Temporal server and SQL tool of `journeys cluster`.

    Raises:
        ToolchainError: A path override is invalid or an install failed.
    """
    for what, resolve in (
        (f"Temporal CLI {TEMPORAL_CLI_VERSION} (dev server)", temporal_cli_path),
        (f"Temporal test server {TEST_SERVER_VERSION}", test_server_path),
    ):
        where = resolve() or "not found; the Temporal SDK will download it (needs internet)"
        sys.stderr.write(f"{what}: {where}\n")
    if cluster:
        bundle = temporal_server_bundle()
        sys.stderr.write(f"Temporal server {TEMPORAL_SERVER_VERSION} (cluster): {bundle.root}\n")


def main() -> None:
    """Entry point for ``python -m starter.dev.toolchain [--cluster]``."""
    try:
        ensure_all(cluster="--cluster" in sys.argv[1:])
    except ToolchainError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
