"""The project's layers, read from the import statements of its source (`ast`, not grep).

From the bottom up: `models` (payloads, tables, settings) ← `runtime` (connection,
logging, codec) ← `rules` (business rules) ← `activities` ← `workflows` ←
`worker.py`; `starter` (gateway, CLI, SDK, services, dev stack) stands on
`models`, `runtime` and `rules`. The gateway and the CLI do not import a
workflow or an activity module to do their work: inside a function, `starter`
may load the journey declarations (`workflows.catalog`) and the worker (to run
it), and the journey QA commands (`starter/qa/`) the activities of the send path;
at module level, nothing of either. Imports under
`if TYPE_CHECKING:` load nothing and are not counted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from models.settings import PROJECT_ROOT

PACKAGES = ("models", "runtime", "rules", "activities", "workflows", "worker", "starter")

MAY_IMPORT: dict[str, frozenset[str]] = {
    "models": frozenset({"models"}),
    "runtime": frozenset({"models", "runtime"}),
    "rules": frozenset({"models", "runtime", "rules"}),
    "activities": frozenset({"models", "runtime", "rules", "activities"}),
    "workflows": frozenset({"models", "rules", "activities", "workflows"}),
    "worker": frozenset({"models", "runtime", "rules", "activities", "workflows"}),
    "starter": frozenset({"models", "runtime", "rules", "starter"}),
}
"""What each top-level package may import at module level."""

STARTER_MAY_LOAD_LAZILY = frozenset({"workflows.catalog", "worker"})
"""Modules `starter` may import inside a function, beyond `MAY_IMPORT`."""

QA_MAY_IMPORT = frozenset({"activities"})
"""What the journey QA modules (`starter/qa/`: preview, test-send, simulate) may also
import: they run the real send path, as the worker does. The CLI loads them only inside
the QA commands (`starter/qa/commands.py`), so no other command pays for them."""


@dataclass(frozen=True)
class Import:
    """One import of a project module.

    Attributes:
        importer: Dotted name of the importing module, e.g. `starter.cli.commands`.
        imported: Dotted name of the imported module.
        lazy: The import runs inside a function (when it is called).
        line: Line number in the importer.
    """

    importer: str
    imported: str
    lazy: bool
    line: int

    def where(self) -> str:
        """`importer:line → imported`, for a failure message."""
        return f"{self.importer}:{self.line} → {self.imported}"


def source_modules(root: Path) -> dict[str, Path]:
    """The project's modules under `root`: dotted name → file."""
    modules = {"worker": root / "worker.py"}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        anchor = parts[: len(parts) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
    ]


def imports_of(root: Path) -> list[Import]:
    """Every import of a project module by a project module under `root`."""
    modules = source_modules(root)
    known = set(modules)
    found: list[Import] = []

    def visit(node: ast.AST, importer: str, package: str, *, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, importer, package, lazy=lazy)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, package, known):
                    seen = Import(importer, target, lazy, child.lineno)
                    if _top(target) in PACKAGES and seen not in found:
                        found.append(seen)
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, importer, package, lazy=inner)

    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        visit(ast.parse(path.read_text(), str(path)), name, package, lazy=False)
    return found


def _eager_qa_import(found: Import) -> bool:
    """A module-level import of a QA module other than its commands (they load the send path)."""
    return (
        found.imported.startswith("starter.qa.")
        and found.imported != "starter.qa.commands"
        and not found.lazy
        and not found.importer.startswith("starter.qa.")
    )


def layering_violations(root: Path) -> list[str]:
    """Imports that break the layers, one line each (empty when the layers hold)."""
    broken = []
    for found in imports_of(root):
        layer, target = _top(found.importer), _top(found.imported)
        if target in MAY_IMPORT[layer]:
            continue
        if layer == "starter" and found.lazy and found.imported in STARTER_MAY_LOAD_LAZILY:
            continue
        if found.importer.startswith("starter.qa.") and target in QA_MAY_IMPORT:
            continue
        if _eager_qa_import(found):
            broken.append(found.where())
            continue
        broken.append(found.where())
    return broken


def package_cycles(root: Path) -> list[list[str]]:
    """Cycles among the top-level packages (lazy imports included)."""
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for found in imports_of(root):
        if _top(found.importer) != _top(found.imported):
            edges[_top(found.importer)].add(_top(found.imported))
    cycles: list[list[str]] = []

    def walk(package: str, path: list[str]) -> None:
        for nxt in sorted(edges[package]):
            if nxt == path[0]:
                cycles.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:
                walk(nxt, [*path, nxt])

    for start in PACKAGES:
        walk(start, [start])
    return cycles


def test_the_top_level_packages_have_no_import_cycle() -> None:
    assert package_cycles(PROJECT_ROOT) == []


def test_the_worker_activities_and_workflows_never_import_starter() -> None:
    into_starter = [
        found.where()
        for found in imports_of(PROJECT_ROOT)
        if _top(found.importer) in {"worker", "activities", "workflows"}
        and _top(found.imported) == "starter"
    ]
    assert into_starter == []


def test_every_import_respects_the_layers() -> None:
    assert layering_violations(PROJECT_ROOT) == []


def test_the_checker_sees_a_cycle_and_a_layer_broken(tmp_path: Path) -> None:
    """A project whose worker imports starter's logging (as before issue 14): both show."""
    for package in PACKAGES:
        if package != "worker":
            (tmp_path / package).mkdir()
            (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "starter" / "setup_logs.py").write_text("def configure_logging() -> None: ...\n")
    (tmp_path / "starter" / "command.py").write_text("from worker import run_worker\n")
    (tmp_path / "worker.py").write_text("from starter.setup_logs import configure_logging\n")

    assert package_cycles(tmp_path) == [["starter", "worker", "starter"]]
    assert layering_violations(tmp_path) == [
        "worker:1 → starter.setup_logs",
        "starter.command:1 → worker",
    ]
