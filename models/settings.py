"""Application settings, read from the environment (and an optional `.env`).

Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE) are read by the SDK's
`temporalio.envconfig`, not here; see `starter/temporal.py`.
"""

from __future__ import annotations

from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.policy import FrequencyCap, MessagingPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEVELOPMENT_SUPPRESSION_HASH_SECRET = "local-development-only-suppression-hash-secret"
"""The built-in `SUPPRESSION_HASH_SECRET`: for `journeys dev` and tests, never production."""

Scope = Literal[
    "events:write",
    "contacts:read",
    "contacts:write",
    "contacts:erase",
    "contacts:export",
    "journeys:write",
]
"""What an API key may do: send events, read / write / erase / export contacts (an access
request's whole record), steer journeys."""
ALL_SCOPES: frozenset[Scope] = frozenset(
    (
        "events:write",
        "contacts:read",
        "contacts:write",
        "contacts:erase",
        "contacts:export",
        "journeys:write",
    )
)


class ApiKey(BaseModel):
    """One key of the HTTP gateway (`Authorization: Bearer <key>`).

    Attributes:
        name: Who holds it (logged instead of the key), e.g. `billing-service`.
        key: The secret itself, at least 24 characters.
        scopes: What it may do; every scope when omitted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    key: SecretStr = Field(min_length=24)
    scopes: frozenset[Scope] = ALL_SCOPES


class Settings(BaseSettings):
    """Settings of the worker, CLI and gateway.

    Attributes:
        database_url: SQLAlchemy URL of the CRM / message-log database. A plain
            `sqlite:///path` or `postgresql://…` URL is mapped to its async driver.
        task_queue: Temporal task queue the worker polls and journeys run on.
        email_provider: How email is delivered: `outbox` (.eml files on disk),
            `smtp` (an SMTP server) or `http` (a JSON email API).
        outbox_dir: Where the outbox provider writes one .eml file per message.
        templates_dir: Message assets (Liquid) and `brand.toml`.
        log_format: `json`, `console`, or `auto` (JSON unless stderr is a TTY).
        log_level: Minimum level logged.
        quiet_hours_start: Local time (contact's zone) marketing stops being sent.
        quiet_hours_end: Local time it may be sent again.
        email_cap_per_day: Marketing emails per contact per rolling 24 h, all journeys.
        email_cap_per_week: Marketing emails per contact per rolling 7 days.
        public_base_url: Base URL of the gateway, for unsubscribe links.
        unsubscribe_secret: HMAC key signing unsubscribe tokens; set your own
            in production (the default is for local use only).
        smtp_host: SMTP server host (email_provider `smtp`).
        smtp_port: SMTP server port.
        smtp_username: SMTP login name; AUTH only when set (with smtp_password).
        smtp_password: SMTP login password.
        smtp_starttls: Upgrade the SMTP connection with STARTTLS (port 587).
        smtp_use_tls: Connect to SMTP with implicit TLS (port 465).
        email_api_url: Base URL of the JSON email API (email_provider `http`);
            messages are POSTed to `{email_api_url}/emails`.
        email_api_key: Bearer token of the email API.
        sms_provider: How SMS is delivered: `outbox` (.sms.txt files in
            outbox_dir) or `http` (a JSON SMS API).
        sms_api_url: Base URL of the JSON SMS API (sms_provider `http`);
            messages are POSTed to `{sms_api_url}/messages`.
        sms_api_key: Bearer token of the SMS API.
        provider_timeout_seconds: Time allowed for one provider call (connect,
            send, answer) before it counts as a transient failure.
        scoring_file: The lead-scoring model (TOML, see `models/scoring.py`).
        sales_file: Reps, territories and SLAs of the sales hand-off (TOML,
            see `models/sales.py`).
        notifier: How the sales team is notified: `outbox` (JSON files in
            `outbox_dir/notifications`) or `slack` (a Slack-compatible
            incoming webhook).
        slack_webhook_url: The incoming-webhook URL (notifier `slack`).
        day_seconds: Journey clock of the contact workflows the gateway and
            the CLI start: seconds per journey day (lower it only for demos).
        api_host: Interface `journeys api` listens on.
        api_port: Port `journeys api` listens on.
        api_keys: Keys of the HTTP gateway, as JSON in API_KEYS:
            `[{"name": "billing", "key": "…", "scopes": ["events:write"]}]`.
        api_max_batch_events: Most events in one `POST /v1/events` batch.
        api_max_body_bytes: Larger request bodies are refused with 413.
        api_cors_origins: Browser origins allowed to call the API (none: CORS off).
        api_erasure_wait_seconds: How long `DELETE /v1/contacts/{id}` waits for
            the erasure to finish before answering 202 (it goes on regardless).
        event_max_future_seconds: Clock skew tolerated on `occurred_at`; events
            further in the future are rejected.
        temporal_retry_after_seconds: `Retry-After` of a 503 while Temporal is
            unreachable.
        suppression_hash_secret: HMAC key of the suppression list's address
            hashes (`activities/suppressions.py`); set your own, at least 32
            bytes, in production, and never change it afterwards: rows hashed
            under another key no longer match (the default is for local use only).
        email_webhook_secret: HMAC key of the email provider's delivery
            webhooks; the webhook endpoint refuses everything until it is set.
        metrics_bind_address: `host:port` where `journeys worker` serves
            Prometheus metrics (`http://<host:port>/metrics`): the Temporal
            SDK's and the journeys' own; off when unset, e.g. `127.0.0.1:9464`.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///.data/journeys.db"
    task_queue: str = "journeys"
    email_provider: Literal["outbox", "smtp", "http"] = "outbox"
    outbox_dir: Path = Path(".data/outbox")
    templates_dir: Path = PROJECT_ROOT / "templates"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    email_cap_per_day: int = Field(default=2, ge=1)
    email_cap_per_week: int = Field(default=5, ge=1)
    public_base_url: str = "http://localhost:8000"
    unsubscribe_secret: SecretStr = SecretStr("local-development-only-unsubscribe-secret")
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    email_api_url: str | None = None
    email_api_key: SecretStr | None = None
    sms_provider: Literal["outbox", "http"] = "outbox"
    sms_api_url: str | None = None
    sms_api_key: SecretStr | None = None
    provider_timeout_seconds: float = 10.0
    scoring_file: Path = PROJECT_ROOT / "scoring.toml"
    sales_file: Path = PROJECT_ROOT / "sales.toml"
    notifier: Literal["outbox", "slack"] = "outbox"
    slack_webhook_url: SecretStr | None = None
    day_seconds: int = Field(default=86_400, ge=1)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    api_keys: list[ApiKey] = Field(default_factory=list)
    api_max_batch_events: int = Field(default=500, ge=1, le=500)
    api_max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    api_cors_origins: list[str] = Field(default_factory=list)
    api_erasure_wait_seconds: float = Field(default=10.0, ge=0)
    event_max_future_seconds: float = Field(default=300.0, ge=0)
    temporal_retry_after_seconds: int = Field(default=5, ge=1)
    suppression_hash_secret: SecretStr = SecretStr(DEVELOPMENT_SUPPRESSION_HASH_SECRET)
    email_webhook_secret: SecretStr | None = Field(default=None, min_length=16)
    metrics_bind_address: str | None = None

    def suppression_key(self) -> bytes:
        """The key of the suppression list's address hashes."""
        return self.suppression_hash_secret.get_secret_value().encode()

    def messaging_policy(self) -> MessagingPolicy:
        """The quiet hours and frequency caps the send activity applies."""
        return MessagingPolicy(
            quiet_start=self.quiet_hours_start,
            quiet_end=self.quiet_hours_end,
            email_caps=(
                FrequencyCap(limit=self.email_cap_per_day, window=timedelta(hours=24)),
                FrequencyCap(limit=self.email_cap_per_week, window=timedelta(days=7)),
            ),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once)."""
    return Settings()
