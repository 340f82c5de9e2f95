"""Static checks of the container setup: Dockerfile, .dockerignore, docker-compose.yml.

No Docker engine is needed. The checks are validator functions returning a
list of problems, so each one is also run on deliberately broken copies to
prove it can fail. The schema job's script runs here for real, with a stub
`temporal-sql-tool` that records its calls. `docker compose config` runs only
where the Docker CLI and its compose plugin are installed (it needs no engine).
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
import tempfile
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

LISTENS = {"temporal": 7233, "temporal-ui": 8080, "api": 8000}  # port inside the container
TEMPORAL_ADDRESS = f"temporal:{LISTENS['temporal']}"
POSTGRES_PORT = 5432
GATEWAY = "api"  # the service running `journeys api`
SCHEMA_JOB, SETUP_JOB = "temporal-schema", "temporal-setup"  # one-shot jobs
REQUIRED_SERVICES = (
    "postgresql",
    SCHEMA_JOB,
    "temporal",
    SETUP_JOB,
    "temporal-ui",
    "worker",
    GATEWAY,
)
# Who waits for whom, and until what (compose's `depends_on` conditions).
WAITS_FOR = {
    SCHEMA_JOB: {"postgresql": "service_healthy"},
    # Never a server on a schema older than its binary.
    "temporal": {"postgresql": "service_healthy", SCHEMA_JOB: "service_completed_successfully"},
    SETUP_JOB: {"temporal": "service_healthy"},
}
# What `journeys worker` and `journeys api` wait for: workflows upsert the search
# attributes `journeys setup` registers, in the namespace it creates.
APP_WAITS_FOR = {
    "postgresql": "service_healthy",
    "temporal": "service_healthy",
    SETUP_JOB: "service_completed_successfully",
}
APP_COMMANDS = ("worker", "api")  # long-running, on the database (they migrate it on start)
ONE_SHOT_RESTARTS = ("no", "on-failure")  # anything else re-runs a finished job forever
SERVER_IMAGE, SCHEMA_IMAGE = "temporalio/server", "temporalio/admin-tools"
# The server's databases (DBNAME, VISIBILITY_DBNAME and their defaults in the image's
# config template) and the schema folder each one takes.
SERVER_DATABASES = {
    "DBNAME": ("temporal", "temporal"),
    "VISIBILITY_DBNAME": ("temporal_visibility", "visibility"),
}
SCHEMA_DIR = "/etc/temporal/schema/postgresql/v12/{folder}/versioned"  # in the admin-tools image
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


def dependency_conditions(service: Node) -> dict[str, str]:
    """What a service waits for, by dependency: `service_started` in the list form."""
    waits = service.get("depends_on") or []
    if isinstance(waits, list):
        return dict.fromkeys(waits, "service_started")
    return {name: (how or {}).get("condition", "service_started") for name, how in waits.items()}


def image_tag(service: Node) -> tuple[str, str]:
    """(repository, tag) of a service's `image`."""
    repository, _, tag = str(service.get("image", "")).partition(":")
    return repository, tag


def run_script(service: Node, env: Mapping[str, str], tool: str) -> list[str] | str:
    """Run a service's `entrypoint` + `command` here with `tool` replaced by a stub
    that records its arguments; returns them, one call a line, or the failure."""
    argv = [
        interpolate(word, env)
        for word in [*words(service.get("entrypoint")), *words(service.get("command"))]
    ]
    with tempfile.TemporaryDirectory() as folder:
        stub, log = Path(folder, tool), Path(folder, "calls")
        stub.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
        stub.chmod(0o755)
        path = f"{folder}{os.pathsep}{os.environ['PATH']}"
        try:
            ran = subprocess.run(
                argv,
                env={**service_env(service, env), "PATH": path},
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, IndexError) as error:  # no such program, no command at all
            return f"cannot run {argv[:1]}: {error}"
        if ran.returncode:
            return f"exit {ran.returncode}: {ran.stderr.strip()}"
        return log.read_text().splitlines() if log.exists() else []


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

    # Who waits for whom: the schema before the server, `journeys setup` before the apps.
    argvs = {
        name: words(services[name].get("command")) or DEFAULT_CMD for name in app_services(compose)
    }
    apps = [name for name, argv in argvs.items() if argv[0] in APP_COMMANDS]
    for name, waits in [*WAITS_FOR.items(), *[(app, APP_WAITS_FOR) for app in apps]]:
        conditions = dependency_conditions(services[name])
        for dependency, condition in waits.items():
            if dependency not in conditions:
                problems.append(f"{name}: does not depend on {dependency}")
            elif conditions[dependency] != condition:
                problems.append(
                    f"{name}: waits for {dependency} {conditions[dependency]}, not {condition}"
                )
    for name, svc in services.items():
        for dependency, condition in dependency_conditions(svc).items():
            if condition == "service_healthy" and "healthcheck" not in services.get(dependency, {}):
                problems.append(
                    f"{name}: waits for {dependency} healthy, but it has no healthcheck"
                )
    for name in (SCHEMA_JOB, SETUP_JOB):
        if str(services[name].get("restart", "no")).split(":")[0] not in ONE_SHOT_RESTARTS:
            problems.append(f"{name}: restart {services[name]['restart']!r} re-runs a one-shot job")

    # One set of database credentials, used by postgres, Temporal and the app.
    pg_user = envs["postgresql"].get("POSTGRES_USER") or "postgres"
    pg_password = envs["postgresql"].get("POSTGRES_PASSWORD", "")
    pg_db = envs["postgresql"].get("POSTGRES_DB") or pg_user
    namespace = envs[SETUP_JOB].get("TEMPORAL_NAMESPACE", "default")  # the one it creates
    if not pg_password:
        problems.append("postgresql: POSTGRES_PASSWORD is empty")
    expected = {
        ("temporal", "DB"): "postgres12",
        ("temporal", "POSTGRES_SEEDS"): "postgresql",
        ("temporal", "POSTGRES_USER"): pg_user,
        ("temporal", "POSTGRES_PWD"): pg_password,
        (SCHEMA_JOB, "SQL_PLUGIN"): "postgres12",
        (SCHEMA_JOB, "SQL_HOST"): "postgresql",
        (SCHEMA_JOB, "SQL_PORT"): str(POSTGRES_PORT),
        (SCHEMA_JOB, "SQL_USER"): pg_user,
        (SCHEMA_JOB, "SQL_PASSWORD"): pg_password,
        ("temporal-ui", "TEMPORAL_DEFAULT_NAMESPACE"): namespace,
    }
    for name in ("temporal-ui", *argvs):
        expected[name, "TEMPORAL_ADDRESS"] = TEMPORAL_ADDRESS
    for name in argvs:
        expected[name, "TEMPORAL_NAMESPACE"] = namespace
    for (name, var), value in expected.items():
        if (got := envs[name].get(var)) != value:
            problems.append(f"{name}: {var} is {got!r}, expected {value!r}")
    problems += temporal_problems(services, envs, env)

    # Services built from the repo run a real `journeys` subcommand; the apps on the
    # postgresql service's database.
    cli = typer.main.get_command(journeys_app)  # the image's ENTRYPOINT, as a click group
    assert isinstance(cli, TyperGroup)
    options: dict[str, dict[str, Any]] = {}  # the options each app's command line gives
    for name, argv in argvs.items():
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
        if name in apps or "DATABASE_URL" in envs[name]:
            problems += database_url_problems(name, envs[name], pg_user, pg_password, pg_db)
    if argvs.get(SETUP_JOB, [""])[0] != "setup":
        problems.append(
            f"{SETUP_JOB}: does not run `journeys setup` (namespace, search attributes)"
        )

    outbox = envs["worker"].get("OUTBOX_DIR")
    if outbox not in {target for _, target in named_volumes(services["worker"])}:
        problems.append(f"worker: OUTBOX_DIR {outbox!r} is not on a named volume")
    return problems + gateway_problems(services, envs, env, options.get(GATEWAY, {}))


def database_url_problems(
    name: str, variables: Mapping[str, str], user: str, password: str, database: str
) -> list[str]:
    """What is wrong with a service's DATABASE_URL: not the postgresql service's
    database `database`, as `user`."""
    url = urlsplit(variables.get("DATABASE_URL", ""))
    if url.scheme not in ("postgresql", "postgres"):
        return [f"{name}: DATABASE_URL is not a postgresql:// URL"]
    if (url.hostname, url.port or POSTGRES_PORT) != ("postgresql", POSTGRES_PORT):
        return [f"{name}: DATABASE_URL does not point at postgresql:{POSTGRES_PORT}"]
    if (unquote(url.username or ""), unquote(url.password or "")) != (user, password):
        return [f"{name}: DATABASE_URL credentials differ from the postgresql service"]
    if url.path.lstrip("/") != database:
        return [f"{name}: DATABASE_URL database is not POSTGRES_DB ({database})"]
    return []


def temporal_problems(
    services: Node, envs: Mapping[str, Mapping[str, str]], env: Mapping[str, str]
) -> list[str]:
    """What is wrong with the Temporal server and the job preparing its schema:
    images of one release, and every database the server reads brought to it."""
    problems: list[str] = []
    server, server_tag = image_tag(services["temporal"])
    schema, schema_tag = image_tag(services[SCHEMA_JOB])
    if server != SERVER_IMAGE:
        problems.append(f"temporal: runs {server}, not {SERVER_IMAGE} (auto-setup is deprecated)")
    if schema != SCHEMA_IMAGE:
        problems.append(f"{SCHEMA_JOB}: runs {schema}, not {SCHEMA_IMAGE} (temporal-sql-tool)")
    elif schema_tag.split("-")[0] != server_tag:
        problems.append(f"{SCHEMA_JOB}: admin-tools {schema_tag} is not the server's {server_tag}")
    if not envs["temporal"].get("NUM_HISTORY_SHARDS", "").isdigit():
        problems.append(
            "temporal: NUM_HISTORY_SHARDS is not set (fixed for good at the first start)"
        )

    # The schema job, run here with a stub temporal-sql-tool: every database the
    # server reads is created, set up and updated to the versioned schema, in order.
    expected = [
        f"--db {envs['temporal'].get(variable, database)} {step}"
        for variable, (database, folder) in SERVER_DATABASES.items()
        for step in (
            "create-database",
            "setup-schema -v 0.0",
            f"update-schema -d {SCHEMA_DIR.format(folder=folder)}",
        )
    ]
    calls = run_script(services[SCHEMA_JOB], env, "temporal-sql-tool")
    if isinstance(calls, str):
        problems.append(f"{SCHEMA_JOB}: the script fails ({calls})")
    elif missing := [call for call in expected if call not in calls]:
        problems.append(f"{SCHEMA_JOB}: never runs temporal-sql-tool {missing[0]}")
    else:
        for database in dict.fromkeys(call.split()[1] for call in expected):
            steps = [call for call in calls if call.split()[1] == database]
            if steps != [call for call in expected if call.split()[1] == database]:
                problems.append(f"{SCHEMA_JOB}: runs temporal-sql-tool out of order: {steps}")
    return problems


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
    assert app_services(COMPOSE) == [SETUP_JOB, "worker", GATEWAY]
    assert run_script(COMPOSE["services"][SCHEMA_JOB], SECRETS, "temporal-sql-tool") == [
        "--db temporal create-database",
        "--db temporal setup-schema -v 0.0",
        "--db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned",
        "--db temporal_visibility create-database",
        "--db temporal_visibility setup-schema -v 0.0",
        "--db temporal_visibility update-schema -d "
        "/etc/temporal/schema/postgresql/v12/visibility/versioned",
    ]
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


def _schema_script(old: str, new: str) -> Callable[[Node], None]:
    def edit(s: Node) -> None:
        command = s[SCHEMA_JOB]["command"]
        assert any(old in part for part in command), f"the mutation no longer applies: {old!r}"
        s[SCHEMA_JOB]["command"] = [part.replace(old, new) for part in command]

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
    # Temporal: the server image, its schema first, then `journeys setup`, then the apps.
    "temporal: runs temporalio/auto-setup": _set("temporal", image="temporalio/auto-setup:1.29.1"),
    "is not the server's 1.29.1": _set(SCHEMA_JOB, image="temporalio/admin-tools:1.28.1-tctl"),
    "temporal: NUM_HISTORY_SHARDS is not set": lambda s: s["temporal"]["environment"].pop(
        "NUM_HISTORY_SHARDS"
    ),
    "temporal: does not depend on temporal-schema": lambda s: s["temporal"]["depends_on"].pop(
        SCHEMA_JOB
    ),
    "temporal: waits for temporal-schema service_started, not service_completed_successfully": (
        _set(f"temporal.depends_on.{SCHEMA_JOB}", condition="service_started")
    ),
    "temporal-setup: waits for temporal service_started": _set(
        f"{SETUP_JOB}.depends_on.temporal", condition="service_started"
    ),
    "worker: does not depend on temporal-setup": lambda s: s["worker"]["depends_on"].clear(),
    "api: does not depend on temporal-setup": lambda s: s["api"]["depends_on"].pop(SETUP_JOB),
    "api: waits for temporal-setup service_healthy": _set(
        f"api.depends_on.{SETUP_JOB}", condition="service_healthy"
    ),
    "waits for postgresql healthy, but it has no healthcheck": lambda s: s["postgresql"].pop(
        "healthcheck"
    ),
    "temporal-schema: restart 'unless-stopped' re-runs": _set(SCHEMA_JOB, restart="unless-stopped"),
    "temporal-setup: restart 'always' re-runs": _set(SETUP_JOB, restart="always"),
    "temporal-schema: SQL_PASSWORD": _set(f"{SCHEMA_JOB}.environment", SQL_PASSWORD="temporal"),
    "temporal-schema: SQL_PLUGIN": _set(f"{SCHEMA_JOB}.environment", SQL_PLUGIN="mysql8"),
    "never runs temporal-sql-tool --db temporal_visibility create-database": _schema_script(
        "schema temporal_visibility visibility", ""
    ),
    "never runs temporal-sql-tool --db temporal update-schema -d /etc/temporal/schema/"
    "postgresql/v12/temporal/versioned": _schema_script(
        "schema temporal temporal", "schema temporal visibility"
    ),
    # The server reads another database: the job must prepare that one.
    "never runs temporal-sql-tool --db journeys_temporal create-database": _set(
        "temporal.environment", DBNAME="journeys_temporal"
    ),
    "temporal-sql-tool out of order": _schema_script(  # setup-schema after update-schema
        'setup-schema -v 0.0\n  temporal-sql-tool --db "$$1" update-schema -d '
        '"/etc/temporal/schema/postgresql/v12/$$2/versioned"',
        'update-schema -d "/etc/temporal/schema/postgresql/v12/$$2/versioned"\n'
        '  temporal-sql-tool --db "$$1" setup-schema -v 0.0',
    ),
    "the script fails (exit 127": _schema_script("temporal-sql-tool --db", "temporal-sql --db"),
    "the script fails (cannot run": lambda s: s[SCHEMA_JOB].pop("entrypoint"),
    "temporal-setup: does not run `journeys setup`": _set(SETUP_JOB, command=["migrate"]),
    "temporal-setup: TEMPORAL_ADDRESS": _set(f"{SETUP_JOB}.environment", TEMPORAL_ADDRESS="x:1"),
    "temporal-ui: TEMPORAL_DEFAULT_NAMESPACE": _set(
        "temporal-ui.environment", TEMPORAL_DEFAULT_NAMESPACE="prod"
    ),
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
