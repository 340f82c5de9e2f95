"""Data keys of the payload codec: one per contact, wrapped by a master key, destroyed on erasure.

- A contact's data key is 256 random bits, made on first use and kept in
  `data_keys` wrapped (AES-256-GCM, the key id as associated data) by the
  active master key. Payloads of no contact use the namespace's key (owner
  `namespace:<name>`).
- Erasure (`destroy`) deletes the wrapped key; the row stays as a marker, so
  later payloads of the contact get a throwaway key (write-only) and its old
  ones decode as erased.
- Master key rotation (`rotate`) rewraps every live data key by the active
  master key; the old master keys can then be dropped.
- A process keeps unwrapped keys for `cache_seconds`; a key destroyed in this
  process is dropped at once, elsewhere when the entry expires (the codec
  endpoint keeps none).
"""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from models.db import create_engine, session_factory
from models.settings import Settings
from models.tables import Contact, DataKey, utc_now

NONCE_BYTES = 12
CACHE_ENTRIES = 10_000
"""Most unwrapped keys one process keeps (least recently used go first)."""


@dataclass(frozen=True)
class DataKeyMaterial:
    """A data key as the codec uses it.

    Attributes:
        key_id: Its id (what payload metadata names).
        secret: The 32-byte key; None once erasure destroyed it.
    """

    key_id: str
    secret: bytes | None


class UnknownDataKey(LookupError):
    """A payload names a data key this database never held."""


class MasterKeyMissing(LookupError):
    """A data key is wrapped by a master key that is not configured."""


def namespace_owner(namespace: str) -> str:
    """Owner of the key of payloads that belong to no contact (contact ids hold no `:`)."""
    return f"namespace:{namespace}"


class KeyStore:
    """Creates, unwraps, caches, destroys and rewraps data keys in the app database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        active_master_key_id: str,
        master_keys: Mapping[str, bytes],
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Hold the database and the master keys.

        Args:
            engine: The app database (table `data_keys`).
            active_master_key_id: Master key new keys are wrapped with.
            master_keys: Every master key by id (32 bytes each).
            cache_seconds: How long an unwrapped key is kept (0: not at all).
            clock: Monotonic seconds (tests move it).
        """
        self.engine = engine
        self._sessions = session_factory(engine)
        self._active = active_master_key_id
        self._masters = dict(master_keys)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: OrderedDict[str, tuple[DataKeyMaterial, float]] = OrderedDict()
        self._owners: dict[str, str] = {}

    def uncached(self) -> KeyStore:
        """The same keys, read from the database every time (for the codec endpoint)."""
        return KeyStore(
            self.engine,
            active_master_key_id=self._active,
            master_keys=self._masters,
            cache_seconds=0,
            clock=self._clock,
        )

    # --- lookups -------------------------------------------------------------------

    async def for_owner(self, owner: str) -> DataKeyMaterial:
        """The key of a contact (its id) or namespace (`namespace_owner`), made if missing."""
        key_id = self._owners.get(owner)
        if key_id is not None and (cached := self._cached(key_id)) is not None:
            return cached
        async with self._sessions() as session:
            row = (await session.exec(select(DataKey).where(DataKey.owner == owner))).first()
            if row is None:
                row = await self._create(owner)
        return self._remember(owner, row)

    async def by_id(self, key_id: str) -> DataKeyMaterial:
        """The key named in a payload's metadata.

        Raises:
            UnknownDataKey: no such key in this database.
            MasterKeyMissing: its master key is not configured.
        """
        cached = self._cached(key_id)
        if cached is not None:
            return cached
        async with self._sessions() as session:
            row = await session.get(DataKey, key_id)
        if row is None:
            raise UnknownDataKey(f"data key {key_id!r} is not in this database")
        return self._remember(row.owner, row)

    async def known_contacts(self, candidates: Iterable[str]) -> set[str]:
        """Those of `candidates` that are contacts, or were (they have a data key)."""
        wanted = list(candidates)
        async with self._sessions() as session:
            keyed = await session.exec(select(DataKey.owner).where(col(DataKey.owner).in_(wanted)))
            contacts = await session.exec(select(Contact.id).where(col(Contact.id).in_(wanted)))
            return set(keyed.all()) | set(contacts.all())

    # --- erasure and rotation ------------------------------------------------------

    async def destroy(self, contact_id: str) -> str:
        """Destroy the contact's key (crypto-shredding); idempotent.

        Returns:
            The id of the destroyed key (a marker row is made if it had none).
        """
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(DataKey).where(DataKey.owner == contact_id).with_for_update()
                )
            ).first()
            if row is None:
                row = DataKey(id=_new_key_id(), owner=contact_id)
            if row.destroyed_at is None:
                row.wrapped_key, row.master_key_id, row.destroyed_at = None, None, utc_now()
            session.add(row)
            await session.commit()
        self._owners[contact_id] = row.id
        self._put(DataKeyMaterial(key_id=row.id, secret=None), forever=True)
        return row.id

    async def rotate(self) -> int:
        """Rewrap every live data key not wrapped by the active master key.

        Returns:
            How many keys were rewrapped.

        Raises:
            MasterKeyMissing: a key's master key is not configured (nothing is changed).
        """
        async with self._sessions() as session:
            rows = (
                await session.exec(
                    select(DataKey).where(
                        col(DataKey.wrapped_key).is_not(None),
                        DataKey.master_key_id != self._active,
                    )
                )
            ).all()
            for row in rows:
                secret = self._unwrap(row)
                row.wrapped_key, row.master_key_id = self._wrap(row.id, secret), self._active
                session.add(row)
            await session.commit()
        return len(rows)

    # --- internals -----------------------------------------------------------------

    async def _create(self, owner: str) -> DataKey:
        key_id = _new_key_id()
        row = DataKey(
            id=key_id,
            owner=owner,
            master_key_id=self._active,
            wrapped_key=self._wrap(key_id, AESGCM.generate_key(bit_length=256)),
        )
        try:
            async with self._sessions() as session:
                session.add(row)
                await session.commit()
            return row
        except IntegrityError:  # another process made it first: use theirs
            async with self._sessions() as session:
                return (await session.exec(select(DataKey).where(DataKey.owner == owner))).one()

    def _wrap(self, key_id: str, secret: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._masters[self._active]).encrypt(nonce, secret, key_id.encode())

    def _unwrap(self, row: DataKey) -> bytes:
        assert row.wrapped_key is not None and row.master_key_id is not None
        master = self._masters.get(row.master_key_id)
        if master is None:
            raise MasterKeyMissing(
                f"data key {row.id!r} is wrapped by master key {row.master_key_id!r}, "
                "which is not in PAYLOAD_MASTER_KEYS"
            )
        nonce, wrapped = row.wrapped_key[:NONCE_BYTES], row.wrapped_key[NONCE_BYTES:]
        return AESGCM(master).decrypt(nonce, wrapped, row.id.encode())

    def _remember(self, owner: str, row: DataKey) -> DataKeyMaterial:
        destroyed = row.wrapped_key is None
        material = DataKeyMaterial(key_id=row.id, secret=None if destroyed else self._unwrap(row))
        self._owners[owner] = row.id
        if len(self._owners) > CACHE_ENTRIES:
            self._owners.pop(next(iter(self._owners)))
        self._put(material, forever=destroyed)
        return material

    def _put(self, material: DataKeyMaterial, *, forever: bool) -> None:
        if not forever and self._cache_seconds <= 0:
            self._cache.pop(material.key_id, None)
            return
        expires = float("inf") if forever else self._clock() + self._cache_seconds
        self._cache[material.key_id] = (material, expires)
        self._cache.move_to_end(material.key_id)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)

    def _cached(self, key_id: str) -> DataKeyMaterial | None:
        entry = self._cache.get(key_id)
        if entry is None:
            return None
        material, expires = entry
        if expires <= self._clock():
            del self._cache[key_id]
            return None
        self._cache.move_to_end(key_id)
        return material


def _new_key_id() -> str:
    return f"dk_{secrets.token_hex(12)}"


def key_store(
    settings: Settings, *, engine: AsyncEngine | None = None, cache_seconds: float | None = None
) -> KeyStore:
    """The key store the settings describe.

    Args:
        settings: Database, master keys and cache time.
        engine: The app database's engine, used unless the keys have a
            database of their own (`payload_keys_database_url`). Default: an
            engine that keeps no connection open, so a process-long store
            needs no disposing.
        cache_seconds: Instead of `codec_key_cache_seconds`.
    """
    active, masters = settings.master_keys()
    if settings.payload_keys_database_url is not None:
        engine = create_engine(settings.payload_keys_database_url, pooled=False)
    return KeyStore(
        engine or create_engine(settings.database_url, pooled=False),
        active_master_key_id=active,
        master_keys=masters,
        cache_seconds=settings.codec_key_cache_seconds if cache_seconds is None else cache_seconds,
    )
