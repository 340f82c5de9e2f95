"""Static checks of the container setup: Dockerfile, .dockerignore, docker-compose.yml.

No Docker engine is needed. The checks are validator functions returning a
list of problems, so each one is also run on deliberately broken copies to
prove it can fail. `docker compose config` runs only where the Docker CLI and
its compose plugin are installed (it needs no engine).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# DESIGN.md, "Custom search attributes".
SEARCH_ATTRIBUTES = {
    "ContactId": "Keyword",
    "Journey": "Keyword",
    "JourneyStep": "Keyword",
    "LifecycleStage": "Keyword",
    "LeadScore": "Int",
}
# Port each service listens on inside its container (the api's comes from
# its own command line and is checked against this too).
LISTENS = {"temporal": 7233, "temporal-ui": 8080, "api": 8000}
POSTGRES_PORT = 5432
APP_SERVICES = ("worker", "api")
# Must never reach the build context: local venv, VCS data, secrets.
MUST_IGNORE = (".git", ".venv", ".env", ".data")

Compose = dict[str, Any]


# ------------------------------------------------------------- compose model --

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>.*)", re.S)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Expand compose variables (`$V`, `${V}`, `${V:-d}`, `${V-d}`, `${V:?e}`, `${V:+a}`, `$$`)."""

    def expand(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None:
            raise ValueError(f"invalid interpolation: {match[0]}")
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        if op is None:
            if arg:
                raise ValueError(f"invalid interpolation: {match[0]}")
            return env.get(name, "")
        is_set = bool(env.get(name)) if op.startswith(":") else name in env
        if op.endswith("-"):
            return env[name] if is_set else arg
        if op.endswith("?"):
            if not is_set:
                raise ValueError(f"{name} is required: {arg}")
            return env[name]
        return arg if is_set else ""  # "+"

    return _VARIABLE.sub(expand, value)


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    """Parse the compose file into plain data (YAML aliases become copies)."""
    data = yaml.safe_load(path.read_text())
    # The JSON round trip unshares the dicts the `<<: *anchor` merges share,
    # so mutating one service in a test never changes another.
    plain: Compose = json.loads(json.dumps(data))
    return plain


def service_env(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's `environment`, interpolated (both the map and list forms)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {
        key: interpolate(str(value), env) if value is not None else env.get(key, "")
        for key, value in raw.items()
    }


def depends_on(service: Mapping[str, Any]) -> list[str]:
    deps = service.get("depends_on") or []
    return list(deps)  # list form, or the keys of the map form


@dataclass(frozen=True)
class Port:
    host_ip: str | None
    published: int | None
    target: int


def service_ports(service: Mapping[str, Any], env: Mapping[str, str]) -> list[Port]:
    """`ports` in short (`[ip:][host:]container[/proto]`) or long syntax."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            ports.append(
                Port(
                    entry.get("host_ip"),
                    int(interpolate(str(published), env)) if published is not None else None,
                    int(entry["target"]),
                )
            )
            continue
        parts = interpolate(str(entry), env).split("/")[0].split(":")
        target = int(parts[-1])
        published = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        host_ip = ":".join(parts[:-2]) or None
        ports.append(Port(host_ip, published, target))
    return ports


def named_volumes(service: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(volume name, mount target) of each named-volume mount (not bind mounts)."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type", "volume") == "volume" and entry.get("source"):
                yield entry["source"], entry["target"]
            continue
        parts = str(entry).split(":")
        if len(parts) >= 2 and not parts[0].startswith((".", "/", "~", "$")):
            yield parts[0], parts[1]


def script_text(service: Mapping[str, Any]) -> str:
    """The shell text a service runs (entrypoint + command, either form)."""
    chunks: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, list):
            chunks.extend(str(v) for v in value)
        elif value:
            chunks.append(str(value))
    return "\n".join(chunks)


def command_option(service: Mapping[str, Any], option: str) -> str | None:
    command = service.get("command") or []
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def registered_search_attributes(service: Mapping[str, Any]) -> dict[str, str]:
    """Search attributes a setup script registers: `register NAME TYPE` lines
    (its helper) or inline `--name NAME --type TYPE` pairs."""
    text = script_text(service)
    pairs = re.findall(r"^\s*register\s+(\w+)\s+(\w+)\s*$", text, re.M)
    pairs += re.findall(r"--name\s+(\w+)\s+--type\s+(\w+)", text)
    return dict(pairs)


# --------------------------------------------------------- compose validator --


def compose_problems(compose: Compose, env: Mapping[str, str] | None = None) -> list[str]:
    """Everything wrong with a compose file, given the host environment `env`
    (default: empty, i.e. every `${VAR:-default}` takes its default)."""
    env = {} if env is None else env
    services: dict[str, Any] = compose.get("services") or {}
    declared_volumes = set(compose.get("volumes") or {})
    problems: list[str] = []

    # Structure: images, dependencies, volumes, ports.
    host_ports: dict[int, str] = {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: has neither image nor build")
        for dep in depends_on(svc):
            if dep not in services:
                problems.append(f"{name}: depends on unknown service {dep!r}")
        for volume, _target in named_volumes(svc):
            if volume not in declared_volumes:
                problems.append(f"{name}: volume {volume!r} is not declared under volumes")
        ports = service_ports(svc, env)
        for port in ports:
            if port.published is not None:
                if port.published in host_ports:
                    problems.append(
                        f"{name}: host port {port.published} already used by "
                        f"{host_ports[port.published]}"
                    )
                host_ports[port.published] = name
            if name not in LISTENS:
                problems.append(f"{name}: publishes {port.target} but listens on no known port")
            elif port.target != LISTENS[name]:
                problems.append(
                    f"{name}: publishes container port {port.target}, listens on {LISTENS[name]}"
                )
        if name in LISTENS and not any(p.target == LISTENS[name] for p in ports):
            problems.append(f"{name}: does not publish port {LISTENS[name]}")

    required = ("postgresql", "temporal", "temporal-setup", "temporal-ui", *APP_SERVICES)
    missing = [name for name in required if name not in services]
    if missing:
        return [*problems, f"missing services: {', '.join(missing)}"]

    # The api listens where it is published, on all interfaces.
    api = services["api"]
    if command_option(api, "--port") != str(LISTENS["api"]):
        problems.append(f"api: command does not listen on --port {LISTENS['api']}")
    if command_option(api, "--host") != "0.0.0.0":
        problems.append("api: command must bind --host 0.0.0.0 to be reachable")

    # One set of database credentials, used by postgres, Temporal and the app.
    pg = service_env(services["postgresql"], env)
    pg_user = pg.get("POSTGRES_USER") or "postgres"
    pg_password = pg.get("POSTGRES_PASSWORD", "")
    pg_db = pg.get("POSTGRES_DB") or pg_user
    if not pg_password:
        problems.append("postgresql: POSTGRES_PASSWORD is empty")
    if "healthcheck" not in services["postgresql"]:
        problems.append("postgresql: no healthcheck (dependents wait for service_healthy)")

    temporal = service_env(services["temporal"], env)
    if temporal.get("POSTGRES_SEEDS") != "postgresql":
        problems.append("temporal: POSTGRES_SEEDS is not the postgresql service")
    if (temporal.get("POSTGRES_USER"), temporal.get("POSTGRES_PWD")) != (pg_user, pg_password):
        problems.append("temporal: database credentials differ from the postgresql service")
    if "postgresql" not in depends_on(services["temporal"]):
        problems.append("temporal: does not depend on postgresql")
    namespace = temporal.get("DEFAULT_NAMESPACE", "default")

    def check_temporal_address(who: str, address: str | None) -> None:
        host, _, port = (address or "").rpartition(":")
        if host != "temporal" or port != str(LISTENS["temporal"]):
            problems.append(
                f"{who}: TEMPORAL_ADDRESS {address!r} is not temporal:{LISTENS['temporal']}"
            )

    # Setup registers every search attribute of DESIGN.md, idempotently.
    setup = services["temporal-setup"]
    setup_env = service_env(setup, env)
    check_temporal_address("temporal-setup", setup_env.get("TEMPORAL_ADDRESS"))
    script = script_text(setup)
    if "temporal operator search-attribute create" not in script:
        problems.append("temporal-setup: does not run `temporal operator search-attribute create`")
    if "already exists" not in script:
        problems.append("temporal-setup: does not tolerate 'already exists' (not re-runnable)")
    registered = registered_search_attributes(setup)
    for attribute, kind in SEARCH_ATTRIBUTES.items():
        if attribute not in registered:
            problems.append(f"temporal-setup: search attribute {attribute} is not registered")
        elif registered[attribute] != kind:
            problems.append(
                f"temporal-setup: {attribute} registered as {registered[attribute]}, not {kind}"
            )
    if setup_env.get("NAMESPACE", namespace) != namespace:
        problems.append("temporal-setup: NAMESPACE differs from temporal's DEFAULT_NAMESPACE")

    ui_env = service_env(services["temporal-ui"], env)
    check_temporal_address("temporal-ui", ui_env.get("TEMPORAL_ADDRESS"))

    # The app: Temporal, database, dependencies.
    for name in APP_SERVICES:
        svc = services[name]
        app_env = service_env(svc, env)
        check_temporal_address(name, app_env.get("TEMPORAL_ADDRESS"))
        if app_env.get("TEMPORAL_NAMESPACE", "default") != namespace:
            problems.append(f"{name}: TEMPORAL_NAMESPACE differs from the cluster's namespace")
        url = urlsplit(app_env.get("DATABASE_URL", ""))
        if url.scheme not in ("postgresql", "postgres"):
            problems.append(f"{name}: DATABASE_URL is not a postgresql:// URL")
        elif (url.hostname, url.port or POSTGRES_PORT) != ("postgresql", POSTGRES_PORT):
            problems.append(f"{name}: DATABASE_URL does not point at postgresql:{POSTGRES_PORT}")
        elif (unquote(url.username or ""), unquote(url.password or "")) != (pg_user, pg_password):
            problems.append(f"{name}: DATABASE_URL credentials differ from the postgresql service")
        elif url.path.lstrip("/") != pg_db:
            problems.append(f"{name}: DATABASE_URL database is not POSTGRES_DB ({pg_db})")
        for dep in ("postgresql", "temporal", "temporal-setup"):
            if dep not in depends_on(svc):
                problems.append(f"{name}: does not depend on {dep}")

    outbox = service_env(services["worker"], env).get("OUTBOX_DIR")
    if outbox not in {target for _, target in named_volumes(services["worker"])}:
        problems.append(f"worker: OUTBOX_DIR {outbox!r} is not on a named volume")
    return problems


# ------------------------------------------------------ Dockerfile validator --


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, `\\` continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if line.strip().startswith("#") or (not pending and not line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical, pending = pending + line, ""
        keyword, _, args = logical.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def instruction_words(args: str) -> list[str]:
    """Arguments of an instruction in JSON (exec) or shell form."""
    if args.startswith("["):
        return [str(word) for word in json.loads(args)]
    return shlex.split(args)


def ignore_patterns(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore `patterns` exclude `path` (or a folder above it)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def dockerfile_problems(dockerfile: str, dockerignore: str, root: Path = ROOT) -> list[str]:
    """Everything wrong with a Dockerfile (+ .dockerignore) for the repo at `root`."""
    problems: list[str] = []
    instructions = dockerfile_instructions(dockerfile)
    patterns = ignore_patterns(dockerignore)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())

    # Global ARG defaults, to resolve `FROM ${PYTHON_IMAGE}`.
    global_args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG" and "=" in ins.args:
            key, value = ins.args.split("=", 1)
            global_args[key.strip()] = value.strip()
    stage_starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    if not stage_starts:
        return ["Dockerfile: no FROM"]
    bases = [
        interpolate(instruction_words(instructions[i].args)[0], global_args) for i in stage_starts
    ]
    final = instructions[stage_starts[-1] :]

    if not bases[-1].startswith("python:3.11-slim"):
        problems.append(f"final stage is based on {bases[-1]}, not python:3.11-slim")
    if len(stage_starts) < 2:
        problems.append("not a multi-stage build")
    uv_images = [
        word
        for ins in instructions
        for word in instruction_words(ins.args)
        if word.split("=")[-1].startswith("ghcr.io/astral-sh/uv")
    ]
    if not uv_images:
        problems.append("uv does not come from the ghcr.io/astral-sh/uv image")
    for image in uv_images:
        tag = image.split("=")[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"uv image is not pinned: {image}")

    users = [ins.args for ins in final if ins.keyword == "USER"]
    if not users:
        problems.append("final stage has no USER: it runs as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"final stage runs as root (USER {users[-1]})")

    copied: set[str] = set()
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        words = instruction_words(ins.args)
        if any(word.startswith("--from=") for word in words):
            continue  # from another stage or image, not the build context
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            clean = source.removeprefix("./").rstrip("/") or "."
            copied.add(clean)
            if not any(root.glob(clean)) and not (root / clean).exists():
                problems.append(f"COPY source {source} does not exist in the repo")
            elif clean != "." and is_ignored(clean, patterns):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    if "uv.lock" not in copied and "." not in copied:
        problems.append("uv.lock is not copied into the image")
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]
    for path in wheel.get("only-include", []):
        if path.rstrip("/") not in copied and "." not in copied:
            problems.append(f"{path} (part of the package) is not copied into the image")

    syncs = [ins.args for ins in instructions if ins.keyword == "RUN" and "uv sync" in ins.args]
    if not syncs:
        problems.append("the image does not run `uv sync`")
    for sync in syncs:
        # Every sync: exactly the locked versions, no dev tools, cached downloads.
        for flag in ("--frozen", "--no-dev", "--mount=type=cache"):
            if flag not in sync:
                problems.append(f"`uv sync` without {flag}: {sync}")

    entrypoints = [instruction_words(ins.args) for ins in final if ins.keyword == "ENTRYPOINT"]
    scripts = pyproject["project"].get("scripts", {})
    if not entrypoints or entrypoints[-1][:1] != ["journeys"]:
        problems.append('ENTRYPOINT is not ["journeys"]')
    elif "journeys" not in scripts:
        problems.append("ENTRYPOINT journeys is not a [project.scripts] entry")
    commands = [instruction_words(ins.args) for ins in final if ins.keyword == "CMD"]
    if not commands or commands[-1] != ["worker"]:
        problems.append('default CMD is not ["worker"]')

    for path in MUST_IGNORE:
        if not is_ignored(path, patterns):
            problems.append(f".dockerignore does not exclude {path}")
    return problems


# --------------------------------------------------------------------- tests --


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def dockerignore() -> str:
    return DOCKERIGNORE.read_text()


def test_compose_file_is_consistent(compose: Compose) -> None:
    assert compose_problems(compose) == []


def test_compose_stays_consistent_with_overridden_secrets(compose: Compose) -> None:
    env = {"POSTGRES_USER": "ops", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "crm"}
    assert compose_problems(compose, env) == []
    pg = service_env(compose["services"]["postgresql"], env)
    assert pg == {"POSTGRES_USER": "ops", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "crm"}


def test_every_search_attribute_of_the_design_is_registered(compose: Compose) -> None:
    assert registered_search_attributes(compose["services"]["temporal-setup"]) == SEARCH_ATTRIBUTES


def test_dockerfile_is_consistent_with_the_repo(dockerfile: str, dockerignore: str) -> None:
    assert dockerfile_problems(dockerfile, dockerignore) == []


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _delete(path: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        *parents, last = path.split(".")
        node = compose
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _drop_line(service: str, needle: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        svc = compose["services"][service]
        svc["command"] = [
            "\n".join(line for line in part.splitlines() if needle not in line)
            for part in svc["command"]
        ]

    return mutate


def _edit_command(service: str, old: str, new: str) -> Callable[[Compose], None]:
    def mutate(compose: Compose) -> None:
        svc = compose["services"][service]
        svc["command"] = [part.replace(old, new) for part in svc["command"]]

    return mutate


COMPOSE_BREAKAGES = [
    ("no-image", _delete("services.postgresql.image"), "neither image nor build"),
    (
        "unknown-dependency",
        _set("services.worker.depends_on.redis", {"condition": "service_started"}),
        "unknown service 'redis'",
    ),
    ("duplicate-host-port", _set("services.api.ports", ["8080:8000"]), "host port 8080"),
    ("wrong-container-port", _set("services.api.ports", ["8000:9000"]), "container port 9000"),
    ("ui-not-published", _delete("services.temporal-ui.ports"), "does not publish port 8080"),
    (
        "api-listens-elsewhere",
        _set("services.api.command", ["api", "--host", "0.0.0.0", "--port", "9000"]),
        "--port 8000",
    ),
    (
        "api-on-loopback",
        _set("services.api.command", ["api", "--port", "8000"]),
        "--host 0.0.0.0",
    ),
    (
        "temporal-address-port",
        _set("services.worker.environment.TEMPORAL_ADDRESS", "temporal:7234"),
        "worker: TEMPORAL_ADDRESS",
    ),
    (
        "temporal-address-host",
        _set("services.api.environment.TEMPORAL_ADDRESS", "localhost:7233"),
        "api: TEMPORAL_ADDRESS",
    ),
    (
        "database-password",
        _set(
            "services.worker.environment.DATABASE_URL",
            "postgresql://journeys:wrong@postgresql:5432/journeys",
        ),
        "worker: DATABASE_URL credentials",
    ),
    (
        "database-host",
        _set(
            "services.api.environment.DATABASE_URL",
            "postgresql://journeys:journeys@localhost:5432/journeys",
        ),
        "api: DATABASE_URL does not point at postgresql",
    ),
    (
        "database-name",
        _set(
            "services.api.environment.DATABASE_URL",
            "postgresql://journeys:journeys@postgresql:5432/temporal",
        ),
        "api: DATABASE_URL database",
    ),
    (
        "temporal-db-credentials",
        _set("services.temporal.environment.POSTGRES_PWD", "temporal"),
        "temporal: database credentials",
    ),
    ("undeclared-volume", _delete("volumes.outbox"), "volume 'outbox' is not declared"),
    (
        "outbox-not-on-volume",
        _set("services.worker.environment.OUTBOX_DIR", "/tmp/outbox"),
        "OUTBOX_DIR",
    ),
    (
        "missing-search-attribute",
        _drop_line("temporal-setup", "register LeadScore"),
        "LeadScore is not registered",
    ),
    (
        "wrong-search-attribute-type",
        _edit_command("temporal-setup", "register LeadScore Int", "register LeadScore Keyword"),
        "LeadScore registered as Keyword",
    ),
    (
        "not-idempotent",
        _drop_line("temporal-setup", "already exists"),
        "does not tolerate 'already exists'",
    ),
    (
        "app-without-setup",
        _delete("services.api.depends_on.temporal-setup"),
        "api: does not depend on temporal-setup",
    ),
    ("missing-service", _delete("services.temporal-ui"), "missing services: temporal-ui"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=i) for i, m, e in COMPOSE_BREAKAGES],
)
def test_compose_validator_catches(
    compose: Compose, mutate: Callable[[Compose], None], expected: str
) -> None:
    broken = json.loads(json.dumps(compose))
    mutate(broken)
    problems = compose_problems(broken)
    assert any(expected in problem for problem in problems), problems


def test_hard_coded_password_is_caught_once_the_secret_is_overridden(compose: Compose) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["environment"]["DATABASE_URL"] = (
        "postgresql://journeys:journeys@postgresql:5432/journeys"
    )
    assert compose_problems(broken) == []  # indistinguishable with the defaults...
    problems = compose_problems(broken, {"POSTGRES_PASSWORD": "s3cret"})
    assert any("worker: DATABASE_URL credentials" in p for p in problems), problems


DOCKERFILE_BREAKAGES = [
    ("runs-as-root", ("USER 10001:10001", "USER root"), "runs as root"),
    ("no-user", ("USER 10001:10001", ""), "no USER"),
    ("missing-source", ("COPY models/ models/", "COPY modles/ models/"), "modles/ does not exist"),
    ("no-lock", ("COPY pyproject.toml uv.lock ./", "COPY pyproject.toml ./"), "uv.lock"),
    ("package-dir-left-out", ("COPY templates/ templates/", ""), "templates"),
    ("unpinned-uv", ("ghcr.io/astral-sh/uv:0.9.30", "ghcr.io/astral-sh/uv:latest"), "not pinned"),
    ("not-frozen", ("uv sync --frozen --no-dev\n", "uv sync --no-dev\n"), "without --frozen"),
    ("with-dev", ("--no-dev --no-install-project", "--no-install-project"), "without --no-dev"),
    (
        "no-cache",
        (
            "--mount=type=cache,target=/root/.cache/uv \\\n    uv sync --frozen --no-dev\n",
            "uv sync --frozen --no-dev\n",
        ),
        "without --mount=type=cache",
    ),
    ("other-python", ("python:3.11-slim", "python:3.13-slim"), "not python:3.11-slim"),
    ("entrypoint", ('ENTRYPOINT ["journeys"]', 'ENTRYPOINT ["python"]'), "ENTRYPOINT"),
]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [pytest.param(edit, e, id=i) for i, edit, e in DOCKERFILE_BREAKAGES],
)
def test_dockerfile_validator_catches(
    dockerfile: str, dockerignore: str, edit: tuple[str, str], expected: str
) -> None:
    old, new = edit
    assert old in dockerfile, f"the mutation no longer applies: {old!r}"
    problems = dockerfile_problems(dockerfile.replace(old, new), dockerignore)
    assert any(expected in problem for problem in problems), problems


def test_dockerfile_validator_catches_an_ignored_source(dockerfile: str, dockerignore: str) -> None:
    problems = dockerfile_problems(dockerfile, dockerignore + "\ntemplates\n")
    assert any("templates/ is excluded by .dockerignore" in p for p in problems), problems
    problems = dockerfile_problems(dockerfile, dockerignore.replace(".venv\n", ""))
    assert any("does not exclude .venv" in p for p in problems), problems


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A:-x}", {"A": "y"}, "y"),
        ("$A/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$${A}", {"A": "1"}, "${A}"),
        ("${A:+on}", {"A": "1"}, "on"),
        ("${A:+on}", {}, ""),
    ],
)
def test_interpolate(value: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(value, env) == expected


def test_interpolate_required_variable() -> None:
    with pytest.raises(ValueError, match="A is required"):
        interpolate("${A:?set A}", {})


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("8000:8000", Port(None, 8000, 8000)),
        ("127.0.0.1:8080:8080/tcp", Port("127.0.0.1", 8080, 8080)),
        ("7233", Port(None, None, 7233)),
        ({"target": 8080, "published": "9090"}, Port(None, 9090, 8080)),
    ],
)
def test_service_ports(entry: Any, expected: Port) -> None:
    assert service_ports({"ports": [entry]}, {}) == [expected]


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".venv", True),
        ("workflows/__pycache__/x.pyc", True),
        ("workflows/welcome_series.py", False),
        ("uv.lock", False),
        ("README.md", False),
    ],
)
def test_dockerignore_matching(path: str, ignored: bool, dockerignore: str) -> None:
    assert is_ignored(path, ignore_patterns(dockerignore)) is ignored


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    # A standalone v2 binary works too; v1 (Python) predates the compose spec.
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        probe = subprocess.run(
            [standalone, "version", "--short"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            return [standalone]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("the docker CLI or its compose plugin is not installed")
    # `config` only parses and validates: no engine needed.
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
