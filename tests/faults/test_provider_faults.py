"""Postmark fails in every way it documents, then recovers: each email goes out once.

The worker runs the real Postmark adapter (`EMAIL_PROVIDER=postmark`) against the
Postmark fake (`tests/fake_postmark.py`). In order, for the requests of the first
burst: HTTP 500s, then 429s asking to come back in `RETRY_AFTER` seconds, then
answers slower than the worker's provider timeout (maintenance, 503, nothing
delivered). Temporal retries the sends until Postmark takes them.

Postmark has no idempotency key, so an answer lost after it *took* the message
would send it twice (the README says so); that case is the generic JSON API's,
whose `Idempotency-Key` stops the second copy (`test_worker_crash.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.settings import Settings
from tests.fake_api import Fault
from tests.fake_postmark import PostmarkApi
from tests.faults.fixtures import PROVIDER_TIMEOUT_SECONDS
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


@pytest.fixture
def email_api() -> Iterator[PostmarkApi]:
    """The Postmark fake, as the workers' email API."""
    with PostmarkApi() as api:
        yield api


async def test_postmark_errors_rate_limits_and_timeouts_then_recovery(
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: PostmarkApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    contacts = fleet(10)
    await add_contacts(engine, contacts)
    email_api.fail_next(len(contacts), Fault(status=500))
    email_api.fail_next(len(contacts), Fault(status=429, retry_after=RETRY_AFTER))
    email_api.fail_next(len(contacts), Fault(status=503, delay=PROVIDER_TIMEOUT_SECONDS + 1.5))
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
