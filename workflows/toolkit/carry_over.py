"""Continue-as-new: a journey that waits for months starts a new run with its progress.

The new run replays `steps()`: steps already sent return their recorded
result, actions already run are not run again, waits whose time has passed
return at once and relative waits resume their deadline (`JourneyClock`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from temporalio import workflow

from workflows.toolkit.clock import JourneyClock
from workflows.toolkit.inbox import Inbox

with workflow.unsafe.imports_passed_through():
    from models.journeys import JourneyCarryOver
    from models.messages import SendResult

CARRIED_EVENT_BYTES_PATCH = "carried-events-by-bytes"
"""Runs that carried more than `MAX_EVENTS_PAYLOAD_BYTES` of events over before it was
bounded replay unchanged."""


def carry_over(
    clock: JourneyClock,
    inbox: Inbox,
    results: Mapping[str, SendResult],
    actions: Mapping[str, datetime],
    arms: Mapping[str, str],
) -> JourneyCarryOver:
    """The progress handed to the next run."""
    return JourneyCarryOver(
        enrolled_at=clock.enrolled_at,
        clock_origin=clock.origin,
        paused_at=clock.paused_at,
        results=dict(results),
        actions=dict(actions),
        recent_event_ids=inbox.recent_ids,
        events=inbox.carried(lambda: workflow.patched(CARRIED_EVENT_BYTES_PATCH)),
        waits=clock.waits,
        arms=dict(arms),
    )


def restore(carry: JourneyCarryOver, clock: JourneyClock, inbox: Inbox) -> None:
    """Set the clock and the inbox from the previous run's progress."""
    clock.restore(
        enrolled_at=carry.enrolled_at,
        origin=carry.clock_origin,
        paused_at=carry.paused_at,
        waits=carry.waits,
    )
    inbox.restore(carry.recent_event_ids, carry.events)


def continue_as_new_due(history_limit: int) -> bool:
    """The server suggests it, or the history reached `history_limit` events."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() >= history_limit
