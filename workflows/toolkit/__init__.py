"""The journey toolkit: what every journey workflow shares, in small parts.

- `plan`: `PlanStep` (what each step does, and sends) and durations as written;
- `clock`: the journey clock (pause, resume, skip a wait, relative deadlines);
- `inbox`: the events a journey received, without duplicates;
- `sending`: a message sent once, deferred by the policy, or called off;
- `reentry`: the re-entry window and idempotency keys of re-entered journeys;
- `run_log`: each run's status in the database;
- `progress`: the Temporal UI's current details and search attributes;
- `carry_over`: continue-as-new with the journey's progress;
- `retries`: the retry policies and timeouts of every workflow's activities;
- `starting`: starting a journey from another workflow;
- `experiments`: the contact's arm in each of the journey's experiments;
- `account`: the account team's side (churn-risk flag, a task and notification for the owner);
- `plan_check`: the worker's check of a journey's code against its plan;
- `journey`: `Journey`, composing them.

A journey imports its surface from here: `from workflows.toolkit import Journey, PlanStep`.
"""

from __future__ import annotations

from workflows.toolkit.journey import Journey
from workflows.toolkit.plan import PlanStep
from workflows.toolkit.retries import CRM_RETRY_POLICY, CRM_TIMEOUT
from workflows.toolkit.starting import start_journey

__all__ = ["CRM_RETRY_POLICY", "CRM_TIMEOUT", "Journey", "PlanStep", "start_journey"]
