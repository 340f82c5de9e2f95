"""Figures, their targets, and the report: JSON and a markdown table."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SHORT = "SHORT"
MET = "met"
NOT_TRIED = "not tried"


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
        text: As printed, e.g. `≥ 80% of baseline`.
        check: Whether a figure reaches it; None when this run cannot tell
            (e.g. a quick run parks fewer journeys than the target names).
    """

    text: str
    check: Callable[[Figure], bool | None]


@dataclass(frozen=True)
class Figure:
    """One measured figure, for the journeys and for the bare baseline.

    Attributes:
        key: Stable id, e.g. `event_to_send_p99`.
        label: What it is, e.g. `Event-to-send latency p99`.
        unit: Unit of `journeys` and `baseline`.
        journeys: The product's value.
        baseline: The bare workflow's value.
        note: How it was measured, in a few words.
        target: What it should reach, if anything.
        details: Sizes and raw numbers behind it.
    """

    key: str
    label: str
    unit: str
    journeys: float
    baseline: float
    note: str
    target: Target | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """`journeys / baseline` (inf when the baseline is 0)."""
        return self.journeys / self.baseline if self.baseline else math.inf

    @property
    def status(self) -> str:
        """`met`, `SHORT`, `not tried` (target out of this run's reach) or `—` (no target)."""
        if self.target is None:
            return "—"
        verdict = self.target.check(self)
        return NOT_TRIED if verdict is None else MET if verdict else SHORT

    def as_json(self) -> dict[str, Any]:
        """The figure with its ratio, target and status, for the JSON report."""
        data = asdict(self)
        data.update(
            ratio=self.ratio,
            target=self.target.text if self.target else None,
            status=self.status,
        )
        return data


def _number(value: float) -> str:
    if math.isinf(value):
        return "∞"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown_table(figures: Sequence[Figure]) -> str:
    """One row per figure: value, baseline, ratio, target and status."""
    lines = [
        "| Figure | Journeys | Bare baseline | Ratio | Target | Status |",
        "|---|---:|---:|---:|---|---|",
    ]
    for figure in figures:
        status = f"**{figure.status}**" if figure.status == SHORT else figure.status
        lines.append(
            f"| {figure.label} | {_number(figure.journeys)} {figure.unit} "
            f"| {_number(figure.baseline)} {figure.unit} | {figure.ratio:.2f}× "
            f"| {figure.target.text if figure.target else ''} | {status} |"
        )
    return "\n".join(lines)


def markdown_report(figures: Sequence[Figure], meta: dict[str, Any]) -> str:
    """The table, then how each figure was measured (figures sharing a note, once)."""
    labels: dict[str, list[str]] = {}
    for figure in figures:
        labels.setdefault(figure.note, []).append(figure.label)
    notes = "\n".join(f"- **{'; '.join(names)}**: {note}" for note, names in labels.items())
    return (
        f"# Benchmarks, {meta['started_at']} ({meta['mode']} run, {meta['cpus']} CPUs, "
        f"{meta['duration_s']:.0f} s)\n\n{markdown_table(figures)}\n\n{notes}\n"
    )


def write_report(figures: Sequence[Figure], meta: dict[str, Any], output: Path) -> str:
    """Write `<stamp>.json|.md` and `latest.json|.md` in `output`; returns the markdown."""
    output.mkdir(parents=True, exist_ok=True)
    document = {**meta, "figures": [figure.as_json() for figure in figures]}
    text = json.dumps(document, indent=2, default=str)
    markdown = markdown_report(figures, meta)
    for name in (meta["stamp"], "latest"):
        (output / f"{name}.json").write_text(text + "\n")
        (output / f"{name}.md").write_text(markdown)
    return markdown
