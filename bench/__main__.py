"""`python -m bench` (`make bench`): run the benchmarks, write and print the report.

Options: `--quick` (the smoke test's sizes, every benchmark on one shared stack),
`--cluster` (on the local Temporal cluster on PostgreSQL instead of the dev server,
`bench/servers.py`; its results are `latest-cluster.json|.md`), `--only NAME`
(repeatable), `--output DIR` (default `bench/results/`), `--reference` (also write
the committed reference, `bench/reference/`, and the README's table from it) and one
option per size (`--journeys`, `--samples`, `--wakeups`, `--parked`, `--unsubscribes`,
`--others`, `--roundtrips`, `--cli_runs`, `--population`, `--import_rows`). Progress
goes to stderr, the markdown table to stdout.
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
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from bench.benchmarks import BENCHMARKS, NOT_ON_THE_CLUSTER, QUICK, Sizes
from bench.report import Figure, markdown_report, write_reference, write_report
from bench.servers import Topology
from bench.stack import bench_stack, snapshot_sources
from runtime.logs import configure_logging
from starter.dev.toolchain import TEMPORAL_CLI_VERSION, TEMPORAL_SERVER_VERSION

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


@dataclass
class Measured:
    """What the benchmarks of a run gave.

    Attributes:
        figures: Their figures, in order.
        seconds: The seconds each took (the shared stack's start-up: `stack`).
        servers: What their stacks ran on (`Servers.description`).
    """

    figures: list[Figure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    servers: str = ""


async def _run_each(
    names: list[str], sizes: Sizes, scratch: Path, *, shared: bool, topology: Topology
) -> Measured:
    """Run the benchmarks named: on one stack (`shared`, its workers shared) or one each."""
    sources = snapshot_sources(scratch / "sources")
    measured = Measured()
    async with AsyncExitStack() as stacks:
        if shared:
            began = time.monotonic()
            one = await stacks.enter_async_context(
                bench_stack(scratch / "shared", sources, shared_workers=True, topology=topology)
            )
            measured.seconds["stack"] = time.monotonic() - began
            _progress(f"shared stack ({topology}) up in {measured.seconds['stack']:.0f} s")
        for name in names:
            _progress(f"{name}…")
            began = time.monotonic()
            if shared:
                stack = one
                measured.figures += await BENCHMARKS[name](stack, sizes)
            else:
                async with bench_stack(scratch / name, sources, topology=topology) as stack:
                    measured.figures += await BENCHMARKS[name](stack, sizes)
            measured.servers = stack.servers.description
            measured.seconds[name] = time.monotonic() - began
            _progress(f"{name} done in {measured.seconds[name]:.0f} s")
    return measured


async def run(
    names: list[str],
    sizes: Sizes,
    *,
    mode: str,
    output: Path,
    topology: Topology = Topology.DEV_SERVER,
    reference: bool = False,
) -> str:
    """Run the benchmarks named (a quick run on one shared stack); write the report.

    With `reference`, the run also becomes the committed reference (`write_reference`).

    Returns:
        The markdown report.
    """
    started, clock, load = datetime.now(UTC), time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        measured = await _run_each(
            names, sizes, Path(scratch), shared=mode == "quick", topology=topology
        )
    server = (
        {"temporal_cli": TEMPORAL_CLI_VERSION}
        if topology == Topology.DEV_SERVER
        else {"temporal_server": TEMPORAL_SERVER_VERSION}
    )
    meta = {
        "started_at": started.isoformat(timespec="seconds"),
        "stamp": started.strftime("%Y%m%dT%H%M%SZ"),
        "mode": mode,
        "topology": topology,
        "servers": measured.servers,
        "benchmarks": names,
        "sizes": asdict(sizes),
        "seconds_per_benchmark": measured.seconds,
        "duration_s": time.monotonic() - clock,
        "cpus": os.cpu_count(),
        "load_average": {"start": load, "end": os.getloadavg()[0]},
        "python": platform.python_version(),
        **server,
    }
    document = write_report(measured.figures, meta, output)
    if reference:
        write_reference(document)
    return markdown_report(document)


def _benchmarks(
    parser: argparse.ArgumentParser, only: list[str] | None, topology: Topology
) -> list[str]:
    """The benchmarks to run: `only`, or all; on the cluster, those that run there."""
    if topology == Topology.DEV_SERVER:
        return only or list(BENCHMARKS)
    for name in only or []:
        if name in NOT_ON_THE_CLUSTER:
            parser.error(f"--only {name} does not run with --cluster: {NOT_ON_THE_CLUSTER[name]}")
    return [name for name in only or BENCHMARKS if name not in NOT_ON_THE_CLUSTER]


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run, print the markdown report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test's)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on the local Temporal cluster on PostgreSQL (results: latest-cluster.*)",
    )
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
    topology = Topology.CLUSTER if args.cluster else Topology.DEV_SERVER
    names = _benchmarks(parser, args.only, topology)
    configure_logging(level="WARNING")  # the gateway runs here: its request log is not a result
    markdown = asyncio.run(
        run(
            names,
            sizes,
            mode="quick" if args.quick else "full",
            output=args.output,
            topology=topology,
            reference=args.reference,
        )
    )
    sys.stdout.write(markdown)


if __name__ == "__main__":
    main()
