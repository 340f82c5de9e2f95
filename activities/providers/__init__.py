"""Message delivery providers: outbox files, SMTP, Amazon SES, JSON HTTP APIs; notifiers.

- `messages`: `OutgoingEmail`, `OutgoingSms`, `build_mime`, the `EmailProvider`
  and `SmsProvider` protocols.
- `errors`: `DeliveryError`, the one error providers raise (never retrying).
- `outbox`, `smtp`, `ses`, `http_api`: the providers.
- `dkim_signing`: `DkimSigner`, the DKIM signature of what SMTP and SES relay.
- `factory`: the providers chosen by the settings.
- `notifier`: `RepNotification`, the `Notifier` protocol, the outbox and Slack
  webhook notifiers and `notifier_from_settings`.
"""

from __future__ import annotations

from activities.providers.dkim_signing import DkimSigner
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
from activities.providers.notifier import (
    Notifier,
    OutboxNotifier,
    RepNotification,
    SlackWebhookNotifier,
    notifier_from_settings,
)
from activities.providers.outbox import OutboxEmailProvider, OutboxSmsProvider
from activities.providers.ses import SesEmailProvider
from activities.providers.smtp import SmtpEmailProvider

__all__ = [
    "DeliveryError",
    "DkimSigner",
    "EmailProvider",
    "HttpEmailProvider",
    "HttpSmsProvider",
    "Notifier",
    "OutboxEmailProvider",
    "OutboxNotifier",
    "OutboxSmsProvider",
    "OutgoingEmail",
    "OutgoingSms",
    "RepNotification",
    "SesEmailProvider",
    "SlackWebhookNotifier",
    "SmsProvider",
    "SmtpEmailProvider",
    "build_mime",
    "email_provider_from_settings",
    "notifier_from_settings",
    "sms_provider_from_settings",
]
