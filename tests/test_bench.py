"""Smoke test of the benchmarks: `python -m bench --quick` reports every figure with its baseline.

It runs the real thing, small: a dev server per benchmark, the product's and
the baseline's worker processes, the gateway. What it checks is the report,
not the figures (those vary with the machine; `make bench` measures them).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import pytest

from models.settings import PROJECT_ROOT

FIGURES = [
    "throughput",
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
    "codec_roundtrip_send_request",
    "codec_bytes_send_request",
    "codec_roundtrip_event_batch",
    "codec_bytes_event_batch",
    *(f"cli_read_{command}" for command in ("status", "list", "messages", "report", "export")),
]
TARGETED = {
    "throughput",
    "event_to_send_p99",
    "memory_rss_parked",
    "unsubscribe_to_exit_p99",
    *(key for key in FIGURES if key.startswith("cli_read_")),
}


@pytest.mark.timeout(400)
async def test_quick_run_reports_every_figure_against_its_baseline(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", "--quick", "--output", str(tmp_path),
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 380)
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]

    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["mode"] == "quick"
    figures = report["figures"]
    assert [figure["key"] for figure in figures] == FIGURES
    for figure in figures:
        assert figure["journeys"] > 0, figure
        assert figure["baseline"] > 0, figure
        assert math.isclose(figure["ratio"], figure["journeys"] / figure["baseline"]), figure
        if figure["key"] in TARGETED:
            assert figure["target"], figure
            assert figure["status"] in {"met", "SHORT", "not tried"}, figure
        else:
            assert (figure["target"], figure["status"]) == (None, "—"), figure
    memory = next(figure for figure in figures if figure["key"] == "memory_rss_parked")
    assert memory["status"] == "not tried"  # a quick run parks far fewer than 10,000

    markdown = (tmp_path / "latest.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        figure["label"] for figure in figures
    ]
    assert stdout.decode() == markdown
    stamp = report["stamp"]
    assert (tmp_path / f"{stamp}.json").read_text() == (tmp_path / "latest.json").read_text()
    assert (tmp_path / f"{stamp}.md").read_text() == markdown
