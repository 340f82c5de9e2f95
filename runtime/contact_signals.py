"""Signalling a contact's workflow (`contact-{id}`), starting it if needed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle

from models.contact_workflow import ContactInput, ContactState
from models.policy import SECONDS_PER_DAY

CONTACT_WORKFLOW = "contact"


def contact_workflow_id(contact_id: str) -> str:
    """`contact-{contact_id}`."""
    return f"{CONTACT_WORKFLOW}-{contact_id}"


async def signal_contact(
    client: Client,
    contact_id: str,
    signal: str,
    arg: BaseModel,
    *,
    task_queue: str,
    day_seconds: int = SECONDS_PER_DAY,
) -> WorkflowHandle[Any, Any]:
    """Signal `contact-{contact_id}`, starting it if needed (signal-with-start).

    Returns once Temporal has accepted the signal: from then on it is durable. The
    handle's result is the workflow's `ContactState`.
    `day_seconds` is the clock of the journeys a new contact workflow starts.
    """
    return await client.start_workflow(
        CONTACT_WORKFLOW,
        ContactInput(contact_id=contact_id, day_seconds=day_seconds),
        id=contact_workflow_id(contact_id),
        task_queue=task_queue,
        result_type=ContactState,
        start_signal=signal,
        start_signal_args=[arg],
        static_summary=f"Contact {contact_id}: events, lead score, journeys",
    )
