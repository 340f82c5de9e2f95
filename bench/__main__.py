"""`python -m bench` (`make bench`): run the benchmarks, write and print the report.

Options: `--quick` (the smoke test's sizes), `--only NAME` (repeatable),
`--output DIR` (default `bench/results/`) and one option per size
(`--journeys`, `--samples`, `--wakeups`, `--parked`, `--unsubscribes`,
`--others`, `--roundtrips`). Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.benchmarks import BENCHMARKS, QUICK, Sizes
from bench.report import Figure, write_report
from bench.stack import bench_stack, snapshot_sources
from runtime.logs import configure_logging
from starter.dev.toolchain import TEMPORAL_CLI_VERSION

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


async def run(names: list[str], sizes: Sizes, *, mode: str, output: Path) -> str:
    """Run the benchmarks named, each on a stack of its own; write the report.

    Returns:
        The markdown report.
    """
    started, clock = datetime.now(UTC), time.monotonic()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        sources = snapshot_sources(Path(scratch) / "sources")
        for name in names:
            _progress(f"{name}…")
            began = time.monotonic()
            async with bench_stack(Path(scratch) / name, sources) as stack:
                figures += await BENCHMARKS[name](stack, sizes)
            timings[name] = time.monotonic() - began
            _progress(f"{name} done in {timings[name]:.0f} s")
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "stamp": started.strftime("%Y%m%dT%H%M%SZ"),
        "mode": mode,
        "benchmarks": names,
        "sizes": asdict(sizes),
        "seconds_per_benchmark": timings,
        "duration_s": time.monotonic() - clock,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "temporal_cli": TEMPORAL_CLI_VERSION,
    }
    return write_report(figures, meta, output)


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run, print the markdown report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test's)")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run only this (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="where results go")
    for size in fields(Sizes):
        parser.add_argument(f"--{size.name}", type=int, help=f"default {size.default:,}")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Sizes()
    sizes = replace(
        base,
        **{f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name)},
    )
    names = args.only or list(BENCHMARKS)
    configure_logging(level="WARNING")  # the gateway runs here: its request log is not a result
    markdown = asyncio.run(
        run(names, sizes, mode="quick" if args.quick else "full", output=args.output)
    )
    sys.stdout.write(markdown)


if __name__ == "__main__":
    main()
