"""The baseline's worker as a process of its own, like the product's (`python -m worker`).

`python -m bench.worker_process --address HOST:PORT --task-queue Q --metrics HOST:PORT`
polls `Q` with `bench.baseline.bare_worker` and serves the SDK's Prometheus
metrics at `http://HOST:PORT/metrics` until it is killed (SIGTERM). It imports
nothing of the product, so its memory is the SDK's and the bare workflow's; nor
does it encrypt (no payload codec: the driver talks to it through
`Stack.bare_client`, also without).
"""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from bench.baseline import bare_worker


async def serve(*, address: str, task_queue: str, metrics: str) -> None:
    """Run the bare worker until the process is killed."""
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics)))
    client = await Client.connect(address, data_converter=pydantic_data_converter, runtime=runtime)
    async with bare_worker(client, task_queue):
        await asyncio.Event().wait()


def main() -> None:
    """Entry point of `python -m bench.worker_process`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--metrics", required=True, help="host:port of the Prometheus page")
    args = parser.parse_args()
    asyncio.run(serve(address=args.address, task_queue=args.task_queue, metrics=args.metrics))


if __name__ == "__main__":
    main()
