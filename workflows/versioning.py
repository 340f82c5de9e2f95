"""Worker Versioning: how each workflow meets a deploy of new code.

With `WORKER_BUILD_ID` set, a worker polls as one version (the build id) of the worker
deployment `WORKER_DEPLOYMENT_NAME` (`worker.deployment_config`), and each workflow run
is either pinned to the version it started on or upgraded to the current one. A
workflow class declares which in its `versioning_behavior` attribute:

```
workflow                          versioning_behavior            why
every journey not named below     PINNED (`Journey`'s default)   it ends within MAX_PINNED_DAYS
contact                           AUTO_UPGRADE                   it never ends (continue-as-new)
lead-sla, recycling,              AUTO_UPGRADE                   they may run for months
renewal-countdown
sms-keyword-reply, segment-sweep, PINNED (none declared)         a run lasts seconds to hours
deliverability-guard, broadcast
```

A journey's length is its last plan step plus its re-entry window. The long ones: a
lead that keeps interacting without being qualified (lead-sla), a year of reviews
(recycling), a renewal date a year ahead (renewal-countdown).

- **Pinned** runs finish on the code they started on, and so do their continue-as-new
  runs and the journeys they start (Temporal 1.29 gives both the parent's version; the
  SDK's `initial_versioning_behavior` for continue-as-new needs a newer server). Their
  old version's workers stay until `journeys deploy-status` shows it drained.
- **Auto-upgrade** runs move to the current version at their next workflow task and
  replay their history there: every change to their commands needs `workflow.patched`,
  as without versioning.

Why an attribute and not `@workflow.defn(versioning_behavior=...)`: Temporal 1.29
refuses a workflow task completed with a behaviour by an unversioned worker ("versioning
behavior cannot be specified without deployment options being set with versioned
mode"), and the project's workers are unversioned unless `WORKER_BUILD_ID` is set. So
only a versioned worker gives a run its behaviour, through its runner
(`VersionedRunner`); an unversioned worker runs exactly as before.
"""

from __future__ import annotations

import dataclasses

from temporalio.common import VersioningBehavior
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
)

DEFAULT_BEHAVIOR = VersioningBehavior.PINNED
"""The behaviour of a workflow that declares none: a journey written without a thought
for deploys is safe, its runs never meet new code."""

MAX_PINNED_DAYS = 45
"""The longest a pinned journey may run, in journey days: an old version's workers live
about this long after a deploy (a welcome series' nurture, started on Day 7, ends on Day 35)."""


def behavior_of(workflow_class: type) -> VersioningBehavior:
    """The versioning behaviour a workflow class declares (`versioning_behavior`), or
    `DEFAULT_BEHAVIOR`."""
    declared: VersioningBehavior = getattr(workflow_class, "versioning_behavior", DEFAULT_BEHAVIOR)
    return declared


class VersionedRunner(UnsandboxedWorkflowRunner):
    """What the sandbox of a versioned worker runs each workflow instance with: the
    instance completes its tasks with its class's `behavior_of`.

    The sandbox imports this class by name (`workflows.versioning` is passed through).
    """

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """The instance, its definition given the class's versioning behaviour."""
        defn = dataclasses.replace(det.defn, versioning_behavior=behavior_of(det.defn.cls))
        return super().create_instance(dataclasses.replace(det, defn=defn))
