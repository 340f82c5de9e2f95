"""The payload codec's cost: a payload through the product's data converter, with and without it.

Two payloads the workers exchange with Temporal all the time, each converted
to a payload and back (`DataConverter.encode` then `decode`) in the context of
a contact's workflow, as the worker and client do:

- a `SendRequest` (the send activity's input, once per message);
- an `IngestRequest` of `EVENT_BATCH` behaviour events with a few properties
  each (the contact workflow's ingest activity input).

The peer baseline has no counterpart here (it exchanges other payloads, with the SDK's
default converter and no codec): its column is empty.

"With" is the product's converter (`runtime.codec.encrypting_data_converter`,
AES-256-GCM with the contact's data key, from the benchmark's journeys
database and then from the key store's cache, as in a worker); "without" is
the same pydantic converter with no codec. The figures are the median of
`Sizes.roundtrips` round trips (after as many warm-up ones) and the payload's
stored size.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, WorkflowSerializationContext

from bench.report import Figure
from bench.stack import Stack
from models.contact_workflow import IngestRequest
from models.events import BehaviorEvent
from models.messages import SendRequest

CONTACT_ID = "bench-codec-ada"
EVENT_BATCH = 20
"""Events in the ingested batch."""


@dataclass(frozen=True)
class Sample:
    """A payload kind to convert.

    Attributes:
        key: Stable id part, e.g. `send_request`.
        label: What it is, e.g. `a SendRequest`.
        value: The value converted.
        workflow_id: The workflow it belongs to (which data key encrypts it).
    """

    key: str
    label: str
    value: Any
    workflow_id: str


def samples() -> list[Sample]:
    """The two payloads measured (module docstring)."""
    send = SendRequest(
        idempotency_key=f"welcome-series-{CONTACT_ID}/day1",
        contact_id=CONTACT_ID,
        journey="welcome-series",
        step="day1",
        template="welcome-series/day1",
    )
    now = datetime.now(UTC)
    events = [
        BehaviorEvent(
            event_id=f"{CONTACT_ID}-evt-{number}",
            contact_id=CONTACT_ID,
            type="pricing_page_viewed",
            occurred_at=now,
            properties={"plan": "pro", "utm_source": "newsletter", "path": "/pricing#annual"},
        )
        for number in range(EVENT_BATCH)
    ]
    batch = IngestRequest(batch_key="run-1/7", contact_id=CONTACT_ID, events=events)
    return [
        Sample("send_request", "a SendRequest", send, f"welcome-series-{CONTACT_ID}"),
        Sample(
            "event_batch",
            f"a batch of {EVENT_BATCH} events",
            batch,
            f"contact-{CONTACT_ID}",
        ),
    ]


async def _round_trips(converter: DataConverter, value: Any, count: int) -> list[float]:
    """Seconds of each of `count` encode + decode round trips of `value`."""
    durations = []
    for _ in range(count):
        began = time.perf_counter()
        payloads = await converter.encode([value])
        [back] = await converter.decode(payloads, [type(value)])
        durations.append(time.perf_counter() - began)
        assert back == value
    return durations


async def _median_us(converter: DataConverter, value: Any, count: int) -> float:
    await _round_trips(converter, value, count)  # warm-up: the data key, caches, imports
    return statistics.median(await _round_trips(converter, value, count)) * 1e6


def _stored_bytes(payloads: Sequence[Payload]) -> int:
    return sum(payload.ByteSize() for payload in payloads)


async def codec_cost(stack: Stack, roundtrips: int) -> list[Figure]:
    """Per payload: round-trip time and stored size, with the codec and without."""
    figures = []
    for sample in samples():
        context = WorkflowSerializationContext(namespace="default", workflow_id=sample.workflow_id)
        encrypting = stack.client.data_converter.with_context(context)
        plain = pydantic_data_converter.with_context(context)
        with_codec = await _median_us(encrypting, sample.value, roundtrips)
        without = await _median_us(plain, sample.value, roundtrips)
        figures += [
            Figure(
                f"codec_roundtrip_{sample.key}",
                f"Encode + decode of {sample.label}, with the codec (bare: without)",
                "µs",
                with_codec,
                None,
                without,
                note=f"Median of {roundtrips:,} round trips (`DataConverter.encode` then "
                "`decode`, in the context of the contact's workflow) through the product's "
                "data converter, AES-256-GCM with the contact's data key (cached, as in a "
                "worker). Bare: the same pydantic converter without the codec.",
                details={"roundtrips": roundtrips},
            ),
            Figure(
                f"codec_bytes_{sample.key}",
                f"Stored size of {sample.label}, with the codec (bare: without)",
                "bytes",
                _stored_bytes(await encrypting.encode([sample.value])),
                None,
                _stored_bytes(await plain.encode([sample.value])),
                note="The payload as Temporal stores it (metadata and data), with the codec "
                "(nonce, tag, key id) and without.",
            ),
        ]
    return figures
