"""Email and SMS through a generic JSON HTTP API (httpx), shaped like Postmark or Resend.

Wire format, shared by both channels:

- `POST {base_url}/emails` or `POST {base_url}/messages` with a JSON body,
  `Authorization: Bearer <api key>` and `Idempotency-Key: <idempotency key>`
  (the same key on every retry, so the API delivers once).
- Success: `200`, `201` or `202` with `{"id": "<provider message id>"}`.
- Failure: any other status, ideally with
  `{"error": {"code": "<machine code>", "message": "<text>"}}`.

How a failure is classified (`delivery_error_from_response`):

- `429`, `5xx`, `408` (request timeout) and `409` (the same Idempotency-Key
  is still being processed) are transient; `Retry-After` (seconds or an
  HTTP-date) becomes `DeliveryError.retry_after`.
- `400` or `422` with error code `invalid_recipient` is permanent and
  `invalid_recipient`: the address should be suppressed.
- Every other status is permanent (e.g. `401` a wrong API key, `400` a
  malformed request); so is a success without a message id.
- Timeouts and connection errors are transient.

httpx never retries (`retries=0`, no redirects followed): Temporal owns retries.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from email.utils import formataddr
from typing import Any, Protocol

import httpx

from activities.providers.errors import DeliveryError, parse_retry_after, provider_text
from activities.providers.messages import OutgoingEmail, OutgoingSms, header_text

SUCCESS_STATUSES = frozenset({200, 201, 202})
TRANSIENT_STATUSES = frozenset({408, 409, 429})
"""Statuses below 500 that are worth retrying."""
INVALID_RECIPIENT_CODE = "invalid_recipient"
"""The `error.code` by which a 400/422 answer says the recipient is invalid."""


class Classifier(Protocol):
    """Turns an API's non-success answer (body read) into the `DeliveryError` to raise."""

    def __call__(self, response: httpx.Response, *, api: str) -> DeliveryError:
        """The error for `response`, naming `api` in its message."""
        ...


def answer_error(
    response: httpx.Response, message: str, *, transient: bool, invalid_recipient: bool = False
) -> DeliveryError:
    """The `DeliveryError` of an API's non-success answer, as its classifier decided: a
    transient one waits as long as the answer's `Retry-After` asks."""
    if transient:
        return DeliveryError(
            message,
            permanent=False,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            status_code=response.status_code,
        )
    return DeliveryError(
        message,
        permanent=True,
        invalid_recipient=invalid_recipient,
        status_code=response.status_code,
    )


def delivery_error_from_response(response: httpx.Response, *, api: str) -> DeliveryError:
    """Classify an API's non-success answer (see the module docstring for the rules).

    Args:
        response: The answer, body already read.
        api: Which API answered, for the message (e.g. `email API`).
    """
    status = response.status_code
    code, text = _error_details(response)
    message = f"{api} answered HTTP {status}: {text}"
    return answer_error(
        response,
        message,
        transient=status >= 500 or status in TRANSIENT_STATUSES,
        invalid_recipient=status in (400, 422) and code == INVALID_RECIPIENT_CODE,
    )


def error_body(response: httpx.Response) -> dict[str, Any]:
    """An error answer's JSON object; empty when its body is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def fallback_text(response: httpx.Response) -> str:
    """An error answer's body (or its reason phrase), masked and cut, when it says nothing
    more precise."""
    return provider_text(response.text) or response.reason_phrase


def _error_details(response: httpx.Response) -> tuple[str | None, str]:
    """The machine error code (if any) and a short human text of an error answer."""
    fallback = fallback_text(response)
    error = error_body(response).get("error")
    if isinstance(error, str):
        return None, provider_text(error)
    if not isinstance(error, dict):
        return None, fallback
    raw_code = error.get("code")
    code = raw_code if isinstance(raw_code, str) else None
    text = error.get("message")
    if isinstance(text, str):
        return code, provider_text(text)
    return code, code or fallback


@asynccontextmanager
async def http_client(shared: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """`shared` if given; else a short-lived client that never retries (closed after use)."""
    if shared is not None:
        yield shared
        return
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(retries=0)) as client:
        yield client


def message_id_of(response: httpx.Response, *, api: str, field: str) -> str:
    """The message id a success answer carries in its JSON `field`.

    Raises:
        DeliveryError: (permanent) the answer has none.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    message_id = body.get(field) if isinstance(body, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise DeliveryError(
            f"{api} answered HTTP {response.status_code} without a message id: "
            f"{provider_text(response.text)}",
            permanent=True,
            status_code=response.status_code,
        )
    return message_id


def bearer(api_key: str) -> dict[str, str]:
    """The header of bearer-token authentication."""
    return {"Authorization": f"Bearer {api_key}"}


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The header of HTTP basic authentication."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class JsonApi:
    """POSTs to one API with its credentials; raises `DeliveryError`."""

    def __init__(
        self,
        base_url: str,
        *,
        api: str,
        auth: Mapping[str, str],
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        classify: Classifier = delivery_error_from_response,
    ) -> None:
        """Configure the API.

        Args:
            base_url: `http(s)://host[:port][/prefix]`; paths are appended to it.
            api: Name of the API in error messages.
            auth: The headers that carry the credentials (`bearer`, `basic_auth`, or the
                API's own), sent with every request.
            client: Shared client (its connection pool is reused); without one,
                each request uses a short-lived client that never retries.
            timeout: Seconds allowed for connecting, sending and reading the answer.
            classify: Turns a non-success answer into the `DeliveryError` to raise.

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL.
        """
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{api} URL must be an absolute http(s) URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api = api
        self._auth = dict(auth)
        self._client = client
        self._timeout = timeout
        self._classify = classify

    async def send(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str | list[str]] | None = None,
    ) -> httpx.Response:
        """POST a JSON (`json`) or form-encoded (`data`) body to `{base_url}{path}` once;
        return whatever the API answered.

        Raises:
            DeliveryError: (transient) no answer in time, or no connection.
        """
        try:
            async with http_client(self._client) as client:
                return await client.post(
                    f"{self.base_url}{path}",
                    json=json,
                    data=data,
                    headers={**self._auth, **(headers or {})},
                    timeout=self._timeout,
                )
        except httpx.RequestError as error:
            raise DeliveryError(
                f"{self.api} unreachable: {type(error).__name__}: {provider_text(str(error))}",
                permanent=False,
            ) from error

    async def submit(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str | list[str]] | None = None,
    ) -> str:
        """`send`, then the `id` of the success answer.

        Raises:
            DeliveryError: no answer in time, or not a success with an id.
        """
        response = await self.send(path, headers=headers, json=json, data=data)
        if response.status_code not in SUCCESS_STATUSES:
            raise self._classify(response, api=self.api)
        return message_id_of(response, api=self.api, field="id")

    async def post(self, path: str, payload: Mapping[str, Any], *, idempotency_key: str) -> str:
        """`submit` a JSON `payload` with an `Idempotency-Key`.

        Raises:
            DeliveryError: no answer in time, or not a success with an id.
        """
        return await self.submit(path, headers={"Idempotency-Key": idempotency_key}, json=payload)


class _JsonApiProvider:
    """What the HTTP email and SMS providers share: the configured `JsonApi`."""

    name = "http"
    api_label = "JSON API"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure the API (see `JsonApi` for the arguments).

        Raises:
            ValueError: `base_url` is not an absolute http(s) URL.
        """
        self._api = JsonApi(
            base_url, api=self.api_label, auth=bearer(api_key), client=client, timeout=timeout
        )


class HttpEmailProvider(_JsonApiProvider):
    """Email through the JSON email API: `POST {base_url}/emails`.

    Request body::

        {"from": "Ada from Acme <ada@acme.test>", "to": "grace@example.com",
         "reply_to": "hello@acme.test", "subject": "…", "text": "…", "html": "…",
         "headers": {"X-Journey": "welcome-series", "X-Journey-Step": "day0"}}

    Answer on success: `{"id": "<provider message id>"}`, which `deliver` returns.
    What becomes a header at the API (sender name, subject, `headers`) goes
    through `header_text`, as in a MIME message: one line, nothing to decode.
    """

    api_label = "email API"

    async def deliver(self, email: OutgoingEmail) -> str:
        """Hand the email to the API once; return the API's message id.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        payload = {
            "from": formataddr((header_text(email.from_name), email.from_address)),
            "to": email.to_address,
            "reply_to": email.reply_to,
            "subject": header_text(email.subject),
            "text": email.text,
            "html": email.html,
            "headers": {name: header_text(value) for name, value in email.headers.items()},
        }
        return await self._api.post("/emails", payload, idempotency_key=email.idempotency_key)


class HttpSmsProvider(_JsonApiProvider):
    """Text messages through the JSON SMS API: `POST {base_url}/messages`.

    Request body: `{"to": "+14155550100", "body": "…"}`. Answer on success:
    `{"id": "<provider message id>"}`, which `deliver` returns.
    """

    api_label = "SMS API"

    async def deliver(self, sms: OutgoingSms) -> str:
        """Hand the message to the API once; return the API's message id.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        payload = {"to": sms.to_number, "body": sms.body}
        return await self._api.post("/messages", payload, idempotency_key=sms.idempotency_key)
