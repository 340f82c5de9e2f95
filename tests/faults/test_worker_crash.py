"""A worker killed with SIGKILL in the middle of a burst of sends: nothing lost, nothing twice.

The email API delivers each Day-0 email at once but holds its answer back, so
when the worker is killed every Day-0 email is out and none is recorded as
sent. Temporal retries those sends once their start-to-close timeout has
passed, on the restarted worker or on a second worker of the same task queue;
the message log finds them `pending` and the API's idempotency key stops a
second delivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from models.settings import Settings
from tests.faults.email_api import EmailApi, Fault
from tests.faults.fleet import (
    add_contacts,
    assert_each_email_delivered_once,
    enroll_all,
    fleet,
    sent_count,
    wait_for_journeys,
)
from tests.faults.stack import DevServer, WorkerProcess

SLOW_ANSWER = Fault(delay=3.0)
"""Delivered at once, answered 3 s later (within the worker's provider timeout)."""


@pytest.mark.parametrize("recovery", ["worker restarted", "second worker takes over"])
async def test_worker_killed_mid_burst_loses_nothing_and_sends_nothing_twice(
    recovery: str,
    dev_server: DevServer,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    contacts = fleet(16)
    await add_contacts(engine, contacts)
    workers = ["first", "second"] if recovery == "second worker takes over" else ["first"]
    first, *others = [worker_process(name, PROVIDER_TIMEOUT_SECONDS="10") for name in workers]
    for worker in (first, *others):
        await worker.start()
    email_api.fail_next(len(contacts), SLOW_ANSWER)

    await enroll_all(dev_server.client, engine, contacts, task_queue=settings.task_queue)
    async with asyncio.timeout(60):
        while len(email_api.deliveries) < len(contacts):
            await asyncio.sleep(0.05)
    first.kill()
    await first.wait_killed()
    assert await sent_count(engine) < len(contacts), "the kill came after the burst"
    if not others:
        await first.start()

    await wait_for_journeys(dev_server.client, contacts, within=300)
    await assert_each_email_delivered_once(engine, email_api, contacts)
    assert len(email_api.requests) > len(email_api.deliveries), "no send was retried after the kill"
