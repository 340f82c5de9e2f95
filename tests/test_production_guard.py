"""The start-up guard: `journeys worker` and `journeys api` refuse development secrets and
addresses where real contacts get messages, and an accelerated clock nobody allowed."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import SecretStr, ValidationError

from models.settings import (
    DEVELOPMENT_UNSUBSCRIBE_SECRET,
    Settings,
    UnsafeSettings,
    refuse_unsafe_settings,
)
from tests.cli import cli_environment, journeys

SAFE_SECRET = "s" * 32
SAFE_URL = "https://journeys.example.com"
OWN_MASTER_KEYS = {"prod-2026": SecretStr(base64.b64encode(b"m" * 32).decode())}
SAFE: dict[str, object] = {
    "unsubscribe_secret": SecretStr(SAFE_SECRET),
    "public_base_url": SAFE_URL,
    "payload_master_keys": OWN_MASTER_KEYS,
    "suppression_hash_secret": SecretStr("h" * 32),
}
"""Production settings of one's own: the guard lets them through."""


def refusals(**settings: object) -> list[str]:
    return Settings(_env_file=None, **settings).production_refusals()  # type: ignore[arg-type]


def test_development_settings_with_the_outbox_start() -> None:
    assert refusals() == []
    refuse_unsafe_settings(Settings(_env_file=None))  # no exception: `journeys dev`, the tests


@pytest.mark.parametrize(
    "real",
    [
        {"email_provider": "smtp"},
        {"email_provider": "http"},
        {"sms_provider": "http"},
        {"production": True},
    ],
)
def test_a_real_provider_or_production_refuses_the_development_secret_and_local_url(
    real: dict[str, object],
) -> None:
    lines = refusals(**real)
    assert len(lines) == 4
    assert lines[0].startswith("UNSUBSCRIBE_SECRET is the built-in development default")
    assert lines[1].startswith("PUBLIC_BASE_URL 'http://localhost:8000' is not https")
    assert lines[2].startswith("SUPPRESSION_HASH_SECRET is the built-in development default")
    assert lines[3].startswith("PAYLOAD_MASTER_KEYS holds the built-in development master key")
    assert refusals(**real, **SAFE) == []


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        (DEVELOPMENT_UNSUBSCRIBE_SECRET, "built-in development default"),
        ("x" * 31, "shorter than 32 bytes"),
        ("é" * 15, "shorter than 32 bytes"),  # 30 bytes in UTF-8
    ],
)
def test_the_unsubscribe_secret_must_be_32_bytes_of_our_own(secret: str, why: str) -> None:
    [line] = refusals(email_provider="smtp", **{**SAFE, "unsubscribe_secret": secret})
    assert line.startswith("UNSUBSCRIBE_SECRET") and why in line


def test_the_suppression_hash_secret_must_be_32_bytes_of_our_own() -> None:
    [line] = refusals(production=True, **{**SAFE, "suppression_hash_secret": "x" * 31})
    assert line.startswith("SUPPRESSION_HASH_SECRET is shorter than 32 bytes")


@pytest.mark.parametrize(
    "url",
    [
        "http://journeys.example.com",
        "https://localhost:8000",
        "https://LOCALHOST./",
        "https://api.localhost",
        "https://127.0.0.1",
        "https://127.8.9.10:8443",
        "https://[::1]:8000",
        "https://0.0.0.0",
        "https:///no-host",
    ],
)
def test_the_public_base_url_must_be_a_public_https_address(url: str) -> None:
    [line] = refusals(production=True, **{**SAFE, "public_base_url": url})
    assert line.startswith(f"PUBLIC_BASE_URL {url!r}")


def test_production_settings_of_our_own_start() -> None:
    assert refusals(email_provider="smtp", **SAFE) == []
    assert (
        refusals(
            production=True,
            email_provider="smtp",
            **{
                **SAFE,
                "unsubscribe_secret": SecretStr("é" * 16),  # 32 bytes
                "public_base_url": "https://journeys.example.com/gateway",
            },
        )
        == []
    )


def test_production_refuses_a_codec_endpoint_open_to_local_callers() -> None:
    [line] = refusals(production=True, codec_loopback_without_key=True, **SAFE)
    assert line.startswith("CODEC_LOOPBACK_WITHOUT_KEY is on")


def test_production_refuses_the_accelerated_clock() -> None:
    [line] = refusals(production=True, allow_accelerated_clock=True, **SAFE)
    assert line.startswith("ALLOW_ACCELERATED_CLOCK is on")
    with pytest.raises(UnsafeSettings, match="^refusing to start: ALLOW_ACCELERATED_CLOCK"):
        refuse_unsafe_settings(
            Settings(
                _env_file=None,
                production=True,
                allow_accelerated_clock=True,
                **SAFE,  # type: ignore[arg-type]
            )
        )


def test_an_accelerated_day_needs_the_setting() -> None:
    with pytest.raises(ValidationError, match="DAY_SECONDS=15 .* ALLOW_ACCELERATED_CLOCK=true"):
        Settings(_env_file=None, day_seconds=15)
    assert Settings(_env_file=None, day_seconds=15, allow_accelerated_clock=True).day_seconds == 15


async def test_worker_refuses_to_start_with_the_development_secret_and_a_real_provider(
    settings: Settings,
) -> None:
    env = {**cli_environment(settings, "127.0.0.1:1"), "EMAIL_PROVIDER": "smtp"}
    result = await journeys("worker", env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[:2] == [
        "error: refusing to start: UNSUBSCRIBE_SECRET is the built-in development default; set "
        "32+ random bytes (refused because EMAIL_PROVIDER=smtp, SMS_PROVIDER=outbox reach real "
        "contacts)",
        "error: refusing to start: PUBLIC_BASE_URL 'http://localhost:8000' is not https (refused "
        "because EMAIL_PROVIDER=smtp, SMS_PROVIDER=outbox reach real contacts)",
    ]


async def test_api_refuses_to_start_in_production_with_a_loopback_public_url(
    settings: Settings,
) -> None:
    env = {
        **cli_environment(settings, "127.0.0.1:1"),
        "PRODUCTION": "true",
        "ALLOW_ACCELERATED_CLOCK": "false",
        "UNSUBSCRIBE_SECRET": SAFE_SECRET,
        "PUBLIC_BASE_URL": "https://127.0.0.1:8000",
        "SUPPRESSION_HASH_SECRET": "h" * 32,
        "PAYLOAD_MASTER_KEYS": json.dumps(
            {key_id: key.get_secret_value() for key_id, key in OWN_MASTER_KEYS.items()}
        ),
        "API_KEYS": '[{"name": "backend", "key": "a-key-of-at-least-24-characters"}]',
    }
    result = await journeys("api", "--port", "0", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: refusing to start: PUBLIC_BASE_URL 'https://127.0.0.1:8000' is a loopback "
        "address; unsubscribe links would be dead (refused because PRODUCTION is on)"
    ]


async def test_an_accelerated_day_without_the_setting_stops_the_worker_and_the_cli(
    settings: Settings,
) -> None:
    env = {**cli_environment(settings, "127.0.0.1:1"), "ALLOW_ACCELERATED_CLOCK": "false"}
    worker = await journeys("worker", env={**env, "DAY_SECONDS": "15"})
    assert worker.returncode != 0
    assert "DAY_SECONDS=15 is an accelerated journey clock" in worker.stderr
    assert "ALLOW_ACCELERATED_CLOCK=true" in worker.stderr
    enrol = await journeys("enroll", "welcome-series", "kim", "--day-seconds", "2", env=env)
    assert enrol.returncode == 1
    assert enrol.stderr.strip() == (
        "error: --day-seconds=2 is an accelerated journey clock; it needs "
        "ALLOW_ACCELERATED_CLOCK=true (demos and staging only)"
    )
    event = await journeys("event", "kim", "subscribed", "--day-seconds", "2", env=env)
    assert event.returncode == 1
    assert "--day-seconds=2 is an accelerated journey clock" in event.stderr
