"""Consent and suppression: what every opt-in and opt-out writes, whoever receives it.

One place for the rules, used by the gateway (the link, the SMS webhook, event
intake, contact upserts), the CLI and the contact workflow's activities:

- a suppression is per channel and holds only a keyed hash of the address
  (`rules/suppressions.py`); an
  unsubscribe suppresses the channels its scope names
  (`rules.opt_outs.suppression_scope`), a hard bounce the email address;
- an opt-out also withdraws the marketing consent on those channels; every
  consent change (opt-in or opt-out) appends a `consent_changes` row saying
  when, from where and what the contact agreed to or said;
- a cause that reaches us twice (an event seen by the gateway and by the
  contact workflow, a redelivered webhook) carries the same `change_key`, and
  is applied once: the first path to record it wins, with what it knew (the
  unsubscribe page knows the IP address and user agent, the workflow does not).

The caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.events import ALL_CHANNELS, BehaviorEvent
from models.tables import ConsentChange, Contact, ContactEvent, utc_now
from rules.opt_outs import SuppressionScope, suppression_scope
from rules.suppressions import find_suppression, suppress_address

STOP_REASON = "sms_stop"
"""Suppression reason of an SMS STOP keyword: the only suppression START lifts."""


@dataclass(frozen=True)
class ConsentOrigin:
    """Where a consent change came from.

    Attributes:
        source: e.g. `form:lead-magnet`, `unsubscribe-link`, `sms-keyword`.
        wording: The consent text or purpose agreed to, or what the contact said.
        ip: The IP address of the request, where known.
        user_agent: The browser's user agent, where known.
    """

    source: str
    wording: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def address_on(contact: Contact, channel: str) -> str | None:
    """The contact's address on `channel`: its email address or phone number."""
    return contact.email if channel == "email" else contact.phone


async def suppress_addresses(
    session: AsyncSession,
    contact: Contact,
    reason: str,
    *,
    key: bytes,
    channels: Iterable[str] = ALL_CHANNELS,
) -> list[str]:
    """Add the contact's addresses on `channels` to the suppressions (keyed hashes).

    Idempotent: an address already suppressed stays so (a stronger reason replaces a
    marketing-only one, see `rules.suppressions.suppress_address`).

    Returns:
        The channels suppressed (or already suppressed).
    """
    suppressed = []
    for channel in sorted(channels):
        address = address_on(contact, channel)
        if address:
            await suppress_address(
                session, channel, address, key=key, reason=reason, contact_id=contact.id
            )
            suppressed.append(channel)
    return suppressed


async def record_change(
    session: AsyncSession,
    contact_id: str,
    channel: str,
    *,
    granted: bool,
    at: datetime,
    origin: ConsentOrigin,
    change_key: str | None = None,
) -> bool:
    """Append a consent change; one whose `change_key` the contact has is not appended again.

    Returns:
        Whether it was appended (False: recorded before).
    """
    row = {
        "contact_id": contact_id,
        "channel": channel,
        "granted": granted,
        "occurred_at": at,
        "source": origin.source[:200],
        "wording": origin.wording[:1000] if origin.wording else None,
        "ip": origin.ip,
        "user_agent": origin.user_agent[:500] if origin.user_agent else None,
        "change_key": change_key,
    }
    bind = session.bind
    dialect = postgresql if bind is not None and bind.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(ConsentChange)
        .values(**row, recorded_at=utc_now())
        .on_conflict_do_nothing(index_elements=["contact_id", "change_key"])
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


def set_consent(
    contact: Contact, channel: str, *, granted: bool, at: datetime, source: str
) -> None:
    """Write the contact's current consent on `channel` (the history is `record_change`)."""
    setattr(contact, f"{channel}_consent", granted)
    setattr(contact, f"{channel}_consent_at", at)
    setattr(contact, f"{channel}_consent_source", source[:200])


async def withdraw_consent(
    session: AsyncSession,
    contact: Contact,
    channels: Iterable[str],
    *,
    at: datetime,
    origin: ConsentOrigin,
    change_key: str,
) -> list[str]:
    """Withdraw the contact's marketing consent on `channels` and record it, once per cause.

    Only a channel the contact has consent on changes (and is recorded): an opt-out where
    there was no consent is a suppression, not a consent change.

    Returns:
        The channels whose withdrawal was recorded now.
    """
    withdrawn = []
    for channel in sorted(channels):
        if not getattr(contact, f"{channel}_consent"):
            continue
        recorded = await record_change(
            session,
            contact.id,
            channel,
            granted=False,
            at=at,
            origin=origin,
            change_key=f"{change_key}/{channel}",
        )
        if recorded:
            set_consent(contact, channel, granted=False, at=at, source=origin.source)
            withdrawn.append(channel)
    session.add(contact)
    return withdrawn


async def apply_scope(
    session: AsyncSession,
    contact: Contact,
    scope: SuppressionScope,
    *,
    key: bytes,
    at: datetime,
    origin: ConsentOrigin,
    change_key: str,
) -> None:
    """Suppress what a suppressing event names and, for an opt-out, withdraw the consent.

    `key` is the suppression hash key (`Settings.suppression_key`).
    """
    await suppress_addresses(session, contact, scope.reason, key=key, channels=scope.channels)
    if scope.withdraws_consent:
        await withdraw_consent(
            session, contact, scope.channels, at=at, origin=origin, change_key=change_key
        )


async def apply_event(
    session: AsyncSession, contact: Contact, event: BehaviorEvent | ContactEvent, *, key: bytes
) -> None:
    """Suppress (and withdraw consent) as an `unsubscribed` / hard-bounce event says, once per
    event (its id is the change key); any other event changes nothing."""
    scope = suppression_scope(event)
    if scope is not None:
        await apply_scope(
            session,
            contact,
            scope,
            key=key,
            at=event.occurred_at,
            origin=event_origin(event.properties),
            change_key=event.event_id,
        )


async def reachable_channels(
    session: AsyncSession, contact: Contact | None, *, key: bytes
) -> list[str]:
    """The channels marketing can still reach the contact on: address, consent, no suppression."""
    if contact is None:
        return []
    reachable = []
    for channel in sorted(ALL_CHANNELS):
        address = address_on(contact, channel)
        if (
            address
            and getattr(contact, f"{channel}_consent")
            and await find_suppression(session, channel, address, key=key) is None
        ):
            reachable.append(channel)
    return reachable


async def latest_grant(session: AsyncSession, contact_id: str, channel: str) -> datetime | None:
    """When the contact last granted consent on `channel`, per its history."""
    rows = await session.exec(
        select(ConsentChange.occurred_at)
        .where(
            ConsentChange.contact_id == contact_id,
            ConsentChange.channel == channel,
            col(ConsentChange.granted).is_(True),
        )
        .order_by(col(ConsentChange.occurred_at).desc(), col(ConsentChange.id).desc())
        .limit(1)
    )
    return rows.first()


async def consent_history(session: AsyncSession, contact_id: str) -> list[ConsentChange]:
    """The contact's consent changes, oldest first."""
    rows = await session.exec(
        select(ConsentChange)
        .where(ConsentChange.contact_id == contact_id)
        .order_by(col(ConsentChange.occurred_at), col(ConsentChange.id))
    )
    return list(rows.all())


def event_origin(properties: Mapping[str, Any]) -> ConsentOrigin:
    """The origin of an opt-out an `unsubscribed` event reports (when no closer path recorded it):
    `complaint` for a spam report, else the event's `source` property, else `event`."""
    if properties.get("reason") == "complaint":
        return ConsentOrigin(source="complaint", wording="marked a message as spam")
    source = properties.get("source")
    return ConsentOrigin(source=f"event:{source}" if isinstance(source, str) else "event")
