"""The email API fails in every way a real one does, then recovers: each email goes out once.

In order, for the requests of the first burst: HTTP 500s, then 429s asking to
come back in `RETRY_AFTER` seconds, then answers slower than the worker's
provider timeout (the API delivered, the worker does not know it). The sends
are retried by Temporal with the same idempotency key until the API answers.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from models.settings import Settings
from tests.faults.conftest import PROVIDER_TIMEOUT_SECONDS
from tests.faults.email_api import EmailApi, Fault
from tests.faults.fleet import (
    add_contacts,
    assert_each_email_delivered_once,
    enroll_all,
    fleet,
    wait_for_journeys,
)
from tests.faults.stack import DevServer, WorkerProcess

RETRY_AFTER = 5
"""Longer than the send retry policy's first intervals, so honouring it shows."""


async def test_email_api_errors_rate_limits_and_timeouts_then_recovery(
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    contacts = fleet(10)
    await add_contacts(engine, contacts)
    email_api.fail_next(len(contacts), Fault(status=500))
    email_api.fail_next(len(contacts), Fault(status=429, retry_after=RETRY_AFTER))
    email_api.fail_next(len(contacts), Fault(delay=PROVIDER_TIMEOUT_SECONDS + 1.5))
    await worker_process("worker").start()

    await enroll_all(dev_server.client, engine, contacts, task_queue=settings.task_queue)
    await wait_for_journeys(dev_server.client, contacts, within=300)

    assert email_api.faults_pending == 0
    await assert_each_email_delivered_once(engine, email_api, contacts)
    late = {r.key for r in email_api.requests if r.fault is not None and r.fault.delay}
    assert late, "no answer came after the timeout"
    for index, request in enumerate(email_api.requests):
        if request.fault is not None and request.fault.status == 429:
            retry = next(r for r in email_api.requests[index + 1 :] if r.key == request.key)
            assert retry.at - request.at >= RETRY_AFTER - 0.1, "Retry-After was not honoured"
