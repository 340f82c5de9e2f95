"""The population a cluster test runs, sent in through the real gateway.

Every contact signs up (`subscribed`: the welcome series, 5 emails, then the
weekly nurture, 4) and visits the pricing page (`pricing_page_viewed`: the
pricing follow-up's email; no SMS without SMS consent) on a one-second
journey day: 10 emails each, in bursts. The events go through `journeys api`
in batches, as a backend service sends them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import httpx

from starter.dev.ports import free_port
from starter.dev.processes import ServiceProcess
from tests.cli import JOURNEYS
from tests.faults.fleet import EXPECTED_STEPS

STEPS = (*EXPECTED_STEPS, ("pricing-abandon", "email"))
"""(journey, step) of every email a contact of the population gets."""
API_KEY = "cluster-tests-gateway-key-0123456789"
BATCH = 100
"""Events per `POST /v1/events`."""


class Gateway:
    """A `journeys api` process on a free loopback port; `async with` starts and stops it."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ServiceProcess(
            "journeys-api",
            [str(JOURNEYS), "api", "--port", str(self.port)],
            log_path=directory / "journeys-api.log",
            env={**env, "API_KEYS": json.dumps([{"name": "tests", "key": API_KEY}])},
        )
        self._http = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        )

    async def __aenter__(self) -> Gateway:
        self.process.start()
        async with asyncio.timeout(90):
            while True:
                assert self.process.running, f"the gateway exited:\n{self.process.tail()}"
                try:
                    if (await self._http.get("/readyz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.3)

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()
        self.process.stop()

    async def send_events(self, event_type: str, contact_ids: list[str]) -> None:
        """Post one `event_type` event per contact, in batches; every one must be taken."""
        ids = iter(contact_ids)
        while batch := list(itertools.islice(ids, BATCH)):
            answer = await self._http.post(
                "/v1/events",
                json={
                    "events": [
                        {"event_id": f"{event_type}-{contact}", "contact_id": contact,
                         "type": event_type}
                        for contact in batch
                    ]
                },
            )  # fmt: skip
            assert answer.status_code == 202, answer.text
