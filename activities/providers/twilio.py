"""Text messages through Twilio's Messages API, with the official `twilio` library (async).

`POST {TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
`To`, `Body` and `From` (or `MessagingServiceSid`), optionally `StatusCallback`;
HTTP basic auth with the account SID and auth token. The answer (201) is the
Message resource; `deliver` returns its `sid` (`SM…`), which the status callbacks
name (`starter/api/hooks/twilio.py`).

The SDK's `AsyncTwilioHttpClient` (aiohttp) makes the request, one client per
send and no retries of its own; the API's base URL is the domain's `base_url`,
a setting so tests can point it at a loopback server.

Twilio has no idempotency key for Messages: the message-log row written before
the call stops a retry from sending twice; an ambiguous failure (a timeout after
Twilio took the message) may send twice.

How a `TwilioRestException` (HTTP status and Twilio error `code`,
https://www.twilio.com/docs/api/errors) is classified:

| answer | `DeliveryError` |
| --- | --- |
| 21610 (the recipient texted STOP to our number) | `opted_out`: suppressed as an SMS STOP |
| 21211, 21614 (not a valid number, not a mobile number) | `invalid_recipient` |
| 20429 or HTTP 429, HTTP 5xx | transient, `retry_after` from `Retry-After` |
| 20003 (authentication) and every other 4xx | permanent for the request |

A timeout or a connection failure is transient.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from activities.providers.errors import DeliveryError, parse_retry_after, provider_text
from activities.providers.messages import OutgoingSms

TWILIO_API_URL = "https://api.twilio.com"
OPTED_OUT = 21610
"""Attempt to send to an unsubscribed recipient (it texted STOP)."""
INVALID_NUMBERS = frozenset({21211, 21614})
"""Invalid 'To' phone number; 'To' number is not a valid mobile number."""
TOO_MANY_REQUESTS = 20429

_SDK_LOG = logging.getLogger("journeys.twilio.sdk")
_SDK_LOG.setLevel(logging.WARNING)  # the SDK logs every request's URL and headers at INFO


class _AnswerKeepingHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's async HTTP client for one send: no pool, no retries, keeps `Retry-After`."""

    def __init__(self) -> None:
        super().__init__(pool_connections=False, logger=_SDK_LOG)
        self.retry_after: str | None = None

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        """Make the request (the SDK's way) and remember the answer's `Retry-After`."""
        response = await super().request(*args, **kwargs)
        self.retry_after = response.headers.get("Retry-After")
        return response


class TwilioSmsProvider:
    """Text messages through Twilio (see the module docstring)."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback_url: str | None = None,
        api_url: str = TWILIO_API_URL,
        timeout: float = 10.0,
    ) -> None:
        """Configure the account and the sender.

        Args:
            account_sid: The account SID (`AC…`), also the basic-auth user.
            auth_token: The auth token (basic-auth password).
            from_number: The sending number (E.164), or
            messaging_service_sid: the Messaging Service (`MG…`) that picks one.
            status_callback_url: Where Twilio posts the message's statuses.
            api_url: Base URL of the REST API.
            timeout: Seconds allowed for the whole request.

        Raises:
            ValueError: neither or both of `from_number` and `messaging_service_sid`.
        """
        if (from_number is None) == (messaging_service_sid is None):
            raise ValueError(
                "SMS_PROVIDER=twilio needs exactly one of TWILIO_FROM_NUMBER "
                "and TWILIO_MESSAGING_SERVICE_SID"
            )
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._sender = (
            {"from_": from_number}
            if from_number is not None
            else {"messaging_service_sid": messaging_service_sid}
        )
        self._status_callback = status_callback_url
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout

    async def deliver(self, sms: OutgoingSms) -> str:
        """Create the message at Twilio once; return its `sid`.

        Raises:
            DeliveryError: classified as described in the module docstring.
        """
        http = _AnswerKeepingHttpClient()
        client = Client(self._account_sid, self._auth_token, http_client=http, environment={})
        client.api.base_url = self._api_url
        try:
            async with asyncio.timeout(self._timeout):
                message = await client.messages.create_async(
                    to=sms.to_number,
                    body=sms.body,
                    status_callback=self._status_callback,
                    **self._sender,
                )
        except TwilioRestException as error:
            raise twilio_error(
                error.status, error.code, error.msg, retry_after=http.retry_after
            ) from error
        except TwilioServiceException as error:
            raise twilio_error(
                error.status, error.code, error.detail or error.title, retry_after=http.retry_after
            ) from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeliveryError(
                f"Twilio unreachable: {type(error).__name__}: {provider_text(str(error))}",
                permanent=False,
            ) from error
        sid = getattr(message, "sid", None)
        if not isinstance(sid, str) or not sid:
            raise DeliveryError("Twilio answered without a message sid", permanent=True)
        return sid


def twilio_error(
    status: int, code: int | None, text: str, *, retry_after: str | None
) -> DeliveryError:
    """The `DeliveryError` of a Twilio error answer (see the module docstring).

    Args:
        status: The HTTP status.
        code: Twilio's error code, when the answer gave one.
        text: Twilio's message (numbers in it are masked here).
        retry_after: The answer's `Retry-After` header.
    """
    message = f"Twilio answered HTTP {status}, error {code}: {provider_text(text)}"
    if status == 429 or status >= 500 or code == TOO_MANY_REQUESTS:
        return DeliveryError(
            message,
            permanent=False,
            retry_after=parse_retry_after(retry_after),
            status_code=status,
        )
    return DeliveryError(
        message,
        permanent=True,
        invalid_recipient=code in INVALID_NUMBERS,
        opted_out=code == OPTED_OUT,
        status_code=status,
    )
