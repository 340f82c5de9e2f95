"""Triggers: the behaviour event that starts a journey, declared on the journey itself.

A journey started by an event says so in its class::

    trigger = Trigger("renewal_scheduled", input_from=renewal_input)
    trigger = Trigger.on_segment("hot-pricing-visitors")   # on entering a segment

`input_from` turns the event and the contact's journey clock (`day_seconds`)
into the journey's input, or None when this event does not start the journey
(recycling: a disqualification for a reason that does not recycle the lead);
by default the input is the contact id and the clock. The contact workflow
starts the journey when the event arrives (see `workflows/contact.py`); the
table it uses, event type → journey, is built from the journeys
(`workflows.catalog.triggers`), and one event type starts at most one journey.
Events are also forwarded to every journey concerned by their type
(`Journey.concerned_by`); the contact workflow does that, not the triggers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pydantic import ValidationError
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.events import SEGMENT_ENTERED, BehaviorEvent
    from models.journeys import JourneyInput


def contact_and_clock(event: BehaviorEvent, day_seconds: int) -> JourneyInput:
    """The default input of a triggered journey: the event's contact and the contact's clock."""
    return JourneyInput(contact_id=event.contact_id, day_seconds=day_seconds)


@dataclass(frozen=True)
class Trigger:
    """An event type that starts a journey.

    Attributes:
        event_type: The event that starts it.
        input_from: Builds the journey's input from the event and the contact's
            journey clock; returns None when the event does not start the
            journey (by rule, quietly); raises `ValidationError` when the event
            lacks what the journey needs (logged; the event is still scored).
        journey: The journey started; filled in by the trigger table from the
            journey that declares the trigger.
        segment: For `Trigger.on_segment`: the segment whose entering starts it.
    """

    event_type: str
    input_from: Callable[[BehaviorEvent, int], JourneyInput | None] = contact_and_clock
    journey: str = ""
    segment: str | None = None

    @classmethod
    def on_segment(
        cls,
        segment: str,
        input_from: Callable[[BehaviorEvent, int], JourneyInput | None] = contact_and_clock,
    ) -> Trigger:
        """Start the journey when a contact enters `segment` (its `segment_entered` event)."""
        return cls(SEGMENT_ENTERED, input_from, segment=segment)

    @property
    def key(self) -> str:
        """What the trigger table knows it by: the event type, and the segment if any."""
        return f"{self.event_type}:{self.segment}" if self.segment else self.event_type

    def input_for(self, event: BehaviorEvent, day_seconds: int) -> JourneyInput | None:
        """The journey's input, or None when the event does not start it (logged when it
        cannot: its properties lack what the journey needs)."""
        try:
            return self.input_from(event, day_seconds)
        except ValidationError as error:
            workflow.logger.warning(
                "%s %s cannot start %s: %s",
                event.type,
                event.event_id,
                self.journey,
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()),
            )
            return None


class TriggerClash(ValueError):
    """Two journeys declare the same trigger event."""


def trigger_table(declared: Iterable[tuple[str, Trigger]]) -> dict[str, Trigger]:
    """Triggers by `Trigger.key`, each naming its journey, from (journey, trigger) pairs.

    Raises:
        TriggerClash: two journeys are started by one event type (or one segment).
    """
    table: dict[str, Trigger] = {}
    for journey, trigger in declared:
        other = table.get(trigger.key)
        if other is not None:
            raise TriggerClash(
                f"{other.journey} and {journey} are both triggered by {trigger.key!r}; "
                "an event type starts one journey: change the trigger of one of them"
            )
        table[trigger.key] = replace(trigger, journey=journey)
    return table


def trigger_key(event: BehaviorEvent) -> str:
    """The trigger-table key of an event: its type (with the segment, for a segment entry)."""
    segment = event.properties.get("segment") if event.type == SEGMENT_ENTERED else None
    return f"{event.type}:{segment}" if isinstance(segment, str) else event.type
