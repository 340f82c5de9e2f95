"""Requests and results exchanged between journeys and the CRM activities."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.events import InUtc
from models.ids import ContactId

CHURN_RISK_TAG = "stage_churn-risk"
"""Tag of a contact at risk of churning (seed convention `stage_…`): its usage dropped, or its
renewal date passed without renewal. `renewed` or a usage recovery clears it."""


class CrmTaskKind(StrEnum):
    """What a CRM task is about."""

    RENEWAL_FOLLOW_UP = "renewal_follow_up"
    RENEWAL_ESCALATION = "renewal_escalation"
    LEAD_FOLLOW_UP = "lead_follow_up"
    LEAD_CALL = "lead_call"
    LEAD_CHECKLIST = "lead_checklist"
    SLA_ESCALATION = "sla_escalation"
    CHURN_RISK = "churn_risk"
    ONBOARDING_STALLED = "onboarding_stalled"
    RECYCLED_REVIEW = "recycled_review"
    FIRST_PURCHASE_CALL = "first_purchase_call"


class AssigneeRole(StrEnum):
    """Who a task is for, by role (who holds the role is the CRM's business)."""

    ACCOUNT_OWNER = "account_owner"
    ACCOUNT_OWNER_MANAGER = "account_owner_manager"
    SALES_REP = "sales_rep"
    SALES_MANAGER = "sales_manager"
    CUSTOMER_SUCCESS = "customer_success"


class TaskPriority(StrEnum):
    """How urgent a task is."""

    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class CrmTaskRequest(BaseModel):
    """Ask the CRM to open a task for a person on the account team.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; the same key opens one task, ever.
        contact_id: The contact the task is about.
        kind: What the task is about.
        assignee_role: Who should do it.
        assignee_id: The person, when known (the lead's owner, their manager).
        title: One line, what to do.
        details: The context the assignee needs.
        due_at: When it should be done.
        priority: Normal or high.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    contact_id: ContactId
    kind: CrmTaskKind
    assignee_role: AssigneeRole
    assignee_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    details: Annotated[str, StringConstraints(max_length=2000)] = ""
    due_at: InUtc
    priority: TaskPriority = TaskPriority.NORMAL


class CrmTaskResult(BaseModel):
    """The task a request opened (or had already opened).

    Attributes:
        task_id: Id of the task in the CRM.
        created: False when a task with the same idempotency key existed already.
    """

    model_config = ConfigDict(frozen=True)

    task_id: int
    created: bool


class ChurnRiskRequest(BaseModel):
    """Mark a contact as a churn risk (its usage dropped, or its renewal lapsed).

    Attributes:
        contact_id: The contact to mark.
        subscription_id: The subscription that lapsed, if that is the cause (for the log).
    """

    model_config = ConfigDict(frozen=True)

    contact_id: ContactId
    subscription_id: str | None = None


class ChurnRiskResult(BaseModel):
    """What marking the contact changed.

    Attributes:
        tagged: False when the contact already had the churn-risk tag.
    """

    model_config = ConfigDict(frozen=True)

    tagged: bool


class AccountAlert(BaseModel):
    """Alert the contact's account owner (or the customer-success queue): a task and a
    notification, with the context the journey gives.

    Attributes:
        idempotency_key: `{workflow_id}/{step}`; one task and one notification per key.
        contact_id: The contact it is about.
        kind: What the task is about.
        title: One line, what to do.
        lines: The journey's context (what happened, what the contact did not do).
        due_at: When the task should be done.
        priority: How urgent it is.
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    contact_id: ContactId
    kind: CrmTaskKind
    title: Annotated[str, StringConstraints(min_length=1, max_length=150)]
    lines: list[Annotated[str, StringConstraints(max_length=300)]] = Field(max_length=20)
    due_at: InUtc
    priority: TaskPriority = TaskPriority.NORMAL
