"""Worker Versioning: how each workflow meets a deploy of new code.

With `WORKER_BUILD_ID` set, a worker polls as one version (the build id) of the worker
deployment `WORKER_DEPLOYMENT_NAME` (`worker.deployment_config`), and each workflow run
is either pinned to the version it started on or upgraded to the current one:

```
workflow                          behaviour                     why
every journey not named below     PINNED (the worker default)   it ends within MAX_PINNED_DAYS
contact                           AUTO_UPGRADE (@workflow.defn) it never ends (continue-as-new)
lead-sla, recycling,              AUTO_UPGRADE (@workflow.defn) they may run for months
renewal-countdown
sms-keyword-reply, segment-sweep, PINNED (the default)          a run lasts seconds to hours
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
- A journey whose runs can outlast `MAX_PINNED_DAYS` declares
  `@workflow.defn(..., versioning_behavior=VersioningBehavior.AUTO_UPGRADE)`;
  `tests/test_versioning_policy.py` checks the pinned ones against their plans.
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior

DEFAULT_BEHAVIOR = VersioningBehavior.PINNED
"""The behaviour of every workflow whose `@workflow.defn` names none (the worker's default):
a journey written without a thought for deploys is safe, its runs never meet new code."""

MAX_PINNED_DAYS = 45
"""The longest a pinned journey may run, in journey days: an old version's workers live
about this long after a deploy (a welcome series' nurture, started on Day 7, ends on Day 35)."""
