"""Inbound SMS keywords: STOP, START and HELP, as carriers expect them (`rules/sms_keywords.py`).

- **STOP** (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT): the number is
  suppressed for SMS at once (hashed, also for a number no contact has), the
  SMS consent of every contact with that number is withdrawn and recorded,
  and each gets an `unsubscribed` event with `channel: sms` (journeys left
  with nothing to send exit; email goes on). One confirmation is sent.
- **START** (UNSTOP): lifts the number's suppression only if a STOP wrote it
  (a carrier's or provider's refusal, a hard bounce, an erasure or an
  all-channel unsubscribe stays), and restores SMS consent only for a contact
  that had given it and lost it to a STOP keyword: texting START is not a
  new marketing opt-in for someone who never gave one. Confirmed in every case.
- **HELP**: answered with the brand's help text (`brand.sms_help`).

The answers are service messages: sent without marketing consent and past
the suppression the STOP just wrote, by the `sms-keyword-reply` workflow,
whose id and idempotency key derive from the inbound message id: a
redelivered webhook changes nothing and sends nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from models.db import session_factory
from models.events import BehaviorEvent
from models.messages import ServiceSms
from models.tables import ConsentChange, Contact
from rules.consent import STOP_REASON, ConsentOrigin, record_change, set_consent, withdraw_consent
from rules.sms_keywords import KEYWORDS, SERVICE_SMS_JOURNEY, KeywordAction, keyword_of
from rules.suppressions import find_suppression, suppress_address
from runtime.temporal import unavailable_as_error
from starter.services.intake import accept_events

KEYWORD_SOURCE = "sms-keyword"
"""The consent history's `source` of a change made by texting a keyword."""
REPLY_WORKFLOW = "sms-keyword-reply"


@dataclass(frozen=True)
class InboundSms:
    """A text someone sent to our number.

    Attributes:
        id: The provider's id of the message (what makes a redelivery count once).
        from_number: Who sent it (E.164).
        body: What it says.
        received_at: When.
    """

    id: str
    from_number: str
    body: str
    received_at: datetime


@dataclass(frozen=True)
class KeywordOutcome:
    """What an inbound message did.

    Attributes:
        keyword: The keyword it is (None: not a keyword, nothing done).
        contacts: How many contacts have the number.
        replied: False when this message was answered before (a redelivery).
    """

    keyword: str | None
    contacts: int
    replied: bool


def message_digest(message_id: str) -> str:
    """A path- and id-safe digest of the provider's message id."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:32]


async def handle_inbound(
    client: Client,
    engine: AsyncEngine,
    message: InboundSms,
    *,
    task_queue: str,
    day_seconds: int,
    suppression_key: bytes,
) -> KeywordOutcome:
    """Apply the keyword the message is (see the module docstring) and answer it.

    `suppression_key` is the suppression hash key (`Settings.suppression_key`).

    Raises:
        TemporalUnavailable: the events or the answer could not be handed to
            Temporal (what was written to the database stays: it is idempotent).
    """
    keyword = keyword_of(message.body)
    if keyword is None:
        return KeywordOutcome(keyword=None, contacts=0, replied=False)
    action = KEYWORDS[keyword]
    origin = ConsentOrigin(source=KEYWORD_SOURCE, wording=f"texted {keyword}")
    change_key = f"sms-inbound-{message.id}"
    async with session_factory(engine)() as session:
        contacts = await _contacts_with(session, message.from_number)
        if action == KeywordAction.STOP:
            await _stop(
                session,
                message,
                contacts,
                key=suppression_key,
                origin=origin,
                change_key=change_key,
            )
        elif action == KeywordAction.START:
            await _start(
                session,
                message,
                contacts,
                key=suppression_key,
                origin=origin,
                change_key=change_key,
            )
        await session.commit()
    if action == KeywordAction.STOP and contacts:
        await accept_events(
            client,
            engine,
            [_unsubscribed(contact, message, keyword, change_key) for contact in contacts],
            task_queue=task_queue,
            day_seconds=day_seconds,
            suppression_key=suppression_key,
        )
    replied = await _reply(client, message, action, contacts, task_queue=task_queue)
    return KeywordOutcome(keyword=keyword, contacts=len(contacts), replied=replied)


async def _contacts_with(session: AsyncSession, number: str) -> list[Contact]:
    rows = await session.exec(
        select(Contact).where(Contact.phone == number).order_by(col(Contact.id))
    )
    return list(rows.all())


async def _stop(
    session: AsyncSession,
    message: InboundSms,
    contacts: list[Contact],
    *,
    key: bytes,
    origin: ConsentOrigin,
    change_key: str,
) -> None:
    """Suppress the number for SMS and withdraw the SMS consent of its contacts."""
    owner = contacts[0].id if contacts else None
    await suppress_address(
        session, "sms", message.from_number, key=key, reason=STOP_REASON, contact_id=owner
    )
    for contact in contacts:
        await withdraw_consent(
            session,
            contact,
            {"sms"},
            at=message.received_at,
            origin=origin,
            change_key=change_key,
        )


async def _start(
    session: AsyncSession,
    message: InboundSms,
    contacts: list[Contact],
    *,
    key: bytes,
    origin: ConsentOrigin,
    change_key: str,
) -> None:
    """Lift a STOP's suppression and restore the SMS consent it withdrew (nothing else)."""
    suppression = await find_suppression(session, "sms", message.from_number, key=key)
    if suppression is not None and suppression.reason != STOP_REASON:
        return
    if suppression is not None:
        await session.delete(suppression)
    for contact in contacts:
        if await _consent_lost_to_stop(session, contact.id):
            await record_change(
                session,
                contact.id,
                "sms",
                granted=True,
                at=message.received_at,
                origin=origin,
                change_key=f"{change_key}/sms",
            )
            set_consent(contact, "sms", granted=True, at=message.received_at, source=KEYWORD_SOURCE)
            session.add(contact)


async def _consent_lost_to_stop(session: AsyncSession, contact_id: str) -> bool:
    """Whether the contact gave SMS consent, and its latest SMS change is a STOP keyword."""
    rows = await session.exec(
        select(ConsentChange)
        .where(ConsentChange.contact_id == contact_id, ConsentChange.channel == "sms")
        .order_by(col(ConsentChange.occurred_at), col(ConsentChange.id))
    )
    history = list(rows.all())
    return (
        bool(history)
        and not history[-1].granted
        and history[-1].source == KEYWORD_SOURCE
        and any(change.granted for change in history)
    )


def _unsubscribed(
    contact: Contact, message: InboundSms, keyword: str, event_id: str
) -> BehaviorEvent:
    return BehaviorEvent(
        event_id=event_id,
        contact_id=contact.id,
        type="unsubscribed",
        occurred_at=message.received_at,
        properties={"channel": "sms", "source": KEYWORD_SOURCE, "keyword": keyword},
    )


async def _reply(
    client: Client,
    message: InboundSms,
    action: KeywordAction,
    contacts: list[Contact],
    *,
    task_queue: str,
) -> bool:
    """Start the answer's workflow; False when this message was answered before."""
    digest = message_digest(message.id)
    reply = ServiceSms(
        idempotency_key=f"{SERVICE_SMS_JOURNEY}/{digest}",
        to_number=message.from_number,
        template=action.reply_template,
        step=action.value,
        contact_id=contacts[0].id if contacts else None,
    )
    try:
        with unavailable_as_error():
            await client.start_workflow(
                REPLY_WORKFLOW,
                reply,
                id=f"{REPLY_WORKFLOW}-{digest}",
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                static_summary=f"Answer to an SMS {action.value.upper()}",
            )
    except WorkflowAlreadyStartedError:
        return False
    return True
