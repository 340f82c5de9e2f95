"""Message delivery providers: outbox files, SMTP, Amazon SES, JSON HTTP APIs; notifiers.

- `messages`: `OutgoingEmail`, `OutgoingSms`, `build_mime`, the `EmailProvider`
  and `SmsProvider` protocols.
- `errors`: `DeliveryError`, the one error providers raise (never retrying).
- `outbox`, `smtp`, `ses`, `http_api`: the providers; `postmark`, `sendgrid`, `resend`,
  `mailgun`: those services' email APIs; `twilio`, `vonage`: their SMS APIs.
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
from activities.providers.mailgun import MailgunEmailProvider
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
from activities.providers.postmark import PostmarkEmailProvider
from activities.providers.resend import ResendEmailProvider
from activities.providers.sendgrid import SendGridEmailProvider
from activities.providers.ses import SesEmailProvider
from activities.providers.smtp import SmtpEmailProvider
from activities.providers.twilio import TwilioSmsProvider
from activities.providers.vonage import VonageSmsProvider

__all__ = [
    "DeliveryError",
    "DkimSigner",
    "EmailProvider",
    "HttpEmailProvider",
    "HttpSmsProvider",
    "MailgunEmailProvider",
    "Notifier",
    "OutboxEmailProvider",
    "OutboxNotifier",
    "OutboxSmsProvider",
    "OutgoingEmail",
    "OutgoingSms",
    "PostmarkEmailProvider",
    "RepNotification",
    "ResendEmailProvider",
    "SendGridEmailProvider",
    "SesEmailProvider",
    "SlackWebhookNotifier",
    "SmsProvider",
    "SmtpEmailProvider",
    "TwilioSmsProvider",
    "VonageSmsProvider",
    "build_mime",
    "email_provider_from_settings",
    "notifier_from_settings",
    "sms_provider_from_settings",
]
