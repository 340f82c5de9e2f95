"""Run `python -m bench` as a user does and check the report it writes (tests/test_bench.py,
tests/cluster/test_bench_cluster.py).

What is checked is the report's shape, never a timing: every figure has its
three values (the peer's where a peer applies), both ratios computed from them,
the target its key names and a status; the markdown table has a row per figure
and is what the run printed; the stamped files equal the `latest` ones.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import MET, NOT_TRIED, SHORT, file_name, markdown_report
from models.settings import PROJECT_ROOT

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
THROUGHPUT = [
    "throughput",
    "worker_cpu_per_journey",
    "history_events_per_step",
    "history_bytes_per_step",
    "steps_before_continue_as_new",
]
FIGURES = [
    *THROUGHPUT,
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
"""Every figure of a full set, in the report's order."""
ON_THE_CLUSTER = [key for key in FIGURES if key not in CODEC]
"""Every figure of a run on the cluster (`--cluster` leaves the payload codec out)."""
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


async def run_bench(output: Path, *options: str, timeout: float) -> str:
    """`python -m bench --output <output> <options>` from the checkout; its stdout.

    Prints how long it took (a test asserts no timing). Past `timeout` it is
    interrupted (SIGINT: it stops its servers and workers on the way out).

    Raises:
        AssertionError: it failed (with the end of its stderr).
        TimeoutError: it took longer than `timeout` seconds.
    """
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", *options, "--output", str(output),
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    communicating = asyncio.ensure_future(process.communicate())
    try:
        stdout, stderr = await asyncio.wait_for(asyncio.shield(communicating), timeout)
    except TimeoutError:
        process.send_signal(signal.SIGINT)
        _, stderr = await communicating
        print(stderr.decode(errors="replace")[-4000:])  # noqa: T201
        raise
    print(f"python -m bench {' '.join(options)} took {time.monotonic() - began:.0f} s")  # noqa: T201
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]
    return stdout.decode()


def ratio(value: float, baseline: float) -> float:
    """`value / baseline` as the report computes it (inf when the baseline is 0)."""
    return math.inf if baseline == 0 else value / baseline


def check_figure(figure: dict[str, Any]) -> None:
    """One figure of the JSON report: its fields, values, ratios, target and status."""
    assert set(figure) == FIELDS, figure
    journeys, peer, bare = figure["journeys"], figure["peer"], figure["bare"]
    assert isinstance(journeys, float | int) and isinstance(bare, float | int), figure
    assert all(map(math.isfinite, (journeys, bare))), figure
    if figure["key"] not in MEMORY_GROWTH:
        assert journeys > 0 and bare > 0, figure
    assert math.isclose(figure["ratio_to_bare"], ratio(journeys, bare)), figure
    if figure["key"] in NO_PEER:
        assert (peer, figure["ratio_to_peer"]) == (None, None), figure
    else:
        assert isinstance(peer, float | int) and math.isfinite(peer), figure
        assert peer > 0 or figure["key"] in MEMORY_GROWTH, figure
        assert math.isclose(figure["ratio_to_peer"], ratio(journeys, peer)), figure
    if figure["key"] in TARGETS:
        assert figure["target"] == TARGETS[str(figure["key"])], figure
        assert figure["status"] in {MET, SHORT, NOT_TRIED}, figure
    else:
        assert (figure["target"], figure["status"]) == (None, "—"), figure


def checked_report(output: Path, stdout: str, figures: list[str]) -> dict[str, Any]:
    """The run's JSON report in `output`, checked against `figures` (keys, in order).

    Also checks that the markdown has a row per figure, that it is what the run
    printed, and that the stamped files equal the `latest` ones (names per topology:
    `latest.json`, or `latest-cluster.json` for a run on the cluster).
    """
    report: dict[str, Any] = json.loads(next(output.glob("latest*.json")).read_text())
    latest = file_name("latest", report)
    assert sorted(path.name for path in output.iterdir()) == sorted(
        f"{file_name(name, report)}.{extension}"
        for name in (report["stamp"], "latest")
        for extension in ("json", "md")
    )
    assert [figure["key"] for figure in report["figures"]] == figures
    for figure in report["figures"]:
        check_figure(figure)

    markdown = (output / f"{latest}.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [
        figure["label"] for figure in report["figures"]
    ]
    assert all(row.count(" | ") == 7 for row in rows)
    assert stdout == markdown == markdown_report(report)
    stamped = file_name(report["stamp"], report)
    assert (output / f"{stamped}.json").read_text() == (output / f"{latest}.json").read_text()
    assert (output / f"{stamped}.md").read_text() == markdown
    return report
