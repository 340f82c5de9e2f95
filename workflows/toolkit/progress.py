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
    arms: Mapping[str, str],
) -> str:
    """The current details: the status line, what comes next, every step with a mark (a
    step that is an experiment's message with the contact's arm), and the arms."""
    lines = [f"**{title}** · contact `{contact_id}` · {status}", ""]
    if status == JourneyStatus.EXITED:
        lines.append(f"Exited at step `{step}`: **{exit_reason}**")
    elif next_wake_at is not None:
        upcoming = next_step.label if next_step else "next step"
        lines.append(f"Next: **{upcoming}** at {next_wake_at:%Y-%m-%d %H:%M:%S} UTC")
    lines.append("")
    for planned in plan:
        label = planned.label + _arm_note(planned, arms)
        result = results.get(planned.id)
        if result is not None:
            mark = "✅" if result.status == DeliveryStatus.SENT else "⚠️"
            lines.append(f"- {mark} {label} ({result.status})")
        elif planned.id in actions:
            lines.append(f"- ✅ {label} (done)")
        elif planned == next_step:
            lines.append(f"- ⏳ {label} (next)")
        else:
            lines.append(f"- ▫️ {label}")
    if arms:
        lines += [
            "",
            "Experiments: " + ", ".join(f"`{name}` arm **{arm}**" for name, arm in arms.items()),
        ]
    return "\n".join(lines)


def _arm_note(step: PlanStep, arms: Mapping[str, str]) -> str:
    """` · A/B welcome-subject: arm b` for an experiment's message step (`not split yet`
    before the contact's arm is known)."""
    if step.experiment is None:
        return ""
    return f" · A/B `{step.experiment}`: " + (
        f"arm **{arms[step.experiment]}**" if step.experiment in arms else "not split yet"
    )


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
