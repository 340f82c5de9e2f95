"""The email and SMS providers chosen by the settings."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from activities.providers.dkim_signing import DkimSigner
from activities.providers.http_api import HttpEmailProvider, HttpSmsProvider
from activities.providers.mailgun import MailgunEmailProvider
from activities.providers.messages import EmailProvider, SmsProvider
from activities.providers.outbox import OutboxEmailProvider, OutboxSmsProvider
from activities.providers.postmark import PostmarkEmailProvider
from activities.providers.resend import ResendEmailProvider
from activities.providers.sendgrid import SendGridEmailProvider
from activities.providers.ses import SesEmailProvider
from activities.providers.smtp import SmtpEmailProvider
from activities.providers.twilio import TwilioSmsProvider
from activities.providers.vonage import VonageSmsProvider
from models.settings import Settings


def email_provider_from_settings(
    settings: Settings, *, http_client: httpx.AsyncClient | None = None
) -> EmailProvider:
    """Build the email provider named by `EMAIL_PROVIDER`.

    Args:
        settings: Provider choice, endpoints, credentials and timeout.
        http_client: Shared client for the HTTP providers (default: one per request).

    Raises:
        ValueError: the chosen provider lacks its settings (e.g. `http` without
            `EMAIL_API_URL`, `postmark` without `POSTMARK_SERVER_TOKEN`), they are
            contradictory, or a `DKIM_KEYS` key is unusable.
    """
    match settings.email_provider:
        case "outbox":
            return OutboxEmailProvider(settings.outbox_dir)
        case "smtp":
            return SmtpEmailProvider(
                settings.smtp_host,
                settings.smtp_port,
                username=settings.smtp_username,
                password=_secret(settings.smtp_password),
                starttls=settings.smtp_starttls,
                use_tls=settings.smtp_use_tls,
                timeout=settings.provider_timeout_seconds,
                dkim=dkim_signer_from_settings(settings),
            )
        case "ses":
            return SesEmailProvider(
                region=settings.ses_region,
                endpoint_url=settings.ses_endpoint_url,
                configuration_set=settings.ses_configuration_set,
                timeout=settings.provider_timeout_seconds,
                dkim=dkim_signer_from_settings(settings),
            )
        case "http":
            url, key = _api_settings("EMAIL", settings.email_api_url, settings.email_api_key)
            return HttpEmailProvider(
                url, key, client=http_client, timeout=settings.provider_timeout_seconds
            )
        case "resend":
            return ResendEmailProvider(
                _required(
                    "EMAIL_PROVIDER=resend", "RESEND_API_KEY", _secret(settings.resend_api_key)
                ),
                base_url=settings.resend_api_url,
                client=http_client,
                timeout=settings.provider_timeout_seconds,
            )
        case "mailgun":
            return MailgunEmailProvider(
                _required(
                    "EMAIL_PROVIDER=mailgun", "MAILGUN_API_KEY", _secret(settings.mailgun_api_key)
                ),
                domain=_required(
                    "EMAIL_PROVIDER=mailgun", "MAILGUN_DOMAIN", settings.mailgun_domain
                ),
                base_url=settings.mailgun_api_url,
                client=http_client,
                timeout=settings.provider_timeout_seconds,
            )
        case "postmark":
            return PostmarkEmailProvider(
                _required(
                    "EMAIL_PROVIDER=postmark",
                    "POSTMARK_SERVER_TOKEN",
                    _secret(settings.postmark_server_token),
                ),
                base_url=settings.postmark_api_url,
                message_stream=settings.postmark_message_stream,
                broadcast_stream=settings.postmark_broadcast_stream,
                client=http_client,
                timeout=settings.provider_timeout_seconds,
            )
        case "sendgrid":
            return SendGridEmailProvider(
                _required(
                    "EMAIL_PROVIDER=sendgrid",
                    "SENDGRID_API_KEY",
                    _secret(settings.sendgrid_api_key),
                ),
                base_url=settings.sendgrid_api_url,
                client=http_client,
                timeout=settings.provider_timeout_seconds,
            )


def dkim_signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The signer of `DKIM_KEYS` (None without keys).

    Raises:
        ValueError: a key is unreadable, not RSA or too short.
    """
    return DkimSigner(settings.dkim_keys) if settings.dkim_keys else None


def sms_provider_from_settings(
    settings: Settings, *, http_client: httpx.AsyncClient | None = None
) -> SmsProvider:
    """Build the SMS provider named by `SMS_PROVIDER`.

    Args:
        settings: Provider choice, endpoint, credentials and timeout.
        http_client: Shared client for the `http` provider (default: one per request).

    Raises:
        ValueError: the chosen provider lacks a required setting (named in the message).
    """
    match settings.sms_provider:
        case "outbox":
            return OutboxSmsProvider(settings.outbox_dir)
        case "http":
            url, key = _api_settings("SMS", settings.sms_api_url, settings.sms_api_key)
            return HttpSmsProvider(
                url, key, client=http_client, timeout=settings.provider_timeout_seconds
            )
        case "twilio":
            return TwilioSmsProvider(
                _required("SMS_PROVIDER=twilio", "TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                _required(
                    "SMS_PROVIDER=twilio", "TWILIO_AUTH_TOKEN", _secret(settings.twilio_auth_token)
                ),
                from_number=settings.twilio_from_number or None,
                messaging_service_sid=settings.twilio_messaging_service_sid or None,
                status_callback_url=settings.twilio_status_callback_url,
                api_url=settings.twilio_api_url,
                timeout=settings.provider_timeout_seconds,
            )
        case "vonage":
            return VonageSmsProvider(
                _required("SMS_PROVIDER=vonage", "VONAGE_API_KEY", settings.vonage_api_key),
                _required(
                    "SMS_PROVIDER=vonage", "VONAGE_API_SECRET", _secret(settings.vonage_api_secret)
                ),
                sender=_required("SMS_PROVIDER=vonage", "VONAGE_FROM", settings.vonage_from),
                api_url=settings.vonage_api_url,
                client=http_client,
                timeout=settings.provider_timeout_seconds,
            )


def _api_settings(channel: str, url: str | None, key: SecretStr | None) -> tuple[str, str]:
    if not url:
        raise ValueError(f"{channel}_PROVIDER=http needs {channel}_API_URL (the API's base URL)")
    secret = _secret(key)
    if not secret:
        raise ValueError(f"{channel}_PROVIDER=http needs {channel}_API_KEY (its bearer token)")
    return url, secret


def _required(choice: str, setting: str, value: str | None) -> str:
    """`value`, or a refusal naming the setting `choice` (`EMAIL_PROVIDER=resend`) needs."""
    if not value:
        raise ValueError(f"{choice} needs {setting}")
    return value


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
