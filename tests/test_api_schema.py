"""Property-based tests of the gateway against its own OpenAPI schema (schemathesis).

Schemathesis generates requests for every operation from `/openapi.json`,
valid and invalid, with the full-access key, and checks that none gets a 5xx:
whatever it sends is either served or refused with a 4xx that says why. (The
schemathesis pytest plugin's lazy fixtures do not run on pytest 9.2, so the
operations are driven through hypothesis here.)

`make test` runs a fixed (derandomized) set of examples, so CI is repeatable;
`API_FUZZ_RANDOM=1 API_FUZZ_EXAMPLES=300 .venv/bin/pytest tests/test_api_schema.py`
explores further.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from models.settings import Settings
from tests.gateway import FULL_KEY, GatewayThread, gateway_settings


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("schema")
    settings = Settings(
        database_url=f"sqlite:///{data / 'journeys.db'}",
        outbox_dir=data / "outbox",
        task_queue=f"schema-{uuid.uuid4()}",
        quiet_hours_start=time(0, 0),
        quiet_hours_end=time(0, 0),
        api_erasure_wait_seconds=1,
    )
    with GatewayThread(gateway_settings(settings)) as url:
        yield url


def test_no_request_makes_the_gateway_fail(gateway_url: str) -> None:
    """Every operation of the schema, 40 generated requests each (by default): no 5xx."""
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12, [operation.label for operation in operations]
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=int(os.environ.get("API_FUZZ_EXAMPLES", "40")),
            derandomize=os.environ.get("API_FUZZ_RANDOM") != "1",
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def requests_are_served_or_refused(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {FULL_KEY}"}, checks=[not_a_server_error]
            )

        try:
            requests_are_served_or_refused()
        except Exception as failure:  # collected: one report for every operation
            failures[operation.label] = str(failure)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
