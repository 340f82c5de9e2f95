"""Breaking the production topology mid-burst: nothing lost, nothing sent twice.

A fleet of contacts runs the welcome series and the nurture (9 emails each, on a
one-second journey day) on two `journeys worker` processes against the session's
cluster, which has two history hosts sharing its shards. The email API delivers
the first burst at once but answers slowly, so each fault lands while sends are
in flight. Then one of:

* a worker is killed with SIGKILL: the other one takes its work over;
* a history host is killed with SIGKILL: the other host takes its shards over
  (it is started again at the end, for the next tests);
* PostgreSQL, which holds Temporal's state and the app's, restarts.

Every journey must complete, with each email delivered exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.settings import Settings
from tests.cluster.conftest import LocalCluster
from tests.faults.email_api import EmailApi, Fault
from tests.faults.fleet import (
    add_contacts,
    assert_each_email_delivered_once,
    enroll_all,
    fleet,
    wait_for_journeys,
)
from tests.faults.stack import WorkerProcess

FLEET = 24
SLOW_ANSWER = Fault(delay=3.0)
"""Delivered at once, answered 3 s later (within the workers' provider timeout)."""
DOWN_SECONDS = 5.0
"""How long PostgreSQL stays down."""


async def _kill_a_worker(cluster: LocalCluster, workers: list[WorkerProcess]) -> None:
    workers[0].kill()
    await workers[0].wait_killed()


async def _kill_a_history_host(cluster: LocalCluster, workers: list[WorkerProcess]) -> None:
    cluster.temporal.kill("history-2")


async def _restart_postgres(cluster: LocalCluster, workers: list[WorkerProcess]) -> None:
    await asyncio.to_thread(cluster.postgres.stop)
    await asyncio.sleep(DOWN_SECONDS)
    await asyncio.to_thread(cluster.postgres.start)


FAULTS: dict[str, Callable[[LocalCluster, list[WorkerProcess]], Awaitable[None]]] = {
    "worker": _kill_a_worker,
    "history": _kill_a_history_host,
    "postgres": _restart_postgres,
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_fault_mid_burst_loses_nothing_and_sends_nothing_twice(
    fault: str,
    cluster: LocalCluster,
    client: Client,
    settings: Settings,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_process: Callable[..., WorkerProcess],
) -> None:
    contacts = fleet(FLEET, prefix=f"{fault}-")
    await add_contacts(engine, contacts)
    workers = [worker_process(name, PROVIDER_TIMEOUT_SECONDS="10") for name in ("a", "b")]
    for worker in workers:
        await worker.start()
    email_api.fail_next(len(contacts), SLOW_ANSWER)

    await enroll_all(client, engine, contacts, task_queue=settings.task_queue)
    async with asyncio.timeout(120):
        while len(email_api.deliveries) < len(contacts):
            await asyncio.sleep(0.05)
    try:
        await FAULTS[fault](cluster, workers)
        await wait_for_journeys(client, contacts, within=420)
    finally:
        cluster.temporal.start()  # a killed history host comes back for the next tests
    await assert_each_email_delivered_once(engine, email_api, contacts)
    if fault == "worker":
        assert len(email_api.requests) > len(email_api.deliveries), "no send was retried"
