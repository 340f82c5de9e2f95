"""Delivery errors become the right Temporal failures; Retry-After is read both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from activities.providers import DeliveryError
from activities.providers.errors import parse_retry_after


@pytest.mark.parametrize(
    ("error", "kind", "non_retryable", "delay"),
    [
        (
            DeliveryError("429", permanent=False, retry_after=timedelta(seconds=7)),
            "DeliveryDeferred",
            False,
            timedelta(seconds=7),
        ),
        (DeliveryError("401", permanent=True), "DeliveryRejected", True, None),
        (
            DeliveryError("550", permanent=True, invalid_recipient=True),
            "InvalidRecipient",
            True,
            None,
        ),
    ],
    ids=["transient", "permanent", "invalid-recipient"],
)
def test_application_error(
    error: DeliveryError, kind: str, non_retryable: bool, delay: timedelta | None
) -> None:
    failure = error.to_application_error()

    assert failure.type == kind
    assert failure.non_retryable is non_retryable
    assert failure.next_retry_delay == delay
    assert failure.message == str(error)


def test_an_invalid_recipient_is_permanent() -> None:
    with pytest.raises(ValueError):
        DeliveryError("550", permanent=False, invalid_recipient=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", timedelta(seconds=7)),
        (" 120 ", timedelta(seconds=120)),
        ("0", timedelta(0)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", timedelta(0)),  # in the past
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize("usegmt", [True, False], ids=["GMT", "numeric-zone"])
def test_parse_retry_after_future_date(usegmt: bool) -> None:
    header = format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=usegmt)

    delay = parse_retry_after(header)

    assert delay is not None
    assert timedelta(minutes=4, seconds=50) < delay <= timedelta(minutes=5)
