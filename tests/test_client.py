"""The gateway's client (`starter/client.py`), sync and async.

Against the real gateway (served on loopback, real worker, Temporal dev
server) for what each endpoint answers, and against a scripted HTTP server
(`tests/fake_api.py`) for retries, which the real gateway cannot be made to
need on cue.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import Any, Literal, TypeVar
from uuid import uuid4

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from models.contacts import ConsentUpdate, ContactFields
from models.settings import Settings
from starter.api.schemas import EnrolmentIn, EventIn, EventResult, EventsResponse
from starter.client import (
    ApiError,
    AsyncJourneysClient,
    AuthError,
    ConflictError,
    GoneError,
    JourneysClient,
    NotFoundError,
    UnavailableError,
    ValidationFailed,
    retry_delay,
)
from starter.services.operations import JourneyRun
from tests.fake_api import FakeApi, Reply
from tests.gateway import FULL_KEY, READ_ONLY_KEY, gateway_settings, serving_gateway

T = TypeVar("T")
Flavour = Literal["sync", "async"]
FLAVOURS: list[Flavour] = ["sync", "async"]


def new_contact_id() -> str:
    """A contact id of its own per test: the dev server is shared by the session."""
    return f"cl-{uuid4().hex[:8]}"


def subscriber(contact_id: str) -> ContactFields:
    return ContactFields(
        email=f"{contact_id}@Example.com",
        email_consent=ConsentUpdate(granted=True, source="form:client-test"),
    )


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 30
) -> T:
    """`read()` again until `done` holds for its value (then that value)."""
    async with asyncio.timeout(timeout):
        while not done(value := await read()):
            await asyncio.sleep(0.2)
    return value


# --- against the real gateway ---------------------------------------------------------------


async def test_async_client_drives_a_contact_through_the_gateway(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    contact_id = new_contact_id()
    async with (
        serving_gateway(dev_env.client, gateway_settings(settings)) as gateway,
        AsyncJourneysClient(gateway.url, FULL_KEY) as client,
    ):
        assert await client.health() is True
        assert await client.ready() == {
            "status": "ready",
            "checks": {"database": "ok", "temporal": "ok"},
        }

        contact = await client.upsert_contact(contact_id, subscriber(contact_id), first_name="Ada")
        assert (contact.id, contact.email, contact.first_name) == (
            contact_id,
            f"{contact_id}@example.com",
            "Ada",
        )
        assert contact.email_consent.granted is True
        assert contact.email_consent.source == "form:client-test"

        sent = await client.send_event(contact_id, "webinar_attended", properties={"id": "w1"})
        [result] = sent.results
        assert (sent.accepted, sent.duplicate, result.status) == (1, 0, "accepted")
        assert result.event_id is not None and result.event_id.startswith("evt_")
        assert result.workflow_id == f"contact-{contact_id}"
        again = await client.send_event(
            contact_id, "webinar_attended", event_id=result.event_id, properties={"id": "w1"}
        )
        assert (again.accepted, again.duplicate) == (0, 1)
        assert again.results[0].status == "duplicate"
        with pytest.raises(ConflictError, match="already used for a different event") as reused:
            await client.send_event(
                contact_id, "webinar_attended", event_id=result.event_id, properties={"id": "w2"}
            )
        assert reused.value.status_code == 409

        fetched = await client.get_contact(contact_id)
        assert fetched.model_dump(exclude={"updated_at", "lead_score", "score_breakdown"}) == (
            contact.model_dump(exclude={"updated_at", "lead_score", "score_breakdown"})
        )

        enrolment = await client.enroll(
            contact_id, "welcome-series", options=EnrolmentIn(day_seconds=1)
        )
        workflow_id = f"welcome-series-{contact_id}"
        assert (enrolment.workflow_id, enrolment.journey, enrolment.contact_id) == (
            workflow_id,
            "welcome-series",
            contact_id,
        )
        with pytest.raises(ConflictError) as enrolled_twice:
            await client.enroll(contact_id, "welcome-series")
        assert enrolled_twice.value.status_code == 409
        with pytest.raises(NotFoundError, match="no-such-journey") as unknown:
            await client.enroll(contact_id, "no-such-journey")
        assert unknown.value.status_code == 404

        async def welcome_state() -> str | None:
            runs = {run.workflow_id: run for run in await client.journeys(contact_id)}
            state = runs[workflow_id].state if workflow_id in runs else None
            return state.status if state else None

        paused = await client.pause_journey(contact_id, "welcome-series")
        assert (paused.action, paused.workflow_ids) == ("pause", [workflow_id])
        assert await eventually(welcome_state, lambda status: status == "paused") == "paused"
        resumed = await client.resume_journey(contact_id, "welcome-series")
        assert (resumed.action, resumed.workflow_ids) == ("resume", [workflow_id])
        assert await eventually(welcome_state, lambda status: status == "running") == "running"

        exited = await client.exit_journey(contact_id, "welcome-series", reason="client-test")
        assert (exited.action, exited.workflow_ids) == ("exit", [workflow_id])
        assert await eventually(welcome_state, lambda status: status == "exited") == "exited"

        async def welcome_run() -> list[JourneyRun]:
            return [
                run for run in await client.journeys(contact_id) if run.workflow_id == workflow_id
            ]

        # the run closes once its last activity (the journey-run log) is done
        [run] = await eventually(
            welcome_run, lambda runs: [r.execution_status for r in runs] == ["COMPLETED"]
        )
        assert run.state is not None and run.state.exit_reason == "client-test"
        with pytest.raises(NotFoundError, match="no running welcome-series"):
            await client.exit_journey(contact_id, "welcome-series")


async def test_sync_client_from_a_thread_reads_the_contact_and_its_messages(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    contact_id = new_contact_id()
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as gateway:

        def sync_client() -> JourneysClient:
            return JourneysClient(gateway.url, FULL_KEY)

        def enrol() -> str:
            with sync_client() as client:
                client.upsert_contact(contact_id, subscriber(contact_id), first_name="Grace")
                return client.enroll(
                    contact_id, "welcome-series", options=EnrolmentIn(day_seconds=1)
                ).workflow_id

        def read_contact() -> tuple[str | None, bool, dict[str, Any]]:
            with sync_client() as client:
                return client.get_contact(contact_id).first_name, client.health(), client.ready()

        def day0_messages() -> list[tuple[str, str, str]]:
            with sync_client() as client:
                return [
                    (message.idempotency_key, message.template, message.status)
                    for message in client.messages(contact_id, journey="welcome-series")
                ]

        assert await asyncio.to_thread(enrol) == f"welcome-series-{contact_id}"
        first_name, healthy, readiness = await asyncio.to_thread(read_contact)
        assert (first_name, healthy, readiness["status"]) == ("Grace", True, "ready")
        messages = await eventually(
            lambda: asyncio.to_thread(day0_messages),
            lambda rows: bool(rows) and rows[0][2] == "sent",  # written "pending" first
        )
        assert messages[0] == (
            f"welcome-series-{contact_id}/day0",
            "welcome-series/day0",
            "sent",
        )
        with sync_client() as client:  # the other journeys' log is not mixed in
            assert await asyncio.to_thread(client.messages, contact_id, journey="nurture") == []


async def test_gateway_errors_are_raised_typed_with_the_detail(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    contact_id = new_contact_id()
    async with (
        serving_gateway(
            dev_env.client, gateway_settings(settings, api_max_batch_events=2), worker=False
        ) as gateway,
        AsyncJourneysClient(gateway.url, FULL_KEY) as client,
        AsyncJourneysClient(gateway.url, READ_ONLY_KEY) as reader,
        AsyncJourneysClient(gateway.url, "not-a-key-of-this-gateway") as stranger,
    ):
        with pytest.raises(AuthError, match="lacks the 'contacts:write' scope") as forbidden:
            await reader.upsert_contact(contact_id, first_name="Ada")
        assert forbidden.value.status_code == 403
        with pytest.raises(AuthError, match="unknown API key") as unknown_key:
            await stranger.get_contact(contact_id)
        assert unknown_key.value.status_code == 401
        assert unknown_key.value.response.headers["WWW-Authenticate"].startswith("Bearer")

        with pytest.raises(NotFoundError) as missing:
            await reader.get_contact(contact_id)  # reading is in the reader's scope
        assert missing.value.status_code == 404
        assert contact_id in str(missing.value)

        future = datetime.now(UTC) + timedelta(days=1)
        with pytest.raises(ValidationFailed, match=r"body\.occurred_at: .*in the future") as bad:
            await client.send_event(contact_id, "webinar_attended", occurred_at=future)
        assert bad.value.status_code == 422
        assert bad.value.detail[0]["loc"] == ["body", "occurred_at"]

        too_early = EventIn(contact_id=contact_id, type="webinar_attended", occurred_at=future)
        none_taken = await client.send_events([too_early, too_early])
        assert (none_taken.accepted, none_taken.rejected) == (0, 2)
        assert [result.errors[0].loc for result in none_taken.results] == [
            ["body", "events", 0, "occurred_at"],
            ["body", "events", 1, "occurred_at"],
        ]
        with pytest.raises(ValidationFailed, match="at most 2 events; got 3") as too_many:
            await client.send_events([too_early] * 3)  # about the whole batch: raised
        assert too_many.value.status_code == 422


async def test_a_batch_is_judged_per_event_and_erasure_forgets_the_contact(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    contact_id = new_contact_id()
    async with (
        serving_gateway(dev_env.client, gateway_settings(settings)) as gateway,
        AsyncJourneysClient(gateway.url, FULL_KEY) as client,
    ):
        await client.upsert_contact(contact_id, subscriber(contact_id))
        future = datetime.now(UTC) + timedelta(days=1)
        batch = [
            EventIn(contact_id=contact_id, type="webinar_attended", event_id="webinar-1"),
            EventIn(contact_id=contact_id, type="webinar_attended", occurred_at=future),
            EventIn(contact_id=contact_id, type="ebook_downloaded"),
        ]
        answer = await client.send_events(batch)
        assert (answer.accepted, answer.duplicate, answer.rejected) == (2, 0, 1)
        assert [result.status for result in answer.results] == ["accepted", "rejected", "accepted"]
        assert answer.results[0].event_id == "webinar-1"
        assert answer.results[2].event_id is not None
        assert answer.results[2].event_id.startswith("evt_")  # assigned by the client

        erasure = await client.erase_contact(contact_id)
        assert (erasure.contact_id, erasure.status) == (contact_id, "erased")
        with pytest.raises(GoneError, match="was erased"):
            await client.get_contact(contact_id)


# --- retries, against a scripted server -------------------------------------------------------


class RequestLog:
    """When each request left the client: httpx transports (sync and async) that record it."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []

    def transport(self, flavour: Flavour) -> httpx.BaseTransport | httpx.AsyncBaseTransport:
        log = self

        class Sync(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                log.sent_at.append(time.monotonic())
                return super().handle_request(request)

        class Async(httpx.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                log.sent_at.append(time.monotonic())
                return await super().handle_async_request(request)

        return Sync() if flavour == "sync" else Async()

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in pairwise(self.sent_at)]


async def call(
    flavour: Flavour, url: str, method: str, *args: Any, log: RequestLog, **options: Any
) -> Any:
    """`client.method(*args)` on a fresh client of `flavour` (the sync one in a thread)."""
    transport = log.transport(flavour)
    if flavour == "sync":
        assert isinstance(transport, httpx.BaseTransport)

        def run() -> Any:
            with JourneysClient(url, FULL_KEY, transport=transport, **options) as client:
                return getattr(client, method)(*args)

        return await asyncio.to_thread(run)
    assert isinstance(transport, httpx.AsyncBaseTransport)
    async with AsyncJourneysClient(url, FULL_KEY, transport=transport, **options) as client:
        return await getattr(client, method)(*args)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


ACCEPTED = EventsResponse(
    accepted=1,
    duplicate=0,
    rejected=0,
    results=[EventResult(index=0, event_id="set-below", status="accepted", workflow_id="c-ada")],
)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_retries_503_and_429_when_retry_after_says_with_the_same_event_id(
    api: FakeApi, flavour: Flavour
) -> None:
    api.answer(
        Reply(503, {"detail": "Temporal is unreachable"}, headers={"Retry-After": "1"}),
        Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"}),
        Reply(202, ACCEPTED.model_dump(mode="json")),
    )
    log = RequestLog()

    answer = await call(flavour, api.url, "send_event", "ada", "webinar_attended", log=log)

    assert answer == ACCEPTED
    assert [request.path for request in api.received] == ["/v1/events"] * 3
    event_ids = {request.body["event_id"] for request in api.received}
    assert len(event_ids) == 1 and event_ids.pop().startswith("evt_")
    assert {request.headers["authorization"] for request in api.received} == {f"Bearer {FULL_KEY}"}
    after_503, after_429 = log.gaps()
    assert after_503 >= 0.9  # Retry-After: 1 (the backoff alone would wait 0.5 s)
    assert after_429 < 0.75  # Retry-After: 0 (the backoff alone would wait 1 s)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_gives_up_with_the_503_after_max_retries(api: FakeApi, flavour: Flavour) -> None:
    down = Reply(503, {"detail": "the database is unreachable: retry later"})
    api.answer(*[down] * 3, Reply(202, ACCEPTED.model_dump(mode="json")))
    log = RequestLog()

    with pytest.raises(ApiError, match="database is unreachable") as gave_up:
        await call(
            flavour,
            api.url,
            "send_event",
            "ada",
            "webinar_attended",
            log=log,
            max_retries=2,
            max_retry_delay=0.05,  # no Retry-After: the capped backoff
        )

    assert isinstance(gave_up.value, UnavailableError)
    assert gave_up.value.status_code == 503
    assert gave_up.value.detail == "the database is unreachable: retry later"
    assert len(api.received) == 3  # the first attempt and two retries; the 202 never asked for
    assert len({request.body["event_id"] for request in api.received}) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_refused_connection_is_retried_then_raised_and_health_says_false(
    flavour: Flavour,
) -> None:
    with socket.socket() as bound_not_listening:  # connecting to it is refused
        bound_not_listening.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound_not_listening.getsockname()[1]}"
        log = RequestLog()
        with pytest.raises(httpx.ConnectError):
            await call(
                flavour, url, "get_contact", "ada", log=log, max_retries=2, max_retry_delay=0.01
            )
        assert len(log.sent_at) == 3
        probe = RequestLog()
        assert await call(flavour, url, "health", log=probe) is False
        assert len(probe.sent_at) == 1  # a probe reports the present: no retries


def test_retry_delay_reads_seconds_and_http_dates_and_caps_them() -> None:
    now = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
    in_ten_seconds = format_datetime(now + timedelta(seconds=10), usegmt=True)
    assert retry_delay(0, in_ten_seconds, max_delay=30, now=now) == 10
    assert (
        retry_delay(
            0, format_datetime(now - timedelta(seconds=5), usegmt=True), max_delay=30, now=now
        )
        == 0
    )
    assert retry_delay(0, "7", max_delay=30) == 7
    assert retry_delay(0, "120", max_delay=30) == 30
    assert [retry_delay(attempt, None, max_delay=3) for attempt in range(5)] == [
        0.5,
        1,
        2,
        3,
        3,
    ]
    assert retry_delay(1, "soon", max_delay=30) == 1  # unreadable: the backoff
