"""The settings choose the email and SMS providers."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.providers import (
    HttpEmailProvider,
    HttpSmsProvider,
    OutboxEmailProvider,
    OutboxSmsProvider,
    SmtpEmailProvider,
    email_provider_from_settings,
    sms_provider_from_settings,
)
from models.settings import Settings


def test_defaults_are_the_outboxes(tmp_path: Path) -> None:
    settings = Settings(outbox_dir=tmp_path)

    email = email_provider_from_settings(settings)
    sms = sms_provider_from_settings(settings)

    assert isinstance(email, OutboxEmailProvider)
    assert isinstance(sms, OutboxSmsProvider)
    assert email.directory == sms.directory == tmp_path


def test_smtp() -> None:
    settings = Settings(
        email_provider="smtp", smtp_host="mail.internal", smtp_port=587, smtp_starttls=True
    )

    provider = email_provider_from_settings(settings)

    assert isinstance(provider, SmtpEmailProvider)
    assert (provider.name, provider.host, provider.port) == ("smtp", "mail.internal", 587)


def test_smtp_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_PROVIDER", "smtp")
    monkeypatch.setenv("SMTP_HOST", "relay.internal")
    monkeypatch.setenv("SMTP_PORT", "2525")

    provider = email_provider_from_settings(Settings())

    assert isinstance(provider, SmtpEmailProvider)
    assert (provider.host, provider.port) == ("relay.internal", 2525)


def test_http_email() -> None:
    settings = Settings(
        email_provider="http", email_api_url="https://api.mail.test/v1", email_api_key="k"
    )

    provider = email_provider_from_settings(settings)

    assert isinstance(provider, HttpEmailProvider)
    assert provider.name == "http"


def test_http_sms() -> None:
    settings = Settings(sms_provider="http", sms_api_url="https://sms.test", sms_api_key="k")

    provider = sms_provider_from_settings(settings)

    assert isinstance(provider, HttpSmsProvider)
    assert provider.name == "http"


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({"email_provider": "http", "email_api_key": "k"}, "EMAIL_API_URL"),
        ({"email_provider": "http", "email_api_url": "https://api.mail.test"}, "EMAIL_API_KEY"),
        ({"email_provider": "http", "email_api_url": "", "email_api_key": "k"}, "EMAIL_API_URL"),
        ({"email_provider": "smtp", "smtp_starttls": True, "smtp_use_tls": True}, "TLS"),
        ({"email_provider": "smtp", "smtp_username": "grace"}, "password"),
    ],
    ids=["no-url", "no-key", "empty-url", "both-tls", "no-password"],
)
def test_incomplete_email_settings_are_refused(options: dict[str, object], missing: str) -> None:
    settings = Settings.model_validate(options)

    with pytest.raises(ValueError, match=missing):
        email_provider_from_settings(settings)


def test_http_sms_without_url_is_refused() -> None:
    settings = Settings(sms_provider="http", sms_api_key="k")

    with pytest.raises(ValueError, match="SMS_API_URL"):
        sms_provider_from_settings(settings)


def test_unknown_provider_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="email_provider"):
        Settings.model_validate({"email_provider": "carrier-pigeon"})
