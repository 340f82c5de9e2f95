"""What the Twilio and Vonage webhook routes share: keywords in, failed numbers suppressed.

- An inbound text goes to `starter/services/sms_keywords.py: handle_inbound`
  (STOP, START, HELP), keyed by the provider's message id: a replayed or
  redelivered request changes nothing and sends no second answer.
- A delivery status that says the number opted out (Twilio 21610, Vonage err-code
  9) suppresses it as an SMS STOP (a START texted later lifts it); one that says the number does
  not exist or cannot take texts suppresses it as `invalid_recipient`. Writing a
  suppression twice changes nothing, so a replayed status is harmless too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlmodel import select

from models.db import session_factory
from models.tables import MessageLog
from rules.consent import STOP_REASON
from rules.suppressions import suppress_address
from starter.api.dependencies import Services
from starter.services.sms_keywords import InboundSms, KeywordOutcome, handle_inbound

NumberFailure = Literal["opted_out", "invalid_number"]
"""Why a delivery status suppresses the number (see the module docstring)."""


class SmsStatusResult(BaseModel):
    """What a delivery status did: whether it suppressed the number."""

    suppressed: bool


async def answer_keyword(held: Services, message: InboundSms) -> KeywordOutcome:
    """Apply the keyword `message` is, and answer it once (our own SMS path)."""
    return await handle_inbound(
        held.temporal,
        held.engine,
        message,
        task_queue=held.settings.task_queue,
        suppression_key=held.settings.suppression_key(),
        day_seconds=held.settings.day_seconds,
    )


async def suppress_failed_number(
    held: Services,
    *,
    number: str,
    message_id: str,
    failure: NumberFailure | None,
    at: datetime,
) -> SmsStatusResult:
    """Suppress `number` for SMS when `failure` says so (with the contact of the message, if
    it is ours); nothing for a status that is no such failure."""
    if failure is None:
        return SmsStatusResult(suppressed=False)
    async with session_factory(held.engine)() as session:
        message = (
            await session.exec(
                select(MessageLog).where(MessageLog.provider_message_id == message_id)
            )
        ).first()
        await suppress_address(
            session,
            "sms",
            number,
            key=held.settings.suppression_key(),
            reason=STOP_REASON if failure == "opted_out" else "invalid_recipient",
            contact_id=None if message is None else message.contact_id,
            at=at,
        )
        await session.commit()
    return SmsStatusResult(suppressed=True)
