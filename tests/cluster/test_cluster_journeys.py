"""A population runs its journeys on the production topology: a Temporal cluster on
PostgreSQL (four service processes), two `journeys worker` processes and the gateway.

`journeys setup` prepared the cluster (namespace and search attributes) and is
idempotent. 200 contacts sign up and visit the pricing page through the
gateway; every journey completes on the accelerated clock, each email is
delivered exactly once, both workers take part, and visibility queries answer
through `journeys list` and the real `temporal` CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from starter.dev.toolchain import temporal_cli_path
from tests.cli import journeys, run
from tests.cluster.conftest import LocalCluster
from tests.cluster.population import STEPS, Gateway
from tests.faults.email_api import EmailApi
from tests.faults.fleet import (
    add_contacts,
    assert_each_email_delivered_once,
    fleet,
    wait_for_journeys,
)
from tests.faults.stack import WorkerProcess

POPULATION = 200
PREFIX = "pop"
JOURNEY_DAY = {"DAY_SECONDS": "1"}


async def test_journeys_setup_prepared_the_cluster_and_changes_nothing_when_run_again(
    cluster: LocalCluster, worker_env: dict[str, str]
) -> None:
    first = cluster.first_setup.stdout
    assert "namespace default: created" in first
    assert "search attributes: added ContactId, Journey, JourneyStep" in first

    again = await journeys("setup", env=worker_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "namespace default: already exists",
        "search attributes: all registered",
    ]


@pytest.mark.timeout(1200)
async def test_a_population_runs_its_journeys_on_two_workers_each_email_once(
    cluster: LocalCluster,
    client: Client,
    engine: AsyncEngine,
    email_api: EmailApi,
    worker_env: dict[str, str],
    worker_process: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    contacts = fleet(POPULATION, prefix=PREFIX)
    await add_contacts(engine, contacts)
    workers = [worker_process(name) for name in ("worker-a", "worker-b")]
    for worker in workers:
        await worker.start()

    async with Gateway({**worker_env, **JOURNEY_DAY}, tmp_path) as gateway:
        await gateway.send_events("subscribed", contacts)
        await gateway.send_events("pricing_page_viewed", contacts)
        await wait_for_journeys(client, contacts, within=900, steps=STEPS)

    await assert_each_email_delivered_once(engine, email_api, contacts, steps=STEPS)
    for worker in workers:
        assert '"message sent"' in worker.log_path.read_text(), f"{worker.name} sent nothing"

    listed = await journeys(
        "list", "--journey", "pricing-abandon", "--all", "--json", env=worker_env
    )
    assert listed.returncode == 0, listed.stderr
    finished = {row["contact_id"]: row["status"] for row in listed.json()}
    assert {contact: finished.get(contact) for contact in contacts} == dict.fromkeys(
        contacts, "COMPLETED"
    )
    temporal = temporal_cli_path(install=False)
    assert temporal is not None, "make tools builds the Temporal CLI"
    counted = await run(
        str(temporal), "workflow", "count", "--address", cluster.address,
        "--query", f"Journey='welcome-series' AND ContactId STARTS_WITH '{PREFIX}'",
        "--output", "json", env=worker_env,
    )  # fmt: skip
    assert counted.returncode == 0, counted.stderr
    assert int(json.loads(counted.stdout)["count"]) == POPULATION
