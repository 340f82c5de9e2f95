"""Recycling (seed 002, step 6): which disqualifications recycle a lead, and what the
`recycling` journey asks the CRM to do.

A lead is recycled after 14 days without interaction after MQL (reason
`no-interaction`, from the hand-off) or when sales disqualify it for a reason
that may pass: no budget, no project, bad timing. It then leaves the sales
queue and gets a long-cycle sequence (`workflows/journeys/recycling.py`).
Other disqualifications (wrong person, competitor, spam…) end there.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from models.crm import CrmTaskKind
from models.events import InUtc
from models.ids import ContactId
from models.pipeline import Reason

RECYCLED_TAG = "stage_recycled"
"""Tag of a recycled lead (seed convention `stage_…`); it goes when the lead moves on to
another pipeline stage (`rules.pipeline.record_transition`)."""
NO_INTERACTION = "no-interaction"
"""The reason of a lead recycled by the hand-off: 14 days without interaction after MQL."""
RECYCLABLE_REASONS = frozenset({"no-budget", "no-project", "bad-timing"})
"""The `lead_disqualified` reasons that recycle the lead (seed 002: 无预算/无项目/时间未到)."""
SALES_QUEUE_TASKS = frozenset(
    {CrmTaskKind.LEAD_FOLLOW_UP, CrmTaskKind.LEAD_CALL, CrmTaskKind.LEAD_CHECKLIST}
)
"""The kinds of task that keep a lead in the sales queue; a recycled lead's open ones are
cancelled."""


def recyclable(reason: str | None) -> str | None:
    """The recycling reason a disqualification's `reason` names, or None when it does not
    recycle the lead (`No budget` and `no_budget` are `no-budget`)."""
    if reason is None:
        return None
    slug = "-".join(reason.strip().lower().replace("_", " ").split())
    return slug if slug in RECYCLABLE_REASONS else None


class LeadDisqualifiedProperties(BaseModel):
    """The properties of a `lead_disqualified` event (others are kept, and ignored here).

    Attributes:
        reason: Why sales disqualified the lead, e.g. `no-budget`; `no-budget`,
            `no-project` and `bad-timing` recycle it (`RECYCLABLE_REASONS`). Optional.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    reason: Reason | None = None


class RecycleRequest(BaseModel):
    """Recycle a lead: stage `recycled`, tag `stage_recycled`, its sales-queue tasks cancelled.

    Attributes:
        idempotency_key: `{workflow_id}/recycle`; the transition is recorded once per key.
        contact_id: The lead.
        reason: Why it is recycled (the transition's cause, and the tasks' cancellation note).
        recycled_at: When.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=280)]
    contact_id: ContactId
    reason: Reason
    recycled_at: InUtc


class RecycleResult(BaseModel):
    """What recycling changed.

    Attributes:
        recorded: False when the transition was recorded before (a retry).
        owner_id: The lead's owner, kept (None: it had none).
        cancelled_tasks: Ids of the sales-queue tasks this call cancelled.
    """

    model_config = ConfigDict(frozen=True)

    recorded: bool
    owner_id: str | None
    cancelled_tasks: list[int]


class RecycledReview(BaseModel):
    """Open the periodic review task of a recycled lead, for its owner or the sales queue.

    Attributes:
        idempotency_key: `{workflow_id}/review-{n}`; one task per key.
        contact_id: The lead.
        reason: Why it was recycled.
        recycled_at: When.
        review: Which review this is (1, 2…), and `of` how many are planned.
        of: How many reviews the journey makes.
        due_at: When the review should be done.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=280)]
    contact_id: ContactId
    reason: Reason
    recycled_at: InUtc
    review: int
    of: int
    due_at: InUtc
