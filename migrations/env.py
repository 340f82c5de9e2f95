"""Alembic environment.

The application calls `models.db.migrate()`, which hands Alembic an open
connection. The `alembic` command line (e.g. `alembic revision
--autogenerate -m "…"`) connects with the `DATABASE_URL` setting instead.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import models.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from models.db import create_engine
from models.settings import get_settings

target_metadata = SQLModel.metadata


def _render_item(kind: str, item: object, _context: AutogenContext) -> str | Literal[False]:
    """Render sqlmodel's AutoString as a plain `sa.String` in new revisions."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(get_settings().database_url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
else:
    asyncio.run(_run_with_own_engine())
