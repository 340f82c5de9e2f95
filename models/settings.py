"""Application settings, read from the environment (and an optional `.env`).

Temporal connection settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS*, TEMPORAL_PROFILE) are read by the SDK's
`temporalio.envconfig`, not here; see `runtime/temporal.py`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self, get_args
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.policy import SECONDS_PER_DAY, FrequencyCap, MessagingPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEVELOPMENT_UNSUBSCRIBE_SECRET = "local-development-only-unsubscribe-secret"
"""The built-in unsubscribe secret: fine on a laptop, refused with real contacts."""
MIN_SECRET_BYTES = 32
"""Shortest secret accepted where real contacts get messages (256 bits)."""
DEVELOPMENT_SUPPRESSION_HASH_SECRET = "local-development-only-suppression-hash-secret"
"""The built-in `SUPPRESSION_HASH_SECRET`: for `journeys dev` and tests, never production."""

Scope = Literal[
    "events:write",
    "contacts:read",
    "contacts:write",
    "contacts:erase",
    "contacts:export",
    "journeys:read",
    "journeys:write",
    "reports:read",
    "codec:decode",
    "codec:encode",
]
"""What an API key may do: send events, read / write / erase / export contacts (an access
request's whole record), read the journey catalogue, enrol and steer journeys, read the
report (funnel and pipeline figures, nothing about one contact), decode / encode Temporal
payloads at the codec endpoint (`/codec/…`)."""
ALL_SCOPES: frozenset[Scope] = frozenset(get_args(Scope))
WORKER_DEPLOYMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$"
"""A worker deployment name: Temporal refuses `.` and `:` (its version delimiters) and a
leading `__`; we keep to letters, digits, `-` and `_`."""
BUILD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$"
"""A build id: a release tag or a commit (`2026.12.1`, `v42`, `3f9c2e1`). It is quoted in
visibility queries (`BuildIds = 'pinned:<deployment>:<build id>'`), so no quotes, spaces
or `:`."""
VonageSignatureMethod = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]
"""How Vonage signs its webhooks: `md5hash` (MD5 of the parameters and the secret), or an
HMAC keyed with the secret, by its digest (see `starter/api/hooks/vonage.py`)."""

LOCAL_MASTER_KEY_ID = "local-development"
"""Id of the built-in master key used when PAYLOAD_MASTER_KEYS is not set (local use only)."""
_LOCAL_MASTER_KEY = base64.b64encode(
    hashlib.sha256(b"contact-journeys: local development payload master key").digest()
).decode()
MASTER_KEY_BYTES = 32
"""Master keys are AES-256 keys: 32 bytes, given base64-encoded."""


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


@lru_cache(maxsize=8)
def _p256_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """An ECDSA P-256 public key given as base64 DER (how SendGrid shows its webhook's key).

    Raises:
        ValueError: it is not one.
    """
    problem = "SENDGRID_WEBHOOK_PUBLIC_KEY must be the base64 DER P-256 key SendGrid shows"
    try:
        key = load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError):
        raise ValueError(problem) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError(problem)
    return key


DKIM_SELECTOR_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9][A-Za-z0-9-]{0,62})*$"
"""A DKIM selector: one or more DNS labels (RFC 6376 section 3.1)."""
AMAZON_SNS_CERT_HOSTS = ("sns.*.amazonaws.com", "sns.*.amazonaws.com.cn")
"""Where Amazon SNS serves its signing certificates (`*` is one DNS label: the region)."""


class DkimKey(BaseModel):
    """The DKIM key of one sending domain (a value of `DKIM_KEYS`).

    Give the private key inline (`private_key`, PEM) or as a file
    (`private_key_file`, e.g. a mounted secret), not both. RSA, PKCS#1 or
    PKCS#8 PEM, at least 1024 bits (2048 recommended).

    Attributes:
        selector: The selector its public key is published under
            (`<selector>._domainkey.<domain>` TXT).
        private_key: The PEM text.
        private_key_file: A file holding the PEM text.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    selector: Annotated[str, StringConstraints(pattern=DKIM_SELECTOR_PATTERN)]
    private_key: SecretStr | None = None
    private_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.private_key is None) == (self.private_key_file is None):
            raise ValueError("give either private_key (PEM) or private_key_file, exactly one")
        return self

    def pem(self) -> bytes:
        """The private key's PEM text (read from `private_key_file` when given).

        Raises:
            OSError: the file cannot be read.
        """
        if self.private_key is not None:
            return self.private_key.get_secret_value().encode()
        assert self.private_key_file is not None  # _one_key_source
        return self.private_key_file.read_bytes()


class Settings(BaseSettings):
    """Settings of the worker, CLI and gateway.

    Attributes:
        database_url: SQLAlchemy URL of the CRM / message-log database. A plain
            `sqlite:///path` or `postgresql://…` URL is mapped to its async driver.
        task_queue: Temporal task queue the worker polls and journeys run on.
        worker_deployment_name: The Temporal worker deployment the workers belong to
            (Worker Versioning, with `worker_build_id`); letters, digits, `-`, `_`.
        worker_build_id: The version of the code this worker runs (a release tag, a
            commit): the worker polls as version `worker_deployment_name` /
            `worker_build_id` and its journeys are pinned to it or auto-upgrade as
            `workflows/versioning.py` says. Unset (or empty): Worker Versioning is off
            and every run replays on the newest code (`workflow.patched` guards changes).
        email_provider: How email is delivered: `outbox` (.eml files on disk),
            `smtp` (an SMTP server), `http` (a JSON email API), `ses` (Amazon SES v2,
            raw messages), `postmark`, `sendgrid`, `mailgun` or `resend` (their email APIs).
        outbox_dir: Where the outbox provider writes one .eml file per message.
        templates_dir: Message assets (Liquid) and `brand.toml`.
        log_format: `json`, `console`, or `auto` (JSON unless stderr is a TTY).
        log_level: Minimum level logged.
        quiet_hours_start: Local time (contact's zone) marketing stops being sent.
        quiet_hours_end: Local time it may be sent again.
        email_cap_per_day: Marketing emails per contact per rolling 24 h, all journeys.
        email_cap_per_week: Marketing emails per contact per rolling 7 days.
        broadcast_rate: Sends per second of a broadcast that names no rate (BROADCAST_RATE).
        public_base_url: Base URL of the gateway, for unsubscribe links.
        unsubscribe_secret: HMAC key signing unsubscribe tokens; the built-in
            default is refused where real contacts get messages (see
            `production_refusals`).
        production: This deployment messages real contacts: the start-up
            guard applies even with the outbox providers.
        allow_accelerated_clock: Journeys may run on a clock whose day is
            shorter than 86,400 s (`day_seconds`, DAY_SECONDS); on in `journeys
            dev`, off by default, refused in production. Messaging policy is
            then evaluated in journey time (see `rules/policy.py`).
        smtp_host: SMTP server host (email_provider `smtp`).
        smtp_port: SMTP server port.
        smtp_username: SMTP login name; AUTH only when set (with smtp_password).
        smtp_password: SMTP login password.
        smtp_starttls: Upgrade the SMTP connection with STARTTLS (port 587).
        smtp_use_tls: Connect to SMTP with implicit TLS (port 465).
        ses_region: AWS region of Amazon SES (email_provider `ses`); unset:
            the standard AWS chain's (AWS_DEFAULT_REGION, the profile). Credentials
            always come from the standard AWS chain (AWS_ACCESS_KEY_ID /
            AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or task role).
        ses_endpoint_url: Another SES endpoint (a VPC endpoint; tests: moto).
        ses_configuration_set: Configuration set every message is sent with
            (its event destination publishes to the SNS topic of the webhook).
        ses_sns_topic_arns: SNS topics whose notifications `/webhooks/ses`
            accepts; the endpoint answers 404 while empty.
        ses_sns_cert_hosts: Hosts SNS signing certificates and subscription
            URLs may come from (`*` is one DNS label); production refuses any
            outside amazonaws.com.
        ses_sns_ca_bundle: CA bundle (PEM file) trusted when fetching SNS
            certificates and confirming subscriptions; unset: the system's.
        dkim_keys: DKIM keys by sending domain, as JSON in DKIM_KEYS:
            `{"acme.com": {"selector": "s1", "private_key_file": "/run/secrets/dkim.pem"}}`
            (or `"private_key": "<PEM>"`); the `smtp` and `ses` providers sign
            each message from that domain (or a subdomain) with it.
        email_api_url: Base URL of the JSON email API (email_provider `http`);
            messages are POSTed to `{email_api_url}/emails`.
        email_api_key: Bearer token of the email API.
        postmark_server_token: Postmark server API token (`X-Postmark-Server-Token`).
        postmark_api_url: Base URL of Postmark's API (messages go to `/email`).
        postmark_message_stream: Postmark message stream of every message (its
            default transactional stream is `outbound`).
        postmark_broadcast_stream: Postmark broadcast stream of marketing messages
            (those with a List-Unsubscribe header); unset: they go to
            `postmark_message_stream` too.
        postmark_webhook_username: HTTP basic-auth user name Postmark's webhook URL
            carries; `/webhooks/postmark` answers 404 until it and the password are set.
        postmark_webhook_password: HTTP basic-auth password of Postmark's webhooks.
        sendgrid_api_key: SendGrid API key (Mail Send permission), sent as a bearer token.
        sendgrid_api_url: Base URL of SendGrid's API (messages go to `/v3/mail/send`).
        sendgrid_webhook_public_key: The Signed Event Webhook's verification key,
            base64 DER as SendGrid shows it; `/webhooks/sendgrid` answers 404 without.
        resend_api_key: Resend API key (`re_…`, email_provider `resend`).
        resend_api_url: Resend's API base URL (another only for tests).
        resend_webhook_secret: Signing secret of the Resend webhook (`whsec_…`);
            `/webhooks/resend` refuses everything until it is set.
        mailgun_api_key: Mailgun API key (email_provider `mailgun`).
        mailgun_domain: The Mailgun sending domain messages are sent from.
        mailgun_api_url: Mailgun's API base URL: `https://api.mailgun.net`,
            or `https://api.eu.mailgun.net` for a domain in the EU region.
        mailgun_webhook_signing_key: Mailgun's HTTP webhook signing key;
            `/webhooks/mailgun` refuses everything until it is set.
        sms_provider: How SMS is delivered: `outbox` (.sms.txt files in
            outbox_dir), `http` (a JSON SMS API), `twilio` or `vonage`.
        sms_api_url: Base URL of the JSON SMS API (sms_provider `http`);
            messages are POSTed to `{sms_api_url}/messages`.
        sms_api_key: Bearer token of the SMS API.
        twilio_account_sid: Twilio account SID (`AC…`; sms_provider `twilio`).
        twilio_auth_token: Twilio auth token: the API's password and the key of
            `X-Twilio-Signature`; the Twilio webhooks refuse everything until it is set.
        twilio_from_number: The number texts are sent from (E.164), or
        twilio_messaging_service_sid: the Messaging Service (`MG…`) that picks it.
        twilio_status_callback_url: Where Twilio posts delivery statuses, e.g.
            `{PUBLIC_BASE_URL}/webhooks/twilio/status` (none: not asked for).
        twilio_api_url: Base URL of Twilio's REST API (tests point it at loopback).
        vonage_api_key: Vonage API key (sms_provider `vonage`).
        vonage_api_secret: Vonage API secret.
        vonage_from: The sender: a Vonage number (E.164) or an alphanumeric sender id.
        vonage_api_url: Base URL of Vonage's SMS API (tests point it at loopback).
        vonage_signature_secret: The account's signature secret (Vonage dashboard):
            the key of the `sig` on its inbound-SMS and delivery-receipt webhooks;
            the Vonage webhooks refuse everything until it is set.
        vonage_signature_method: The signature method chosen in the dashboard:
            `md5hash` (Vonage's default), or HMAC with `md5`, `sha1`, `sha256`, `sha512`.
        provider_timeout_seconds: Time allowed for one provider call (connect,
            send, answer) before it counts as a transient failure.
        scoring_file: The lead-scoring model (TOML, see `rules/scoring.py`).
        sales_file: Reps, territories and SLAs of the sales hand-off (TOML,
            see `rules/sales.py`).
        churn_file: When usage counts as dropped: window, share, fewest
            reports (TOML, see `rules/usage.py`).
        onboarding_file: The key features of onboarding and its stalled day
            (TOML, see `rules/onboarding.py`).
        deals_file: The deal stages and the one that makes a contact an
            opportunity (TOML, see `rules/deals.py`).
        segments_file: The segments reviewed like code (TOML, see
            `models/segments.py`); others are defined through the API.
        segment_sweep_seconds: How often the segment sweep runs (a Temporal
            Schedule): profile changes and lapsing time windows reach
            segments within this, and new segments are evaluated.
        deliverability_file: The deliverability guard's limits, window and journey
            owners (TOML, see `models/deliverability.py`).
        deliverability_check_seconds: How often the deliverability guard runs (a
            Temporal Schedule).
        send_pause_recheck_seconds: How long a message of a journey whose sends are
            paused waits before it asks again.
        notifier: How the sales team is notified: `outbox` (JSON files in
            `outbox_dir/notifications`) or `slack` (a Slack-compatible
            incoming webhook).
        slack_webhook_url: The incoming-webhook URL (notifier `slack`).
        day_seconds: Journey clock of the contact workflows the gateway and
            the CLI start: seconds per journey day; lower only with
            `allow_accelerated_clock` (demos, staging).
        api_host: Interface `journeys api` listens on.
        api_port: Port `journeys api` listens on.
        api_keys: Keys of the HTTP gateway, as JSON in API_KEYS:
            `[{"name": "billing", "key": "…", "scopes": ["events:write"]}]`.
        api_max_batch_events: Most events in one `POST /v1/events` batch.
        api_max_body_bytes: Larger request bodies are refused with 413.
        api_import_max_bytes: The same for `POST /v1/contacts:import` (a file of
            contacts; 100,000 rows of CSV are about 10 MB).
        api_cors_origins: Browser origins allowed to call the API (none: CORS off).
        api_erasure_wait_seconds: How long `DELETE /v1/contacts/{id}` waits for
            the erasure to finish before answering 202 (it goes on regardless).
        dedupe_match_domain_name: A new lead also matches an existing contact with the
            same first name (case-insensitive) and the same company email domain (not a
            free-mail domain, `rules/dedupe.py`), when exactly one contact matches; off by
            default: matching is by email address only (see `starter/services/dedupe.py`).
        event_max_future_seconds: Clock skew tolerated on `occurred_at`; events
            further in the future are rejected.
        temporal_retry_after_seconds: `Retry-After` of a 503 while Temporal is
            unreachable.
        suppression_hash_secret: HMAC key of the suppression list's address
            hashes (`rules/suppressions.py`); set your own, at least 32
            bytes, in production, and never change it afterwards: rows hashed
            under another key no longer match (the default is for local use only).
        email_webhook_secret: HMAC key of the email provider's delivery
            webhooks; the webhook endpoint refuses everything until it is set.
        sms_webhook_secret: HMAC key of the SMS provider's inbound-message
            webhook (STOP, START, HELP); the endpoint refuses everything until
            it is set.
        metrics_bind_address: `host:port` where `journeys worker` serves
            Prometheus metrics (`http://<host:port>/metrics`): the Temporal
            SDK's and the journeys' own; off when unset, e.g. `127.0.0.1:9464`.
        payload_master_keys: Master keys that wrap the per-contact data keys of
            the payload codec, as JSON in PAYLOAD_MASTER_KEYS: `{"<id>":
            "<base64 of 32 random bytes>"}`. Several ids let you rotate (see
            `journeys keys rotate`). Unset: a built-in key for local use only.
        payload_master_key_id: Id of the master key new data keys are wrapped
            with (and `journeys keys rotate` rewraps to); may be left out when
            there is one key.
        payload_keys_database_url: Database of the codec's data keys (table
            `data_keys`), if not `database_url`: e.g. one only the worker and
            the gateway can reach.
        codec_key_cache_seconds: How long a process keeps an unwrapped data key
            in memory (0: never; the codec endpoint never does).
        codec_cors_origins: Browser origins (the Temporal UI's) allowed to call
            the codec endpoint, e.g. `["http://localhost:8233"]`.
        codec_loopback_without_key: Let the codec endpoint answer requests from
            a loopback address without a key (`journeys dev` turns it on so its
            Web UI can decode); off by default, never on in production.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///.data/journeys.db"
    task_queue: str = "journeys"
    worker_deployment_name: str = "contact-journeys"
    worker_build_id: str | None = None
    email_provider: Literal[
        "outbox", "smtp", "http", "ses", "postmark", "sendgrid", "mailgun", "resend"
    ] = "outbox"
    outbox_dir: Path = Path(".data/outbox")
    templates_dir: Path = PROJECT_ROOT / "templates"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    email_cap_per_day: int = Field(default=2, ge=1)
    email_cap_per_week: int = Field(default=5, ge=1)
    broadcast_rate: int = Field(default=20, ge=1, le=1000)
    public_base_url: str = "http://localhost:8000"
    unsubscribe_secret: SecretStr = SecretStr(DEVELOPMENT_UNSUBSCRIBE_SECRET)
    production: bool = False
    allow_accelerated_clock: bool = False
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    ses_region: str | None = None
    ses_endpoint_url: str | None = None
    ses_configuration_set: str | None = None
    ses_sns_topic_arns: list[str] = Field(default_factory=list)
    ses_sns_cert_hosts: list[str] = Field(default_factory=lambda: list(AMAZON_SNS_CERT_HOSTS))
    ses_sns_ca_bundle: Path | None = None
    dkim_keys: dict[str, DkimKey] = Field(default_factory=dict)
    email_api_url: str | None = None
    email_api_key: SecretStr | None = None
    postmark_server_token: SecretStr | None = None
    postmark_api_url: str = "https://api.postmarkapp.com"
    postmark_message_stream: str = Field(default="outbound", min_length=1)
    postmark_broadcast_stream: str | None = None
    postmark_webhook_username: SecretStr | None = Field(default=None, min_length=1)
    postmark_webhook_password: SecretStr | None = Field(default=None, min_length=16)
    sendgrid_api_key: SecretStr | None = None
    sendgrid_api_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    resend_api_key: SecretStr | None = None
    resend_api_url: str = "https://api.resend.com"
    resend_webhook_secret: SecretStr | None = None
    mailgun_api_key: SecretStr | None = None
    mailgun_domain: str | None = None
    mailgun_api_url: str = "https://api.mailgun.net"
    mailgun_webhook_signing_key: SecretStr | None = None
    sms_provider: Literal["outbox", "http", "twilio", "vonage"] = "outbox"
    sms_api_url: str | None = None
    sms_api_key: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_status_callback_url: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    vonage_api_key: str | None = None
    vonage_api_secret: SecretStr | None = None
    vonage_from: str | None = None
    vonage_api_url: str = "https://rest.nexmo.com"
    vonage_signature_secret: SecretStr | None = None
    vonage_signature_method: VonageSignatureMethod = "md5hash"
    provider_timeout_seconds: float = 10.0
    scoring_file: Path = PROJECT_ROOT / "scoring.toml"
    sales_file: Path = PROJECT_ROOT / "sales.toml"
    churn_file: Path = PROJECT_ROOT / "churn.toml"
    onboarding_file: Path = PROJECT_ROOT / "onboarding.toml"
    deals_file: Path = PROJECT_ROOT / "deals.toml"
    segments_file: Path = PROJECT_ROOT / "segments.toml"
    segment_sweep_seconds: int = Field(default=60, ge=1, le=86_400)
    deliverability_file: Path = PROJECT_ROOT / "deliverability.toml"
    deliverability_check_seconds: int = Field(default=300, ge=1, le=86_400)
    send_pause_recheck_seconds: int = Field(default=600, ge=1, le=86_400)
    notifier: Literal["outbox", "slack"] = "outbox"
    slack_webhook_url: SecretStr | None = None
    day_seconds: int = Field(default=86_400, ge=1)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65_535)
    api_keys: list[ApiKey] = Field(default_factory=list)
    api_max_batch_events: int = Field(default=500, ge=1, le=500)
    api_max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    api_import_max_bytes: int = Field(default=33_554_432, ge=1_024)
    api_cors_origins: list[str] = Field(default_factory=list)
    api_erasure_wait_seconds: float = Field(default=10.0, ge=0)
    dedupe_match_domain_name: bool = False
    event_max_future_seconds: float = Field(default=300.0, ge=0)
    temporal_retry_after_seconds: int = Field(default=5, ge=1)
    suppression_hash_secret: SecretStr = SecretStr(DEVELOPMENT_SUPPRESSION_HASH_SECRET)
    email_webhook_secret: SecretStr | None = Field(default=None, min_length=16)
    sms_webhook_secret: SecretStr | None = Field(default=None, min_length=16)
    metrics_bind_address: str | None = None
    payload_master_keys: dict[str, SecretStr] = Field(
        default_factory=lambda: {LOCAL_MASTER_KEY_ID: SecretStr(_LOCAL_MASTER_KEY)}
    )
    payload_master_key_id: str | None = None
    payload_keys_database_url: str | None = None
    codec_key_cache_seconds: float = Field(default=300.0, ge=0)
    codec_cors_origins: list[str] = Field(default_factory=list)
    codec_loopback_without_key: bool = False

    @field_validator("worker_deployment_name")
    @classmethod
    def _check_deployment_name(cls, name: str) -> str:
        if not re.fullmatch(WORKER_DEPLOYMENT_NAME_PATTERN, name):
            raise ValueError(
                f"WORKER_DEPLOYMENT_NAME {name!r}: letters, digits, - and _ only (Temporal "
                "refuses . and :), starting with a letter or digit, at most 200 characters"
            )
        return name

    @field_validator("worker_build_id", mode="before")
    @classmethod
    def _blank_build_id_is_unset(cls, value: object) -> object:
        """An empty WORKER_BUILD_ID (`${WORKER_BUILD_ID:-}` in a compose file) is unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("worker_build_id")
    @classmethod
    def _check_build_id(cls, build_id: str | None) -> str | None:
        if build_id is not None and not re.fullmatch(BUILD_ID_PATTERN, build_id):
            raise ValueError(
                f"WORKER_BUILD_ID {build_id!r}: letters, digits and . _ + - only, starting "
                "with a letter or digit, at most 200 characters (a release tag or a commit)"
            )
        return build_id

    @field_validator("resend_webhook_secret")
    @classmethod
    def _check_svix_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            svix_key(secret.get_secret_value())
        return secret

    @field_validator("payload_master_keys")
    @classmethod
    def _check_master_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not keys:
            raise ValueError("give at least one master key")
        for key_id, key in keys.items():
            if not key_id or len(key_id) > 64:
                raise ValueError(f"master key id {key_id!r}: 1 to 64 characters")
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except binascii.Error:
                raise ValueError(f"master key {key_id!r} is not base64") from None
            if len(raw) != MASTER_KEY_BYTES:
                raise ValueError(
                    f"master key {key_id!r} is {len(raw)} bytes; it must be {MASTER_KEY_BYTES} "
                    "(`openssl rand -base64 32`)"
                )
        return keys

    @field_validator("dkim_keys")
    @classmethod
    def _lowercase_dkim_domains(cls, keys: dict[str, DkimKey]) -> dict[str, DkimKey]:
        return {domain.strip().rstrip(".").lower(): key for domain, key in keys.items()}

    @model_validator(mode="after")
    def _check_active_master_key(self) -> Settings:
        active = self.payload_master_key_id
        if active is None and len(self.payload_master_keys) > 1:
            raise ValueError(
                "PAYLOAD_MASTER_KEY_ID: name the active master key among "
                f"{sorted(self.payload_master_keys)}"
            )
        if active is not None and active not in self.payload_master_keys:
            raise ValueError(
                f"PAYLOAD_MASTER_KEY_ID {active!r} is not among PAYLOAD_MASTER_KEYS "
                f"{sorted(self.payload_master_keys)}"
            )
        return self

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _check_sendgrid_key(cls, value: str | None) -> str | None:
        if value is not None:
            _p256_public_key(value)
        return value

    def sendgrid_verification_key(self) -> ec.EllipticCurvePublicKey | None:
        """The Signed Event Webhook's public key (SENDGRID_WEBHOOK_PUBLIC_KEY), if set."""
        key = self.sendgrid_webhook_public_key
        return None if key is None else _p256_public_key(key)

    def master_keys(self) -> tuple[str, dict[str, bytes]]:
        """The active master key's id, and every master key by id (raw bytes)."""
        keys = {
            key_id: base64.b64decode(key.get_secret_value())
            for key_id, key in self.payload_master_keys.items()
        }
        return self.payload_master_key_id or next(iter(keys)), keys

    @model_validator(mode="after")
    def _accelerated_clock_allowed(self) -> Self:
        refusal = accelerated_clock_refusal(
            self.day_seconds, allowed=self.allow_accelerated_clock, name="DAY_SECONDS"
        )
        if refusal:
            raise ValueError(refusal)
        return self

    def messages_real_contacts(self) -> bool:
        """Whether messages can reach real people: production, or a provider but the outbox."""
        return self.production or self.email_provider != "outbox" or self.sms_provider != "outbox"

    def production_refusals(self) -> list[str]:
        """Why `journeys worker` / `journeys api` must not start with these settings.

        Empty unless `messages_real_contacts()`; each entry is one line naming the setting.
        """
        if not self.messages_real_contacts():
            return []
        why = (
            "PRODUCTION is on"
            if self.production
            else f"EMAIL_PROVIDER={self.email_provider}, SMS_PROVIDER={self.sms_provider} "
            "reach real contacts"
        )
        refusals = [
            _secret_refusal(
                "UNSUBSCRIBE_SECRET", self.unsubscribe_secret, DEVELOPMENT_UNSUBSCRIBE_SECRET
            ),
            _public_url_refusal(self.public_base_url),
            _secret_refusal(
                "SUPPRESSION_HASH_SECRET",
                self.suppression_hash_secret,
                DEVELOPMENT_SUPPRESSION_HASH_SECRET,
            ),
        ]
        if LOCAL_MASTER_KEY_ID in self.payload_master_keys:
            refusals.append(
                "PAYLOAD_MASTER_KEYS holds the built-in development master key: anyone with the "
                "source could read every payload; set your own (openssl rand -base64 32)"
            )
        if self.codec_loopback_without_key:
            refusals.append(
                "CODEC_LOOPBACK_WITHOUT_KEY is on: any local process could decode every payload"
            )
        if self.production and self.allow_accelerated_clock:
            refusals.append("ALLOW_ACCELERATED_CLOCK is on: journeys could skip real days")
        refusals.append(self._sns_cert_hosts_refusal())
        return [f"{refusal} (refused because {why})" for refusal in refusals if refusal]

    def _sns_cert_hosts_refusal(self) -> str | None:
        """SNS signatures are only as good as the certificates' hosts: Amazon's own."""
        foreign = [
            host
            for host in self.ses_sns_cert_hosts
            if not host.lower().endswith((".amazonaws.com", ".amazonaws.com.cn"))
        ]
        if not foreign:
            return None
        return (
            f"SES_SNS_CERT_HOSTS {foreign} are not Amazon's: anyone serving a certificate there "
            "could forge SES notifications; leave SES_SNS_CERT_HOSTS unset"
        )

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


def svix_key(secret: str) -> bytes:
    """The HMAC key of a Svix signing secret (Resend's webhooks): base64 after `whsec_`.

    Raises:
        ValueError: the secret is not `whsec_` and base64.
    """
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        key = b""
    if not key:
        raise ValueError("a Svix signing secret is `whsec_` followed by base64")
    return key


def accelerated_clock_refusal(day_seconds: int, *, allowed: bool, name: str) -> str | None:
    """Why a journey clock of `day_seconds` is refused (None: real days, or allowed).

    Args:
        day_seconds: Seconds per journey day asked for.
        allowed: The ALLOW_ACCELERATED_CLOCK setting.
        name: How the asker calls the value (a field, a setting, a flag).
    """
    if day_seconds == SECONDS_PER_DAY or allowed:
        return None
    return (
        f"{name}={day_seconds} is an accelerated journey clock; it needs "
        "ALLOW_ACCELERATED_CLOCK=true (demos and staging only)"
    )


class UnsafeSettings(Exception):
    """The settings would forge, leak or spam in production; each line names a setting."""


def refuse_unsafe_settings(settings: Settings) -> None:
    """The start-up guard of `journeys worker` and `journeys api`.

    Raises:
        UnsafeSettings: listing `settings.production_refusals()`, one per line.
    """
    refusals = settings.production_refusals()
    if refusals:
        raise UnsafeSettings("\n".join(f"refusing to start: {line}" for line in refusals))


def _secret_refusal(name: str, secret: SecretStr, development_default: str) -> str | None:
    value = secret.get_secret_value()
    if value == development_default:
        return f"{name} is the built-in development default; set {MIN_SECRET_BYTES}+ random bytes"
    if len(value.encode()) < MIN_SECRET_BYTES:
        return f"{name} is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def _public_url_refusal(url: str) -> str | None:
    """PUBLIC_BASE_URL must be the gateway's public https address (it is in every email)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme != "https":
        return f"PUBLIC_BASE_URL {url!r} is not https"
    if not host or host == "localhost" or host.endswith(".localhost"):
        return f"PUBLIC_BASE_URL {url!r} is a local address; unsubscribe links would be dead"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified or address.is_link_local:
        return f"PUBLIC_BASE_URL {url!r} is a loopback address; unsubscribe links would be dead"
    return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read once)."""
    return Settings()
