"""Sending a journey's message: once, deferred as the messaging policy says, or called off.

The send activity applies the messaging policy right before delivery. When
it defers the message (quiet hours, frequency cap), the journey waits durably
until the time it names and asks again; an `unless` event received meanwhile
calls the message off, and the message log marks it cancelled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.toolkit import activity_classes
from workflows.toolkit.retries import SEND_RETRY_POLICY, SEND_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from models.events import BehaviorEvent
    from models.messages import CancelRequest, DeliveryStatus, SendRequest, SendResult

WaitUntil = Callable[[datetime, str, Callable[[], bool]], Awaitable[None]]
"""Waits (durably, pausable) until a time, with a summary, or until a condition holds."""


class Sender:
    """Sends a journey's messages and remembers those still deferred."""

    def __init__(self) -> None:
        """No message deferred yet."""
        self.deferred_keys: set[str] = set()

    async def deliver(
        self,
        request: SendRequest,
        *,
        called_off: Callable[[], BehaviorEvent | None],
        wait_until: WaitUntil,
    ) -> SendResult:
        """Send `request`, waiting out each deferral, unless `called_off()` names an event.

        Returns:
            What happened; `cancelled` when an event called it off.
        """
        while (event := called_off()) is None:
            result = await send_once(request)
            if result.status != DeliveryStatus.DEFERRED or result.deferred_until is None:
                self.deferred_keys.discard(request.idempotency_key)
                return result
            self.deferred_keys.add(request.idempotency_key)
            summary = f"Deferred {request.template}: {result.reason}"
            await wait_until(result.deferred_until, summary, lambda: called_off() is not None)
        reason = f"called off: {event.type} received"
        await self.cancel_deferred(reason)
        return SendResult(
            status=DeliveryStatus.CANCELLED, idempotency_key=request.idempotency_key, reason=reason
        )

    async def cancel_deferred(self, reason: str) -> None:
        """Mark the messages still deferred as cancelled in the message log."""
        if not self.deferred_keys:
            return
        keys, self.deferred_keys = sorted(self.deferred_keys), set()
        await workflow.execute_activity_method(
            activity_classes.messaging().cancel_messages,
            CancelRequest(idempotency_keys=keys, reason=reason),
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY_POLICY,
            summary=f"Cancel {len(keys)} deferred message(s)",
        )


async def send_once(request: SendRequest) -> SendResult:
    """One send activity (with its retries); a send that keeps failing is a `failed` result."""
    try:
        return await workflow.execute_activity_method(
            activity_classes.messaging().send_message,
            request,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY_POLICY,
            summary=f"Send {request.channel} {request.template}",
        )
    except ActivityError as error:
        reason = str(error.cause or error)
        workflow.logger.warning("send failed for step %s: %s", request.step, reason)
        return SendResult(
            status=DeliveryStatus.FAILED, idempotency_key=request.idempotency_key, reason=reason
        )
