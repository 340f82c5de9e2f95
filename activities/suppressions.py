"""The suppression list: hashed addresses that must not be messaged (again).

One row per (channel, address hash). A stronger reason replaces a weaker one: an
address that unsubscribed (marketing only) and then hard-bounced stops service
messages too (see `Suppression.stops_service_messages`).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Suppression, utc_now


async def find_suppression(session: AsyncSession, channel: str, address: str) -> Suppression | None:
    """The suppression of `address` on `channel`, if any."""
    rows = await session.exec(
        select(Suppression).where(
            Suppression.channel == channel,
            Suppression.address_hash == Suppression.hash_address(address),
        )
    )
    return rows.first()


async def add_suppression(
    session: AsyncSession,
    channel: str,
    address: str,
    reason: str,
    *,
    contact_id: str | None,
    now: datetime | None = None,
) -> None:
    """Suppress `address` on `channel`; keep an existing entry unless `reason` stops more.

    The caller commits (a concurrent insert of the same address fails the commit
    with an IntegrityError: the address is suppressed either way).
    """
    existing = await find_suppression(session, channel, address)
    if existing is None:
        session.add(
            Suppression(
                channel=channel,
                address_hash=Suppression.hash_address(address),
                reason=reason,
                contact_id=contact_id,
                created_at=now or utc_now(),
            )
        )
        return
    stronger = Suppression(channel=channel, address_hash=existing.address_hash, reason=reason)
    if stronger.stops_service_messages and not existing.stops_service_messages:
        existing.reason = reason
        session.add(existing)
