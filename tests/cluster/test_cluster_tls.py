"""TLS and mutual TLS on the real cluster's frontend, with certificates made in the test.

The module starts two clusters of its own, one after the other, each on a
PostgreSQL of its own: first with TLS (the server authenticates itself), then
with mutual TLS (clients must present a certificate of the clients' CA). The
journeys' own processes (`journeys worker`, `journeys api`, the CLI) connect
through the SDK's environment configuration, as in production: TEMPORAL_TLS_*
variables, or a `temporal.toml` profile.

What a user notices:
- a worker runs a journey end to end over TLS, and the CLI reads it back;
- every wrong certificate, key or name stops `journeys worker`, the CLI and
  `journeys api` at start with one line naming the setting and the reason;
- the gateway still starts while Temporal is unreachable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowExecutionStatus

from models.settings import Settings
from starter.dev.cluster import register_namespace, register_search_attributes
from starter.dev.ports import free_port
from starter.dev.postgres import PostgresCluster
from starter.dev.processes import ServiceProcess
from starter.dev.temporal_cluster import FrontendTls, TemporalCluster
from starter.dev.toolchain import temporal_server_bundle
from tests.certificates import Issued, TestCa
from tests.cli import JOURNEYS, Completed, cli_environment, journeys, run
from tests.factories import add_contact
from tests.faults.stack import WorkerProcess
from tests.gateway import FULL_KEY
from tests.outbox import read_outbox

pytestmark = pytest.mark.cluster

SERVER_NAME = "frontend.temporal.test"
"""The only name in the frontend's certificate: clients must ask for it (not 127.0.0.1)."""
REFUSAL_TIMEOUT = 90
"""Seconds a process may take to refuse to start (imports on a busy machine)."""


@dataclass(frozen=True)
class Certificates:
    """The test's certificates (PEM files).

    Attributes:
        server_ca: The CA of the servers, which clients trust.
        frontend: The frontend's certificate, for `SERVER_NAME` only.
        client_ca: The CA of the clients, which the frontend trusts under mutual TLS.
        internal: The cluster's own client certificate (the worker service's).
        app: The journeys' client certificate.
        other_ca: A CA nobody trusts.
        stranger: A client certificate `other_ca` signed.
    """

    server_ca: Path
    frontend: Issued
    client_ca: Path
    internal: Issued
    app: Issued
    other_ca: Path
    stranger: Issued


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certificates")
    servers, clients, others = TestCa("servers"), TestCa("clients"), TestCa("others")
    return Certificates(
        server_ca=servers.write(folder / "server-ca.pem"),
        frontend=servers.issue(folder, "frontend", dns=[SERVER_NAME]),
        client_ca=clients.write(folder / "client-ca.pem"),
        internal=clients.issue(folder, "internal", client=True),
        app=clients.issue(folder, "app", client=True),
        other_ca=others.write(folder / "other-ca.pem"),
        stranger=others.issue(folder, "stranger", client=True),
    )


@dataclass(frozen=True)
class Frontend:
    """A cluster serving TLS, and how the journeys' processes connect to it."""

    cluster: TemporalCluster
    certificates: Certificates
    mutual: bool

    def environment(self, settings: Settings) -> dict[str, str]:
        """A process's environment that connects as it should: the CA, the server name,
        and under mutual TLS the app's certificate; the test's database and queue."""
        certificates = self.certificates
        tls = {
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.server_ca),
            "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        }
        if self.mutual:
            tls["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(certificates.app.cert)
            tls["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(certificates.app.key)
        return {**own_environment(settings, self.cluster.address), **tls}

    async def client(self) -> Client:
        """The test's own client (no payload codec: it reads statuses, not payloads)."""
        assert self.cluster.tls is not None
        return await Client.connect(self.cluster.address, tls=self.cluster.tls.client_config())


def own_environment(settings: Settings, address: str) -> dict[str, str]:
    """`cli_environment` without the machine's own Temporal settings and payload keys."""
    return {
        **{
            name: value
            for name, value in cli_environment(settings, address).items()
            if name not in OUTSIDE_SETTINGS and not name.startswith("TEMPORAL_TLS")
        },
        # Nor a `temporal.toml` in this user's config folder.
        "XDG_CONFIG_HOME": str(settings.outbox_dir.parent / ".config"),
    }


OUTSIDE_SETTINGS = (
    "TEMPORAL_API_KEY",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
    "PAYLOAD_KEYS_DATABASE_URL",
)


@pytest.fixture(scope="module", params=["tls", "mutual-tls"])
async def frontend(
    request: pytest.FixtureRequest,
    certificates: Certificates,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Frontend]:
    """A cluster (on a PostgreSQL of its own) with TLS on its frontend, the namespace and
    search attributes registered."""
    mutual = request.param == "mutual-tls"
    tls = FrontendTls(
        cert_file=certificates.frontend.cert,
        key_file=certificates.frontend.key,
        ca_file=certificates.server_ca,
        server_name=SERVER_NAME,
        client_ca_file=certificates.client_ca if mutual else None,
        internal_cert_file=certificates.internal.cert if mutual else None,
        internal_key_file=certificates.internal.key if mutual else None,
    )
    with (
        PostgresCluster() as postgres,
        TemporalCluster(
            tmp_path_factory.mktemp(request.param),
            bundle=temporal_server_bundle(install=False),
            postgres=postgres,
            tls=tls,
        ) as cluster,
    ):
        await cluster.wait_ready()
        served = Frontend(cluster, certificates, mutual)
        client = await served.client()
        await register_namespace(client, retention=timedelta(days=1))
        await register_search_attributes(client)
        yield served


mutual_tls_only = pytest.mark.parametrize("frontend", ["mutual-tls"], indirect=True)
tls_only = pytest.mark.parametrize("frontend", ["tls"], indirect=True)


async def test_a_worker_runs_a_journey_over_tls_and_the_cli_reads_it(
    frontend: Frontend, settings: Settings, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Under mutual TLS the CLI reads its settings from a `temporal.toml` profile."""
    worker_env = frontend.environment(settings)
    cli_env = profile_environment(frontend, settings, tmp_path) if frontend.mutual else worker_env
    await add_contact(engine, "tls-ada")
    worker = WorkerProcess("worker", worker_env, tmp_path)
    try:
        _, enrolled = await asyncio.gather(
            worker.start(),
            journeys("enroll", "welcome-series", "tls-ada", "--day-seconds", "1", env=cli_env),
        )
        assert enrolled.returncode == 0, enrolled.stderr
        handle = (await frontend.client()).get_workflow_handle("welcome-series-tls-ada")
        async with asyncio.timeout(60):
            while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await asyncio.sleep(0.5)
    finally:
        await worker.stop()

    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    sent = sorted(key for key in read_outbox(settings.outbox_dir) if "welcome" in key)
    days = ("day0", "day1", "day2", "day4", "day7")
    assert sent == [f"welcome-series-tls-ada/{day}" for day in days]
    status, listed = await asyncio.gather(
        journeys("status", "tls-ada", "--json", env=cli_env),
        journeys("list", "--journey", "welcome-series", "--all", "--json", env=cli_env),
    )
    assert status.returncode == 0, status.stderr
    runs = {run["workflow_id"]: run for run in status.json()["journeys"]}
    assert runs["welcome-series-tls-ada"]["state"]["messages_sent"] == 5
    assert listed.returncode == 0, listed.stderr
    assert [row["workflow_id"] for row in listed.json()] == ["welcome-series-tls-ada"]


def profile_environment(frontend: Frontend, settings: Settings, folder: Path) -> dict[str, str]:
    """An environment whose Temporal settings all come from a `temporal.toml` profile."""
    certificates = frontend.certificates
    profile = folder / "temporal.toml"
    profile.write_text(
        f'[profile.cluster]\naddress = "{frontend.cluster.address}"\nnamespace = "default"\n'
        "[profile.cluster.tls]\n"
        f'server_ca_cert_path = "{certificates.server_ca}"\nserver_name = "{SERVER_NAME}"\n'
        f'client_cert_path = "{certificates.app.cert}"\n'
        f'client_key_path = "{certificates.app.key}"\n'
    )
    env = own_environment(settings, frontend.cluster.address)
    del env["TEMPORAL_ADDRESS"], env["TEMPORAL_NAMESPACE"]
    return {**env, "TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "cluster"}


async def refusals(*starts: tuple[str, dict[str, str]]) -> list[str]:
    """Start each `journeys <command>` with its environment, side by side; each must stop
    with one error line and no stack trace. Returns those lines without `error: `."""
    results = await asyncio.gather(
        *(
            run(str(JOURNEYS), *command.split(), env=env, timeout=REFUSAL_TIMEOUT)
            for command, env in starts
        )
    )
    return [_error_line(result) for result in results]


def _error_line(result: Completed) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "tonic" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("error: ")


@tls_only
async def test_a_server_the_client_cannot_verify_is_refused_at_start(
    frontend: Frontend, settings: Settings
) -> None:
    """A server certificate not signed by the configured CA (the worker), or not for the
    server name asked for (the CLI)."""
    env = frontend.environment(settings)
    other_ca = frontend.certificates.other_ca
    address = frontend.cluster.address

    lines = await refusals(
        ("worker", {**env, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(other_ca)}),
        ("list", {**env, "TEMPORAL_TLS_SERVER_NAME": "temporal.example"}),
    )

    assert lines == [
        f"Temporal at {address}: its certificate is not signed by the CA of "
        f"TEMPORAL_TLS_SERVER_CA_CERT_PATH {other_ca}; set TEMPORAL_TLS_SERVER_CA_CERT_PATH "
        "to the CA certificate that signed it",
        f"Temporal at {address}: its certificate is for {SERVER_NAME}, not temporal.example, "
        "from TEMPORAL_TLS_SERVER_NAME; set TEMPORAL_TLS_SERVER_NAME to a name of the "
        "certificate",
    ]


@mutual_tls_only
async def test_wrong_tls_files_stop_the_start(frontend: Frontend, settings: Settings) -> None:
    """A missing file, a PEM that is not a certificate, a key of another certificate."""
    env = frontend.environment(settings)
    certificates = frontend.certificates
    missing = certificates.app.cert.with_name("missing.pem")

    lines = await refusals(
        ("list", {**env, "TEMPORAL_TLS_CLIENT_CERT_PATH": str(missing)}),
        ("list", {**env, "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certificates.app.key)}),
        ("worker", {**env, "TEMPORAL_TLS_CLIENT_KEY_PATH": str(certificates.stranger.key)}),
    )

    assert lines == [
        f"TEMPORAL_TLS_CLIENT_CERT_PATH {missing}: no such file or directory",
        f"TEMPORAL_TLS_SERVER_CA_CERT_PATH {certificates.app.key}: it holds a PEM private key, "
        "not a certificate",
        f"TEMPORAL_TLS_CLIENT_KEY_PATH {certificates.stranger.key} does not match the "
        f"certificate TEMPORAL_TLS_CLIENT_CERT_PATH {certificates.app.cert}: give the key the "
        "certificate was issued for",
    ]


@mutual_tls_only
async def test_mutual_tls_refuses_a_client_without_a_certificate_or_with_a_strangers(
    frontend: Frontend, settings: Settings
) -> None:
    env = frontend.environment(settings)
    without = {
        name: value for name, value in env.items() if not name.startswith("TEMPORAL_TLS_CLIENT")
    }
    stranger = frontend.certificates.stranger
    address = frontend.cluster.address

    lines = await refusals(
        ("worker", without),
        ("list", {**env, **client_certificate(stranger)}),
    )

    assert lines == [
        f"Temporal at {address} requires a client certificate (mutual TLS); "
        "set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH",
        refused_client_certificate(address, stranger),
    ]


def client_certificate(issued: Issued) -> dict[str, str]:
    return {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(issued.cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(issued.key),
    }


def refused_client_certificate(address: str, issued: Issued) -> str:
    return (
        f"Temporal at {address} refused the client certificate TEMPORAL_TLS_CLIENT_CERT_PATH "
        f"{issued.cert}; use one signed by a CA the server trusts for clients"
    )


@mutual_tls_only
async def test_the_gateway_checks_its_connection_at_start(
    frontend: Frontend, settings: Settings, tmp_path: Path
) -> None:
    """`journeys api` connects lazily, but tries the connection once at start: a refused
    client certificate stops it; over mutual TLS it serves; while Temporal is unreachable
    it serves too, and answers "not ready" until Temporal is back.

    Each gateway has a database of its own: two starting together would race to migrate one.
    """
    keys = json.dumps([{"name": "tests", "key": FULL_KEY}])
    env = {**frontend.environment(settings), "API_KEYS": keys}
    stranger = frontend.certificates.stranger
    serving = Gateway(tmp_path / "serving", env)
    waiting = Gateway(tmp_path / "waiting", {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
    try:
        refused = Gateway.environment(tmp_path / "refused", {**env, **client_certificate(stranger)})
        lines = await refusals((f"api --port {free_port()}", refused))
        assert lines == [refused_client_certificate(frontend.cluster.address, stranger)]
        assert await serving.readiness() == {
            "status": "ready",
            "checks": {"database": "ok", "temporal": "ok"},
        }
        assert await waiting.readiness(status=503) == {
            "status": "not ready",
            "checks": {"database": "ok", "temporal": "unavailable: TemporalUnavailable"},
        }
    finally:
        serving.process.stop()
        waiting.process.stop()
    assert "temporal unreachable at start" in waiting.process.log_path.read_text()


class Gateway:
    """A `journeys api` process, started, with a SQLite database in its own folder."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = ServiceProcess(
            folder.name,
            [str(JOURNEYS), "api", "--port", self.url.rpartition(":")[2]],
            log_path=folder / "gateway.log",
            env=self.environment(folder, env),
        )
        self.process.start()

    @staticmethod
    def environment(folder: Path, env: dict[str, str]) -> dict[str, str]:
        """`env` with a database in `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        return {**env, "DATABASE_URL": f"sqlite:///{folder / 'journeys.db'}"}

    async def readiness(self, *, status: int = 200) -> object:
        """The first answer to `/readyz` with `status`."""
        async with httpx.AsyncClient(base_url=self.url) as http, asyncio.timeout(REFUSAL_TIMEOUT):
            while True:
                assert self.process.running, f"the gateway exited:\n{self.process.tail()}"
                try:
                    answer = await http.get("/readyz")
                    if answer.status_code == status:
                        return answer.json()
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
