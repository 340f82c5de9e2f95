"""`python -m bench` (`make bench`): run the benchmarks, write and print the report.

Options: `--quick` (the smoke test's sizes, every benchmark on one shared stack),
`--only NAME` (repeatable), `--output DIR` (default `bench/results/`),
`--reference` (also write the committed reference, `bench/reference/`, and the
README's table from it) and one option per size (`--journeys`, `--samples`,
`--wakeups`, `--parked`, `--unsubscribes`, `--others`, `--roundtrips`,
`--cli_runs`, `--import_rows`). Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.benchmarks import BENCHMARKS, QUICK, Sizes
from bench.report import Figure, markdown_report, write_reference, write_report
from bench.stack import bench_stack, snapshot_sources
from runtime.logs import configure_logging
from starter.dev.toolchain import TEMPORAL_CLI_VERSION

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


async def _run_each(
    names: list[str], sizes: Sizes, scratch: Path, *, shared: bool
) -> tuple[list[Figure], dict[str, float]]:
    """Run the benchmarks named: on one stack (`shared`, its workers shared) or one each.

    Returns:
        Their figures, and the seconds each took (the shared stack's start-up: `stack`).
    """
    sources = snapshot_sources(scratch / "sources")
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    async with AsyncExitStack() as stacks:
        if shared:
            began = time.monotonic()
            one = await stacks.enter_async_context(
                bench_stack(scratch / "shared", sources, shared_workers=True)
            )
            timings["stack"] = time.monotonic() - began
            _progress(f"shared stack up in {timings['stack']:.0f} s")
        for name in names:
            _progress(f"{name}…")
            began = time.monotonic()
            if shared:
                figures += await BENCHMARKS[name](one, sizes)
            else:
                async with bench_stack(scratch / name, sources) as stack:
                    figures += await BENCHMARKS[name](stack, sizes)
            timings[name] = time.monotonic() - began
            _progress(f"{name} done in {timings[name]:.0f} s")
    return figures, timings


async def run(
    names: list[str], sizes: Sizes, *, mode: str, output: Path, reference: bool = False
) -> str:
    """Run the benchmarks named (a quick run on one shared stack); write the report.

    With `reference`, the run also becomes the committed reference (`write_reference`).

    Returns:
        The markdown report.
    """
    started, clock = datetime.now(UTC), time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        figures, timings = await _run_each(names, sizes, Path(scratch), shared=mode == "quick")
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
    document = write_report(figures, meta, output)
    if reference:
        write_reference(document)
    return markdown_report(document)


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run, print the markdown report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test's)")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHMARKS), help="run only this (repeatable)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="where results go")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also write bench/reference/ and the README's table (commit them)",
    )
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
        run(
            names,
            sizes,
            mode="quick" if args.quick else "full",
            output=args.output,
            reference=args.reference,
        )
    )
    sys.stdout.write(markdown)


if __name__ == "__main__":
    main()
