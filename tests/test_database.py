"""The database: migrations own the schema, timestamps stay UTC, sends stay unique.

Runs on real SQLite files, and on a throwaway PostgreSQL cluster when the
server binaries are installed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select

from models.db import (
    alembic_config,
    async_database_url,
    create_engine,
    head_revision,
    migrate,
    session_factory,
)
from models.events import BehaviorEvent
from models.tables import ConsentChange, Contact, EventReceipt, MessageLog
from rules.consent import ConsentOrigin, record_change
from starter.dev.postgres import PostgresCluster, postgres_unavailable
from starter.services.intake import record_receipts
from tests.cli import run
from tests.factories import add_contact, rows_of

APP_TABLES = {
    "broadcasts",
    "broadcast_recipients",
    "contact_aliases",
    "contact_merges",
    "consent_changes",
    "data_keys",
    "contacts",
    "deliverability_alerts",
    "crm_tasks",
    "events",
    "send_pauses",
    "erased_contacts",
    "experiment_decisions",
    "experiment_exposures",
    "event_receipts",
    "journey_runs",
    "message_log",
    "notifications",
    "rep_assignments",
    "segments",
    "segment_changes",
    "segment_evaluations",
    "segment_members",
    "pipeline_transitions",
    "deals",
    "deal_stage_changes",
    "sla_breaches",
    "suppressions",
}


def _head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _current_revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def _schema_diff(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def _table_names(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names())


def _log_row(key: str, contact_id: str = "ada") -> MessageLog:
    return MessageLog(
        idempotency_key=key,
        contact_id=contact_id,
        journey="welcome-series",
        step="day0",
        channel="email",
        template="welcome-series/day0",
        status="sent",
    )


# --- migrations ------------------------------------------------------------------------


async def test_migrate_creates_the_schema_at_head_and_is_idempotent(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'fresh' / 'journeys.db'}")
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_table_names) == set()

        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_table_names) == APP_TABLES | {"alembic_version"}
            assert await connection.run_sync(_current_revisions) == (_head_revision(),)

        await add_contact(engine, "ada")
        await migrate(engine)  # again: nothing to do, data kept
        async with engine.connect() as connection:
            assert await connection.run_sync(_current_revisions) == (_head_revision(),)
            count = (await connection.execute(sa.text("SELECT count(*) FROM contacts"))).scalar()
            versions = (
                await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
        assert count == 1
        assert [row[0] for row in versions] == [_head_revision()]
    finally:
        await engine.dispose()


async def test_an_older_release_starts_on_a_database_a_newer_release_migrated(
    tmp_path: Path,
) -> None:
    """During a deploy the previous release's workers keep running (and restarting) beside
    the new ones: a revision they do not know is left alone, not an error."""
    engine = create_engine(f"sqlite:///{tmp_path / 'journeys.db'}")
    try:
        await migrate(engine)
        await add_contact(engine, "ada")
        async with engine.begin() as connection:
            await connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

        await migrate(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_current_revisions) == ("9999",)
            count = (await connection.execute(sa.text("SELECT count(*) FROM contacts"))).scalar()
        assert count == 1
    finally:
        await engine.dispose()


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert head_revision() == _head_revision()


async def test_migrate_at_head_answers_without_loading_alembic(tmp_path: Path) -> None:
    """A read command migrates first; at head that costs one query, not Alembic's import."""
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    check = (
        "import asyncio, sys\n"
        "from models.db import create_engine, migrate\n"
        f"engine = create_engine({url!r})\n"
        "asyncio.run(migrate(engine))\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))\n"
    )
    ran = await run(sys.executable, "-c", check, env=dict(os.environ))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


async def _add_contact_at_0006(
    engine: AsyncEngine, contact_id: str, *, email_consent: bool = False, sms_consent: bool = False
) -> None:
    """Insert a contact into the schema of revision 0006 (the ORM model has later columns)."""
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO contacts (id, email, phone, timezone, email_consent, email_consent_at,"
                " email_consent_source, sms_consent, sms_consent_at, sms_consent_source, tags,"
                " attributes, lead_score, score_breakdown, created_at, updated_at) VALUES"
                " (:id, :email, :phone, 'UTC', :email_consent, :email_at, :email_source,"
                " :sms_consent, :sms_at, :sms_source, '[]', '{}', 0, '{}', :now, :now)"
            ),
            {
                "id": contact_id,
                "email": f"{contact_id}@example.com",
                "phone": "+14155550100" if sms_consent else None,
                "email_consent": email_consent,
                "email_at": now if email_consent else None,
                "email_source": "test" if email_consent else None,
                "sms_consent": sms_consent,
                "sms_at": now if sms_consent else None,
                "sms_source": "test" if sms_consent else None,
                "now": now,
            },
        )


async def test_consents_given_before_the_history_become_its_first_rows(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'journeys.db'}")
    try:
        await migrate(engine, "0006")
        await _add_contact_at_0006(engine, "ada", email_consent=True)
        await _add_contact_at_0006(engine, "bob", sms_consent=True)
        await _add_contact_at_0006(engine, "cy")
        await migrate(engine)
        for contact_id, expected in (("ada", "email"), ("bob", "sms")):
            [change] = await rows_of(engine, ConsentChange, contact_id)
            assert (change.channel, change.granted, change.source) == (expected, True, "test")
        assert await rows_of(engine, ConsentChange, "cy") == []
        await _check_consent_change_once_per_key(engine)
    finally:
        await engine.dispose()


async def _check_consent_change_once_per_key(engine: AsyncEngine) -> None:
    """A cause recorded twice (by the gateway and by the workflow) is one row."""
    origin = ConsentOrigin(source="sms-keyword", wording="texted STOP")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    before = len(await rows_of(engine, ConsentChange, "ada"))
    async with session_factory(engine)() as session:
        for expected in (True, False):
            recorded = await record_change(
                session, "ada", "sms", granted=False, at=at, origin=origin, change_key="k"
            )
            assert recorded is expected
        for _ in range(2):  # without a key, each change is its own row
            assert await record_change(session, "ada", "sms", granted=True, at=at, origin=origin)
        await session.commit()
    assert len(await rows_of(engine, ConsentChange, "ada")) == before + 3


async def test_migrated_schema_matches_the_table_models(engine: AsyncEngine) -> None:
    """A change to `models/tables.py` without a migration shows up here."""
    async with engine.connect() as connection:
        diff = await connection.run_sync(_schema_diff)

    assert diff == []


async def test_schema_check_notices_a_model_change_without_migration(engine: AsyncEngine) -> None:
    """The check above is able to fail: a column missing from the database is reported."""
    metadata = sa.MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(metadata)
    metadata.tables["contacts"].append_column(sa.Column("nickname", sa.String(50)))

    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with engine.connect() as connection:
        changes = await connection.run_sync(diff)

    assert [(change[0], change[2], change[3].name) for change in changes] == [
        ("add_column", "contacts", "nickname")
    ]


# --- SQLite connections ----------------------------------------------------------------


async def test_sqlite_connections_use_wal_without_a_sync_per_commit(engine: AsyncEngine) -> None:
    """Every pooled connection: WAL, synchronous=NORMAL (1), the busy timeout, foreign keys."""
    async with engine.connect() as first, engine.connect() as second:
        for connection in (first, second):
            pragmas = [
                (await connection.execute(sa.text(f"PRAGMA {name}"))).scalar_one()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            ]
            assert pragmas == ["wal", 1, 30000, 1]


# --- constraints and types -------------------------------------------------------------


async def test_message_log_idempotency_key_is_unique(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        session.add(_log_row("welcome-series-ada/day0"))
        await session.commit()

    async with session_factory(engine)() as session:
        session.add(_log_row("welcome-series-ada/day0"))
        with pytest.raises(IntegrityError):
            await session.commit()

    async with session_factory(engine)() as session:
        session.add(_log_row("welcome-series-ada/day1"))
        await session.commit()

    async with engine.connect() as connection:
        keys = (
            await connection.execute(sa.text("SELECT idempotency_key FROM message_log ORDER BY id"))
        ).all()
    assert [row[0] for row in keys] == ["welcome-series-ada/day0", "welcome-series-ada/day1"]


async def test_utc_datetime_keeps_the_instant_and_reads_back_utc(engine: AsyncEngine) -> None:
    paris = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 01:30 UTC (CEST)
    los_angeles = datetime(2026, 11, 1, 23, 15, tzinfo=ZoneInfo("America/Los_Angeles"))
    async with session_factory(engine)() as session:
        session.add(
            Contact(
                id="ada",
                email_consent=True,
                email_consent_at=paris,
                sms_consent=True,
                sms_consent_at=los_angeles,
            )
        )
        await session.commit()

    async with session_factory(engine)() as session:
        contact = await session.get(Contact, "ada")
    assert contact is not None
    assert contact.email_consent_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert contact.email_consent_at is not None and contact.email_consent_at.tzinfo is UTC
    assert contact.sms_consent_at == datetime(2026, 11, 2, 7, 15, tzinfo=UTC)
    assert contact.sms_consent_at is not None and contact.sms_consent_at.tzinfo is UTC
    assert contact.created_at.tzinfo is UTC

    # What is stored is the UTC wall time, so ordering and comparisons in SQL are right.
    async with engine.connect() as connection:
        stored = (
            await connection.execute(sa.text("SELECT email_consent_at FROM contacts"))
        ).scalar()
    assert str(stored).startswith("2026-03-29 01:30:00")


async def test_utc_datetime_refuses_a_naive_datetime(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        session.add(Contact(id="ada", email_consent_at=datetime(2026, 3, 29, 1, 30)))
        with pytest.raises(StatementError, match="naive datetime given for a UTC column"):
            await session.commit()

    async with session_factory(engine)() as session:
        assert await session.get(Contact, "ada") is None


# --- URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///x", "sqlite+aiosqlite:///x"),
        ("sqlite:////var/lib/journeys.db", "sqlite+aiosqlite:////var/lib/journeys.db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql://u:s3cr%40t@h:5433/db", "postgresql+asyncpg://u:s3cr%40t@h:5433/db"),
        ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("sqlite+aiosqlite:///x", "sqlite+aiosqlite:///x"),
    ],
)
def test_async_database_url(url: str, expected: str) -> None:
    assert async_database_url(url) == expected


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port."""
    with PostgresCluster() as cluster:
        yield cluster.url


@pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable()))
async def test_postgresql_migrate_and_round_trip(postgres_url: str) -> None:
    engine, other_process = create_engine(postgres_url), create_engine(postgres_url)
    try:
        assert engine.url.drivername == "postgresql+asyncpg"
        await asyncio.gather(migrate(engine), migrate(other_process))  # worker and gateway
        await migrate(engine)  # idempotent here too
        async with engine.connect() as connection:
            assert await connection.run_sync(_current_revisions) == (_head_revision(),)
            assert await connection.run_sync(_schema_diff) == []

        consent_at = datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris"))
        async with session_factory(engine)() as session:
            session.add(
                Contact(
                    id="ada",
                    email="ada@example.com",
                    first_name="Ada",
                    email_consent=True,
                    email_consent_at=consent_at,
                    email_consent_source="form:lead-magnet",
                    tags=["src_webinar", "int_email"],
                )
            )
            session.add(_log_row("welcome-series-ada/day0"))
            await session.commit()

        async with session_factory(engine)() as session:
            contact = await session.get(Contact, "ada")
            assert contact is not None
            assert contact.email == "ada@example.com"
            assert contact.first_name == "Ada"
            assert contact.tags == ["src_webinar", "int_email"]
            assert contact.email_consent_at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
            assert contact.email_consent_at is not None
            assert contact.email_consent_at.tzinfo is UTC

            session.add(_log_row("welcome-series-ada/day0"))
            with pytest.raises(IntegrityError):
                await session.commit()

        receipt = BehaviorEvent(
            event_id="e1", contact_id="ada", type="subscribed", occurred_at=consent_at
        )
        await record_receipts(engine, [receipt])
        await record_receipts(engine, [receipt])  # a concurrent request's: left as it is
        async with session_factory(engine)() as session:
            assert len((await session.exec(select(EventReceipt))).all()) == 1
        await _check_consent_change_once_per_key(engine)
    finally:
        await engine.dispose()
        await other_process.dispose()
