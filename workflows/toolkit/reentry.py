"""The re-entry window: a journey a contact may run again stays open for it, so a new
trigger inside it does not restart the journey."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow


def key_prefix(workflow_id: str, *, reentry: bool, enrolled_at: datetime) -> str:
    """`{workflow_id}`, plus the enrolment time for journeys a contact can re-enter
    (each run's messages get their own idempotency keys)."""
    if not reentry:
        return workflow_id
    return f"{workflow_id}/{enrolled_at:%Y%m%dT%H%M%SZ}"


async def hold_window(remaining: timedelta, *, days: float, released: Callable[[], bool]) -> None:
    """Wait out the `remaining` time of a window of `days`, or until `released()` holds."""
    try:
        await workflow.wait_condition(
            released, timeout=remaining, timeout_summary=f"Re-entry window ({days:g} days)"
        )
    except TimeoutError:
        pass
