"""The one error every provider raises, and how Temporal should retry it.

Providers never retry on their own: they classify the failure and raise
`DeliveryError`; Temporal's retry policy owns the backoff.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from temporalio.exceptions import ApplicationError

ERROR_TEXT_LIMIT = 200
"""How many characters of a provider's error text an error message keeps."""
_EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"\+\d{7,15}\b")


class DeliveryError(Exception):
    """A provider did not take a message.

    Attributes:
        permanent: Retrying the same request cannot succeed (rejected request,
            refused credentials, invalid recipient): do not retry.
        retry_after: How long the provider asked us to wait before retrying
            (`Retry-After`), when it said so.
        invalid_recipient: The provider refused the recipient address itself;
            the address should be suppressed. Always permanent.
        opted_out: The recipient opted out at the provider (texted STOP to our
            number, e.g. Twilio's 21610): suppressed as an SMS STOP is, so a
            START texted later lifts it. Implies `invalid_recipient`.
        status_code: HTTP status or SMTP reply code, when the provider answered.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: timedelta | None = None,
        invalid_recipient: bool = False,
        opted_out: bool = False,
        status_code: int | None = None,
    ) -> None:
        """Describe a failed delivery.

        Raises:
            ValueError: `invalid_recipient` without `permanent`.
        """
        if (invalid_recipient or opted_out) and not permanent:
            raise ValueError("an invalid recipient is a permanent failure")
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.invalid_recipient = invalid_recipient or opted_out
        self.opted_out = opted_out
        self.status_code = status_code

    def to_application_error(self) -> ApplicationError:
        """The Temporal failure to raise from an activity for this error.

        Permanent errors are non-retryable; a transient one carries `retry_after`
        as `next_retry_delay`, so Temporal waits as long as the provider asked.
        The failure type is `InvalidRecipient`, `DeliveryRejected` (other
        permanent errors) or `DeliveryDeferred` (transient).
        """
        if self.invalid_recipient:
            kind = "InvalidRecipient"
        elif self.permanent:
            kind = "DeliveryRejected"
        else:
            kind = "DeliveryDeferred"
        return ApplicationError(
            str(self), type=kind, non_retryable=self.permanent, next_retry_delay=self.retry_after
        )


def provider_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """A provider's error text fit for an error message, a log line and Temporal's history.

    Collapsed to one line, email addresses and E.164 phone numbers masked
    (providers often echo the recipient), and cut to `limit` characters.
    """
    flat = " ".join(text.split())
    flat = _PHONE.sub("<phone>", _EMAIL_ADDRESS.sub("<address>", flat))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def parse_retry_after(value: str | None) -> timedelta | None:
    """Read a `Retry-After` header: delay-seconds or an HTTP-date.

    Returns:
        The delay (zero for a date in the past), or None when the header is
        missing or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    return max(when - datetime.now(UTC), timedelta(0))
