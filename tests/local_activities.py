"""Local activities as a workflow's history records them: markers, not scheduled activities."""

from __future__ import annotations

import json
from collections.abc import Iterable

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

LOCAL_ACTIVITY_MARKER = "core_local_activity"
"""The marker a local activity leaves in the history (name given by the SDK's core)."""


def is_local_activity(event: HistoryEvent) -> bool:
    """Whether `event` is the marker of a local activity."""
    return (
        event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
    )


def local_activity_types(events: Iterable[HistoryEvent]) -> list[str]:
    """The activity type of each local activity in `events`, in order (from the marker's data,
    which the SDK's core writes as plain JSON)."""
    return [
        json.loads(event.marker_recorded_event_attributes.details["data"].payloads[0].data)[
            "activity_type"
        ]
        for event in events
        if is_local_activity(event)
    ]
