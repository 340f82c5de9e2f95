"""Starting a journey from a workflow: a child left running when its parent ends."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.toolkit.run_log import entered_before

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyInput
    from workflows import catalog


async def start_journey(journey: str, journey_input: JourneyInput, *, why: str) -> bool:
    """Start the journey called `journey` from a workflow, as a child left running when its
    parent ends.

    Its declarations (workflow id, re-entry window, title) come from the catalog,
    which loads its module outside the sandbox: a journey never imports another.

    A journey a contact goes through once is not started again once done: the
    journey-run log says so (it outlives Temporal's retention of the closed
    workflow), and `REJECT_DUPLICATE` covers a run that has not logged itself
    yet. One with a re-entry window is started again when its previous run
    has ended.

    Args:
        journey: The journey to start, by name (e.g. `nurture`).
        journey_input: Its input.
        why: Shown in its summary, e.g. `bought after pricing-abandon`.

    Returns:
        True if it started; False if it is running (or done, for a once-only journey).
    """
    declared = catalog.journey_class(journey)
    workflow_id = declared.workflow_id_for(journey_input)
    if declared.reentry_days is None and await entered_before(workflow_id):
        workflow.logger.info("%s ran before (run log); not started again", workflow_id)
        return False
    try:
        await workflow.start_child_workflow(
            declared.name,
            journey_input,
            id=workflow_id,
            task_queue=workflow.info().task_queue,
            parent_close_policy=ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE
            if declared.reentry_days is None
            else WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"{declared.title} for contact {journey_input.contact_id} ({why})",
        )
    except WorkflowAlreadyStartedError:
        workflow.logger.info("%s is running or done; not started again", workflow_id)
        return False
    workflow.logger.info("started %s (%s)", workflow_id, why)
    return True
