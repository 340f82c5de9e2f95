"""Message delivery providers: outbox files, SMTP and JSON HTTP APIs.

- `messages`: `OutgoingEmail`, `OutgoingSms`, `build_mime`, the `EmailProvider`
  and `SmsProvider` protocols.
- `errors`: `DeliveryError`, the one error providers raise (never retrying).
- `outbox`, `smtp`, `http_api`: the providers.
- `factory`: the providers chosen by the settings.
"""

from __future__ import annotations

from activities.providers.errors import DeliveryError
from activities.providers.factory import email_provider_from_settings, sms_provider_from_settings
from activities.providers.http_api import HttpEmailProvider, HttpSmsProvider
from activities.providers.messages import (
    EmailProvider,
    OutgoingEmail,
    OutgoingSms,
    SmsProvider,
    build_mime,
)
from activities.providers.outbox import OutboxEmailProvider, OutboxSmsProvider
from activities.providers.smtp import SmtpEmailProvider

__all__ = [
    "DeliveryError",
    "EmailProvider",
    "HttpEmailProvider",
    "HttpSmsProvider",
    "OutboxEmailProvider",
    "OutboxSmsProvider",
    "OutgoingEmail",
    "OutgoingSms",
    "SmsProvider",
    "SmtpEmailProvider",
    "build_mime",
    "email_provider_from_settings",
    "sms_provider_from_settings",
]
