"""The segment sweep (`segment-sweep`): one pass that keeps every segment current.

A Temporal Schedule of the same name starts it every `SEGMENT_SWEEP_SECONDS`
(the worker creates the schedule, or moves it to a changed interval); a run
still going when the next is due makes the schedule skip that one. What a pass
does is `activities/segments.py: sweep_segments`: forget removed segments,
evaluate new or changed ones over every contact, evaluate the contacts that are
due (a profile change, a lapsing time window), and deliver the events of the
segments journeys follow. The pass's figures are its result and its details.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.toolkit import activity_classes

with workflow.unsafe.imports_passed_through():
    from models.segments import SweepResult

SEGMENT_SWEEP = "segment-sweep"
SWEEP_TIMEOUT = timedelta(hours=1)
"""Time allowed for one pass (a new segment over a large database takes minutes)."""
SWEEP_HEARTBEAT = timedelta(minutes=1)
SWEEP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
"""A pass that keeps failing gives up; the next scheduled one starts afresh."""


@workflow.defn(name=SEGMENT_SWEEP)
class SegmentSweep:
    """One pass over the segments (see the module docstring)."""

    @workflow.run
    async def run(self) -> SweepResult:
        """Sweep, and show what changed in the Temporal UI."""
        workflow.set_current_details("Sweeping segments…")
        result = await workflow.execute_activity_method(
            activity_classes.segments().sweep_segments,
            start_to_close_timeout=SWEEP_TIMEOUT,
            heartbeat_timeout=SWEEP_HEARTBEAT,
            retry_policy=SWEEP_RETRY_POLICY,
            summary="Evaluate due contacts and new segments; deliver segment events",
        )
        workflow.set_current_details(
            f"**Segments swept** · {result.contacts_refreshed} contacts refreshed · "
            f"{result.entered} entered, {result.left} left · "
            f"{result.events_delivered} events delivered"
            + (
                f" · evaluated {', '.join(result.evaluated_segments)}"
                if result.evaluated_segments
                else ""
            )
        )
        return result
