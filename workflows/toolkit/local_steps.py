"""Short database steps run as local activities, and the runs recorded before they were."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

ReturnType = TypeVar("ReturnType")


async def run_step(
    method: Callable[..., Awaitable[ReturnType]],
    *args: Any,
    local: bool,
    timeout: timedelta,
    retry_policy: RetryPolicy,
    summary: str,
) -> ReturnType:
    """Run an activity method: inside the workflow task when `local`, else through the server.

    A local activity saves a round trip through the server; the step must be short and
    idempotent (a workflow task run again runs it again). `local` is the answer of the
    caller's `workflow.patched(...)`, so runs recorded before the step was local replay.
    """
    if local:
        return await workflow.execute_local_activity_method(
            method,
            args=args,
            start_to_close_timeout=timeout,
            retry_policy=retry_policy,
            summary=summary,
        )
    return await workflow.execute_activity_method(
        method,
        args=args,
        start_to_close_timeout=timeout,
        retry_policy=retry_policy,
        summary=summary,
    )
