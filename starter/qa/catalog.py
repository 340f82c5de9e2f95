"""Which journeys exist and which messages they send, for the QA commands.

Journeys come from the catalogue (`workflows/catalog.py`), their messages from
their plans (`Journey.message_steps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.messages import Channel
from starter.services.operations import NotFound, journey_type

if TYPE_CHECKING:
    from workflows.toolkit import Journey


class UnknownStep(NotFound):
    """The journey sends no message at that step; the message lists the ones it sends."""


@dataclass(frozen=True)
class MessageStep:
    """A step of a journey's plan that sends a message.

    Attributes:
        id: Step id, e.g. `day0` (the `utm_content` of its links).
        template: Template name, e.g. `welcome-series/day0`.
        channel: Email or SMS.
    """

    id: str
    template: str
    channel: Channel


def journey_class(name: str) -> type[Journey]:
    """The journey called `name` (imports its file only).

    Raises:
        NotFound: naming the journeys that exist.
    """
    return journey_type(name)


def message_steps(journey: type[Journey]) -> list[MessageStep]:
    """The messages of `journey`, in plan order (`Journey.message_steps`); a step that is an
    experiment's message once per arm's template (`day0`, `day0@b`)."""
    return [
        MessageStep(id=step.id, template=template, channel=step.channel)
        for step in journey.message_steps()
        if step.template and step.channel
        for template in journey.step_templates(step)
    ]


def step_messages(journey: type[Journey], name: str) -> list[MessageStep]:
    """The messages of step `name` (each arm's, for an experiment's message), or the one
    arm's message its template names (`day0@b`).

    Raises:
        UnknownStep: naming the steps that send a message.
    """
    steps = message_steps(journey)
    found = [step for step in steps if name in (step.id, step.template.rsplit("/", 1)[-1])]
    if not found:
        known = ", ".join(dict.fromkeys(step.id for step in steps)) or "none"
        raise UnknownStep(f"{journey.name} sends no message at step {name!r}; steps: {known}")
    return found


def message_step(journey: type[Journey], name: str) -> MessageStep:
    """The message of step `name` (control's, for an experiment's message), or the arm's
    message its template names (`day0@b`).

    Raises:
        UnknownStep: naming the steps that send a message.
    """
    return step_messages(journey, name)[0]
