"""The journey's inbox: the behaviour events it received, without duplicates.

It remembers the last `REMEMBERED_EVENT_IDS` event ids to drop duplicates and
the last `REMEMBERED_EVENTS` events for `received` (so an event that arrived
before a wait began still counts). Pure: no workflow calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.events import MAX_EVENTS_PAYLOAD_BYTES, BehaviorEvent, json_size

REMEMBERED_EVENT_IDS = 1_000
"""How many recent event ids a journey remembers to drop duplicates."""
REMEMBERED_EVENTS = 200
"""How many recent events a journey keeps for `wait_for` (bounded history)."""


class Inbox:
    """The events a journey received, deduplicated by `event_id`."""

    def __init__(self) -> None:
        """An empty inbox."""
        self._recent_ids: deque[str] = deque(maxlen=REMEMBERED_EVENT_IDS)
        self._events: deque[BehaviorEvent] = deque(maxlen=REMEMBERED_EVENTS)

    def add(self, event: BehaviorEvent) -> bool:
        """Keep `event`; False (and nothing kept) if its id was seen before."""
        if event.event_id in self._recent_ids:
            return False
        self._recent_ids.append(event.event_id)
        self._events.append(event)
        return True

    def received(self, event_types: Collection[str]) -> BehaviorEvent | None:
        """The first event of one of `event_types` received, if any."""
        return next((event for event in self._events if event.type in event_types), None)

    @property
    def events(self) -> tuple[BehaviorEvent, ...]:
        """The events kept, oldest first."""
        return tuple(self._events)

    @property
    def recent_ids(self) -> list[str]:
        """The event ids remembered, oldest first."""
        return list(self._recent_ids)

    def restore(self, recent_ids: Iterable[str], events: Iterable[BehaviorEvent]) -> None:
        """Take over the ids and events carried from the previous run."""
        self._recent_ids.extend(recent_ids)
        self._events.extend(events)

    def carried(self, bounded: Callable[[], bool]) -> list[BehaviorEvent]:
        """The newest events that fit in `MAX_EVENTS_PAYLOAD_BYTES` (usually all).

        Args:
            bounded: Asked only when they do not all fit: whether to drop the
                oldest (False for runs from before the bound, to replay them).
        """
        kept: list[BehaviorEvent] = []
        size = 0
        for event in reversed(self._events):
            size += json_size(event)
            if size > MAX_EVENTS_PAYLOAD_BYTES and bounded():
                break
            kept.append(event)
        return kept[::-1]
