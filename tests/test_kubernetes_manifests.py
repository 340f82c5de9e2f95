"""Checks of the Kubernetes manifests in deploy/kubernetes/, without a cluster.

Every object is validated against a schema: the built-in kinds against the
Kubernetes JSON schemas that `kubernetes-validate` bundles (strict: an unknown
field is an error), KEDA's ScaledObject against KEDA's own CRD (vendored, see
KEDA_CRD). Then against what the app needs: its settings pass the production
guard, secrets come from Secrets, probes and Prometheus reach the ports the app
listens on, a worker version is one build id everywhere, and KEDA scales that
version's workers with the settings they run with. Each check is also run on
deliberately broken copies, to prove it can fail. The worker's readiness probe
runs for real, against a worker on the dev server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import typer
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.settings import Settings
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore
from starter.cli.commands import app as journeys_app
from tests.test_metrics import free_address
from worker import GRACEFUL_SHUTDOWN, running_worker, worker_runtime

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
# One worker version: the build id is written nowhere else in its file.
WORKER_FILE = (MANIFESTS / "worker.yaml").read_text()
BUILD_ID = re.findall(r"WORKER_BUILD_ID\n\s+value: (\S+)", WORKER_FILE)[0]
# KEDA's ScaledObject CRD exactly as the Go module github.com/kedacore/keda/v2@v2.21.1
# ships it (config/crd/bases/keda.sh_scaledobjects.yaml, Apache-2.0). To move to another
# KEDA: `go mod download -json github.com/kedacore/keda/v2@vX.Y.Z` prints the module's
# "Zip"; copy that file out of it and update the checksum.
KEDA_CRD = Path(__file__).parent / "schemas" / "keda.sh_scaledobjects.yaml"
KEDA_CRD_SHA256 = "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80"
# The oldest Kubernetes the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())

# The Secrets as README "Production" creates them (any values: the guard checks their
# strength, the manifests only where they come from). Optional ones may be absent.
SECRETS: dict[str, dict[str, str]] = {
    "contact-journeys": {
        "DATABASE_URL": "postgresql://journeys:s3cret@db.example.com:5432/journeys",
        "UNSUBSCRIBE_SECRET": "u" * 32,
        "SUPPRESSION_HASH_SECRET": "h" * 32,
        "PAYLOAD_MASTER_KEYS": json.dumps({"2026-12": base64.b64encode(b"m" * 32).decode()}),
        "API_KEYS": json.dumps([{"name": "backend", "key": "k" * 24}]),
    },
}
# A variable with such a name is a secret: never written in a manifest.
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|_KEYS?|_SID)$|^DATABASE_URL$")
COMMANDS = {"gateway": "api", "worker": "worker", "setup": "setup"}  # component -> journeys command
# The subcommands of the image's ENTRYPOINT, `journeys`.
JOURNEYS_COMMANDS = frozenset(getattr(typer.main.get_command(journeys_app), "commands", {}))
ALL_INTERFACES = ("0.0.0.0", "::")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# What KEDA's temporal trigger must read, and the worker variable it must equal.
SCALER_SETTINGS = {
    "endpoint": "TEMPORAL_ADDRESS",
    "namespace": "TEMPORAL_NAMESPACE",
    "taskQueue": "TASK_QUEUE",
    "workerDeploymentName": "WORKER_DEPLOYMENT_NAME",
    "workerDeploymentBuildId": "WORKER_BUILD_ID",
}

Node = dict[str, Any]  # an object of a manifest, or any map inside it
Manifests = dict[str, list[Node]]  # file name -> its objects


def load_manifests(folder: Path = MANIFESTS) -> Manifests:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(folder.glob("*.yaml"))
    }


# ------------------------------------------------------------------ schemas --


def strict(schema: Any) -> Any:
    """A CRD's OpenAPI schema that refuses unknown fields, as the API server does."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in schema:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [strict(sub) for sub in schema[key]]
    return out


@cache
def keda_validator() -> jsonschema.Draft202012Validator:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    [served] = [version for version in crd["spec"]["versions"] if version["name"] == "v1alpha1"]
    return jsonschema.Draft202012Validator(strict(served["schema"]["openAPIV3Schema"]))


def schema_problems(obj: Node) -> list[str]:
    """Where an object breaks its kind's schema (one problem per version at most)."""
    return list(_schema_problems(json.dumps(obj, sort_keys=True)))


@cache
def _schema_problems(text: str) -> tuple[str, ...]:
    obj = json.loads(text)
    where = describe(obj)
    if (obj.get("apiVersion"), obj.get("kind")) == ("keda.sh/v1alpha1", "ScaledObject"):
        return tuple(
            f"{where}: {'.'.join(map(str, error.path))}: {error.message} (KEDA CRD)"
            for error in keda_validator().iter_errors(obj)
        )
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            problems.append(f"{where}: {path}: {error.message} (Kubernetes {version})")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: {error.message}")
    return tuple(problems)


# ------------------------------------------------------------ object model --


def describe(obj: Node) -> str:
    return f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}"


def all_objects(manifests: Manifests) -> list[Node]:
    return [obj for objects in manifests.values() for obj in objects]


def labels(obj: Node) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def pod_template(obj: Node) -> Node:
    template: Node = obj.get("spec", {}).get("template", {})
    return template


def workloads(manifests: Manifests, component: str | None = None) -> list[Node]:
    """Deployments and Jobs (of one `app.kubernetes.io/component`)."""
    return [
        obj
        for obj in all_objects(manifests)
        if obj.get("kind") in ("Deployment", "Job")
        and component in (None, labels(pod_template(obj)).get("app.kubernetes.io/component"))
    ]


def containers(workload: Node) -> list[Node]:
    return list(pod_template(workload).get("spec", {}).get("containers") or [])


def image_tag(container: Node) -> str:
    return str(container.get("image", "")).rpartition(":")[2]


def container_env(container: Node, manifests: Manifests) -> dict[str, str] | str:
    """The environment a container starts with: its `envFrom` sources, then its `env`,
    Secrets as SECRETS has them; or why it would not start."""
    config_maps = {
        obj["metadata"]["name"]: obj.get("data") or {}
        for obj in all_objects(manifests)
        if obj.get("kind") == "ConfigMap"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref, known = source["configMapRef"], config_maps
        else:
            ref, known = source.get("secretRef", {}), SECRETS
        if ref.get("name") in known:
            env.update(known[ref["name"]])
        elif not ref.get("optional"):
            return f"{ref.get('name')} is neither in the manifests nor among the Secrets"
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef") or {}
        value = SECRETS.get(ref.get("name", ""), {}).get(ref.get("key", ""))
        if value is not None:
            env[entry["name"]] = value
        elif not ref.get("optional"):
            return f"{entry['name']}: Secret {ref.get('name')} has no key {ref.get('key')}"
    return env


def port_number(container: Node, port: int | str) -> int | None:
    """A probe's or Service's `port` (a number, or the name of a container port)."""
    if isinstance(port, int):
        return port
    named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    return named.get(port)


def http_probe(container: Node, kind: str) -> tuple[str, int | None] | None:
    """(path, port) an HTTP probe GETs, None without one."""
    get = (container.get(kind) or {}).get("httpGet")
    return (get.get("path", "/"), port_number(container, get.get("port", 0))) if get else None


# -------------------------------------------------------------- validator --


def manifest_problems(manifests: Manifests) -> list[str]:
    """Everything wrong with the manifests (file name -> objects), for the app they run."""
    objects = all_objects(manifests)
    problems = [problem for obj in objects for problem in schema_problems(obj)]
    seen: set[str] = set()
    for obj in objects:
        if (where := describe(obj)) in seen:
            problems.append(f"{where}: duplicate")
        seen.add(where)
        if obj.get("kind") == "Secret":
            problems.append(f"{where}: a Secret written in the manifests (create it apart)")
        if obj.get("kind") == "ConfigMap":
            problems += [
                f"{where}: {name} is a secret, in a ConfigMap"
                for name in obj.get("data") or {}
                if SECRET_NAME.search(name)
            ]
    for component in COMMANDS:
        if not workloads(manifests, component):
            problems.append(f"no {component}: no workload labelled component={component}")
    for workload in workloads(manifests):
        problems += workload_problems(workload, manifests)
    problems += gateway_service_problems(manifests)
    for worker in workloads(manifests, "worker"):
        problems += version_problems(worker, manifests)
    scaled = [obj for obj in objects if obj.get("kind") == "ScaledObject"]
    if not scaled:
        problems.append("no ScaledObject: the workers do not scale on their backlog")
    for scaled_object in scaled:
        problems += scaler_problems(scaled_object, manifests)
    return problems


def workload_problems(workload: Node, manifests: Manifests) -> list[str]:
    """A Deployment or Job running the journeys image: command, settings, security."""
    where = describe(workload)
    component = labels(pod_template(workload)).get("app.kubernetes.io/component", "")
    selector = workload.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    problems = []
    if not selector.items() <= labels(pod_template(workload)).items():
        problems.append(f"{where}: its selector {selector} does not match its pod labels")
    if (
        pod_template(workload).get("spec", {}).get("securityContext", {}).get("runAsNonRoot")
        is not True
    ):
        problems.append(f"{where}: may run as root (runAsNonRoot is not true)")
    for container in containers(workload):
        name = f"{where} ({container.get('name')})"
        args = [str(arg) for arg in container.get("args") or []]
        if "command" in container:
            problems.append(f"{name}: overrides the image's journeys ENTRYPOINT")
        elif not args or args[0] not in JOURNEYS_COMMANDS:
            problems.append(f"{name}: `journeys {' '.join(args)}` is not a journeys command")
        elif args[0] != COMMANDS.get(component):
            problems.append(
                f"{name}: runs `journeys {args[0]}`, a {component} runs {COMMANDS.get(component)}"
            )
        for entry in container.get("env") or []:
            if "value" in entry and SECRET_NAME.search(entry["name"]):
                problems.append(f"{name}: {entry['name']} is written in the manifest, not a Secret")
        env = container_env(container, manifests)
        if isinstance(env, str):
            problems.append(f"{name}: would not start: {env}")
            continue
        problems += [
            f"{name}: {variable} is not set (the SDK's default would be used)"
            for variable in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")
            if variable not in env
        ]
        if component in ("gateway", "worker"):
            problems += [f"{name}: {problem}" for problem in settings_problems(env, component)]
            problems += (gateway_problems if component == "gateway" else worker_problems)(
                workload, container, env
            )
    return problems


def settings_problems(env: Mapping[str, str], component: str) -> list[str]:
    """Why `journeys worker` / `journeys api` would refuse this environment."""
    with mock.patch.dict(os.environ, env, clear=True):
        try:
            settings = Settings(_env_file=None)
        except pydantic.ValidationError as error:
            return [f"invalid settings: {error}"]
    problems = [f"refused in production: {refusal}" for refusal in settings.production_refusals()]
    if not settings.production:
        problems.append("PRODUCTION is not on: the start-up guard may not apply")
    if component == "gateway" and not settings.api_keys:
        problems.append("API_KEYS is not set: the gateway refuses to start")
    return problems


def gateway_problems(workload: Node, container: Node, env: Mapping[str, str]) -> list[str]:
    """The gateway listens where its probes and Service reach it; ready means /readyz."""
    where, problems = describe(workload), []
    port = port_number(container, "http")
    if (host := env.get("API_HOST", "127.0.0.1")) not in ALL_INTERFACES:
        problems.append(f"{where}: listens on {host}, unreachable from outside the pod")
    if env.get("API_PORT", "8000") != str(port):
        problems.append(
            f"{where}: listens on {env.get('API_PORT', '8000')}, its port http is {port}"
        )
    for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        if http_probe(container, kind) != (path, port):
            problems.append(f"{where}: the {kind} does not GET {path} on port {port}")
    return problems


def worker_problems(workload: Node, container: Node, env: Mapping[str, str]) -> list[str]:
    """Prometheus finds the worker's metrics; probes look at them."""
    where, problems = describe(workload), []
    host, _, port_text = env.get("METRICS_BIND_ADDRESS", "").rpartition(":")
    port = port_number(container, "metrics")
    if host not in ALL_INTERFACES:
        problems.append(
            f"{where}: serves metrics on {host or 'nothing'}, unreachable by Prometheus"
        )
    if port_text != str(port):
        problems.append(f"{where}: serves metrics on port {port_text}, its port metrics is {port}")
    annotations = pod_template(workload).get("metadata", {}).get("annotations") or {}
    expected = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    for key, value in expected.items():
        if annotations.get(key) != value:
            problems.append(f"{where}: annotation {key} is {annotations.get(key)!r}, not {value!r}")
    if "exec" not in (container.get("readinessProbe") or {}):
        problems.append(f"{where}: no readiness probe running a check of its pollers")
    if http_probe(container, "livenessProbe") != ("/metrics", port):
        problems.append(f"{where}: the livenessProbe does not GET /metrics on port {port}")
    if "replicas" in workload.get("spec", {}):
        problems.append(f"{where}: sets replicas, which its ScaledObject owns")
    grace = pod_template(workload).get("spec", {}).get("terminationGracePeriodSeconds", 30)
    if grace <= GRACEFUL_SHUTDOWN.total_seconds():
        problems.append(
            f"{where}: killed {grace} s after SIGTERM, before its activities' "
            f"{GRACEFUL_SHUTDOWN.total_seconds():.0f} s to finish"
        )
    return problems


def gateway_service_problems(manifests: Manifests) -> list[str]:
    """The gateway's Service selects its pods and leads to its http port."""
    services = [obj for obj in all_objects(manifests) if obj.get("kind") == "Service"]
    gateways = workloads(manifests, "gateway")
    if not services:
        return ["no Service in front of the gateway"]
    problems = []
    for service in services:
        selector = service.get("spec", {}).get("selector") or {}
        selected = [g for g in gateways if selector.items() <= labels(pod_template(g)).items()]
        if not selector or not selected:
            problems.append(f"{describe(service)}: selects no gateway pod ({selector})")
        for port in service.get("spec", {}).get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for gateway in selected:
                if port_number(containers(gateway)[0], target) != port_number(
                    containers(gateway)[0], "http"
                ):
                    problems.append(
                        f"{describe(service)}: targetPort {target!r} is not the gateway's http port"
                    )
    return problems


def version_problems(worker: Node, manifests: Manifests) -> list[str]:
    """One worker version: its build id is its image tag, in its name and labels, and
    its `journeys setup` job runs the same image."""
    where = describe(worker)
    if len(containers(worker)) != 1:
        return [f"{where}: {len(containers(worker))} containers, not one worker"]
    [container] = containers(worker)
    env = container_env(container, manifests)
    if isinstance(env, str):
        return []  # reported with the workload
    build_id = env.get("WORKER_BUILD_ID", "")
    problems = []
    if not env.get("WORKER_DEPLOYMENT_NAME"):
        problems.append(f"{where}: WORKER_DEPLOYMENT_NAME is not set (Worker Versioning is off)")
    if build_id != image_tag(container):
        problems.append(
            f"{where}: WORKER_BUILD_ID {build_id!r} is not the image tag {image_tag(container)!r}"
        )
    if not DNS_LABEL.match(build_id):
        problems.append(f"{where}: build id {build_id!r} cannot be part of a resource name")
    if worker["metadata"]["name"] != f"journeys-worker-{build_id}":
        problems.append(f"{where}: is not named journeys-worker-{build_id} (one per version)")
    for what, found in (
        ("pod label", labels(pod_template(worker))),
        ("selector", worker.get("spec", {}).get("selector", {}).get("matchLabels") or {}),
    ):
        if found.get("app.kubernetes.io/version") != build_id:
            problems.append(f"{where}: {what} app.kubernetes.io/version is not {build_id}")
    setups = [
        job
        for job in workloads(manifests, "setup")
        if labels(job).get("app.kubernetes.io/version") == build_id
    ]
    if not setups:
        problems.append(f"{where}: no `journeys setup` job of version {build_id}")
    for job in setups:
        if {image_tag(c) for c in containers(job)} != {build_id}:
            problems.append(f"{describe(job)}: does not run the image of version {build_id}")
    return problems


def scaler_problems(scaled_object: Node, manifests: Manifests) -> list[str]:
    """KEDA scales one worker version on its backlog, with the settings that version uses."""
    where, spec = describe(scaled_object), scaled_object.get("spec", {})
    target = spec.get("scaleTargetRef", {})
    deployments = {
        obj["metadata"]["name"]: obj
        for obj in workloads(manifests, "worker")
        if obj["kind"] == "Deployment"
    }
    if target.get("kind", "Deployment") != "Deployment" or target.get("name") not in deployments:
        return [f"{where}: scales {target.get('name')!r}, not a worker Deployment here"]
    worker = deployments[target["name"]]
    by_name = {c.get("name"): c for c in containers(worker)}
    container = by_name.get(target.get("envSourceContainerName"), containers(worker)[0])
    env = container_env(container, manifests)
    if isinstance(env, str):
        return []  # reported with the workload
    triggers = [t for t in spec.get("triggers") or [] if t.get("type") == "temporal"]
    if not triggers:
        return [f"{where}: has no temporal trigger"]
    problems = []
    for trigger in triggers:
        metadata = trigger.get("metadata") or {}
        for setting, variable in SCALER_SETTINGS.items():
            if f"{setting}FromEnv" in metadata:
                source = metadata[f"{setting}FromEnv"]
                if source not in env:
                    problems.append(
                        f"{where}: {setting}: {source} is not in the worker's environment"
                    )
                    continue
                value = env[source]
            elif setting in metadata:
                value = metadata[setting]
            else:
                problems.append(f"{where}: {setting} is not set (scales on the wrong backlog)")
                continue
            if value != (used := env.get(variable)):
                problems.append(
                    f"{where}: {setting} {value!r} is not the worker's {variable} {used!r}"
                )
    return problems


# -------------------------------------------------------------------- tests --


def test_the_manifests_are_valid_and_consistent() -> None:
    manifests = load_manifests()
    assert manifest_problems(manifests) == []
    assert sorted(manifests) == ["config.yaml", "gateway.yaml", "worker.yaml"]
    kinds = sorted(describe(obj) for obj in all_objects(manifests))
    assert kinds == [
        "ConfigMap contact-journeys",
        "Deployment journeys-gateway",
        f"Deployment journeys-worker-{BUILD_ID}",
        f"Job journeys-setup-{BUILD_ID}",
        "PodDisruptionBudget journeys-gateway",
        f"ScaledObject journeys-worker-{BUILD_ID}",
        "Service journeys-gateway",
    ]


def test_the_readme_creates_the_secrets_the_manifests_read() -> None:
    readme = (ROOT / "README.md").read_text()
    [command] = re.findall(
        r"kubectl create secret generic contact-journeys \\\n(?:.+\\\n)*.+", readme
    )
    assert set(re.findall(r"--from-literal=(\w+)=", command)) == set(SECRETS["contact-journeys"])


def test_the_vendored_keda_crd_is_keda_s() -> None:
    assert hashlib.sha256(KEDA_CRD.read_bytes()).hexdigest() == KEDA_CRD_SHA256


def test_another_version_is_one_substitution_away_and_runs_beside_this_one() -> None:
    # What README "Production" does: sed the build id, apply beside the running version.
    other = WORKER_FILE.replace(BUILD_ID, "8d1e4b7")
    manifests = {**load_manifests(), "worker-8d1e4b7.yaml": list(yaml.safe_load_all(other))}
    assert manifest_problems(manifests) == []
    assert BUILD_ID not in other
    assert [obj["metadata"]["name"] for obj in manifests["worker-8d1e4b7.yaml"]] == [
        "journeys-setup-8d1e4b7",
        "journeys-worker-8d1e4b7",
        "journeys-worker-8d1e4b7",
    ]


async def test_the_worker_is_ready_once_it_polls_its_task_queue(
    dev_env: WorkflowEnvironment, settings: Settings, engine: AsyncEngine, codec_keys: KeyStore
) -> None:
    [worker] = workloads(load_manifests(), "worker")
    program, *arguments = containers(worker)[0]["readinessProbe"]["exec"]["command"]
    assert program == "python"  # the image's, on its PATH: here, this one
    settings = settings.model_copy(update={"metrics_bind_address": free_address()})
    probe_env = {**os.environ, "METRICS_BIND_ADDRESS": str(settings.metrics_bind_address)}

    async def ready() -> bool:
        probe = await asyncio.create_subprocess_exec(
            sys.executable, *arguments, env=probe_env, stderr=subprocess.DEVNULL
        )
        return await asyncio.wait_for(probe.wait(), 10) == 0

    assert not await ready()  # nothing serves metrics yet
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace="default",
        data_converter=encrypting_data_converter(codec_keys),
        runtime=worker_runtime(settings),
    )
    assert not await ready()  # metrics are served from here on, but nothing polls yet
    async with running_worker(client, settings):
        deadline = asyncio.get_running_loop().time() + 30
        while not await ready():
            assert asyncio.get_running_loop().time() < deadline, "never ready, though it polls"
            await asyncio.sleep(0.2)


# ----------------------------------------------------------- broken copies --


def _objects(manifests: Manifests, kind: str, component: str | None = None) -> Iterator[Node]:
    for obj in all_objects(manifests):
        if obj.get("kind") == kind and component in (
            None,
            labels(obj).get("app.kubernetes.io/component"),
        ):
            yield obj


def _one(kind: str, component: str | None = None) -> Callable[[Manifests], Node]:
    return lambda m: next(_objects(m, kind, component))


def _container(component: str) -> Callable[[Manifests], Node]:
    return lambda m: containers(workloads(m, component)[0])[0]


def _env(container: Node, name: str) -> Node:
    return next(entry for entry in container["env"] if entry["name"] == name)


WORKER, GATEWAY = _one("Deployment", "worker"), _one("Deployment", "gateway")
SCALED, CONFIG, SERVICE, SETUP = (
    _one("ScaledObject"),
    _one("ConfigMap"),
    _one("Service"),
    _one("Job"),
)
WORKER_CONTAINER, GATEWAY_CONTAINER = _container("worker"), _container("gateway")


def _trigger(m: Manifests) -> Node:
    metadata: Node = SCALED(m)["spec"]["triggers"][0]["metadata"]
    return metadata


def _set_env(
    pick: Callable[[Manifests], Node], name: str, value: str
) -> Callable[[Manifests], None]:
    return lambda m: _env(pick(m), name).update(value=value)


def _drop_env(pick: Callable[[Manifests], Node], name: str) -> Callable[[Manifests], None]:
    return lambda m: pick(m)["env"].remove(_env(pick(m), name))


def _rename(node: Node, old: str, new: str) -> None:
    node[new] = node.pop(old)


# Expected problem -> mutation of a copy of the manifests.
BREAKAGES: dict[str, Callable[[Manifests], object]] = {
    # Schemas: Kubernetes' (strict) and KEDA's.
    "'readinesProbe' was unexpected": lambda m: _rename(
        WORKER_CONTAINER(m), "readinessProbe", "readinesProbe"
    ),
    "'80' is not of type 'integer'": lambda m: SERVICE(m)["spec"]["ports"][0].update(port="80"),
    "'selector' is a required property": lambda m: GATEWAY(m)["spec"].pop("selector"),
    "10 is not of type 'string' (KEDA CRD)": lambda m: _trigger(m).update(targetQueueSize=10),
    "'nam' was unexpected": lambda m: _rename(SCALED(m)["spec"]["scaleTargetRef"], "name", "nam"),
    "'one' is not of type 'integer' (KEDA CRD)": lambda m: SCALED(m)["spec"].update(
        minReplicaCount="one"
    ),
    "Couldn't find schema for kind ScaledObject": lambda m: SCALED(m).update(
        apiVersion="keda.sh/v1"
    ),
    # Secrets stay out of the manifests.
    "UNSUBSCRIBE_SECRET is written in the manifest": _set_env(
        WORKER_CONTAINER, "UNSUBSCRIBE_SECRET", "x" * 32
    ),
    "a Secret written in the manifests": lambda m: m["config.yaml"].append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "contact-journeys"},
            "stringData": {},
        }
    ),
    "API_KEYS is a secret, in a ConfigMap": lambda m: CONFIG(m)["data"].update(API_KEYS="[]"),
    "Secret contact-journeys has no key DATABASE_URI": lambda m: _env(
        WORKER_CONTAINER(m), "DATABASE_URL"
    )["valueFrom"]["secretKeyRef"].update(key="DATABASE_URI"),
    "contact-journey is neither in the manifests nor among the Secrets": lambda m: (
        GATEWAY_CONTAINER(m)["envFrom"][0]["configMapRef"].update(name="contact-journey")
    ),
    # The production guard, on what each container gets.
    "refused in production: UNSUBSCRIBE_SECRET is the built-in development default": _drop_env(
        GATEWAY_CONTAINER, "UNSUBSCRIBE_SECRET"
    ),
    "refused in production: PUBLIC_BASE_URL 'http://journeys.example.com' is not https": lambda m: (
        CONFIG(m)["data"].update(PUBLIC_BASE_URL="http://journeys.example.com")
    ),
    "PRODUCTION is not on": lambda m: CONFIG(m)["data"].update(PRODUCTION="false"),
    "API_KEYS is not set: the gateway refuses to start": _drop_env(GATEWAY_CONTAINER, "API_KEYS"),
    "invalid settings": lambda m: CONFIG(m)["data"].update(EMAIL_PROVIDER="pigeon"),
    # Commands of the journeys image.
    "`journeys serve` is not a journeys command": lambda m: WORKER_CONTAINER(m).update(
        args=["serve"]
    ),
    "runs `journeys worker`, a gateway runs api": lambda m: GATEWAY_CONTAINER(m).update(
        args=["worker"]
    ),
    "overrides the image's journeys ENTRYPOINT": lambda m: SETUP(m)["spec"]["template"]["spec"][
        "containers"
    ][0].update(command=["python"]),
    "may run as root": lambda m: WORKER(m)["spec"]["template"]["spec"]["securityContext"].update(
        runAsNonRoot=False
    ),
    "its selector": lambda m: GATEWAY(m)["spec"]["selector"]["matchLabels"].update(tier="web"),
    "duplicate": lambda m: m["config.yaml"].append(copy.deepcopy(CONFIG(m))),
    # The gateway: reachable where its probes and its Service look.
    "journeys-gateway: listens on 127.0.0.1, unreachable": _set_env(
        GATEWAY_CONTAINER, "API_HOST", "127.0.0.1"
    ),
    "journeys-gateway: listens on 9000, its port http is 8000": _set_env(
        GATEWAY_CONTAINER, "API_PORT", "9000"
    ),
    "the readinessProbe does not GET /readyz on port 8000": lambda m: GATEWAY_CONTAINER(m)[
        "readinessProbe"
    ]["httpGet"].update(path="/healthz"),
    "the livenessProbe does not GET /healthz": lambda m: GATEWAY_CONTAINER(m).pop("livenessProbe"),
    "targetPort 'web' is not the gateway's http port": lambda m: SERVICE(m)["spec"]["ports"][
        0
    ].update(targetPort="web"),
    "selects no gateway pod": lambda m: SERVICE(m)["spec"]["selector"].update(
        {"app.kubernetes.io/component": "api"}
    ),
    # The worker: Prometheus and the probes find its metrics.
    "serves metrics on 127.0.0.1, unreachable": _set_env(
        WORKER_CONTAINER, "METRICS_BIND_ADDRESS", "127.0.0.1:9464"
    ),
    "serves metrics on port 9000, its port metrics is 9464": _set_env(
        WORKER_CONTAINER, "METRICS_BIND_ADDRESS", "0.0.0.0:9000"
    ),
    "annotation prometheus.io/port is '9090'": lambda m: WORKER(m)["spec"]["template"]["metadata"][
        "annotations"
    ].update({"prometheus.io/port": "9090"}),
    "annotation prometheus.io/scrape is None": lambda m: WORKER(m)["spec"]["template"]["metadata"][
        "annotations"
    ].pop("prometheus.io/scrape"),
    "no readiness probe": lambda m: WORKER_CONTAINER(m).pop("readinessProbe"),
    "the livenessProbe does not GET /metrics on port 9464": lambda m: WORKER_CONTAINER(m)[
        "livenessProbe"
    ]["httpGet"].update(port=8000),
    "sets replicas, which its ScaledObject owns": lambda m: WORKER(m)["spec"].update(replicas=2),
    "killed 20 s after SIGTERM": lambda m: WORKER(m)["spec"]["template"]["spec"].update(
        terminationGracePeriodSeconds=20
    ),
    "TEMPORAL_ADDRESS is not set": lambda m: SETUP(m)["spec"]["template"]["spec"]["containers"][
        0
    ].pop("envFrom"),
    # One version, one build id.
    f"WORKER_BUILD_ID 'v2' is not the image tag '{BUILD_ID}'": _set_env(
        WORKER_CONTAINER, "WORKER_BUILD_ID", "v2"
    ),
    "WORKER_DEPLOYMENT_NAME is not set": _drop_env(WORKER_CONTAINER, "WORKER_DEPLOYMENT_NAME"),
    "cannot be part of a resource name": lambda m: [
        _env(WORKER_CONTAINER(m), "WORKER_BUILD_ID").update(value="1.0_RC"),
        WORKER_CONTAINER(m).update(image="registry.example.com/contact-journeys:1.0_RC"),
    ],
    f"is not named journeys-worker-{BUILD_ID}": lambda m: [
        WORKER(m)["metadata"].update(name="journeys-worker"),
        SCALED(m)["spec"]["scaleTargetRef"].update(name="journeys-worker"),
    ],
    f"pod label app.kubernetes.io/version is not {BUILD_ID}": lambda m: [
        WORKER(m)["spec"]["template"]["metadata"]["labels"].update(
            {"app.kubernetes.io/version": "v2"}
        ),
        WORKER(m)["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/version": "v2"}),
    ],
    f"does not run the image of version {BUILD_ID}": lambda m: SETUP(m)["spec"]["template"]["spec"][
        "containers"
    ][0].update(image="registry.example.com/contact-journeys:v2"),
    f"no `journeys setup` job of version {BUILD_ID}": lambda m: m["worker.yaml"].remove(SETUP(m)),
    # KEDA scales that version, on the backlog of what its workers poll.
    "not a worker Deployment here": lambda m: SCALED(m)["spec"]["scaleTargetRef"].update(
        name="journeys-worker"
    ),
    "has no temporal trigger": lambda m: SCALED(m)["spec"]["triggers"][0].update(type="prometheus"),
    "taskQueue: TASKQUEUE is not in the worker's environment": lambda m: _trigger(m).update(
        taskQueueFromEnv="TASKQUEUE"
    ),
    "taskQueue 'marketing' is not the worker's TASK_QUEUE 'journeys'": lambda m: [
        _trigger(m).pop("taskQueueFromEnv"),
        _trigger(m).update(taskQueue="marketing"),
    ],
    "workerDeploymentBuildId is not set": lambda m: _trigger(m).pop(
        "workerDeploymentBuildIdFromEnv"
    ),
    "no ScaledObject": lambda m: m["worker.yaml"].remove(SCALED(m)),
    "no gateway: no workload": lambda m: m["gateway.yaml"].remove(GATEWAY(m)),
}


@pytest.mark.parametrize("expected", BREAKAGES)
def test_the_validator_catches(expected: str) -> None:
    broken = load_manifests()
    BREAKAGES[expected](broken)
    problems = manifest_problems(broken)
    assert any(expected in problem for problem in problems), problems
