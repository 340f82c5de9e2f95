"""A real Temporal cluster on PostgreSQL, on loopback: the production topology on one machine.

The four Temporal services (frontend, history, matching, worker) run as
separate `temporal-server` processes, built from the Go module proxy
(`starter.dev.toolchain.temporal_server_bundle`), persisting to PostgreSQL
(`temporal` and `temporal_visibility`, created with `temporal-sql-tool` from
the schemas of the server's own module). They find each other through the
database (ringpop membership), as on a real deployment.

Each service gets its own config file (`<service>.yaml`, the same cluster
settings with its own metrics port), written as JSON (YAML's subset) from
`_config`; the dynamic config turns on worker versioning (deployments) and
update-with-start. `journeys cluster` runs one for a person; the cluster tests
run one per session and break parts of it on purpose.

With `tls=FrontendTls(…)` the frontend serves TLS (and, with a client CA,
mutual TLS) to its clients; the worker service, the cluster's own client of the
frontend, then connects with that CA and server name (and its own client
certificate). Traffic between the services stays plain, on loopback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import TLSConfig

from starter.dev.ports import free_low_port, free_port, port_in_use
from starter.dev.postgres import SUPERUSER, PostgresCluster
from starter.dev.processes import ServiceProcess
from starter.dev.toolchain import ServerBundle, ToolchainError

SERVICES = ("history", "matching", "frontend", "worker")
"""The Temporal services, in the order they start (the frontend needs history to answer)."""


def service_of(instance: str) -> str:
    """The service a process runs: `history-2` (a second history host) runs `history`."""
    return instance.split("-")[0]


def instances(*, history_hosts: int = 1) -> tuple[str, ...]:
    """The processes of a cluster, in start order: one per service, more history hosts."""
    extra = tuple(f"history-{number}" for number in range(2, history_hosts + 1))
    return (SERVICES[0], *extra, *SERVICES[1:])


PERSISTENCE_DATABASE = "temporal"
VISIBILITY_DATABASE = "temporal_visibility"
SQL_PLUGIN = "postgres12"

DYNAMIC_CONFIG: dict[str, Any] = {
    "limit.maxIDLength": 255,
    "frontend.enableExecuteMultiOperation": True,
    "system.enableDeploymentVersions": True,
    "system.enableDeployments": True,
    "frontend.workerVersioningDataAPIs": True,
    "frontend.workerVersioningWorkflowAPIs": True,
    "frontend.workerVersioningRuleAPIs": True,
    # How soon a drained worker version shows as drained (the default is minutes).
    "matching.wv.VersionDrainageStatusVisibilityGracePeriod": "5s",
    "matching.wv.VersionDrainageStatusRefreshInterval": "5s",
}
"""Dynamic config of the local cluster (`config/dynamicconfig.yaml`)."""

READY_TIMEOUT_SECONDS = 120


class ClusterError(RuntimeError):
    """The cluster could not be set up or did not start; the message says which part and why."""


@dataclass(frozen=True)
class ServicePorts:
    """The ports of one Temporal service."""

    grpc: int
    membership: int
    metrics: int
    http: int | None = None  # the frontend's HTTP API only


@dataclass(frozen=True)
class ClusterPorts:
    """The ports of every service process, by instance name (`history`, `history-2`…)."""

    services: dict[str, ServicePorts] = field(default_factory=dict)

    @classmethod
    def free(cls, names: tuple[str, ...] = SERVICES) -> ClusterPorts:
        """Ports nobody listens on now (for tests, several clusters side by side)."""
        return cls(
            {
                name: ServicePorts(
                    grpc=free_port(),
                    membership=free_low_port(),
                    metrics=free_port(),
                    http=free_port() if name == "frontend" else None,
                )
                for name in names
            }
        )

    @classmethod
    def standard(cls) -> ClusterPorts:
        """Temporal's usual ports (frontend on 7233), metrics on 9091-9094."""
        grpc = {"frontend": 7233, "history": 7234, "matching": 7235, "worker": 7239}
        return cls(
            {
                name: ServicePorts(
                    grpc[name],
                    grpc[name] - 300,
                    9091 + index,
                    7243 if name == "frontend" else None,
                )
                for index, name in enumerate(SERVICES)
            }
        )

    @property
    def frontend(self) -> int:
        """The frontend's gRPC port (clients and workers connect there)."""
        return self.services["frontend"].grpc


@dataclass(frozen=True)
class FrontendTls:
    """TLS on the frontend's client ports (gRPC and HTTP), as PEM files.

    Attributes:
        cert_file: The frontend's certificate.
        key_file: Its private key.
        ca_file: The CA that signed `cert_file`, which the cluster's own clients trust.
        server_name: A DNS name of `cert_file`, which those clients ask for.
        client_ca_file: Mutual TLS: only clients presenting a certificate this CA
            signed get in (None: server authentication only).
        internal_cert_file: Under mutual TLS, the client certificate of the
            cluster's own clients (the worker service); `client_ca_file` must
            have signed it.
        internal_key_file: Its private key.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    server_name: str
    client_ca_file: Path | None = None
    internal_cert_file: Path | None = None
    internal_key_file: Path | None = None

    def __post_init__(self) -> None:
        if self.client_ca_file is not None and (
            self.internal_cert_file is None or self.internal_key_file is None
        ):
            raise ValueError(
                "mutual TLS (client_ca_file) needs internal_cert_file and internal_key_file: "
                "the worker service connects to the frontend as a client too"
            )

    def server_config(self) -> dict[str, Any]:
        """`global.tls` of the server config."""
        server: dict[str, Any] = {
            "certFile": str(self.cert_file),
            "keyFile": str(self.key_file),
            "requireClientAuth": self.client_ca_file is not None,
        }
        system_worker: dict[str, Any] = {
            "client": {"serverName": self.server_name, "rootCaFiles": [str(self.ca_file)]}
        }
        if self.client_ca_file is not None:
            server["clientCaFiles"] = [str(self.client_ca_file)]
            system_worker["certFile"] = str(self.internal_cert_file)
            system_worker["keyFile"] = str(self.internal_key_file)
        return {"frontend": {"server": server}, "systemWorker": system_worker}

    def client_config(self) -> TLSConfig:
        """How an SDK client connects to this frontend, as the cluster's own clients do."""
        return TLSConfig(
            server_root_ca_cert=self.ca_file.read_bytes(),
            domain=self.server_name,
            client_cert=_read_optional(self.internal_cert_file),
            client_private_key=_read_optional(self.internal_key_file),
        )


def _read_optional(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


class TemporalCluster:
    """The Temporal services on a PostgreSQL cluster, started, killed and restarted at will.

    `with TemporalCluster(directory, bundle=…, postgres=…) as cluster:` creates or
    upgrades the schemas, writes the config, and starts the four services (and
    `history_hosts - 1` more history hosts, which share the history shards);
    `await cluster.wait_ready()` waits until the frontend serves. With `tls=`, the
    frontend serves TLS (see `FrontendTls`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        bundle: ServerBundle,
        postgres: PostgresCluster,
        ports: ClusterPorts | None = None,
        history_shards: int = 4,
        history_hosts: int = 1,
        tls: FrontendTls | None = None,
    ) -> None:
        self.directory = directory.resolve()  # the services run in it, with `--root` in it
        self.tls = tls
        self.bundle = bundle
        self.postgres = postgres
        self.instances = instances(history_hosts=history_hosts)
        self.ports = ports or ClusterPorts.free(self.instances)
        self.history_shards = history_shards
        self.services = {name: self._process(name) for name in self.instances}

    @property
    def address(self) -> str:
        """`host:port` of the frontend."""
        return f"127.0.0.1:{self.ports.frontend}"

    def __enter__(self) -> TemporalCluster:
        self.create_schemas()
        self.write_config()
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def create_schemas(self) -> None:
        """Create both databases and their schemas, or bring existing ones to this version."""
        for database, folder in (
            (PERSISTENCE_DATABASE, "temporal"),
            (VISIBILITY_DATABASE, "visibility"),
        ):
            if self._sql_tool(database, "create-database", allow="already exists"):
                self._sql_tool(database, "setup-schema", "-v", "0.0")
            versioned = self.bundle.postgres_schemas / folder / "versioned"
            self._sql_tool(database, "update-schema", "-d", str(versioned))

    def write_config(self) -> None:
        """Write each service's config file and the dynamic config under `config/`."""
        config_dir = self.directory / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        for name in self.instances:
            (config_dir / f"{name}.yaml").write_text(json.dumps(self._config(name), indent=2))
        (config_dir / "dynamicconfig.yaml").write_text(
            json.dumps({key: [{"value": value}] for key, value in DYNAMIC_CONFIG.items()}, indent=2)
        )

    def start(self, *names: str) -> None:
        """Start the named service processes (all by default); running ones are left alone.

        The first service starting on its own writes the cluster's metadata before the
        others start: services started together on fresh databases race to write it.
        """
        first, *others = names or self.instances
        if not self.services[first].running:
            self.services[first].start()
            self._wait_listening(first)
        for name in others:
            self.services[name].start()

    def kill(self, name: str) -> None:
        """SIGKILL one service process: it stops mid-way, as on a crash."""
        self.services[name].kill()

    def stop(self) -> None:
        """Stop every service process (SIGTERM, then SIGKILL)."""
        for name in reversed(self.instances):
            self.services[name].stop()

    async def wait_ready(self, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Wait until the frontend answers its health check.

        Raises:
            ClusterError: a service exited, or the frontend did not answer in time
                (with the end of the logs).
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._raise_if_exited()
                    try:
                        client = await Client.connect(
                            self.address, tls=self.tls.client_config() if self.tls else False
                        )
                        if await client.service_client.check_health():
                            return
                    except RuntimeError:
                        pass
                    await asyncio.sleep(0.5)
        except TimeoutError:
            raise ClusterError(
                f"the Temporal frontend at {self.address} did not serve within {timeout:.0f} s\n"
                + self.log_tails()
            ) from None

    def log_tails(self, lines: int = 15) -> str:
        """The end of each service's log, for error messages."""
        return "\n".join(
            f"--- {name} ({self.services[name].log_path}):\n{self.services[name].tail(lines)}"
            for name in self.instances
        )

    def _wait_listening(self, name: str, *, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Wait until the service's gRPC port accepts connections.

        Raises:
            ClusterError: it exited first, or did not listen in time.
        """
        deadline = time.monotonic() + timeout
        while not port_in_use(self.ports.services[name].grpc):
            if not self.services[name].running:
                raise ClusterError(f"Temporal {name} exited:\n{self.services[name].tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"Temporal {name} did not listen within {timeout:.0f} s")
            time.sleep(0.1)

    def _process(self, instance: str) -> ServiceProcess:
        argv = [str(self.bundle.server), "--root", str(self.directory), "--config", "config"]
        argv += ["--env", instance, "--allow-no-auth", "start", "--service", service_of(instance)]
        return ServiceProcess(
            instance,
            argv,
            log_path=self.directory / "logs" / f"{instance}.log",
            cwd=self.directory,
        )

    def _raise_if_exited(self) -> None:
        for name, service in self.services.items():
            if not service.running:
                raise ClusterError(f"Temporal {name} exited:\n{service.tail()}")

    def _sql_tool(self, database: str, *command: str, allow: str | None = None) -> bool:
        """Run `temporal-sql-tool` on a database; False if it failed with `allow` in its output."""
        argv = [
            str(self.bundle.sql_tool), "--plugin", SQL_PLUGIN, "--ep", "127.0.0.1",
            "-p", str(self.postgres.port), "-u", SUPERUSER, "--db", database, *command,
        ]  # fmt: skip
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        except OSError as error:
            raise ToolchainError(f"could not run {argv[0]}: {error}") from error
        if result.returncode == 0:
            return True
        output = result.stdout + result.stderr
        if allow is not None and allow in output:
            return False
        raise ClusterError(
            f"temporal-sql-tool {' '.join(command)} on {database} failed "
            f"(exit code {result.returncode}):\n{output[-2000:]}"
        )

    def _config(self, instance: str) -> dict[str, Any]:
        """The static config one service process reads (`--env <instance>`)."""
        return {
            "log": {"stdout": True, "level": "warn"},
            "persistence": {
                "defaultStore": "postgres-default",
                "visibilityStore": "postgres-visibility",
                "numHistoryShards": self.history_shards,
                "datastores": {
                    "postgres-default": self._datastore(PERSISTENCE_DATABASE, connections=20),
                    "postgres-visibility": self._datastore(VISIBILITY_DATABASE, connections=4),
                },
            },
            "global": {
                "membership": {"maxJoinDuration": "30s", "broadcastAddress": "127.0.0.1"},
                "metrics": {
                    "prometheus": {
                        "framework": "tally",
                        "timerType": "histogram",
                        "listenAddress": f"127.0.0.1:{self.ports.services[instance].metrics}",
                    }
                },
                **({"tls": self.tls.server_config()} if self.tls else {}),
            },
            "services": dict(self._service_rpc(instance)),
            "clusterMetadata": {
                "enableGlobalNamespace": False,
                "failoverVersionIncrement": 10,
                "masterClusterName": "active",
                "currentClusterName": "active",
                "clusterInformation": {
                    "active": {
                        "enabled": True,
                        "initialFailoverVersion": 1,
                        "rpcName": "frontend",
                        "rpcAddress": self.address,
                    }
                },
            },
            "dcRedirectionPolicy": {"policy": "noop"},
            "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}},
            "namespaceDefaults": {
                "archival": {"history": {"state": "disabled"}, "visibility": {"state": "disabled"}}
            },
            "dynamicConfigClient": {
                "filepath": str(self.directory / "config" / "dynamicconfig.yaml"),
                "pollInterval": "10s",
            },
        }

    def _datastore(self, database: str, *, connections: int) -> dict[str, Any]:
        return {
            "sql": {
                "pluginName": SQL_PLUGIN,
                "databaseName": database,
                "connectAddr": f"127.0.0.1:{self.postgres.port}",
                "connectProtocol": "tcp",
                "user": SUPERUSER,
                "password": "",
                "maxConns": connections,
                "maxIdleConns": connections,
                "maxConnLifetime": "1h",
            }
        }

    def _service_rpc(self, instance: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each service's ports: the instance's own for its service, the first host's else."""
        for name in SERVICES:
            ports = self.ports.services[instance if service_of(instance) == name else name]
            rpc: dict[str, Any] = {
                "grpcPort": ports.grpc,
                "membershipPort": ports.membership,
                "bindOnLocalHost": True,
            }
            if ports.http is not None:
                rpc["httpPort"] = ports.http
            yield name, {"rpc": rpc}
