"""Database engine, sessions and schema migrations.

SQLite (a file, WAL mode, synchronous=NORMAL) by default; PostgreSQL through `DATABASE_URL`.
The schema is owned by the Alembic migrations in `migrations/`; `migrate()`
brings a database to the newest revision and is a no-op when it is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from models.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def async_database_url(url: str) -> str:
    """Map a plain `sqlite:///…` / `postgresql://…` URL to its async driver.

    Args:
        url: A SQLAlchemy URL; one that already names a driver is kept.

    Returns:
        The URL as a string usable with `create_async_engine`.
    """
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    if parsed.drivername == "postgres":
        driver = _ASYNC_DRIVERS["postgresql"]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _enable_sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """WAL, and a commit that waits for no fsync (`synchronous=NORMAL`).

    In WAL mode NORMAL keeps the database consistent and every commit a
    process crash could lose; a power cut may roll back the last commits
    (the WAL is synced at checkpoints), which is SQLite's recommended setting
    for WAL. PostgreSQL (production) is not concerned.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """Create the async engine for `url`, creating a SQLite file's folder.

    Args:
        url: Database URL (see `async_database_url`).
        pooled: Keep connections open between uses. An engine that lives as
            long as its process and is never disposed (the payload codec's)
            passes False: nothing is left open at exit.

    Returns:
        An engine; SQLite connections use WAL (synchronous=NORMAL) and a 30 s
        busy timeout so the worker, CLI and gateway can share one file.
    """
    async_url = make_url(async_database_url(url))
    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if async_url.get_backend_name() == "sqlite":
        if async_url.database and async_url.database != ":memory:":
            Path(async_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(async_url, connect_args={"timeout": 30}, **pool)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_wal)
        return engine
    return create_async_engine(async_url, pool_pre_ping=True, **pool)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a factory of sqlmodel async sessions bound to `engine`."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configuration pointing at the project's migrations."""
    from alembic.config import Config  # Alembic loads only when there is something to migrate

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


_MIGRATION_LOCK = 0x6A6F75726E657973  # "journeys"
"""PostgreSQL advisory lock held while migrating (the worker and the gateway start together)."""


_REVISION_LINE = re.compile(r'^(down_)?revision(?:: [^=]+)? = "([^"]+)"$', re.MULTILINE)


@cache
def _revision_graph() -> tuple[frozenset[str], frozenset[str]]:
    """(revisions, their parents) of `migrations/versions`, read from the files."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for down, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (parents if down else revisions).add(value)
    return frozenset(revisions), frozenset(parents)


def head_revision() -> str | None:
    """The newest revision in `migrations/versions`, read from the files without Alembic.

    None when the revisions do not form one line (a branch or a merge): then
    `migrate` leaves it to Alembic.
    """
    revisions, parents = _revision_graph()
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (one query, without Alembic); None for a new one."""
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return found.scalar_one_or_none()
    except (OperationalError, ProgrammingError):  # no version table yet: a new database
        return None


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply pending migrations (idempotent).

    A database a newer release already migrated (its revision is not one of this
    release's) is left as it is: the previous release keeps running beside the new
    one during a deploy, so each migration must keep the previous release working.

    Args:
        engine: Engine of the database to upgrade.
        revision: Target revision; `head` is the newest.
    """
    if revision == "head":
        current = await database_revision(engine)
        if current is not None and (current == head_revision() or is_newer(current)):
            return  # the usual case: a read, a restart
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":  # processes starting together take turns
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        await connection.run_sync(_upgrade, revision)


def is_newer(revision: str) -> bool:
    """Whether `revision` comes from a newer release (this one's migrations don't have it)."""
    return revision not in _revision_graph()[0]


_CONTACT_LOCKS = 0x636F6E74  # "cont": the advisory-lock space of per-contact locks


async def lock_contact(session: AsyncSession, contact_id: str) -> None:
    """Serialise writers of one contact until `session`'s transaction ends.

    Upserts, erasure and the tombstone check take this lock first, so a PUT
    racing a DELETE, or several PUTs creating the same contact, run one after
    the other instead of failing on each other's rows. PostgreSQL: a
    transaction-scoped advisory lock on the contact id. SQLite: the database's
    write lock, taken by a write that changes nothing (SQLite has one writer
    at a time; the 30 s busy timeout makes the others wait).
    """
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        statement = "SELECT pg_advisory_xact_lock(:space, hashtext(:contact_id))"
    else:
        statement = (
            "UPDATE erased_contacts SET erased_at = erased_at WHERE contact_id = :contact_id"
        )
    await connection.execute(text(statement), {"space": _CONTACT_LOCKS, "contact_id": contact_id})


async def lock_for_writing(session: AsyncSession) -> None:
    """Make `session`'s transaction the writer before it reads what it will write.

    SQLite: take the database's write lock now (a write that changes nothing), so
    two processes cannot both read, decide and then write the same rows. PostgreSQL:
    nothing; there the rows read `FOR UPDATE` are locked.
    """
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await connection.execute(
            text("UPDATE erased_contacts SET erased_at = erased_at WHERE contact_id = ''")
        )


async def lock_contacts(session: AsyncSession, contact_ids: Iterable[str]) -> None:
    """`lock_contact` for many contacts in one statement (a batch of an import).

    PostgreSQL: the advisory locks in the order of the ids (as two-contact merges take
    theirs), so writers of several contacts do not wait on each other in a circle.
    SQLite: the database's write lock, which covers every contact.
    """
    ids = sorted(set(contact_ids))
    if not ids:
        return
    connection = await session.connection()
    if connection.dialect.name != "postgresql":
        await lock_contact(session, ids[0])
        return
    statement = (
        "SELECT count(pg_advisory_xact_lock(:space, hashtext(id))) FROM ("
        "SELECT id FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS ids(id, n) ORDER BY n"
        ") AS ordered"
    )
    await connection.execute(text(statement), {"space": _CONTACT_LOCKS, "ids": ids})
