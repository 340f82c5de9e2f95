"""Figures, their targets, and the report: JSON and a markdown table.

Every figure has three values, measured in the same run: the product's
(`journeys`), the peer baseline's (`peer`, the welcome series written by hand,
`bench/peer.py`; None where no peer applies) and the bare baseline's (`bare`,
`bench/baseline.py`), and the two ratios journeys / peer and journeys / bare.
A target names the baseline(s) it is held to.

The reference run (`python -m bench --reference`) is committed in
`bench/reference/`, and `bench/README.md` shows its table between two markers,
rendered from the committed JSON (`reference_section`), so the two cannot drift.
A run on the cluster (`--cluster`) has its own files (`latest-cluster.json`…)
and its own reference table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.servers import Topology

SHORT = "SHORT"
MET = "met"
NOT_TRIED = "not tried"
NO_TARGET = "—"

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
"""Where `--reference` writes the committed results (`latest.json`, `latest.md`; on the
cluster `latest-cluster.json`, `latest-cluster.md`)."""
README = Path(__file__).resolve().parent / "README.md"
REFERENCE_MARKERS = {
    Topology.DEV_SERVER: (
        "<!-- reference table: written by `python -m bench --reference` -->",
        "<!-- end of reference table -->",
    ),
    Topology.CLUSTER: (
        "<!-- cluster reference table: written by `python -m bench --reference --cluster` -->",
        "<!-- end of cluster reference table -->",
    ),
}
"""Where the README's reference table of each topology starts and ends."""


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0–100) of `values`, linearly interpolated between ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Target:
    """What a figure should reach.

    Attributes:
        text: As printed, e.g. `≤ 1.5× peer and < 250 ms`.
        check: Whether a figure reaches it; None when this run cannot tell
            (e.g. a quick run parks fewer journeys than the target names).
    """

    text: str
    check: Callable[[Figure], bool | None]


def _ratio_check(which: str, bound: float, *, at_least: bool) -> Callable[[Figure], bool | None]:
    def check(figure: Figure) -> bool | None:
        ratio = figure.ratio_to_peer if which == "peer" else figure.ratio_to_bare
        if ratio is None:
            return None
        return ratio >= bound if at_least else ratio <= bound

    return check


def held_to(
    *,
    peer: float | None = None,
    bare: float | None = None,
    below: float | None = None,
    unit: str = "ms",
    at_least: bool = False,
) -> Target:
    """A target on the ratios to the baselines and, optionally, an absolute bound.

    Args:
        peer: The most (or, `at_least`, the least) journeys / peer may be.
        bare: The same for journeys / bare.
        below: The journeys' value must be under this (in `unit`).
        unit: Unit of `below`, as printed.
        at_least: Ratios are lower bounds (a rate), not upper bounds (a cost).
    """
    sign = "≥" if at_least else "≤"
    parts: list[str] = []
    checks: list[Callable[[Figure], bool | None]] = []
    for which, bound in (("peer", peer), ("bare", bare)):
        if bound is not None:
            parts.append(f"{sign} {bound:g}× {which}")
            checks.append(_ratio_check(which, bound, at_least=at_least))
    if below is not None:
        limit = below
        parts.append(f"< {limit:,g} {unit}")
        checks.append(lambda figure: figure.journeys < limit)

    def check(figure: Figure) -> bool | None:
        verdicts = [one(figure) for one in checks]
        if False in verdicts:
            return False
        return None if None in verdicts else True

    return Target(" and ".join(parts), check)


def _ratio(value: float, baseline: float | None) -> float | None:
    if baseline is None:
        return None
    return value / baseline if baseline else math.inf


@dataclass(frozen=True)
class Figure:
    """One measured figure: the journeys', the peer's and the bare baseline's values.

    Attributes:
        key: Stable id, e.g. `event_to_send_p99`.
        label: What it is, e.g. `Event-to-send latency p99`.
        unit: Unit of the three values.
        journeys: The product's value.
        peer: The peer baseline's value; None where no peer applies.
        bare: The bare baseline's value.
        note: How it was measured, in a few words.
        target: What it should reach, if anything.
        details: Sizes and raw numbers behind it.
    """

    key: str
    label: str
    unit: str
    journeys: float
    peer: float | None
    bare: float
    note: str
    target: Target | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_to_peer(self) -> float | None:
        """`journeys / peer` (None without a peer, inf when the peer's is 0)."""
        return _ratio(self.journeys, self.peer)

    @property
    def ratio_to_bare(self) -> float | None:
        """`journeys / bare` (inf when the bare baseline's is 0)."""
        return _ratio(self.journeys, self.bare)

    @property
    def status(self) -> str:
        """`met`, `SHORT`, `not tried` (target out of this run's reach) or `—` (no target)."""
        if self.target is None:
            return NO_TARGET
        verdict = self.target.check(self)
        return NOT_TRIED if verdict is None else MET if verdict else SHORT

    def as_json(self) -> dict[str, Any]:
        """The figure as the JSON report has it (scripts read these names)."""
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "journeys": self.journeys,
            "peer": self.peer,
            "bare": self.bare,
            "ratio_to_peer": self.ratio_to_peer,
            "ratio_to_bare": self.ratio_to_bare,
            "target": self.target.text if self.target else None,
            "status": self.status,
            "note": self.note,
            "details": self.details,
        }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def _times(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return "∞" if math.isinf(ratio) else f"{ratio:.2f}×"


def markdown_table(figures: Sequence[Mapping[str, Any]]) -> str:
    """One row per figure (as in the JSON): the three values, both ratios, target, status."""
    lines = [
        "| Figure | Journeys | Peer | Bare | ÷ peer | ÷ bare | Target | Status |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for figure in figures:
        status = figure["status"]
        unit = figure["unit"]
        lines.append(
            f"| {figure['label']} | {_number(figure['journeys'], unit)} "
            f"| {_number(figure['peer'], unit)} | {_number(figure['bare'], unit)} "
            f"| {_times(figure['ratio_to_peer'])} | {_times(figure['ratio_to_bare'])} "
            f"| {figure['target'] or ''} | {f'**{status}**' if status == SHORT else status} |"
        )
    return "\n".join(lines)


def topology(document: Mapping[str, Any]) -> Topology:
    """Where a run ran (runs from before `--cluster` existed ran on the dev server)."""
    return Topology(document.get("topology", Topology.DEV_SERVER))


def file_name(name: str, document: Mapping[str, Any]) -> str:
    """`name` for a run on the dev server, `name-cluster` for one on the cluster."""
    where = topology(document)
    return name if where == Topology.DEV_SERVER else f"{name}-{where}"


def _heading(document: Mapping[str, Any]) -> str:
    where = "" if topology(document) == Topology.DEV_SERVER else " on the cluster"
    load = document.get("load_average")
    return (
        f"{document['started_at']} ({document['mode']} run{where}, {document['cpus']} CPUs, "
        f"{document['duration_s']:.0f} s"
        + (f", load average {load['start']:.2f} → {load['end']:.2f}" if load else "")
        + ")"
    )


def _servers(document: Mapping[str, Any]) -> str:
    """What ran, as a line of its own (runs from before it was recorded: nothing)."""
    return f"On: {document['servers']}.\n\n" if "servers" in document else ""


def markdown_report(document: Mapping[str, Any]) -> str:
    """The table, then how each figure was measured (figures sharing a note, once)."""
    labels: dict[str, list[str]] = {}
    for figure in document["figures"]:
        labels.setdefault(figure["note"], []).append(figure["label"])
    notes = "\n".join(f"- **{'; '.join(names)}**: {note}" for note, names in labels.items())
    return (
        f"# Benchmarks, {_heading(document)}\n\n{_servers(document)}"
        f"{markdown_table(document['figures'])}\n\n{notes}\n"
    )


def write_report(figures: Sequence[Figure], meta: dict[str, Any], output: Path) -> dict[str, Any]:
    """Write `<stamp>.json|.md` and `latest.json|.md` in `output` (`<stamp>-cluster.json`…
    for a run on the cluster); returns the document."""
    output.mkdir(parents=True, exist_ok=True)
    document = {**meta, "figures": [figure.as_json() for figure in figures]}
    text = json.dumps(document, indent=2, default=str)
    markdown = markdown_report(document)
    for name in (meta["stamp"], "latest"):
        (output / f"{file_name(name, document)}.json").write_text(text + "\n")
        (output / f"{file_name(name, document)}.md").write_text(markdown)
    return document


def reference_section(document: Mapping[str, Any]) -> str:
    """What `bench/README.md` shows between its markers for the reference `document`."""
    start, end = REFERENCE_MARKERS[topology(document)]
    return (
        f"{start}\n\nReference run: {_heading(document)}, sizes "
        f"{', '.join(f'{name} {value:,}' for name, value in document['sizes'].items())}.\n\n"
        f"{_servers(document)}{markdown_table(document['figures'])}\n\n{end}"
    )


def readme_reference(readme: str, where: Topology = Topology.DEV_SERVER) -> str:
    """The reference section of a README's text for a topology (markers included)."""
    start, end = REFERENCE_MARKERS[where]
    return readme[readme.index(start) : readme.index(end) + len(end)]


def write_reference(document: Mapping[str, Any]) -> None:
    """Commit-ready copy of a run: `REFERENCE_DIR/latest.json|.md` (`latest-cluster…` for a
    run on the cluster), and the README's table of its topology."""
    REFERENCE_DIR.mkdir(exist_ok=True)
    name = file_name("latest", document)
    (REFERENCE_DIR / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (REFERENCE_DIR / f"{name}.md").write_text(markdown_report(document))
    readme = README.read_text()
    section = readme_reference(readme, topology(document))
    README.write_text(readme.replace(section, reference_section(document)))
