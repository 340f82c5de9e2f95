"""What the CLI's command modules share: a migrated database for one command, who runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


async def with_engine(action: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `action` on the settings' database, migrated first, and close it after."""
    from models.db import create_engine, migrate
    from models.settings import get_settings

    engine = create_engine(get_settings().database_url)
    try:
        await migrate(engine)
        return await action(engine)
    finally:
        await engine.dispose()


def cli_actor() -> str:
    """Who runs the command, for audit rows: `cli:<login name>`."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no login name (a container without a user entry)
        return "cli"
