"""What the Temporal UI shows of a journey: current details (markdown) and search attributes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from workflows.toolkit.plan import PlanStep

with workflow.unsafe.imports_passed_through():
    from models import search_attributes
    from models.journeys import JourneyStatus
    from models.messages import DeliveryStatus, SendResult


def render_details(
    *,
    title: str,
    contact_id: str,
    status: JourneyStatus,
    step: str,
    exit_reason: str | None,
    next_step: PlanStep | None,
    next_wake_at: datetime | None,
    plan: tuple[PlanStep, ...],
    results: Mapping[str, SendResult],
    actions: Mapping[str, datetime],
) -> str:
    """The current details: the status line, what comes next, and every step with a mark."""
    lines = [f"**{title}** · contact `{contact_id}` · {status}", ""]
    if status == JourneyStatus.EXITED:
        lines.append(f"Exited at step `{step}`: **{exit_reason}**")
    elif next_wake_at is not None:
        upcoming = next_step.label if next_step else "next step"
        lines.append(f"Next: **{upcoming}** at {next_wake_at:%Y-%m-%d %H:%M:%S} UTC")
    lines.append("")
    for planned in plan:
        result = results.get(planned.id)
        if result is not None:
            mark = "✅" if result.status == DeliveryStatus.SENT else "⚠️"
            lines.append(f"- {mark} {planned.label} ({result.status})")
        elif planned.id in actions:
            lines.append(f"- ✅ {planned.label} (done)")
        elif planned == next_step:
            lines.append(f"- ⏳ {planned.label} (next)")
        else:
            lines.append(f"- ▫️ {planned.label}")
    return "\n".join(lines)


def identity_attributes(
    contact_id: str, journey: str, step: str
) -> list[SearchAttributeUpdate[str]]:
    """The search attributes set when a run starts: contact, journey and step."""
    return [
        search_attributes.CONTACT_ID.value_set(contact_id),
        search_attributes.JOURNEY.value_set(journey),
        search_attributes.JOURNEY_STEP.value_set(step),
    ]


def step_attribute(step: str) -> list[SearchAttributeUpdate[str]]:
    """The search attribute set when a step begins."""
    return [search_attributes.JOURNEY_STEP.value_set(step)]
