"""The guide's promise, kept: a new journey is its file, its copy, its test and its README row.

`docs/writing-a-journey.md` builds a trial nudge; every code block it shows
with `file=<path>` after the language is a whole file of that example. This
test writes those blocks into a copy of the project, runs the example's test
there (recording its history), the replay test, the journey's preview and its
trigger, writes the README's journey table with `journeys catalog --markdown`,
and checks that nothing else in the project had to change.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.settings import PROJECT_ROOT
from starter.cli.journey_table import readme_journey_table

GUIDE = PROJECT_ROOT / "docs" / "writing-a-journey.md"
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
GENERATED = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".data")
"""Parts of a tree that running it writes and that are not the project."""
HISTORY = "tests/histories/trial-nudge-activated.json"


def guide_files() -> dict[str, str]:
    """The files the guide's code blocks spell out, by path."""
    return dict(FILE_BLOCK.findall(GUIDE.read_text()))


def copy_project(target: Path) -> Path:
    """Copy the project's files (tracked, or new and not ignored) into `target`."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def fingerprint(tree: Path) -> dict[str, str]:
    """Every project file of `tree` and a hash of its content."""
    return {
        str(path.relative_to(tree)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in tree.rglob("*")
        if path.is_file() and not any(part in GENERATED for part in path.parts)
    }


def run_in(tree: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the project's Python in `tree` (its modules, not this checkout's)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=tree,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_guide_spells_out_the_three_places() -> None:
    assert set(guide_files()) == {
        "workflows/journeys/trial_nudge.py",
        "templates/trial-nudge/day1.toml",
        "templates/trial-nudge/day4.toml",
        "templates/trial-nudge/day4.sms.toml",
        "tests/test_trial_nudge.py",
    }


@pytest.mark.timeout(900)
def test_the_guides_journey_needs_its_file_its_copy_its_test_and_its_readme_row(
    tmp_path: Path,
) -> None:
    project = copy_project(tmp_path / "project")
    before = fingerprint(project)
    for name, text in guide_files().items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)

    tested = run_in(
        project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_trial_nudge.py",
        RECORD_HISTORIES="1",
    )  # fmt: skip
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    replayed = run_in(
        project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_replay.py"
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert (
        "trial-nudge-activated"
        in run_in(project, "-m", "pytest", "-q", "--collect-only", "tests/test_replay.py").stdout
    )
    previewed = run_in(
        project, "-c", "from starter.cli.commands import main; main()", "preview", "trial-nudge",
        "--out", str(tmp_path / "preview"),
    )  # fmt: skip
    assert previewed.returncode == 0, previewed.stdout + previewed.stderr
    triggered = run_in(
        project, "-c", "from workflows import catalog; print(catalog.triggers()['trial_started'])"
    )
    assert "journey='trial-nudge'" in triggered.stdout, triggered.stderr
    listed = run_in(
        project, "-c", "from starter.cli.commands import main; main()", "catalog", "--markdown"
    )
    assert "| `trial-nudge`<br>" in listed.stdout, listed.stdout + listed.stderr
    readme = (project / "README.md").read_text()
    (project / "README.md").write_text(
        readme.replace(readme_journey_table(readme), listed.stdout.strip())
    )
    table_checked = run_in(
        project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_catalog.py",
        "-k", "readme_journey_table",
    )  # fmt: skip
    assert table_checked.returncode == 0, table_checked.stdout + table_checked.stderr

    after = fingerprint(project)
    changed = {name for name, digest in after.items() if before.get(name) != digest}
    assert changed == {*guide_files(), HISTORY, "README.md"}
