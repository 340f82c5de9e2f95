"""Static checks of the container setup: Dockerfile, .dockerignore, docker-compose.yml.

No Docker engine is needed. The checks are validator functions returning a
list of problems, so each one is also run on deliberately broken copies to
prove it can fail. `docker compose config` runs only where the Docker CLI and
its compose plugin are installed (it needs no engine).
"""

from __future__ import annotations

import copy
import json
import operator
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
from typer.core import TyperGroup

from starter.cli import app as journeys_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The JSON round trip unshares YAML aliases, so a mutation changes one service only.
COMPOSE = json.loads(json.dumps(yaml.safe_load(COMPOSE_FILE.read_text())))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text()

# DESIGN.md, "Custom search attributes".
KEYWORD_ATTRIBUTES = ("ContactId", "Journey", "JourneyStep", "LifecycleStage")
SEARCH_ATTRIBUTES = {**dict.fromkeys(KEYWORD_ATTRIBUTES, "Keyword"), "LeadScore": "Int"}
LISTENS = {"temporal": 7233, "temporal-ui": 8080}  # port inside the container
TEMPORAL_ADDRESS = f"temporal:{LISTENS['temporal']}"
POSTGRES_PORT = 5432
REQUIRED_SERVICES = ("postgresql", "temporal", "temporal-setup", "temporal-ui", "worker")
APP_DEPENDENCIES = ("postgresql", "temporal", "temporal-setup")
DEFAULT_CMD = ["worker"]  # the image's CMD, run when a service sets no `command`
# Must never reach the build context: local venv, VCS data, secrets.
MUST_IGNORE = (".git", ".venv", ".env", ".data")

Node = dict[str, Any]  # a map of the compose file: the file, its `services`, a service


# ------------------------------------------------------------- compose model --


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Expand the compose variables this repo uses: `$V`, `${V}`, `${V:-default}`, `$$`."""

    def expand(match: re.Match[str]) -> str:
        escaped, braced, default, bare, other = match.groups()
        if other:
            raise ValueError(f"unsupported interpolation: {match[0]}")
        return "$" if escaped else env.get(braced or bare) or (default or ":-")[2:]

    return re.sub(r"\$(?:(\$)|\{(\w+)(:-[^}]*)?\}|(\w+)|(\{[^}]*\}))", expand, value)


def app_services(compose: Node) -> list[str]:
    """Services built from this repo (`build:`): they run the journeys image."""
    return [name for name, svc in (compose.get("services") or {}).items() if "build" in svc]


def service_env(service: Node, env: Mapping[str, str]) -> dict[str, str]:
    """A service's `environment` (map form), interpolated."""
    raw = service.get("environment") or {}
    return {key: interpolate("" if v is None else str(v), env) for key, v in raw.items()}


def depends_on(service: Node) -> list[str]:
    return list(service.get("depends_on") or [])  # list form, or the keys of the map form


def service_ports(service: Node, env: Mapping[str, str]) -> list[tuple[int | None, int]]:
    """(host port or None, container port) of each `[ip:][host:]container[/proto]` entry."""
    ports = []
    for entry in service.get("ports") or []:
        parts = interpolate(entry, env).split("/")[0].split(":")
        ports.append((int(parts[-2]) if len(parts) >= 2 and parts[-2] else None, int(parts[-1])))
    return ports


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
    (default: empty, i.e. every `${VAR:-default}` takes its default)."""
    env = {} if env is None else env
    services: Node = compose.get("services") or {}
    problems: list[str] = []

    # Structure: images, dependencies, volumes, ports.
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
        for published, target in ports:
            if published in host_ports:
                problems.append(f"{name}: host port {published} is {host_ports[published]}'s")
            if published is not None:
                host_ports[published] = name
            if target != LISTENS.get(name):
                problems.append(f"{name}: publishes port {target}, listens on {LISTENS.get(name)}")
        if name in LISTENS and LISTENS[name] not in [target for _, target in ports]:
            problems.append(f"{name}: does not publish port {LISTENS[name]}")
    if missing := [name for name in REQUIRED_SERVICES if name not in services]:
        return [*problems, f"missing services: {', '.join(missing)}"]
    apps = app_services(compose)
    envs = {name: service_env(svc, env) for name, svc in services.items()}

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
    for name in apps:
        argv = words(services[name].get("command")) or DEFAULT_CMD
        if "entrypoint" in services[name]:
            problems.append(f"{name}: overrides the image's journeys ENTRYPOINT")
        elif argv[0] not in cli.commands:
            commands = ", ".join(sorted(cli.commands))
            problems.append(f"{name}: `journeys {argv[0]}` is not a journeys command ({commands})")
        else:
            try:
                cli.commands[argv[0]].make_context(argv[0], argv[1:])  # parses, runs nothing
            except typer.TyperException as error:
                problems.append(f"{name}: `journeys {shlex.join(argv)}`: {error.format_message()}")
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

    scripts = pyproject["project"].get("scripts", {})
    if final.get("ENTRYPOINT") != ["journeys"] or "journeys" not in scripts:
        problems.append('ENTRYPOINT is not ["journeys"], the [project.scripts] entry point')
    if final.get("CMD") != DEFAULT_CMD:
        problems.append(f"default CMD is not {DEFAULT_CMD}")
    ignored = [path for path in MUST_IGNORE if not is_ignored(path, dockerignore)]
    return problems + [f".dockerignore does not exclude {path}" for path in ignored]


# --------------------------------------------------------------------- tests --


def test_compose_file_is_consistent() -> None:
    assert compose_problems(COMPOSE) == []
    assert app_services(COMPOSE) == ["worker"]
    assert registered_search_attributes(COMPOSE["services"]["temporal-setup"]) == SEARCH_ATTRIBUTES


def test_compose_stays_consistent_with_overridden_secrets() -> None:
    env = {"POSTGRES_USER": "ops", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "crm"}
    assert compose_problems(COMPOSE, env) == []
    assert service_env(COMPOSE["services"]["postgresql"], env) == env
    # A hard-coded password is indistinguishable with the defaults, not once overridden.
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["worker"]["environment"]["DATABASE_URL"] = _url(db="journeys")
    assert compose_problems(broken) == []
    problems = compose_problems(broken, {"POSTGRES_PASSWORD": "s3cret"})
    assert any("worker: DATABASE_URL credentials" in p for p in problems), problems


def test_dockerfile_is_consistent_with_the_repo() -> None:
    assert dockerfile_problems(DOCKERFILE, DOCKERIGNORE) == []


def _set(path: str, **values: Any) -> Callable[[Node], None]:
    """Update the map at `path` ("worker", "worker.environment") of `services` with `values`."""
    return lambda s: reduce(operator.getitem, path.split("."), s).update(values)


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
    "worker: host port 8080 is temporal-ui's": _set("worker", ports=["8080:8080"]),
    "temporal-ui: publishes port 80,": _set("temporal-ui", ports=["8080:80"]),
    "temporal-ui: does not publish port 8080": lambda s: s["temporal-ui"].pop("ports"),
    "volume 'mail' is not declared": _set("worker", volumes=["mail:/app/.data/outbox"]),
    "worker: OUTBOX_DIR": _set("worker.environment", OUTBOX_DIR="/tmp/outbox"),
    "worker: `journeys api` is not a journeys command": _set("worker", command=["api"]),
    "No such option: --port": _set("worker", command="worker --port 8000"),
    "worker: overrides the image's journeys ENTRYPOINT": _set("worker", entrypoint=["python"]),
    # Any service built from the repo is checked, not only the worker.
    "api: `journeys api` is not": lambda s: s.update(api={**s["worker"], "command": ["api"]}),
    "worker: TEMPORAL_ADDRESS": _set("worker.environment", TEMPORAL_ADDRESS="temporal:7234"),
    "temporal-ui: TEMPORAL_ADDRESS": _set("temporal-ui.environment", TEMPORAL_ADDRESS="temporal:1"),
    "worker: TEMPORAL_NAMESPACE": _set("worker.environment", TEMPORAL_NAMESPACE="prod"),
    "temporal: POSTGRES_PWD": _set("temporal.environment", POSTGRES_PWD="temporal"),
    "DATABASE_URL credentials": _set("worker.environment", DATABASE_URL=_url("journeys:x")),
    "DATABASE_URL does not point": _set("worker.environment", DATABASE_URL=_url(host="db")),
    "DATABASE_URL database": _set("worker.environment", DATABASE_URL=_url(db="temporal")),
    "worker: does not depend on temporal-setup": lambda s: s["worker"]["depends_on"].clear(),
    "LeadScore must be registered as Int, not missing": _setup_script("register LeadScore", ""),
    "must be registered as Int, not Keyword": _setup_script("LeadScore Int", "LeadScore Keyword"),
    "does not tolerate 'already exists'": _setup_script("already exists", "exists"),
    "missing services: temporal-ui": lambda s: s.pop("temporal-ui"),
}


@pytest.mark.parametrize("expected", COMPOSE_BREAKAGES)
def test_compose_validator_catches(expected: str) -> None:
    broken = copy.deepcopy(COMPOSE)
    COMPOSE_BREAKAGES[expected](broken["services"])
    problems = compose_problems(broken)
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
    ".dockerignore does not exclude .venv": ("\n.venv\n", "\n"),
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
    with pytest.raises(ValueError, match="unsupported interpolation"):
        interpolate("${A:?set A}", env)
    entries = ["${P:-80}:8000", "127.0.0.1:8080:8080/tcp", "7233"]
    assert service_ports({"ports": entries}, {}) == [(80, 8000), (8080, 8080), (None, 7233)]


def test_dockerignore_matching() -> None:
    for path in (".venv", ".env.prod", "workflows/__pycache__/x.pyc", "models/x.pyo", "app.db"):
        assert is_ignored(path, DOCKERIGNORE), path
    for path in ("workflows/welcome_series.py", "uv.lock", "README.md", ".envrc"):
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
    # `config` only parses and validates: no engine needed.
    config = ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"]
    result = subprocess.run(config, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
