"""Starting a journey from a workflow: a child left running when its parent ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.toolkit.experiments import assign_arm, patch_id
from workflows.toolkit.run_log import entered_before

with workflow.unsafe.imports_passed_through():
    from models.experiments import HOLDOUT, ArmRequest
    from models.journeys import JourneyInput
    from workflows import catalog

if TYPE_CHECKING:
    from workflows.toolkit.journey import Journey


async def start_journey(journey: str, journey_input: JourneyInput, *, why: str) -> bool:
    """Start the journey called `journey` from a workflow, as a child left running when its
    parent ends.

    Its declarations (workflow id, re-entry window, title) come from the catalog,
    which loads its module outside the sandbox: a journey never imports another.

    A journey a contact goes through once is not started again once done: the
    journey-run log says so (it outlives Temporal's retention of the closed
    workflow), and `REJECT_DUPLICATE` covers a run that has not logged itself
    yet. One with a re-entry window is started again when its previous run
    has ended. For its experiments with a journey-level holdout the contact is
    drawn first (`draw_at_entry`): held out, it does not enter; otherwise the
    journey starts with its arms in its input.

    Args:
        journey: The journey to start, by name (e.g. `nurture`).
        journey_input: Its input.
        why: Shown in its summary, e.g. `bought after pricing-abandon`.

    Returns:
        True if it started; False if it is running (or done, for a once-only journey),
        or the contact is held out of it.
    """
    declared = catalog.journey_class(journey)
    workflow_id = declared.workflow_id_for(journey_input)
    if declared.reentry_days is None and await entered_before(workflow_id):
        workflow.logger.info("%s ran before (run log); not started again", workflow_id)
        return False
    arms = await draw_at_entry(declared, journey_input.contact_id)
    if HOLDOUT in arms.values():
        workflow.logger.info("%s not started: the contact is in its holdout", workflow_id)
        return False
    if arms:
        journey_input = journey_input.model_copy(update={"arms": {**journey_input.arms, **arms}})
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


async def draw_at_entry(journey: type[Journey], contact_id: str) -> dict[str, str]:
    """The contact's arm in each of the journey's experiments with a journey-level holdout,
    drawn (and recorded as its exposure) as the journey is about to start; each draw is
    guarded by the experiment's patch, `experiment-{name}`. Stops at a holdout."""
    arms: dict[str, str] = {}
    for declared in journey.entry_holdouts():
        if not workflow.patched(patch_id(declared.name)):
            continue
        request = ArmRequest.of(
            declared,
            contact_id=contact_id,
            workflow_id=workflow.info().workflow_id,
            at=workflow.now(),
            at_entry=True,
        )
        arms[declared.name] = await assign_arm(request)
        if arms[declared.name] == HOLDOUT:
            break
    return arms
