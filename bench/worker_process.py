"""A baseline's worker as a process of its own, like the product's (`python -m worker`).

`python -m bench.worker_process --kind bare|peer --address HOST:PORT --task-queue Q
--metrics HOST:PORT` polls `Q` and serves the SDK's Prometheus metrics at
`http://HOST:PORT/metrics` until it is killed (SIGTERM):

- `bare` runs `bench.baseline.bare_worker`; it imports nothing of the product,
  so its memory is the SDK's and the bare workflow's; pydantic payloads.
- `peer` runs the hand-written welcome series (`bench.peer`) and its
  activities, with the SDK's default data converter (what a user writing it
  would have); the activities read the product's settings from the environment.

Neither encrypts (no payload codec: the driver talks to them through
`Stack.bare_client` and `Stack.peer_client`, also without).
"""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

KINDS = ("bare", "peer")


def _worker(kind: str, client: Client, task_queue: str) -> Worker:
    if kind == "bare":
        from bench.baseline import bare_worker

        return bare_worker(client, task_queue)
    from bench.peer import PeerWelcomeSeries
    from bench.peer_activities import route_contact, send_welcome_email

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[PeerWelcomeSeries],
        activities=[send_welcome_email, route_contact],
    )


async def serve(*, kind: str, address: str, task_queue: str, metrics: str) -> None:
    """Run the worker of `kind` until the process is killed."""
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics)))
    converter = pydantic_data_converter if kind == "bare" else DataConverter.default
    client = await Client.connect(address, data_converter=converter, runtime=runtime)
    async with _worker(kind, client, task_queue):
        await asyncio.Event().wait()


def main() -> None:
    """Entry point of `python -m bench.worker_process`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=KINDS, default="bare", help="which baseline")
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--metrics", required=True, help="host:port of the Prometheus page")
    args = parser.parse_args()
    asyncio.run(
        serve(
            kind=args.kind, address=args.address, task_queue=args.task_queue, metrics=args.metrics
        )
    )


if __name__ == "__main__":
    main()
