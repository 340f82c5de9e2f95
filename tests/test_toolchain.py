"""Tests for starter.dev.toolchain: tool resolution, installs and real server starts."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from starter.dev import toolchain

# A shell without PATH lookups: the fake tools run with PATH set to a bare directory.
CHMOD = "/bin/chmod"


def make_exe(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolate cache, overrides and PATH; returns the (empty) PATH directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("CONTACT_JOURNEYS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("TEMPORAL_CLI_PATH", raising=False)
    monkeypatch.delenv("TEMPORAL_TEST_SERVER_PATH", raising=False)
    return bin_dir


def cached_cli() -> Path:
    return toolchain.cache_dir() / f"temporal-cli-{toolchain.TEMPORAL_CLI_VERSION}" / "temporal"


def cached_test_server() -> Path:
    return (
        toolchain.cache_dir()
        / f"temporal-test-server-{toolchain.TEST_SERVER_VERSION}"
        / "temporal-test-server"
    )


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONTACT_JOURNEYS_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert toolchain.cache_dir() == tmp_path / "home" / ".cache" / "contact-journeys"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert toolchain.cache_dir() == tmp_path / "xdg" / "contact-journeys"
    monkeypatch.setenv("CONTACT_JOURNEYS_CACHE", str(tmp_path / "explicit"))
    assert toolchain.cache_dir() == tmp_path / "explicit"


def test_cli_env_var_wins_over_path(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_exe(sandbox / "temporal")
    explicit = make_exe(tmp_path / "elsewhere" / "temporal")
    monkeypatch.setenv("TEMPORAL_CLI_PATH", str(explicit))
    assert toolchain.temporal_cli_path() == explicit


def test_cli_path_wins_over_cache(sandbox: Path) -> None:
    make_exe(cached_cli())
    on_path = make_exe(sandbox / "temporal")
    assert toolchain.temporal_cli_path() == on_path


def test_cli_cache_reused_without_go(sandbox: Path) -> None:
    make_exe(sandbox / "go", "echo 'go must not run' >&2; exit 1")
    cached = make_exe(cached_cli())
    assert toolchain.temporal_cli_path() == cached


def test_cli_missing_env_path_is_clear_error(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_CLI_PATH", str(tmp_path / "nope"))
    with pytest.raises(toolchain.ToolchainError, match="TEMPORAL_CLI_PATH is set to .*nope"):
        toolchain.temporal_cli_path()


def test_cli_without_go_means_sdk_download(sandbox: Path) -> None:
    assert toolchain.temporal_cli_path() is None


def test_cli_no_install_skips_go(sandbox: Path) -> None:
    make_exe(sandbox / "go", "exit 1")
    assert toolchain.temporal_cli_path(install=False) is None


FAKE_GO = f"""\
echo built >> "{{log}}"
sleep 0.5
printf '#!/bin/sh\\n' > "$GOBIN/temporal"
{CHMOD} +x "$GOBIN/temporal"
"""


def test_cli_built_once_under_concurrency(sandbox: Path, tmp_path: Path) -> None:
    log = tmp_path / "go.log"
    make_exe(sandbox / "go", FAKE_GO.format(log=log))
    results: list[Path | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(toolchain.temporal_cli_path()))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [cached_cli()] * 3
    assert log.read_text() == "built\n"
    assert [p.name for p in toolchain.cache_dir().iterdir() if p.is_dir()] == [
        cached_cli().parent.name
    ]  # the temporary GOBIN is gone


def test_cli_build_failure_shows_go_output(sandbox: Path) -> None:
    make_exe(sandbox / "go", "echo 'go: module lookup disabled'; exit 1")
    with pytest.raises(toolchain.ToolchainError) as info:
        toolchain.temporal_cli_path()
    message = str(info.value)
    assert "go: module lookup disabled" in message
    assert "TEMPORAL_CLI_PATH" in message
    assert not cached_cli().exists()


def test_test_server_env_var_wins_over_cache(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_exe(cached_test_server())
    explicit = make_exe(tmp_path / "ts")
    monkeypatch.setenv("TEMPORAL_TEST_SERVER_PATH", str(explicit))
    assert toolchain.test_server_path() == explicit


def test_test_server_missing_env_path_is_clear_error(
    sandbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_TEST_SERVER_PATH", str(tmp_path / "nope"))
    with pytest.raises(toolchain.ToolchainError, match="TEMPORAL_TEST_SERVER_PATH"):
        toolchain.test_server_path()


def test_test_server_cache_reused_without_maven(sandbox: Path) -> None:
    make_exe(sandbox / "mvn", "exit 1")
    make_exe(sandbox / "java", "exit 1")
    cached = make_exe(cached_test_server())
    assert toolchain.test_server_path() == cached


@pytest.mark.parametrize("present", [[], ["mvn"], ["java"]])
def test_test_server_without_maven_and_java_means_sdk_download(
    sandbox: Path, present: list[str]
) -> None:
    for name in present:
        make_exe(sandbox / name)
    assert toolchain.test_server_path() is None


def fake_mvn(bin_dir: Path, jar: Path) -> None:
    """A mvn that 'copies dependencies' by copying ``jar`` to -DoutputDirectory."""
    make_exe(
        bin_dir / "mvn",
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#*=}";; esac; done\n'
        f'/bin/mkdir -p "$out" && /bin/cp "{jar}" "$out/"',
    )
    make_exe(bin_dir / "java")


def test_test_server_fetch_writes_exec_wrapper(sandbox: Path, tmp_path: Path) -> None:
    jar = tmp_path / f"temporal-test-server-{toolchain.TEST_SERVER_VERSION}.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("io/temporal/testserver/TestServer.class", b"")
    fake_mvn(sandbox, jar)
    wrapper = toolchain.test_server_path()
    assert wrapper == cached_test_server()
    jars = wrapper.parent / "jars"
    assert (jars / jar.name).is_file()
    assert wrapper.read_text() == (
        f"#!/bin/sh\nexec java -cp '{jars}/*' io.temporal.testserver.TestServer \"$@\"\n"
    )


def test_test_server_fetch_without_main_class_fails(sandbox: Path, tmp_path: Path) -> None:
    jar = tmp_path / f"temporal-test-server-{toolchain.TEST_SERVER_VERSION}.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("other/Main.class", b"")
    fake_mvn(sandbox, jar)
    with pytest.raises(toolchain.ToolchainError, match="io.temporal.testserver.TestServer"):
        toolchain.test_server_path()
    assert not cached_test_server().parent.exists()


async def test_sdk_download_failure_becomes_toolchain_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_download(**kwargs: object) -> WorkflowEnvironment:
        assert kwargs["dev_server_existing_path"] is None
        raise RuntimeError("failed to download ephemeral server executable")

    monkeypatch.setattr(toolchain, "temporal_cli_path", lambda: None)
    monkeypatch.setattr(WorkflowEnvironment, "start_local", no_download)
    with pytest.raises(toolchain.ToolchainError, match="(?s)install Go.*TEMPORAL_CLI_PATH"):
        await toolchain.start_dev_server()


def test_main_exits_2_with_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*, cluster: bool) -> None:
        raise toolchain.ToolchainError(f"no way to get Temporal (cluster: {cluster})\ninstall Go")

    monkeypatch.setattr(toolchain, "ensure_all", fail)
    with pytest.raises(SystemExit) as info:
        toolchain.main()
    assert info.value.code == 2
    assert "no way to get Temporal (cluster: False)\ninstall Go" in capsys.readouterr().err


async def test_real_time_skipping_server() -> None:
    async with await toolchain.start_time_skipping_server() as env:
        assert env.supports_time_skipping
        await env.get_current_time()


async def test_real_dev_server() -> None:
    async with await toolchain.start_dev_server() as env:
        assert (await env.client.count_workflows()).count == 0
