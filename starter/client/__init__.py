"""A typed client of the HTTP gateway (`journeys api`), sync and async.

```python
with JourneysClient("https://journeys.internal", api_key) as journeys:
    journeys.upsert_contact("ada", email="ada@example.com", first_name="Ada")
    journeys.send_event("ada", "pricing_page_viewed", properties={"plan": "pro"})

async with AsyncJourneysClient("https://journeys.internal", api_key) as journeys:
    await journeys.enroll("ada", "welcome-series")
```

Every request is safe to send again, so both clients retry a 503 (Temporal or
the database down), a 429 and a connection that could not be made, up to
`max_retries` times: after the `Retry-After` the gateway asks for (capped by
`max_retry_delay`), else after an exponential backoff. Events are idempotent
on `event_id`, so the client assigns one before the first attempt when the
caller gives none: a retry is then processed once.

An error answer raises `ApiError` (or the subclass for its status) with the
gateway's `detail` in the message.

Requests are built and answers read once, in shared code (`_ApiCall`); the
two client classes only differ in how they wait and send.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from models.contacts import ContactFields
from models.journeys import JourneyDescription
from starter.api.schemas import (
    ContactView,
    DealView,
    EnrolmentIn,
    EnrolmentView,
    ErasureView,
    EventBatchIn,
    EventIn,
    EventsResponse,
    JourneyActionView,
    MessageView,
)
from starter.services.operations import JourneyRun

__all__ = [
    "ApiError",
    "AsyncJourneysClient",
    "AuthError",
    "ConflictError",
    "JourneysClient",
    "NotFoundError",
    "UnavailableError",
    "ValidationFailed",
    "retry_delay",
]

log = structlog.stdlib.get_logger("journeys.client")

T = TypeVar("T")
BaseModelT = TypeVar("BaseModelT", bound=BaseModel)

RETRY_STATUSES = frozenset({429, 503})
"""Answers worth sending the request again for (rate limited, Temporal or database down)."""

INITIAL_BACKOFF = 0.5
"""Seconds before the first retry when the gateway gives no `Retry-After`; doubles each time."""

USER_AGENT = "contact-journeys-client/1"

JourneyAction = Literal["exit", "pause", "resume"]


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """The gateway answered with an error status.

    Attributes:
        status_code: The HTTP status.
        detail: The answer's `detail` (a message, or a list of validation
            issues for a 422), or its text when it is not the gateway's JSON.
        response: The answer itself.
    """

    def __init__(self, status_code: int, detail: Any, response: httpx.Response) -> None:
        super().__init__(f"{status_code} {response.reason_phrase}: {_describe(detail)}")
        self.status_code = status_code
        self.detail = detail
        self.response = response

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        """The error (of the subclass for the status) an error answer stands for."""
        try:
            body = response.json()
        except ValueError:
            body = None
        detail = body["detail"] if isinstance(body, dict) and "detail" in body else response.text
        error_class = _ERROR_CLASSES.get(response.status_code, ApiError)
        return error_class(response.status_code, detail, response)


class ValidationFailed(ApiError):
    """400 (not JSON, or not the expected shape) or 422 (a field is invalid)."""


class AuthError(ApiError):
    """401 (no or an unknown API key) or 403 (the key lacks the scope)."""


class NotFoundError(ApiError):
    """404: no such contact, journey or running journey."""


class ConflictError(ApiError):
    """409: already enrolled, an email of another contact, an `event_id` reused."""


class GoneError(ApiError):
    """410: the contact was erased; its id takes no new events or data."""


class UnavailableError(ApiError):
    """503: Temporal or the database is unreachable (raised once the retries are spent)."""


_ERROR_CLASSES: dict[int, type[ApiError]] = {
    400: ValidationFailed,
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    410: GoneError,
    422: ValidationFailed,
    503: UnavailableError,
}


def _describe(detail: Any) -> str:
    """A `detail` for an error message: validation issues as `loc: msg; …`."""
    if isinstance(detail, list) and all(isinstance(issue, dict) for issue in detail):
        return "; ".join(
            f"{'.'.join(str(part) for part in issue.get('loc', []))}: {issue.get('msg')}"
            for issue in detail
        )
    return str(detail)


# --- requests and answers, shared by both clients -------------------------------------------


@dataclass(frozen=True)
class _ApiCall(Generic[T]):
    """One request to the gateway and how to read its answer.

    Attributes:
        method: HTTP method.
        path: Path under the base URL (ids already quoted).
        parse: Reads a successful answer.
        ok: Statuses that are a success (`parse` reads them).
        json: Body, if any.
        params: Query parameters.
        retry: Whether a 503 / 429 / failed connection is retried.
        when_unreachable: What to return, rather than raise, when the
            gateway cannot be reached (after the retries).
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    ok: frozenset[int] = frozenset({200})
    json: Any = None
    params: Mapping[str, str] = field(default_factory=dict)
    retry: bool = True
    when_unreachable: Callable[[httpx.TransportError], T] | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The request, built by `http` (base URL, headers, timeout)."""
        return http.build_request(self.method, self.path, json=self.json, params=self.params)

    def result(self, response: httpx.Response) -> T:
        """The parsed answer.

        Raises:
            ApiError: the status is not a success.
        """
        if response.status_code not in self.ok:
            raise ApiError.of(response)
        return self.parse(response)


@dataclass(frozen=True)
class _Retry:
    """Send the request again after `delay` seconds."""

    delay: float


@dataclass(frozen=True)
class _RetryPolicy:
    """When to send a request again, and after how long."""

    max_retries: int
    max_delay: float

    def judge(
        self, call: _ApiCall[T], attempt: int, answer: httpx.Response | httpx.TransportError
    ) -> T | _Retry:
        """The result of attempt number `attempt` (0 first), or a retry.

        Raises:
            ApiError: an error answer, not retried (any more).
            httpx.TransportError: the request failed, not retried (any more).
        """
        retrying = call.retry and attempt < self.max_retries
        if isinstance(answer, httpx.TransportError):
            if retrying and isinstance(answer, httpx.ConnectError | httpx.ConnectTimeout):
                return self._retry(attempt, None, reason=type(answer).__name__, call=call)
            if call.when_unreachable is not None:
                return call.when_unreachable(answer)
            raise answer
        if retrying and answer.status_code in RETRY_STATUSES and answer.status_code not in call.ok:
            return self._retry(
                attempt, answer.headers.get("Retry-After"), reason=answer.status_code, call=call
            )
        return call.result(answer)

    def _retry(
        self, attempt: int, retry_after: str | None, *, reason: object, call: _ApiCall[Any]
    ) -> _Retry:
        delay = retry_delay(attempt, retry_after, max_delay=self.max_delay)
        log.info(
            "retrying gateway request",
            method=call.method,
            path=call.path,
            reason=reason,
            attempt=attempt + 1,
            delay_s=round(delay, 3),
        )
        return _Retry(delay)


def retry_delay(
    attempt: int, retry_after: str | None, *, max_delay: float, now: datetime | None = None
) -> float:
    """Seconds to wait before retry number `attempt + 1`.

    Args:
        attempt: How many retries were made already (0 before the first).
        retry_after: The answer's `Retry-After`: seconds or an HTTP-date.
        max_delay: Upper bound of the result.
        now: The current time (for an HTTP-date); the clock's when omitted.

    Returns:
        What `Retry-After` asks for when it is readable (a date in the past
        is 0), else `INITIAL_BACKOFF * 2**attempt`; at most `max_delay`.
    """
    asked = _parse_retry_after(retry_after, now or datetime.now(UTC))
    delay = asked if asked is not None else INITIAL_BACKOFF * 2 ** min(attempt, 32)
    return max(0.0, min(delay, max_delay))


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` value asks for; None when absent or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) else None
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:  # `-0000`: UTC with no zone given
        at = at.replace(tzinfo=UTC)
    return (at - now).total_seconds()


def _model(model: type[BaseModelT]) -> Callable[[httpx.Response], BaseModelT]:
    """Reads an answer as `model`."""

    def parse(response: httpx.Response) -> BaseModelT:
        return model.model_validate_json(response.content)

    return parse


def _list_of(item: type[BaseModelT]) -> Callable[[httpx.Response], list[BaseModelT]]:
    """Reads an answer as a list of `item`."""
    adapter = TypeAdapter(list[item])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[BaseModelT]:
        items: list[BaseModelT] = adapter.validate_json(response.content)
        return items

    return parse


def _batch_answer(response: httpx.Response) -> EventsResponse:
    """A batch's answer: an `EventsResponse`, also for a 422 when no event was taken.

    Raises:
        ApiError: a 422 about the request as a whole (too many events).
    """
    try:
        return EventsResponse.model_validate_json(response.content)
    except ValidationError:
        if response.status_code == 422:
            raise ApiError.of(response) from None
        raise


def _event_id() -> str:
    """A new event id, in the gateway's own format."""
    return f"evt_{uuid.uuid4().hex}"


def _with_event_id(event: EventIn) -> EventIn:
    """`event` with its idempotency key fixed, so that a retry is processed once."""
    return event if event.event_id else event.model_copy(update={"event_id": _event_id()})


def _body(model: BaseModel) -> Any:
    """The JSON body of a request model (fields not given are left to the gateway)."""
    return model.model_dump(mode="json", exclude_unset=True, exclude_none=True)


def _contact_path(contact_id: str, *rest: str) -> str:
    return "/".join(["/v1/contacts", *(quote(part, safe="") for part in (contact_id, *rest))])


EnrolmentOptions = EnrolmentIn | Mapping[str, Any]
"""A journey's enrolment options: a mapping (or `EnrolmentIn`) of its input fields."""

_EVENT_OK = frozenset({200, 202})


class _Calls:
    """The gateway's endpoints as `_ApiCall`s (see the clients for what each does)."""

    @staticmethod
    def send_event(
        contact_id: str,
        type: str,
        *,
        event_id: str | None,
        occurred_at: datetime | None,
        properties: Mapping[str, Any] | None,
    ) -> _ApiCall[EventsResponse]:
        event = EventIn(
            event_id=event_id or _event_id(),
            contact_id=contact_id,
            type=type,
            occurred_at=occurred_at,
            properties=dict(properties or {}),
        )
        return _ApiCall("POST", "/v1/events", _model(EventsResponse), _EVENT_OK, _body(event))

    @staticmethod
    def send_events(events: Sequence[EventIn]) -> _ApiCall[EventsResponse]:
        batch = EventBatchIn(events=[_with_event_id(event) for event in events])
        return _ApiCall("POST", "/v1/events", _batch_answer, _EVENT_OK | {410, 422}, _body(batch))

    @staticmethod
    def upsert_contact(
        contact_id: str, fields: ContactFields | None, changes: Mapping[str, Any]
    ) -> _ApiCall[ContactView]:
        given = fields.model_dump(exclude_unset=True) if fields is not None else {}
        merged = ContactFields.model_validate({**given, **changes})
        body = merged.model_dump(mode="json", exclude_unset=True)
        return _ApiCall("PUT", _contact_path(contact_id), _model(ContactView), json=body)

    @staticmethod
    def get_contact(contact_id: str) -> _ApiCall[ContactView]:
        return _ApiCall("GET", _contact_path(contact_id), _model(ContactView))

    @staticmethod
    def export_contact(contact_id: str) -> _ApiCall[dict[str, Any]]:
        return _ApiCall("GET", _contact_path(contact_id, "export"), _json_object)

    @staticmethod
    def erase_contact(contact_id: str) -> _ApiCall[ErasureView]:
        return _ApiCall(
            "DELETE", _contact_path(contact_id), _model(ErasureView), frozenset({200, 202})
        )

    @staticmethod
    def enroll(
        contact_id: str, journey: str, options: EnrolmentOptions | None
    ) -> _ApiCall[EnrolmentView]:
        path = _contact_path(contact_id, "journeys", journey)
        body = _body(EnrolmentIn.model_validate(options)) if options is not None else None
        return _ApiCall("POST", path, _model(EnrolmentView), frozenset({201}), body)

    @staticmethod
    def journey_catalog() -> _ApiCall[list[JourneyDescription]]:
        return _ApiCall("GET", "/v1/journeys", _list_of(JourneyDescription))

    @staticmethod
    def steer(
        contact_id: str, journey: str, action: JourneyAction, reason: str
    ) -> _ApiCall[JourneyActionView]:
        path = _contact_path(contact_id, "journeys", journey, action)
        return _ApiCall("POST", path, _model(JourneyActionView), json={"reason": reason})

    @staticmethod
    def journeys(contact_id: str) -> _ApiCall[list[JourneyRun]]:
        return _ApiCall("GET", _contact_path(contact_id, "journeys"), _list_of(JourneyRun))

    @staticmethod
    def messages(contact_id: str, journey: str | None) -> _ApiCall[list[MessageView]]:
        params = {"journey": journey} if journey is not None else {}
        path = _contact_path(contact_id, "messages")
        return _ApiCall("GET", path, _list_of(MessageView), params=params)

    @staticmethod
    def deals(contact_id: str) -> _ApiCall[list[DealView]]:
        return _ApiCall("GET", _contact_path(contact_id, "deals"), _list_of(DealView))

    @staticmethod
    def health() -> _ApiCall[bool]:
        return _ApiCall(
            "GET",
            "/healthz",
            lambda response: response.status_code == 200,
            ok=frozenset(range(100, 600)),
            retry=False,
            when_unreachable=lambda _error: False,
        )

    @staticmethod
    def ready() -> _ApiCall[dict[str, Any]]:
        return _ApiCall("GET", "/readyz", _json_object, frozenset({200, 503}), retry=False)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object from {response.url.path}, got {body!r}")
    return body


# --- the clients ----------------------------------------------------------------------------


class _ClientBase:
    """What both clients hold: the retry policy and the options of their httpx client."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        max_retry_delay: float,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        self._policy = _RetryPolicy(max_retries=max_retries, max_delay=max_retry_delay)
        self._http_options: dict[str, Any] = {
            "base_url": base_url,
            "timeout": timeout,
            "headers": {
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        }


class JourneysClient(_ClientBase):
    """The gateway's client for synchronous code (one `httpx.Client`, kept open).

    Args:
        base_url: Where the gateway is served, e.g. `https://journeys.internal`.
        api_key: A key of the gateway's `API_KEYS`, with the scopes the calls need.
        timeout: Seconds for each attempt (connect, read, write, pool).
        max_retries: Retries after the first attempt (503, 429, failed connection).
        max_retry_delay: Longest wait before a retry, whatever `Retry-After` asks.
        transport: httpx transport (tests, proxies); httpx's default when omitted.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        max_retry_delay: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_delay=max_retry_delay,
        )
        self._http = httpx.Client(transport=transport, **self._http_options)

    def _call(self, call: _ApiCall[T]) -> T:
        attempt = 0
        while True:
            answer: httpx.Response | httpx.TransportError
            try:
                answer = self._http.send(call.request(self._http))
            except httpx.TransportError as error:
                answer = error
            verdict = self._policy.judge(call, attempt, answer)
            if not isinstance(verdict, _Retry):
                return verdict
            time.sleep(verdict.delay)
            attempt += 1

    def send_event(
        self,
        contact_id: str,
        type: str,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> EventsResponse:
        """Send one behaviour event (`POST /v1/events`).

        Args:
            contact_id: Your system's id of the contact.
            type: snake_case event type, e.g. `pricing_page_viewed`.
            event_id: Idempotency key; a new `evt_…` id when omitted (fixed
                before the first attempt, so retries reuse it).
            occurred_at: When it happened (time-zone aware); now when omitted.
            properties: Details (page URL, plan…).

        Returns:
            The answer: its one result is `accepted` or `duplicate`.

        Raises:
            ValidationFailed: the gateway refused a field (422).
            ConflictError: `event_id` was used for a different event.
            ApiError: another error answer (503 once the retries are spent…).
            pydantic.ValidationError: the event is invalid before sending.
        """
        return self._call(
            _Calls.send_event(
                contact_id,
                type,
                event_id=event_id,
                occurred_at=occurred_at,
                properties=properties,
            )
        )

    def send_events(self, events: Sequence[EventIn]) -> EventsResponse:
        """Send a batch of events, judged one by one (`POST /v1/events`).

        Events without an `event_id` get one before the first attempt.

        Returns:
            The answer, also when no event could be taken (the gateway's 422):
            see each result's `status` and `errors`.

        Raises:
            ApiError: an error answer about the whole batch (too many events…).
        """
        return self._call(_Calls.send_events(events))

    def upsert_contact(
        self, contact_id: str, fields: ContactFields | None = None, **changes: Any
    ) -> ContactView:
        """Create or update a contact (`PUT /v1/contacts/{id}`).

        Args:
            contact_id: Your system's id of the contact.
            fields: The fields to set; only those given are sent.
            **changes: More `ContactFields` fields (they win over `fields`).

        Raises:
            ConflictError: the email belongs to another contact.
            AuthError: the key lacks `contacts:write`.
        """
        return self._call(_Calls.upsert_contact(contact_id, fields, changes))

    def get_contact(self, contact_id: str) -> ContactView:
        """The contact (`GET /v1/contacts/{id}`).

        Raises:
            NotFoundError: no such contact.
            GoneError: the contact was erased.
        """
        return self._call(_Calls.get_contact(contact_id))

    def export_contact(self, contact_id: str) -> dict[str, Any]:
        """Everything held about the contact, one JSON document (`GET …/{id}/export`).

        Raises:
            NotFoundError: no such contact.
            GoneError: the contact was erased.
            AuthError: the key lacks `contacts:export`.
        """
        return self._call(_Calls.export_contact(contact_id))

    def erase_contact(self, contact_id: str) -> ErasureView:
        """Erase the contact's data and end its journeys (`DELETE /v1/contacts/{id}`).

        Returns:
            `erased`, or `in_progress` when it goes on (durably) after the answer.
        """
        return self._call(_Calls.erase_contact(contact_id))

    def enroll(
        self, contact_id: str, journey: str, *, options: EnrolmentOptions | None = None
    ) -> EnrolmentView:
        """Start `journey` for the contact (`POST /v1/contacts/{id}/journeys/{journey}`).

        Args:
            contact_id: The contact.
            journey: The journey, e.g. `renewal-countdown`.
            options: The journey's options (`journey_catalog` lists them), e.g.
                `{"renewal_date": datetime(…), "subscription_id": "sub-1"}`.

        Raises:
            ConflictError: already enrolled (or a once-only journey it went through).
            NotFoundError: unknown journey.
            ValidationFailed: an option the journey does not take.
        """
        return self._call(_Calls.enroll(contact_id, journey, options))

    def journey_catalog(self) -> list[JourneyDescription]:
        """Every journey: title, trigger, enrolment options and plan (`GET /v1/journeys`)."""
        return self._call(_Calls.journey_catalog())

    def exit_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """End the contact's running `journey`, recording `reason` as the exit reason.

        Raises:
            NotFoundError: unknown journey, or none of it running for the contact.
        """
        return self._call(_Calls.steer(contact_id, journey, "exit", reason))

    def pause_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """Hold every send of the contact's running `journey` until it is resumed.

        Raises:
            NotFoundError: unknown journey, or none of it running for the contact.
        """
        return self._call(_Calls.steer(contact_id, journey, "pause", reason))

    def resume_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """Resume the contact's paused `journey`.

        Raises:
            NotFoundError: unknown journey, or none of it running for the contact.
        """
        return self._call(_Calls.steer(contact_id, journey, "resume", reason))

    def journeys(self, contact_id: str) -> list[JourneyRun]:
        """The contact's journeys, running and finished, with their state."""
        return self._call(_Calls.journeys(contact_id))

    def messages(self, contact_id: str, *, journey: str | None = None) -> list[MessageView]:
        """The contact's message log, oldest first (of one journey when given)."""
        return self._call(_Calls.messages(contact_id, journey))

    def deals(self, contact_id: str) -> list[DealView]:
        """The contact's deals, oldest first, each with its changes."""
        return self._call(_Calls.deals(contact_id))

    def health(self) -> bool:
        """Whether the gateway answers its liveness check (`/healthz`); False if unreachable."""
        return self._call(_Calls.health())

    def ready(self) -> dict[str, Any]:
        """The readiness report (`/readyz`), ready (200) or not (503).

        Returns:
            `{"status": "ready" | "not ready", "checks": {...}}`.
        """
        return self._call(_Calls.ready())

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncJourneysClient(_ClientBase):
    """The gateway's client for asyncio code (one `httpx.AsyncClient`, kept open).

    The methods are those of `JourneysClient`, awaited.

    Args:
        base_url: Where the gateway is served, e.g. `https://journeys.internal`.
        api_key: A key of the gateway's `API_KEYS`, with the scopes the calls need.
        timeout: Seconds for each attempt (connect, read, write, pool).
        max_retries: Retries after the first attempt (503, 429, failed connection).
        max_retry_delay: Longest wait before a retry, whatever `Retry-After` asks.
        transport: httpx transport (tests, proxies); httpx's default when omitted.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 5,
        max_retry_delay: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url,
            api_key,
            timeout=timeout,
            max_retries=max_retries,
            max_retry_delay=max_retry_delay,
        )
        self._http = httpx.AsyncClient(transport=transport, **self._http_options)

    async def _call(self, call: _ApiCall[T]) -> T:
        attempt = 0
        while True:
            answer: httpx.Response | httpx.TransportError
            try:
                answer = await self._http.send(call.request(self._http))
            except httpx.TransportError as error:
                answer = error
            verdict = self._policy.judge(call, attempt, answer)
            if not isinstance(verdict, _Retry):
                return verdict
            await asyncio.sleep(verdict.delay)
            attempt += 1

    async def send_event(
        self,
        contact_id: str,
        type: str,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> EventsResponse:
        """Send one behaviour event; see `JourneysClient.send_event`."""
        return await self._call(
            _Calls.send_event(
                contact_id,
                type,
                event_id=event_id,
                occurred_at=occurred_at,
                properties=properties,
            )
        )

    async def send_events(self, events: Sequence[EventIn]) -> EventsResponse:
        """Send a batch of events; see `JourneysClient.send_events`."""
        return await self._call(_Calls.send_events(events))

    async def upsert_contact(
        self, contact_id: str, fields: ContactFields | None = None, **changes: Any
    ) -> ContactView:
        """Create or update a contact; see `JourneysClient.upsert_contact`."""
        return await self._call(_Calls.upsert_contact(contact_id, fields, changes))

    async def get_contact(self, contact_id: str) -> ContactView:
        """The contact; see `JourneysClient.get_contact`."""
        return await self._call(_Calls.get_contact(contact_id))

    async def export_contact(self, contact_id: str) -> dict[str, Any]:
        """Everything held about the contact; see `JourneysClient.export_contact`."""
        return await self._call(_Calls.export_contact(contact_id))

    async def erase_contact(self, contact_id: str) -> ErasureView:
        """Erase the contact; see `JourneysClient.erase_contact`."""
        return await self._call(_Calls.erase_contact(contact_id))

    async def enroll(
        self, contact_id: str, journey: str, *, options: EnrolmentOptions | None = None
    ) -> EnrolmentView:
        """Start `journey` for the contact; see `JourneysClient.enroll`."""
        return await self._call(_Calls.enroll(contact_id, journey, options))

    async def journey_catalog(self) -> list[JourneyDescription]:
        """Every journey and its enrolment options; see `JourneysClient.journey_catalog`."""
        return await self._call(_Calls.journey_catalog())

    async def exit_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """End the contact's running `journey`; see `JourneysClient.exit_journey`."""
        return await self._call(_Calls.steer(contact_id, journey, "exit", reason))

    async def pause_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """Pause the contact's running `journey`; see `JourneysClient.pause_journey`."""
        return await self._call(_Calls.steer(contact_id, journey, "pause", reason))

    async def resume_journey(
        self, contact_id: str, journey: str, *, reason: str = "api"
    ) -> JourneyActionView:
        """Resume the contact's paused `journey`; see `JourneysClient.resume_journey`."""
        return await self._call(_Calls.steer(contact_id, journey, "resume", reason))

    async def journeys(self, contact_id: str) -> list[JourneyRun]:
        """The contact's journeys; see `JourneysClient.journeys`."""
        return await self._call(_Calls.journeys(contact_id))

    async def messages(self, contact_id: str, *, journey: str | None = None) -> list[MessageView]:
        """The contact's message log; see `JourneysClient.messages`."""
        return await self._call(_Calls.messages(contact_id, journey))

    async def deals(self, contact_id: str) -> list[DealView]:
        """The contact's deals; see `JourneysClient.deals`."""
        return await self._call(_Calls.deals(contact_id))

    async def health(self) -> bool:
        """Whether the gateway answers `/healthz`; see `JourneysClient.health`."""
        return await self._call(_Calls.health())

    async def ready(self) -> dict[str, Any]:
        """The readiness report; see `JourneysClient.ready`."""
        return await self._call(_Calls.ready())

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
