"""The suppression list: addresses never to be messaged again, kept as keyed hashes.

An address is stored as HMAC-SHA256 under `SUPPRESSION_HASH_SECRET`
(scheme `hmac-sha256`): unlike a bare SHA-256, a leaked table cannot be
reversed by hashing a dictionary of addresses without the secret.

Rows written before the key existed hold a bare SHA-256 (scheme `sha256`).
They cannot be re-keyed without their address, so both hashes are looked up,
and a legacy row found for an address is rewritten keyed there and then. An
address never seen again keeps its legacy row, which still suppresses it.
Changing the secret orphans every keyed row: treat it as permanent.

One row per (channel, address). A stronger reason replaces a weaker one: an
address that unsubscribed (marketing only) and then hard-bounced stops service
messages too (see `Suppression.stops_service_messages`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.tables import Suppression, utc_now

KEYED = "hmac-sha256"
LEGACY = "sha256"


async def find_suppression(
    session: AsyncSession, channel: str, address: str, *, key: bytes
) -> Suppression | None:
    """The suppression of `address` on `channel`, keyed or legacy; a legacy row is re-keyed.

    The caller commits (a re-keyed row is only flushed here).
    """
    keyed = Suppression.hash_address(address, key=key)
    legacy = Suppression.legacy_hash(address)
    rows = (
        await session.exec(
            select(Suppression).where(
                Suppression.channel == channel,
                or_(
                    (col(Suppression.address_hash) == keyed) & (col(Suppression.scheme) == KEYED),
                    (col(Suppression.address_hash) == legacy) & (col(Suppression.scheme) == LEGACY),
                ),
            )
        )
    ).all()
    found = next((row for row in rows if row.scheme == KEYED), None)
    for row in rows:
        if row.scheme != LEGACY:
            continue
        if found is None:
            row.address_hash, row.scheme = keyed, KEYED
            session.add(row)
            found = row
        else:
            await session.delete(row)
    await session.flush()
    return found


async def suppress_address(
    session: AsyncSession,
    channel: str,
    address: str,
    *,
    key: bytes,
    reason: str,
    contact_id: str | None,
    at: datetime | None = None,
) -> None:
    """Suppress `address` on `channel` (idempotent, also against a concurrent writer).

    An address already suppressed keeps its first reason, unless that one stops
    marketing only and `reason` stops service messages too. The caller commits.
    """
    existing = await find_suppression(session, channel, address, key=key)
    if existing is not None:
        if not existing.stops_service_messages and Suppression.reason_stops_service(
            channel, reason
        ):
            existing.reason = reason
            session.add(existing)
            await session.flush()
        return
    connection = await session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    await session.exec(
        dialect.insert(Suppression)
        .values(
            channel=channel,
            address_hash=Suppression.hash_address(address, key=key),
            scheme=KEYED,
            reason=reason,
            contact_id=contact_id,
            created_at=at or utc_now(),
        )
        .on_conflict_do_nothing(index_elements=["channel", "address_hash"])
    )
