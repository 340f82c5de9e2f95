"""Application settings, read from the environment (and an optional `.env`).

Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE) are read by the SDK's
`temporalio.envconfig`, not here; see `starter/temporal.py`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Settings of the worker, CLI and gateway.

    Attributes:
        database_url: SQLAlchemy URL of the CRM / message-log database. A plain
            `sqlite:///path` or `postgresql://…` URL is mapped to its async driver.
        task_queue: Temporal task queue the worker polls and journeys run on.
        email_provider: How email is delivered (`outbox`: .eml files on disk).
        outbox_dir: Where the outbox provider writes one .eml file per message.
        templates_dir: Message assets (Liquid) and `brand.toml`.
        log_format: `json`, `console`, or `auto` (JSON unless stderr is a TTY).
        log_level: Minimum level logged.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///.data/journeys.db"
    task_queue: str = "journeys"
    email_provider: Literal["outbox"] = "outbox"
    outbox_dir: Path = Path(".data/outbox")
    templates_dir: Path = PROJECT_ROOT / "templates"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once)."""
    return Settings()
