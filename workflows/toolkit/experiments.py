"""A journey's experiments: the contact's arm in each, assigned once per run and carried over.

The arm comes from the `assign_arm` local activity (`activities/experiments.py`),
which records the exposure; its result is in the history, so a replay gets the
same arm. An experiment with a journey-level holdout was drawn before the journey
started (`starting.draw_at_entry`), and its arm came in the journey's input. A run
that continues as new carries its arms over, so a journey in progress keeps its
arm even if the experiment is stopped meanwhile.

Adding an experiment to a shipped journey must not change what its recorded runs
did: the split is guarded by the patch `experiment-{name}`, and a run recorded
before it replays with control, as it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import workflow

from workflows.toolkit import activity_classes
from workflows.toolkit.retries import SPLIT_TIMEOUT, UNTIL_DONE_RETRY_POLICY

with workflow.unsafe.imports_passed_through():
    from models.experiments import ArmRequest, Experiment


def patch_id(experiment: str) -> str:
    """The patch that guards an experiment's split: `experiment-{name}`."""
    return f"experiment-{experiment}"


class Arms:
    """The contact's arm per experiment in this journey run."""

    def __init__(self) -> None:
        """No arm yet."""
        self.arms: dict[str, str] = {}

    def restore(self, arms: Mapping[str, str]) -> None:
        """The arms carried over from the previous run."""
        self.arms = dict(arms)

    async def assign(self, experiment: Experiment, *, contact_id: str) -> str:
        """The contact's arm in `experiment`, asked once per journey (see the module docstring)."""
        if experiment.name in self.arms:
            return self.arms[experiment.name]
        arm = experiment.control
        if workflow.patched(patch_id(experiment.name)):
            arm = await assign_arm(
                ArmRequest.of(
                    experiment,
                    contact_id=contact_id,
                    workflow_id=workflow.info().workflow_id,
                    at=workflow.now(),
                )
            )
        self.arms[experiment.name] = arm
        return arm


async def assign_arm(request: ArmRequest) -> str:
    """The arm the `assign_arm` local activity gives (it records the exposure)."""
    assignment = await workflow.execute_local_activity_method(
        activity_classes.experiments().assign_arm,
        request,
        start_to_close_timeout=SPLIT_TIMEOUT,
        retry_policy=UNTIL_DONE_RETRY_POLICY,
        summary=f"Split {request.experiment}",
    )
    workflow.logger.info(
        "experiment %s: arm %s (%s)", request.experiment, assignment.arm, assignment.reason
    )
    return assignment.arm
