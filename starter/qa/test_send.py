"""`journeys test-send`: one message of a journey, rendered and sent to an address of your choice.

It is the send activity's rendering (`MessagingActivities.compose`,
`outgoing_email`) and the configured provider, with three differences that
make it a test:

- it goes only to the `--to` address, never to a contact's own, and is refused
  when that address is suppressed on the channel (an unsubscribe, a bounce…);
- it is marked: the subject (and SMS text) starts with `[TEST]`, and an email
  carries the header `X-Journeys-Test: 1`; its unsubscribe link is signed for
  `TEST_CONTACT_ID`, so trying the link does not unsubscribe the contact it was
  rendered for;
- it writes no message-log row, so neither `journeys report`'s funnel nor the
  frequency caps (both read the message log) count it. Its idempotency key is
  unique per test send (`test-send/<journey>/<step>/<time>-<random>`), which is
  also where the outbox provider files it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.messaging import MessagingActivities
from activities.providers import DeliveryError, EmailProvider, OutgoingSms, SmsProvider
from models.db import session_factory
from models.messages import Channel
from models.tables import Contact
from rules.suppressions import find_suppression
from starter.qa.catalog import MessageStep
from starter.qa.preview import preview_request
from starter.services.operations import InvalidRequest, OperationError

if TYPE_CHECKING:
    from workflows.toolkit import Journey

TEST_SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Journeys-Test"
TEST_CONTACT_ID = "test-send"
"""The contact id a test message's unsubscribe link is signed for."""
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class AddressSuppressed(OperationError):
    """The `--to` address is on the suppression list for the channel."""


@dataclass(frozen=True)
class TestSend:
    """A test message that went out.

    Attributes:
        idempotency_key: `test-send/<journey>/<step>/<time>-<random>`.
        channel: Email or SMS.
        provider: The provider that took it (`outbox`, `smtp`, `http`).
        message_id: The provider's id (the Message-ID of an email).
    """

    idempotency_key: str
    channel: str
    provider: str
    message_id: str


def check_address(channel: Channel, address: str) -> None:
    """Refuse an address that cannot be one of `channel`.

    Raises:
        InvalidRequest: naming the format expected.
    """
    if channel == Channel.EMAIL and "@" not in address:
        raise InvalidRequest("--to: expected an email address for an email step")
    if channel == Channel.SMS and not _PHONE.fullmatch(address):
        raise InvalidRequest("--to: expected an E.164 phone number (+14155550123) for an SMS step")


async def refuse_if_suppressed(
    engine: AsyncEngine, channel: Channel, address: str, *, key: bytes
) -> None:
    """Refuse a test send to an address suppressed on `channel`, whatever the reason.

    Raises:
        AddressSuppressed: naming the channel and the reason (not the address).
    """
    async with session_factory(engine)() as session:
        suppression = await find_suppression(session, channel, address, key=key)
        await session.commit()
    if suppression is not None:
        raise AddressSuppressed(
            f"the --to address is suppressed for {channel} ({suppression.reason}): "
            "test messages are never sent to suppressed addresses; use another address"
        )


async def test_send(
    composer: MessagingActivities,
    journey: type[Journey],
    step: MessageStep,
    contact: Contact,
    *,
    to: str,
    email_provider: EmailProvider,
    sms_provider: SmsProvider,
    now: datetime,
) -> TestSend:
    """Render `step` for `contact` and send it, marked as a test, to `to` (see the module doc).

    The caller checks the address first (`check_address`, `refuse_if_suppressed`).

    Raises:
        TemplateError: the template cannot render.
        OperationError: the provider refused the message.
    """
    stand_in = contact.model_copy(update={"id": TEST_CONTACT_ID})
    key = f"test-send/{journey.name}/{step.id}/{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    request = preview_request(journey, step, stand_in).model_copy(update={"idempotency_key": key})
    composed = composer.compose(request, stand_in, now)
    try:
        if composed.email is not None:
            email = composer.outgoing_email(request, to, composed.email, composed.links, now)
            marked = replace(
                email,
                subject=TEST_SUBJECT_PREFIX + email.subject,
                headers={**email.headers, TEST_HEADER: "1"},
            )
            return TestSend(
                key, str(step.channel), email_provider.name, await email_provider.deliver(marked)
            )
        sms = OutgoingSms(
            idempotency_key=key,
            to_number=to,
            body=TEST_SUBJECT_PREFIX + (composed.sms or ""),
            created_at=now,
        )
        return TestSend(key, str(step.channel), sms_provider.name, await sms_provider.deliver(sms))
    except DeliveryError as error:
        raise OperationError(
            f"the {step.channel} provider refused the test message: {error}"
        ) from error
