"""The one home of the retry policies and timeouts of the workflows' activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy


def about_two_hours(*non_retryable: str) -> RetryPolicy:
    """Retries for about two hours (12 attempts, 2 s doubling up to 10 min), then give up.

    Args:
        non_retryable: Error types that are not retried (e.g. `TemplateError`).
    """
    return RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(minutes=10),
        maximum_attempts=12,
        non_retryable_error_types=list(non_retryable),
    )


SEND_TIMEOUT = timedelta(seconds=60)
"""One attempt at sending a message."""
SEND_RETRY_POLICY = about_two_hours("ContactNotFound", "TemplateError")
"""Retries of a send: about two hours of attempts, then the step is recorded as failed."""
REPLY_RETRY_POLICY = about_two_hours("TemplateError")
"""Retries of a service SMS (the answer to a keyword), like a journey's send."""
CRM_TIMEOUT = timedelta(seconds=30)
"""One attempt at a CRM or sales update, or a run-log write."""
CRM_RETRY_POLICY = about_two_hours("ContactNotFound", "UnknownRep")
"""Retries of a CRM or sales update: about two hours of attempts, then the step is logged
as failed."""
SPLIT_TIMEOUT = timedelta(seconds=10)
"""One attempt at assigning an experiment's arm (a short database write, run locally)."""
UNTIL_DONE_TIMEOUT = timedelta(seconds=60)
"""One attempt at a contact activity (ingest, score, erase)."""
UNTIL_DONE_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
"""Retries until it succeeds (1 s doubling up to 5 min): an event must never be lost, a
once-only journey must not start twice, a lead must be routed."""
