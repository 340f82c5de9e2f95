"""The deliverability guard (`deliverability-guard`): one check of every journey's email rates.

A Temporal Schedule of the same name starts it every `DELIVERABILITY_CHECK_SECONDS`
(the worker creates the schedule, or moves it to a changed interval). What a
check does is `activities/deliverability.py: check_deliverability`: alerts to
the journeys' owners, and the circuit breaker that pauses a journey's marketing
sends on a bounce or complaint spike. The run's details in the Temporal UI show
the open alerts and the paused journeys.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.toolkit import activity_classes

with workflow.unsafe.imports_passed_through():
    from models.deliverability import GuardResult

DELIVERABILITY_GUARD = "deliverability-guard"
CHECK_TIMEOUT = timedelta(minutes=5)
CHECK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
"""A check that keeps failing gives up; the next scheduled one starts afresh."""


@workflow.defn(name=DELIVERABILITY_GUARD)
class DeliverabilityGuard:
    """One check (see the module docstring)."""

    @workflow.run
    async def run(self) -> GuardResult:
        """Check, and show the alerts and pauses in the Temporal UI."""
        workflow.set_current_details("Checking deliverability…")
        result = await workflow.execute_activity_method(
            activity_classes.deliverability().check_deliverability,
            start_to_close_timeout=CHECK_TIMEOUT,
            retry_policy=CHECK_RETRY_POLICY,
            summary="Measure each journey step's email rates; alert owners; pause on a spike",
        )
        workflow.set_current_details(details(result))
        return result


def details(result: GuardResult) -> str:
    """The check's summary for the UI: paused journeys first, then the open alerts."""
    lines = [f"**Deliverability checked** · {result.steps} journey steps measured"]
    if result.paused_journeys:
        lines.append(
            "**Sends paused:** "
            + ", ".join(result.paused_journeys)
            + " (resume: `journeys deliverability resume JOURNEY`)"
        )
    lines += [f"- alert: {line}" for line in result.open_alerts] or ["No alert open."]
    return "\n".join(lines)
