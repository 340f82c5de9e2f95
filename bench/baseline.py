"""The baseline: a bare Temporal workflow with no toolkit, policy or database.

`BareJourney` waits until each of its steps is due and runs one activity
there, `bare_step`, which does nothing but return the wall-clock time it ran.
An `exit` signal ends it at once; an `event` signal is accepted and ignored
(it is what a signal-with-start carries). Its commands mirror a journey's:
a timer per wait (`wait_condition` with a timeout, as the toolkit waits), an
activity per step.
"""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.bare_input import BareInput

BARE_WORKFLOW = "bare-journey"
"""Workflow type of `BareJourney`."""
STEP_TIMEOUT = timedelta(seconds=60)


@activity.defn(name="bare_step")
async def bare_step() -> float:
    """Return when the step ran (seconds since the epoch, this machine's clock)."""
    return time.time()


@workflow.defn(name=BARE_WORKFLOW)
class BareJourney:
    """Timers and activities, nothing else (see the module docstring)."""

    def __init__(self) -> None:
        """Not exited."""
        self._exited = False

    @workflow.signal
    def event(self) -> None:
        """An event: accepted, ignored."""

    @workflow.signal
    def exit(self) -> None:
        """End the journey now."""
        self._exited = True

    @workflow.run
    async def run(self, bare: BareInput) -> list[float]:
        """Run each step when due; returns when each step's activity ran (epoch seconds)."""
        origin = bare.origin or workflow.now()
        ran: list[float] = []
        for offset in bare.steps:
            remaining = origin + timedelta(seconds=offset) - workflow.now()
            if remaining > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self._exited, timeout=remaining)
                except TimeoutError:
                    pass
            if self._exited:
                break
            ran.append(
                await workflow.execute_activity(bare_step, start_to_close_timeout=STEP_TIMEOUT)
            )
        return ran


def bare_worker(client: Client, task_queue: str) -> Worker:
    """A worker of the bare journey, with the SDK's defaults (as the product's worker)."""
    return Worker(client, task_queue=task_queue, workflows=[BareJourney], activities=[bare_step])
