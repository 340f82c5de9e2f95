"""The journey-run log: each run's status in the database (what `journeys report` counts,
and how a once-only journey knows it ran before)."""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import activity_classes
from workflows.toolkit.local_steps import run_step
from workflows.toolkit.retries import CRM_RETRY_POLICY, CRM_TIMEOUT, UNTIL_DONE_RETRY_POLICY

with workflow.unsafe.imports_passed_through():
    from models.journeys import ContactMemo, JourneyEntry, JourneyRunRecord

RUN_LOG_PATCH = "journey-run-log"
"""Runs from before the run log replay without writing to it."""
LOCAL_RUN_LOG_PATCH = "journey-run-log-local"
"""The run log is written by a local activity; runs from before it scheduled an activity."""
ONCE_PER_CONTACT_PATCH = "once-per-contact-from-run-log"
"""Runs from before once-per-contact journeys were checked against the run log replay
unchanged."""


async def record_run(record: JourneyRunRecord) -> ContactMemo | None:
    """Write a run's status to the log; returns the contact's non-sensitive attributes.

    A local activity (one short write, inside the workflow task: the Day-0 send
    and an exit do not wait for a round trip through the server); runs from
    before `LOCAL_RUN_LOG_PATCH` scheduled an activity.
    """
    return await run_step(
        activity_classes.journey_log().record_journey_run,
        record,
        local=workflow.patched(LOCAL_RUN_LOG_PATCH),
        timeout=CRM_TIMEOUT,
        retry_policy=CRM_RETRY_POLICY,
        summary=f"Journey run log: {record.status}",
    )


async def entered_before(workflow_id: str) -> bool:
    """Whether the log has a run of `workflow_id` (runs before the patch: no)."""
    if not workflow.patched(ONCE_PER_CONTACT_PATCH):
        return False
    return await workflow.execute_local_activity_method(  # one read: no task round trip
        activity_classes.journey_log().journey_entered,
        JourneyEntry(workflow_id=workflow_id),
        start_to_close_timeout=CRM_TIMEOUT,
        retry_policy=UNTIL_DONE_RETRY_POLICY,
        summary=f"Run log: did {workflow_id} run before?",
    )
