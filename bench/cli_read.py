"""How fast the CLI's read commands answer: each in a fresh process, against the stack.

A person types `journeys status kim` and waits for the process to end; so
each read command (`status`, `list`, `messages`, `report`, `export
--no-live`) is run as its own process, from its start to its exit, against the
benchmark's dev server and journeys database, for a contact with a running
welcome series (the product's worker runs meanwhile, so `status` reads the
journey's live state). The figure is the median of `Sizes.cli_runs` runs,
the commands taking turns, after one untimed round that caches the bytecode,
as an installed CLI has it.

The peer baseline has no CLI: its column is empty. The bare baseline is the
floor of any Python command that asks Temporal about a
contact: a process that imports the SDK's client, connects and lists the
contact's workflows with one visibility query. The JSON adds, per command,
the time its process spent importing modules (`python -X importtime`, the
sum of the top-level imports): what lazy imports keep down.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence

from bench.report import Figure, Target
from bench.stack import (
    Stack,
    WorkerKind,
    is_sent,
    product_environment,
    seed_contacts,
    snapshot_environment,
    until,
    worker_process,
)

CONTACT_ID = "bench-cli-ada"
READ_COMMANDS: dict[str, tuple[str, ...]] = {
    "status": ("status", CONTACT_ID),
    "list": ("list",),
    "messages": ("messages", CONTACT_ID),
    "report": ("report",),
    "export": ("export", CONTACT_ID, "--no-live"),
}
"""Each read command as run, by the name its figure takes."""
CLI = ("-c", "from starter.cli.commands import main; main()")
"""The `journeys` console script, run from the benchmark's snapshot of the code."""
BARE = (
    "-c",
    "import asyncio, os, sys\n"
    "from temporalio.client import Client\n"
    "async def main():\n"
    "    client = await Client.connect(sys.argv[1])\n"
    "    query = f\"ContactId = '{sys.argv[2]}'\"\n"
    "    print(sum([1 async for _ in client.list_workflows(query)]), flush=True)\n"
    "asyncio.run(main())\n"
    "os._exit(0)\n",
)
"""The baseline: the SDK's client, one connection and one visibility query. It ends as the
CLI does (`os._exit`: the SDK's threads can abort the interpreter's teardown)."""
TARGET = Target("< 1 s", lambda figure: figure.journeys < 1000)


async def _run(args: Sequence[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    """Run `python args…`; return its wall time (ms) and stderr. Raise if it fails."""
    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    elapsed = (time.perf_counter() - began) * 1000
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args[-3:])} failed: {stderr.decode()[-2000:]}")
    return elapsed, stderr.decode()


def import_ms(importtime: str) -> float:
    """Total import time (ms) from `python -X importtime` output: its top-level imports."""
    total = 0
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name.startswith("  "):
            total += int(cumulative)
    return total / 1000


async def medians_ms(
    commands: dict[str, Sequence[str]], env: dict[str, str], cwd: str, runs: int
) -> dict[str, float]:
    """Median wall time (ms) of each command, run in turns (one of each per round).

    Taking turns spreads the machine's other load over all commands alike. A
    first, untimed round caches the bytecode.
    """
    for args in commands.values():
        await _run(args, env, cwd)
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            timings[name].append((await _run(args, env, cwd))[0])
    return {name: statistics.median(values) for name, values in timings.items()}


async def cli_read(stack: Stack, runs: int) -> list[Figure]:
    """One figure per read command: its median answer time against the bare floor's."""
    env = product_environment(stack, snapshot_environment(stack))
    cwd = str(stack.root)
    await seed_contacts(stack.engine, [CONTACT_ID])
    async with worker_process(stack, WorkerKind.JOURNEYS):
        await _run([*CLI, "enroll", "welcome-series", CONTACT_ID, "--day-seconds", "600"], env, cwd)
        await until(
            lambda: is_sent(stack.engine, f"welcome-series-{CONTACT_ID}/day0"),
            every=0.1,
            timeout=60,
            what="the welcome email",
        )
        commands = {name: [*CLI, *command] for name, command in READ_COMMANDS.items()}
        medians = await medians_ms(
            {**commands, "bare": [*BARE, stack.address, CONTACT_ID]}, env, cwd, runs
        )
        figures = []
        for name, command in READ_COMMANDS.items():
            _, importtime = await _run(["-X", "importtime", *commands[name]], env, cwd)
            figures.append(
                Figure(
                    key=f"cli_read_{name}",
                    label=f"`journeys {command[0]}` answer, cold process",
                    unit="ms",
                    journeys=medians[name],
                    peer=None,
                    bare=medians["bare"],
                    note=f"Median of {runs} runs of `journeys {' '.join(command)}`, process "
                    "start to exit, in turns with the others. Bare: a process that imports "
                    "the SDK client, connects and lists the contact's workflows.",
                    target=TARGET,
                    details={"runs": runs, "import_ms": import_ms(importtime)},
                )
            )
    return figures
