"""The answer to an SMS keyword (STOP, START, HELP): one service text, sent once.

The gateway's SMS webhook applies the keyword (suppression, consent) and
starts this workflow with an id derived from the inbound message id, so a
redelivered webhook finds it and nothing is sent twice; the send activity's
idempotency key does the same for its retries. Temporal owns the retries: the
webhook is answered as soon as the answer is durable, not when it is sent.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.toolkit import activity_classes
from workflows.toolkit.retries import REPLY_RETRY_POLICY, SEND_TIMEOUT

with workflow.unsafe.imports_passed_through():
    from models.messages import SendResult, ServiceSms


@workflow.defn(name="sms-keyword-reply")
class SmsKeywordReply:
    """Send the service reply to one inbound keyword."""

    @workflow.run
    async def run(self, reply: ServiceSms) -> SendResult:
        """Send it (at most once) and return what happened."""
        workflow.set_current_details(f"Answer to an SMS keyword: `{reply.template}`")
        return await workflow.execute_activity_method(
            activity_classes.messaging().send_service_sms,
            reply,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=REPLY_RETRY_POLICY,
            summary=f"Send SMS {reply.template}",
        )
