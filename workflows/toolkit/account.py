"""The account team's side of a journey: open a CRM task, flag a customer at churn risk,
alert their owner.

Both run the CRM / sales activity with the CRM retry policy; a failure that
outlasts it is logged and the journey goes on (a task is no reason to stop
the customer's messages).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.toolkit import activity_classes
from workflows.toolkit.retries import CRM_RETRY_POLICY, CRM_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from models.crm import AccountAlert, ChurnRiskRequest, CrmTaskRequest


async def open_crm_task(request: CrmTaskRequest) -> None:
    """Open a task for someone on the account team (once per `request.idempotency_key`)."""
    try:
        await workflow.execute_activity_method(
            activity_classes.crm().create_crm_task,
            request,
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=CRM_RETRY_POLICY,
            summary=f"CRM task for {request.assignee_role}: {request.title}",
        )
    except ActivityError as error:
        workflow.logger.warning(
            "CRM task %s failed: %s", request.idempotency_key, error.cause or error
        )


async def mark_churn_risk(contact_id: str, *, subscription_id: str | None = None) -> None:
    """Tag the contact `stage_churn-risk` (the subscription that lapsed, if that is why)."""
    request = ChurnRiskRequest(contact_id=contact_id, subscription_id=subscription_id)
    try:
        await workflow.execute_activity_method(
            activity_classes.crm().mark_churn_risk,
            request,
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=CRM_RETRY_POLICY,
            summary="Tag the contact stage_churn-risk",
        )
    except ActivityError as error:
        workflow.logger.warning("marking churn risk failed: %s", error.cause or error)


async def alert_account_owner(alert: AccountAlert) -> None:
    """Open a task for the customer's account owner and notify them (`AccountAlert`)."""
    try:
        await workflow.execute_activity_method(
            activity_classes.sales().alert_account_owner,
            alert,
            start_to_close_timeout=CRM_TIMEOUT,
            retry_policy=CRM_RETRY_POLICY,
            summary=f"Task and notification for the account owner: {alert.title}",
        )
    except ActivityError as error:
        workflow.logger.warning("alerting the account owner failed: %s", error.cause or error)
