"""The benchmarks: `python -m bench --quick` reports every figure with its two baselines.

The smoke test runs the real thing, small, on one shared stack: a dev server,
the product's, the peer's and the bare baseline's worker processes, the
gateway. What it checks is the report, not the figures (those vary with the
machine; `make bench` measures them). The other tests need no stack: the peer
baseline keeps the welcome series' steps, targets judge the ratios they name,
and the README's reference table is the committed results file's.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path

import pytest

from bench.peer import EMAILS, ROUTE_DAY
from bench.report import (
    MET,
    NOT_TRIED,
    README,
    REFERENCE_DIR,
    SHORT,
    Figure,
    held_to,
    markdown_report,
    readme_reference,
    reference_section,
)
from models.settings import PROJECT_ROOT
from workflows.journeys.welcome_series import WelcomeSeries

CLI_READS = [
    f"cli_read_{command}" for command in ("status", "list", "messages", "report", "export")
]
CODEC = [
    "codec_roundtrip_send_request",
    "codec_bytes_send_request",
    "codec_roundtrip_event_batch",
    "codec_bytes_event_batch",
]
SEGMENTS = ["segment_evaluation", "segment_count", "event_to_segment_p50", "event_to_segment_p99"]
IMPORT = ["contact_import_rate", "contact_reimport_rate"]
FIGURES = [
    "throughput",
    "worker_cpu_per_journey",
    "history_events_per_step",
    "history_bytes_per_step",
    "steps_before_continue_as_new",
    "event_to_send_p50",
    "event_to_send_p99",
    "timer_lateness_p50",
    "timer_lateness_p99",
    "memory_per_1000_parked",
    "memory_per_cached_workflow",
    "memory_rss_parked",
    "unsubscribe_to_exit_p50",
    "unsubscribe_to_exit_p99",
    *CODEC,
    *CLI_READS,
    *SEGMENTS,
    *IMPORT,
]
TARGETS = {
    "throughput": "≥ 0.9× peer and ≥ 0.5× bare",
    "worker_cpu_per_journey": "≤ 1.2× peer",
    "event_to_send_p99": "≤ 1.5× peer and < 250 ms",
    "timer_lateness_p99": "≤ 2× bare",
    "memory_per_cached_workflow": "≤ 1.5× peer",
    "memory_rss_parked": "< 1 GiB with 10,000 parked",
    "unsubscribe_to_exit_p99": "≤ 3× bare and < 300 ms",
    **dict.fromkeys(CLI_READS, "< 1 s"),
    "segment_count": "< 100 ms",
    "event_to_segment_p99": "< 1,000 ms",
    **dict.fromkeys(IMPORT, "≥ 167 rows/s (100,000 in < 10 min)"),
}
NO_PEER = {*CODEC, *CLI_READS, *SEGMENTS, *IMPORT}
"""Figures without a peer value: the peer has no codec, no CLI, no segments and no import."""
MEMORY_GROWTH = {"memory_per_1000_parked", "memory_per_cached_workflow"}
"""RSS growth figures: at a quick run's few dozen parked journeys they are within the
allocator's noise and may come out at or below 0 (a full run parks thousands)."""
FIELDS = {"key", "label", "unit", "journeys", "peer", "bare", "ratio_to_peer", "ratio_to_bare"}
FIELDS |= {"status", "target", "note", "details"}


def _ratio(value: float, baseline: float) -> float:
    """`value / baseline` as the report computes it (inf when the baseline is 0)."""
    return math.inf if baseline == 0 else value / baseline


def _check_figure(figure: dict[str, object]) -> None:
    assert set(figure) == FIELDS, figure
    journeys, peer, bare = figure["journeys"], figure["peer"], figure["bare"]
    assert isinstance(journeys, float | int) and isinstance(bare, float | int), figure
    assert all(map(math.isfinite, (journeys, bare))), figure
    if figure["key"] not in MEMORY_GROWTH:
        assert journeys > 0 and bare > 0, figure
    assert math.isclose(figure["ratio_to_bare"], _ratio(journeys, bare)), figure  # type: ignore[arg-type]
    if figure["key"] in NO_PEER:
        assert (peer, figure["ratio_to_peer"]) == (None, None), figure
    else:
        assert isinstance(peer, float | int) and math.isfinite(peer), figure
        assert peer > 0 or figure["key"] in MEMORY_GROWTH, figure
        assert math.isclose(figure["ratio_to_peer"], _ratio(journeys, peer)), figure  # type: ignore[arg-type]
    if figure["key"] in TARGETS:
        assert figure["target"] == TARGETS[str(figure["key"])], figure
        assert figure["status"] in {MET, SHORT, NOT_TRIED}, figure
    else:
        assert (figure["target"], figure["status"]) == (None, "—"), figure


@pytest.mark.timeout(240)
async def test_quick_run_reports_every_figure_against_both_baselines(tmp_path: Path) -> None:
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "--quick", "--output", str(tmp_path),
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 230)
    print(f"python -m bench --quick took {time.monotonic() - began:.0f} s")  # noqa: T201
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]

    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["mode"] == "quick"
    figures = report["figures"]
    assert [figure["key"] for figure in figures] == FIGURES
    for figure in figures:
        _check_figure(figure)
    memory = next(figure for figure in figures if figure["key"] == "memory_rss_parked")
    assert memory["status"] == NOT_TRIED  # a quick run parks far fewer than 10,000
    throughput = figures[0]["details"]
    assert throughput["emails_sent"] == {"journeys": 50, "peer": 50}  # 10 of each, 5 emails

    markdown = (tmp_path / "latest.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        figure["label"] for figure in figures
    ]
    assert all(row.count(" | ") == 7 for row in rows)
    assert stdout.decode() == markdown == markdown_report(report)
    stamp = report["stamp"]
    assert (tmp_path / f"{stamp}.json").read_text() == (tmp_path / "latest.json").read_text()
    assert (tmp_path / f"{stamp}.md").read_text() == markdown


def test_the_peer_sends_the_welcome_series_emails_on_their_days() -> None:
    assert EMAILS == tuple((step.id, step.day) for step in WelcomeSeries.emails)
    assert ROUTE_DAY == WelcomeSeries.plan[-1].day


def _figure(journeys: float, peer: float | None, bare: float) -> Figure:
    return Figure("k", "K", "ms", journeys, peer, bare, "how", held_to(peer=1.5, below=250))


def test_a_target_holds_the_journeys_to_the_baseline_and_bound_it_names() -> None:
    assert _figure(140, 100, 10).status == MET
    assert _figure(160, 100, 10).status == SHORT  # over 1.5× the peer
    assert _figure(260, 200, 10).status == SHORT  # within 1.5× the peer, not under 250 ms
    assert _figure(140, None, 10).status == NOT_TRIED  # no peer to hold it to
    rate = Figure("r", "R", "/s", 9, 10, 15, "how", held_to(peer=0.9, bare=0.5, at_least=True))
    assert (rate.status, rate.target and rate.target.text) == (MET, "≥ 0.9× peer and ≥ 0.5× bare")


def test_the_readme_shows_the_committed_reference_run() -> None:
    document = json.loads((REFERENCE_DIR / "latest.json").read_text())
    assert readme_reference(README.read_text()) == reference_section(document)
    assert (REFERENCE_DIR / "latest.md").read_text() == markdown_report(document)
    assert [figure["key"] for figure in document["figures"]] == FIGURES
