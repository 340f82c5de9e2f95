"""Static checks of the container setup: Dockerfile, .dockerignore, docker-compose.yml.

No Docker engine is needed. The checks are validator functions returning a
list of problems, so each one is also run on deliberately broken copies to
prove it can fail. `docker compose config` runs only where the Docker CLI and
its compose plugin are installed (it needs no engine).
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import operator
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from functools import reduce
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import typer
import yaml
from pydantic import TypeAdapter
from typer.core import TyperGroup

from models.settings import ApiKey, Settings
from starter.cli.commands import app as journeys_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The JSON round trip unshares YAML aliases, so a mutation changes one service only.
COMPOSE = json.loads(json.dumps(yaml.safe_load(COMPOSE_FILE.read_text())))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text()

# DESIGN.md, "Custom search attributes".
KEYWORD_ATTRIBUTES = ("ContactId", "Journey", "JourneyStep", "LifecycleStage")
INT_ATTRIBUTES = ("LeadScore", "FitScore", "BehaviorScore")
SEARCH_ATTRIBUTES = {
    **dict.fromkeys(KEYWORD_ATTRIBUTES, "Keyword"),
    **dict.fromkeys(INT_ATTRIBUTES, "Int"),
}
LISTENS = {"temporal": 7233, "temporal-ui": 8080, "api": 8000}  # port inside the container
TEMPORAL_ADDRESS = f"temporal:{LISTENS['temporal']}"
POSTGRES_PORT = 5432
GATEWAY = "api"  # the service running `journeys api`
REQUIRED_SERVICES = ("postgresql", "temporal", "temporal-setup", "temporal-ui", "worker", GATEWAY)
APP_DEPENDENCIES = ("postgresql", "temporal", "temporal-setup")
DEFAULT_CMD = ["worker"]  # the image's CMD, run when a service sets no `command`
# Must never reach the build context: local venv, VCS data, secrets.
MUST_IGNORE = (".git", ".venv", ".env", ".data")
# Where `journeys api` listens when neither its options nor API_HOST / API_PORT say.
API_HOST_DEFAULT = str(Settings.model_fields["api_host"].default)
API_PORT_DEFAULT = str(Settings.model_fields["api_port"].default)
ALL_INTERFACES = ("0.0.0.0", "::")
# No safe default: compose must refuse to start without them (`${VAR:?message}`).
REQUIRED_VARIABLES = {
    "worker": ("UNSUBSCRIBE_SECRET", "SUPPRESSION_HASH_SECRET", "PAYLOAD_MASTER_KEYS"),
    GATEWAY: ("API_KEYS", "UNSUBSCRIBE_SECRET", "SUPPRESSION_HASH_SECRET", "PAYLOAD_MASTER_KEYS"),
}
# The worker signs unsubscribe links to PUBLIC_BASE_URL with UNSUBSCRIBE_SECRET, the
# gateway serves and verifies them; both hash suppressed addresses under
# SUPPRESSION_HASH_SECRET and unwrap payload keys with PAYLOAD_MASTER_KEYS: both must
# see the same values.
SHARED_VARIABLES = (
    "PUBLIC_BASE_URL",
    "UNSUBSCRIBE_SECRET",
    "SUPPRESSION_HASH_SECRET",
    "PAYLOAD_MASTER_KEYS",
)
# The required variables as a host running the stack sets them (e.g. in .env).
SECRETS = {
    "API_KEYS": json.dumps([{"name": "ci", "key": "k" * 24, "scopes": ["events:write"]}]),
    "UNSUBSCRIBE_SECRET": "u" * 32,
    "SUPPRESSION_HASH_SECRET": "h" * 32,
    "PAYLOAD_MASTER_KEYS": json.dumps({"ci": base64.b64encode(b"m" * 32).decode()}),
}

Node = dict[str, Any]  # a map of the compose file: the file, its `services`, a service


# ------------------------------------------------------------- compose model --


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose VAR is unset or empty: compose refuses the whole file."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name, self.message = name, message


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Expand the compose variables this repo uses: `$V`, `${V}`, `${V:-default}`,
    `${V:?message}` (raises MissingVariable), `$$`."""

    def expand(match: re.Match[str]) -> str:
        escaped, braced, modifier, argument, bare, other = match.groups()
        if other:
            raise ValueError(f"unsupported interpolation: {match[0]}")
        if escaped:
            return "$"
        if (value := env.get(braced or bare, "")) or not modifier:
            return value
        if modifier == ":?":
            raise MissingVariable(braced, argument)
        return argument

    return re.sub(r"\$(?:(\$)|\{(\w+)(?:(:[-?])([^}]*))?\}|(\w+)|(\{[^}]*\}))", expand, value)


def app_services(compose: Node) -> list[str]:
    """Services built from this repo (`build:`): they run the journeys image."""
    return [name for name, svc in (compose.get("services") or {}).items() if "build" in svc]


def service_env(service: Node, env: Mapping[str, str]) -> dict[str, str]:
    """A service's `environment` (map form), interpolated. A variable without a value
    (`VAR:`) is passed through from `env`, and left unset when `env` lacks it."""
    raw = service.get("environment") or {}
    passed = {key: env[key] for key, v in raw.items() if v is None and key in env}
    return {key: interpolate(str(v), env) for key, v in raw.items() if v is not None} | passed


def depends_on(service: Node) -> list[str]:
    return list(service.get("depends_on") or [])  # list form, or the keys of the map form


def service_ports(
    service: Node, env: Mapping[str, str]
) -> list[tuple[str | None, int | None, int]]:
    """(host IP or None, host port or None, container port) of each
    `[ip:][host:]container[/proto]` entry (an IPv6 address in brackets)."""
    ports = []
    for entry in service.get("ports") or []:
        *address, target = interpolate(entry, env).split("/")[0].rsplit(":", 2)
        ip = address[0] if len(address) == 2 else None
        published = int(address[-1]) if address and address[-1] else None
        ports.append((ip, published, int(target)))
    return ports


def is_loopback(ip: str | None) -> bool:
    """Whether a published port's host IP is a loopback address (None: every interface)."""
    try:
        return ip is not None and ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:
        return False


def named_volumes(service: Node) -> Iterator[tuple[str, str]]:
    """(volume name, mount target) of each named-volume mount (short syntax, no bind mounts)."""
    for entry in service.get("volumes") or []:
        if len(parts := entry.split(":")) >= 2 and parts[0][:1] not in ".~/$":
            yield parts[0], parts[1]


def words(value: Any) -> list[str]:
    """A compose `command`/`entrypoint` as argv: exec (list) or shell (string) form."""
    return [str(word) for word in value] if isinstance(value, list) else shlex.split(value or "")


def registered_search_attributes(service: Node) -> dict[str, str]:
    """Search attributes a setup script registers with its `register NAME TYPE` helper."""
    text = "\n".join(words(service.get("command")))
    return dict(re.findall(r"^\s*register\s+(\w+)\s+(\w+)\s*$", text, re.M))


# --------------------------------------------------------- compose validator --


def compose_problems(compose: Node, env: Mapping[str, str] | None = None) -> list[str]:
    """Everything wrong with a compose file, given the host environment `env`
    (default: empty, i.e. every `${VAR:-default}` takes its default, and a
    `${VAR:?message}` makes compose refuse the file: the only problem reported)."""
    env = {} if env is None else env
    services: Node = compose.get("services") or {}
    try:
        envs = {name: service_env(svc, env) for name, svc in services.items()}
    except MissingVariable as error:
        return [str(error)]
    problems: list[str] = []

    # Structure: images, dependencies, volumes, ports (on loopback: nothing here has TLS).
    host_ports: dict[int, str] = {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: has neither image nor build")
        problems += [
            f"{name}: depends on unknown {d!r}" for d in depends_on(svc) if d not in services
        ]
        for volume, _ in named_volumes(svc):
            if volume not in (compose.get("volumes") or {}):
                problems.append(f"{name}: volume {volume!r} is not declared under volumes")
        ports = service_ports(svc, env)
        for ip, published, target in ports:
            if not is_loopback(ip):
                where = f"on {ip}" if ip else "on every interface"
                problems.append(f"{name}: publishes port {target} {where}, not on loopback only")
            if published in host_ports:
                problems.append(f"{name}: host port {published} is {host_ports[published]}'s")
            if published is not None:
                host_ports[published] = name
            if target != LISTENS.get(name):
                problems.append(f"{name}: publishes port {target}, listens on {LISTENS.get(name)}")
        if name in LISTENS and LISTENS[name] not in [target for *_, target in ports]:
            problems.append(f"{name}: does not publish port {LISTENS[name]}")
    if missing := [name for name in REQUIRED_SERVICES if name not in services]:
        return [*problems, f"missing services: {', '.join(missing)}"]
    apps = app_services(compose)

    # One set of database credentials, used by postgres, Temporal and the app.
    pg_user = envs["postgresql"].get("POSTGRES_USER") or "postgres"
    pg_password = envs["postgresql"].get("POSTGRES_PASSWORD", "")
    pg_db = envs["postgresql"].get("POSTGRES_DB") or pg_user
    namespace = envs["temporal"].get("DEFAULT_NAMESPACE", "default")
    if not pg_password:
        problems.append("postgresql: POSTGRES_PASSWORD is empty")
    if "healthcheck" not in services["postgresql"]:
        problems.append("postgresql: no healthcheck (dependents wait for service_healthy)")
    expected = {
        ("temporal", "POSTGRES_SEEDS"): "postgresql",
        ("temporal", "POSTGRES_USER"): pg_user,
        ("temporal", "POSTGRES_PWD"): pg_password,
        ("temporal-setup", "NAMESPACE"): namespace,
    }
    for name in ("temporal-setup", "temporal-ui", *apps):
        expected[name, "TEMPORAL_ADDRESS"] = TEMPORAL_ADDRESS
    for name in apps:
        expected[name, "TEMPORAL_NAMESPACE"] = namespace
    for (name, var), value in expected.items():
        if (got := envs[name].get(var)) != value:
            problems.append(f"{name}: {var} is {got!r}, expected {value!r}")
    for name, deps in [("temporal", ["postgresql"]), *[(app, APP_DEPENDENCIES) for app in apps]]:
        problems += [
            f"{name}: does not depend on {d}" for d in deps if d not in depends_on(services[name])
        ]

    # Setup registers every search attribute of DESIGN.md, idempotently.
    script = "\n".join(words(services["temporal-setup"].get("command")))
    if "temporal operator search-attribute create" not in script:
        problems.append("temporal-setup: does not run `temporal operator search-attribute create`")
    if "already exists" not in script:
        problems.append("temporal-setup: does not tolerate 'already exists' (not re-runnable)")
    registered = registered_search_attributes(services["temporal-setup"])
    for attribute, kind in SEARCH_ATTRIBUTES.items():
        if (got := registered.get(attribute, "missing")) != kind:
            problems.append(f"temporal-setup: {attribute} must be registered as {kind}, not {got}")

    # The app runs a real `journeys` subcommand, on the postgresql service's database.
    cli = typer.main.get_command(journeys_app)  # the image's ENTRYPOINT, as a click group
    assert isinstance(cli, TyperGroup)
    options: dict[str, dict[str, Any]] = {}  # the options each app's command line gives
    for name in apps:
        argv = words(services[name].get("command")) or DEFAULT_CMD
        if "entrypoint" in services[name]:
            problems.append(f"{name}: overrides the image's journeys ENTRYPOINT")
        elif argv[0] not in cli.commands:
            commands = ", ".join(sorted(cli.commands))
            problems.append(f"{name}: `journeys {argv[0]}` is not a journeys command ({commands})")
        else:
            try:
                # Parses, runs nothing.
                context = cli.commands[argv[0]].make_context(argv[0], argv[1:])
            except typer.TyperException as error:
                problems.append(f"{name}: `journeys {shlex.join(argv)}`: {error.format_message()}")
            else:
                options[name] = {
                    option: value
                    for option, value in context.params.items()
                    if getattr(context.get_parameter_source(option), "name", "") == "COMMANDLINE"
                }
        url = urlsplit(envs[name].get("DATABASE_URL", ""))
        if url.scheme not in ("postgresql", "postgres"):
            problems.append(f"{name}: DATABASE_URL is not a postgresql:// URL")
        elif (url.hostname, url.port or POSTGRES_PORT) != ("postgresql", POSTGRES_PORT):
            problems.append(f"{name}: DATABASE_URL does not point at postgresql:{POSTGRES_PORT}")
        elif (unquote(url.username or ""), unquote(url.password or "")) != (pg_user, pg_password):
            problems.append(f"{name}: DATABASE_URL credentials differ from the postgresql service")
        elif url.path.lstrip("/") != pg_db:
            problems.append(f"{name}: DATABASE_URL database is not POSTGRES_DB ({pg_db})")

    outbox = envs["worker"].get("OUTBOX_DIR")
    if outbox not in {target for _, target in named_volumes(services["worker"])}:
        problems.append(f"worker: OUTBOX_DIR {outbox!r} is not on a named volume")
    return problems + gateway_problems(services, envs, env, options.get(GATEWAY, {}))


def gateway_problems(
    services: Node, envs: Mapping[str, Mapping[str, str]], env: Mapping[str, str], given: Node
) -> list[str]:
    """What is wrong with the `api` service (and the secrets it shares with the worker),
    given the interpolated environments `envs` and the options its command line gives."""
    problems: list[str] = []
    gateway, gateway_env = services[GATEWAY], envs[GATEWAY]

    # It listens where the published port and the healthcheck reach it.
    host = str(given.get("host") or gateway_env.get("API_HOST") or API_HOST_DEFAULT)
    port = str(given.get("port") or gateway_env.get("API_PORT") or API_PORT_DEFAULT)
    if host not in ALL_INTERFACES:
        problems.append(f"{GATEWAY}: the gateway listens on {host}, unreachable from outside")
    if port != str(LISTENS[GATEWAY]):
        problems.append(f"{GATEWAY}: the gateway listens on port {port}, not {LISTENS[GATEWAY]}")
    healthcheck = gateway.get("healthcheck")
    probe = " ".join(words((healthcheck or {}).get("test")))
    if not healthcheck:
        problems.append(f"{GATEWAY}: no healthcheck")
    elif healthcheck.get("disable") or probe in ("", "NONE"):
        problems.append(f"{GATEWAY}: the healthcheck is disabled")
    elif f":{port}/readyz" not in probe:
        problems.append(f"{GATEWAY}: the healthcheck does not probe /readyz on port {port}")
    elif tools := re.findall(r"\b(?:curl|wget)\b", probe):
        problems.append(f"{GATEWAY}: the healthcheck runs {tools[0]}, not in a python slim image")

    # Secrets without a safe default: compose refuses to start without them.
    for name, variables in REQUIRED_VARIABLES.items():
        raw = services[name].get("environment") or {}
        for variable in variables:
            if variable not in raw:
                problems.append(f"{name}: {variable} is not set")
                continue
            without = {key: value for key, value in env.items() if key != variable}
            try:
                interpolate("" if raw[variable] is None else str(raw[variable]), without)
            except MissingVariable as error:
                if error.name == variable:
                    if not error.message.strip():
                        problems.append(
                            f"{name}: ${{{variable}:?}} has no message saying what to set"
                        )
                    continue
            problems.append(f"{name}: {variable} is not required: write ${{{variable}:?message}}")

    # The worker signs unsubscribe links to the gateway, which verifies them.
    for variable in SHARED_VARIABLES:
        values = {name: envs[name].get(variable) for name in ("worker", GATEWAY)}
        unset = [name for name, value in values.items() if value is None]
        problems += [
            f"{name}: {variable} is not set, the worker and the api share it" for name in unset
        ]
        if not unset and len(set(values.values())) > 1:
            problems.append(f"worker and {GATEWAY}: {variable} differs")
    url = urlsplit(gateway_env.get("PUBLIC_BASE_URL", ""))
    if url.scheme not in ("http", "https") or not url.hostname:
        problems.append(f"{GATEWAY}: PUBLIC_BASE_URL is not an http(s):// URL")
    return problems


# ------------------------------------------------------ Dockerfile validator --


def dockerfile_instructions(text: str) -> list[tuple[str, list[str]]]:
    """(KEYWORD, argv) of each instruction: comment lines dropped, `\\` continuations
    joined, exec (JSON) form decoded, shell form split."""
    text = re.sub(r"\\[ \t]*\n", " ", re.sub(r"^[ \t]*#.*\n", "", text, flags=re.M))
    instructions = []
    for keyword, _, args in (line.strip().partition(" ") for line in text.splitlines()):
        argv = json.loads(args) if args.lstrip().startswith("[") else shlex.split(args)
        instructions += [(keyword.upper(), [str(word) for word in argv])] if keyword else []
    return instructions


def is_ignored(path: str, dockerignore: str) -> bool:
    """Whether the .dockerignore text excludes `path` (or a folder above it)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    glob, ignored = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}, False
    for pattern in (line.strip() for line in dockerignore.splitlines()):
        if not pattern or pattern.startswith("#"):
            continue
        tokens = re.split(r"(\*\*/|\*\*|\*|\?|\[[^]]*\])", pattern.lstrip("!").strip("/"))
        regex = "".join(glob.get(t) or (t if t[:1] == "[" else re.escape(t)) for t in tokens)
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def dockerfile_problems(dockerfile: str, dockerignore: str, root: Path = ROOT) -> list[str]:
    """Everything wrong with a Dockerfile (+ .dockerignore) for the repo at `root`."""
    instructions = dockerfile_instructions(dockerfile)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    if not stages:
        return ["Dockerfile: no FROM"]
    final = dict(instructions[stages[-1] :])  # the last instruction of each kind
    problems: list[str] = []

    # Global ARG defaults resolve `FROM ${PYTHON_IMAGE}`.
    args = dict(w.split("=", 1) for _, argv in instructions[: stages[0]] for w in argv if "=" in w)
    if not (base := interpolate(final["FROM"][0], args)).startswith("python:3.11-slim"):
        problems.append(f"final stage is based on {base}, not python:3.11-slim")
    if len(stages) < 2:
        problems.append("not a multi-stage build")
    uv = [w.split("=")[-1] for _, argv in instructions for w in argv if "astral-sh/uv" in w]
    for image in uv or ["none"]:
        if not image.startswith("ghcr.io/astral-sh/uv:") or image.endswith(":latest"):
            problems.append(f"uv does not come from a pinned ghcr.io/astral-sh/uv image: {image}")
    if (user := final.get("USER", [""])[0].split(":")[0]) in ("", "root", "0"):
        problems.append(f"the final stage runs as root (USER {user or 'not set'})")

    copied: set[str] = set()
    for keyword, argv in instructions:
        if keyword not in ("COPY", "ADD") or any(w.startswith("--from=") for w in argv):
            continue  # not a COPY, or from another stage or image: not the build context
        for source in [word for word in argv if not word.startswith("--")][:-1]:
            copied.add(clean := source.removeprefix("./").rstrip("/") or ".")
            if not ((root / clean).exists() or any(root.glob(clean))):
                problems.append(f"COPY source {source} does not exist in the repo")
            elif clean != "." and is_ignored(clean, dockerignore):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    for path in ["uv.lock", *wheel.get("only-include", [])]:
        if path.rstrip("/") not in copied and "." not in copied:
            problems.append(f"{path} is not copied into the image")

    # Every sync: exactly the locked versions, no dev tools, cached downloads.
    runs = [" ".join(argv) for keyword, argv in instructions if keyword == "RUN"]
    if not (syncs := [run for run in runs if "uv sync" in run]):
        problems.append("the image does not run `uv sync`")
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", "--mount=type=cache"):
            if flag not in sync:
                problems.append(f"`uv sync` without {flag}: {sync}")

    # The sandbox imports a journey's file for every new run: its bytecode must be in the image.
    if not any("compileall" in run and "workflows" in run.split() for run in runs):
        problems.append("the image does not compile the project's workflows/ (compileall)")

    scripts = pyproject["project"].get("scripts", {})
    if final.get("ENTRYPOINT") != ["journeys"] or "journeys" not in scripts:
        problems.append('ENTRYPOINT is not ["journeys"], the [project.scripts] entry point')
    if final.get("CMD") != DEFAULT_CMD:
        problems.append(f"default CMD is not {DEFAULT_CMD}")
    exposed = [
        w.split("/")[0] for k, argv in instructions[stages[-1] :] if k == "EXPOSE" for w in argv
    ]
    if str(LISTENS[GATEWAY]) not in exposed:
        problems.append(f"the final stage does not EXPOSE the gateway's port {LISTENS[GATEWAY]}")
    ignored = [path for path in MUST_IGNORE if not is_ignored(path, dockerignore)]
    return problems + [f".dockerignore does not exclude {path}" for path in ignored]


# --------------------------------------------------------------------- tests --


def test_compose_file_is_consistent() -> None:
    assert compose_problems(COMPOSE, SECRETS) == []
    assert app_services(COMPOSE) == ["worker", GATEWAY]
    assert registered_search_attributes(COMPOSE["services"]["temporal-setup"]) == SEARCH_ATTRIBUTES
    # The keys the checks run with are keys the gateway accepts.
    keys = TypeAdapter(list[ApiKey]).validate_json(SECRETS["API_KEYS"])
    assert [key.name for key in keys] == ["ci"]


def test_compose_refuses_to_start_without_its_secrets() -> None:
    for missing in SECRETS:
        env = {key: value for key, value in SECRETS.items() if key != missing}
        (problem,) = compose_problems(COMPOSE, env)
        assert problem.startswith(f"required variable {missing} is missing a value: set "), problem
        assert ".env" in problem  # says where to set it
    (problem,) = compose_problems(COMPOSE, {**SECRETS, "API_KEYS": ""})  # empty = unset
    assert "API_KEYS is missing a value" in problem
    # The gateway gets the keys; the worker does not need them.
    api, worker = (service_env(COMPOSE["services"][name], SECRETS) for name in (GATEWAY, "worker"))
    assert api["API_KEYS"] == SECRETS["API_KEYS"]
    assert "API_KEYS" not in worker


def test_compose_stays_consistent_with_overridden_secrets() -> None:
    env = {"POSTGRES_USER": "ops", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "crm"}
    assert compose_problems(COMPOSE, {**SECRETS, **env}) == []
    assert service_env(COMPOSE["services"]["postgresql"], env) == env
    # A hard-coded password is indistinguishable with the defaults, not once overridden.
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["environment"]["DATABASE_URL"] = _url(db="journeys")
    assert compose_problems(broken, SECRETS) == []
    problems = compose_problems(broken, {**SECRETS, "POSTGRES_PASSWORD": "s3cret"})
    assert any("worker: DATABASE_URL credentials" in p for p in problems), problems


def test_worker_and_gateway_share_the_unsubscribe_settings() -> None:
    public = {"PUBLIC_BASE_URL": "https://journeys.example.com", "EMAIL_WEBHOOK_SECRET": "w" * 32}
    env = {**SECRETS, **public}
    assert compose_problems(COMPOSE, env) == []
    api, worker = (service_env(COMPOSE["services"][name], env) for name in (GATEWAY, "worker"))
    for variable in SHARED_VARIABLES:
        assert api[variable] == worker[variable] == env[variable], variable
    # The webhook secret is passed through only when the host sets it.
    assert api["EMAIL_WEBHOOK_SECRET"] == env["EMAIL_WEBHOOK_SECRET"]
    assert "EMAIL_WEBHOOK_SECRET" not in service_env(COMPOSE["services"][GATEWAY], SECRETS)
    # A default shared by both is indistinguishable, not once the host overrides it.
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["environment"]["PUBLIC_BASE_URL"] = "http://localhost:8000"
    assert compose_problems(broken, SECRETS) == []
    assert "worker and api: PUBLIC_BASE_URL differs" in compose_problems(broken, env)


def test_dockerfile_is_consistent_with_the_repo() -> None:
    assert dockerfile_problems(DOCKERFILE, DOCKERIGNORE) == []


def _set(path: str, **values: Any) -> Callable[[Node], None]:
    """Update the map at `path` ("worker", "worker.environment") of `services` with `values`."""
    return lambda s: reduce(operator.getitem, path.split("."), s).update(values)


def _healthcheck(old: str, new: str) -> Callable[[Node], None]:
    def edit(s: Node) -> None:
        test = s[GATEWAY]["healthcheck"]["test"]
        assert any(old in part for part in test), f"the mutation no longer applies: {old!r}"
        s[GATEWAY]["healthcheck"]["test"] = [part.replace(old, new) for part in test]

    return edit


def _setup_script(old: str, new: str) -> Callable[[Node], None]:
    def edit(s: Node) -> None:
        command = s["temporal-setup"]["command"]
        assert any(old in part for part in command), f"the mutation no longer applies: {old!r}"
        s["temporal-setup"]["command"] = [part.replace(old, new) for part in command]

    return edit


def _url(credentials: str = "journeys:journeys", host: str = "postgresql", db: str = "x") -> str:
    return f"postgresql://{credentials}@{host}:5432/{db}"


# Expected problem -> mutation of the `services` of a copy of the file.
COMPOSE_BREAKAGES: dict[str, Callable[[Node], object]] = {
    "postgresql: has neither image nor build": lambda s: s["postgresql"].pop("image"),
    "worker: depends on unknown 'redis'": _set("worker.depends_on", redis={}),
    "worker: host port 8080 is temporal-ui's": _set("worker", ports=["127.0.0.1:8080:8080"]),
    "temporal-ui: publishes port 80,": _set("temporal-ui", ports=["127.0.0.1:8080:80"]),
    "temporal: publishes port 7233 on every interface": _set("temporal", ports=["7233:7233"]),
    "temporal-ui: does not publish port 8080": lambda s: s["temporal-ui"].pop("ports"),
    "volume 'mail' is not declared": _set("worker", volumes=["mail:/app/.data/outbox"]),
    "worker: OUTBOX_DIR": _set("worker.environment", OUTBOX_DIR="/tmp/outbox"),
    "worker: `journeys serve` is not a journeys command": _set("worker", command=["serve"]),
    "No such option: --port": _set("worker", command="worker --port 8000"),
    "worker: overrides the image's journeys ENTRYPOINT": _set("worker", entrypoint=["python"]),
    "api: `journeys gateway` is not a journeys command": _set("api", command=["gateway"]),
    # Any service built from the repo is checked, not only the known ones.
    "cron: `journeys tick` is not": lambda s: s.update(cron={**s["worker"], "command": ["tick"]}),
    "worker: TEMPORAL_ADDRESS": _set("worker.environment", TEMPORAL_ADDRESS="temporal:7234"),
    "temporal-ui: TEMPORAL_ADDRESS": _set("temporal-ui.environment", TEMPORAL_ADDRESS="temporal:1"),
    "worker: TEMPORAL_NAMESPACE": _set("worker.environment", TEMPORAL_NAMESPACE="prod"),
    "temporal: POSTGRES_PWD": _set("temporal.environment", POSTGRES_PWD="temporal"),
    "DATABASE_URL credentials": _set("worker.environment", DATABASE_URL=_url("journeys:x")),
    "DATABASE_URL does not point": _set("worker.environment", DATABASE_URL=_url(host="db")),
    "DATABASE_URL database": _set("worker.environment", DATABASE_URL=_url(db="temporal")),
    "worker: does not depend on temporal-setup": lambda s: s["worker"]["depends_on"].clear(),
    "api: does not depend on temporal-setup": lambda s: s["api"]["depends_on"].pop(
        "temporal-setup"
    ),
    "LeadScore must be registered as Int, not missing": _setup_script("register LeadScore", ""),
    "must be registered as Int, not Keyword": _setup_script("LeadScore Int", "LeadScore Keyword"),
    "does not tolerate 'already exists'": _setup_script("already exists", "exists"),
    "missing services: temporal-ui": lambda s: s.pop("temporal-ui"),
    "missing services: api": lambda s: s.pop("api"),
    # The gateway: published on loopback, listening where that port leads, healthy when ready.
    "api: publishes port 8000 on every interface": _set("api", ports=["8000:8000"]),
    "api: publishes port 8000 on 0.0.0.0": _set("api", ports=["0.0.0.0:8000:8000"]),
    "api: publishes port 9000, listens on 8000": _set("api", ports=["127.0.0.1:8000:9000"]),
    "api: does not publish port 8000": lambda s: s["api"].pop("ports"),
    "api: the gateway listens on 127.0.0.1,": lambda s: s["api"]["environment"].pop("API_HOST"),
    "api: the gateway listens on localhost,": _set("api", command=["api", "--host", "localhost"]),
    "api: the gateway listens on port 8001,": _set("api.environment", API_PORT="8001"),
    "api: the gateway listens on port 9000,": _set("api", command=["api", "--port", "9000"]),
    "api: no healthcheck": lambda s: s["api"].pop("healthcheck"),
    "api: the healthcheck is disabled": _set("api.healthcheck", disable=True),
    "api: the healthcheck does not probe /readyz": _healthcheck("/readyz", "/docs"),
    "does not probe /readyz on port 8000": _healthcheck(":8000/", ":8080/"),
    "api: the healthcheck runs curl": _set(
        "api.healthcheck", test=["CMD", "curl", "-fsS", "http://127.0.0.1:8000/readyz"]
    ),
    # Its secrets: required, and those of the unsubscribe links the same as the worker's.
    "api: API_KEYS is not required": _set("api.environment", API_KEYS="${API_KEYS:-[]}"),
    "api: API_KEYS is not set": lambda s: s["api"]["environment"].pop("API_KEYS"),
    "api: ${API_KEYS:?} has no message": _set("api.environment", API_KEYS="${API_KEYS:?}"),
    "api: UNSUBSCRIBE_SECRET is not required": _set(
        "api.environment", UNSUBSCRIBE_SECRET="${UNSUBSCRIBE_SECRET:-local-secret}"
    ),
    "worker: UNSUBSCRIBE_SECRET is not required": _set(
        "worker.environment", UNSUBSCRIBE_SECRET="hard-coded-secret"
    ),
    "worker: UNSUBSCRIBE_SECRET is not set": lambda s: s["worker"]["environment"].pop(
        "UNSUBSCRIBE_SECRET"
    ),
    "worker and api: UNSUBSCRIBE_SECRET differs": _set(
        "worker.environment", UNSUBSCRIBE_SECRET="${UNSUBSCRIBE_SECRET:?set it}-worker"
    ),
    "worker and api: PUBLIC_BASE_URL differs": _set(
        "api.environment", PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:8001}"
    ),
    "worker: PUBLIC_BASE_URL is not set": lambda s: s["worker"]["environment"].pop(
        "PUBLIC_BASE_URL"
    ),
    "api: PUBLIC_BASE_URL is not an http(s):// URL": lambda s: [
        s[name]["environment"].update(PUBLIC_BASE_URL="localhost:8000")
        for name in ("worker", "api")
    ],
}


@pytest.mark.parametrize("expected", COMPOSE_BREAKAGES)
def test_compose_validator_catches(expected: str) -> None:
    broken = copy.deepcopy(COMPOSE)
    COMPOSE_BREAKAGES[expected](broken["services"])
    problems = compose_problems(broken, SECRETS)
    assert any(expected in problem for problem in problems), problems


# Expected problem -> (text of the Dockerfile or the .dockerignore, its replacement).
DOCKERFILE_BREAKAGES = {
    "runs as root (USER root)": ("USER 10001:10001", "USER root"),
    "runs as root (USER not set)": ("USER 10001:10001", ""),
    "modles/ does not exist": ("COPY models/ models/", "COPY modles/ models/"),
    "tests/ is excluded by .dockerignore": ("COPY templates/", "COPY tests/"),
    "uv.lock is not copied": ("COPY pyproject.toml uv.lock ./", "COPY pyproject.toml ./"),
    "templates is not copied": ("COPY templates/ templates/", ""),
    "pinned ghcr.io/astral-sh/uv image": ("astral-sh/uv:0.9.30", "astral-sh/uv:latest"),
    "without --frozen": ("uv sync --frozen --no-dev\n", "uv sync --no-dev\n"),
    "without --no-dev": ("--no-dev --no-install-project", "--no-install-project"),
    "without --mount=type=cache": ("--mount=type=cache", "--mount=type=tmpfs"),
    "not python:3.11-slim": ("python:3.11-slim", "python:3.13-slim"),
    "ENTRYPOINT": ('ENTRYPOINT ["journeys"]', 'ENTRYPOINT ["python"]'),
    "default CMD": ('CMD ["worker"]', 'CMD ["dev"]'),
    "does not EXPOSE the gateway's port 8000": ("EXPOSE 8000", "EXPOSE 8080"),
    ".dockerignore does not exclude .venv": ("\n.venv\n", "\n"),
    "does not compile the project's workflows/": ("compileall -q workflows", "compileall -q"),
}


@pytest.mark.parametrize("expected", DOCKERFILE_BREAKAGES)
def test_dockerfile_validator_catches(expected: str) -> None:
    old, new = DOCKERFILE_BREAKAGES[expected]
    assert old in DOCKERFILE + DOCKERIGNORE, f"the mutation no longer applies: {old!r}"
    problems = dockerfile_problems(DOCKERFILE.replace(old, new), DOCKERIGNORE.replace(old, new))
    assert any(expected in problem for problem in problems), problems


def test_interpolation_and_ports() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("$A/${A}/${A:-x}/${EMPTY:-x}/${UNSET:-x}/${UNSET}/$${A}", env) == (
        "1/1/1/x/x//${A}"
    )
    assert interpolate("${A:?set A, e.g. in .env}", env) == "1"
    for unset in ("EMPTY", "UNSET"):
        with pytest.raises(MissingVariable, match=f"{unset} is missing a value: set it"):
            interpolate(f"${{{unset}:?set it}}", env)
    with pytest.raises(ValueError, match="unsupported interpolation"):
        interpolate("${A:+alternative}", env)
    service = {"environment": {"A": "$A", "B": None, "UNSET": None}}
    assert service_env(service, {"A": "1", "B": "2"}) == {"A": "1", "B": "2"}
    entries = ["${P:-80}:8000", "127.0.0.1:8080:8080/tcp", "7233", "[::1]:9000:9001"]
    assert service_ports({"ports": entries}, {}) == [
        (None, 80, 8000),
        ("127.0.0.1", 8080, 8080),
        (None, None, 7233),
        ("[::1]", 9000, 9001),
    ]
    assert [is_loopback(ip) for ip in ("127.0.0.1", "[::1]", "0.0.0.0", "10.0.0.1", None)] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_dockerignore_matching() -> None:
    for path in (".venv", ".env.prod", "workflows/__pycache__/x.pyc", "models/x.pyo", "app.db"):
        assert is_ignored(path, DOCKERIGNORE), path
    for path in ("workflows/journeys/welcome_series.py", "uv.lock", "README.md", ".envrc"):
        assert not is_ignored(path, DOCKERIGNORE), path


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _docker_compose_available(), reason="the docker CLI or its compose plugin is not installed"
)
def test_docker_compose_config_accepts_the_file() -> None:
    # `config` only parses and validates: no engine needed. It needs the required secrets.
    config = ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    env = {**os.environ, **SECRETS}
    result = subprocess.run(config, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
