"""Notifications to the sales team and journey owners: JSON files in the outbox, or Slack.

A notifier takes a rendered `RepNotification` and delivers it, raising
`DeliveryError` (permanent or transient, as the HTTP providers classify it)
when it cannot. It never retries: Temporal does.

The webhook URL is a secret (whoever has it can post to the channel): it never
appears in an error message or a log line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, StringConstraints

from activities.providers.errors import DeliveryError, provider_text
from activities.providers.http_api import delivery_error_from_response
from activities.providers.outbox import outbox_path, write_once
from models.ids import ContactId, PersonId
from models.settings import Settings

NotificationKind = Literal[
    "hand_off",
    "priority",
    "sla_reminder",
    "sla_warning",
    "sla_escalation",
    "account_alert",
    "deliverability",
]
"""What a notification is about."""

_WEBHOOK = "Slack webhook"


class RepNotification(BaseModel):
    """A notification to one person on the sales team.

    Attributes:
        idempotency_key: `{workflow_id}/{step}/notify`; delivered once per key
            as far as the notifier allows.
        recipient_id: Id of the rep or manager.
        recipient: How they are addressed (`SalesPerson.addressed`: a Slack
            mention or their name).
        kind: What it is about.
        contact_id: The lead it is about (none for a journey's deliverability).
        title: One line.
        text: The details, plain text (several lines).
    """

    model_config = ConfigDict(frozen=True)

    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    recipient_id: PersonId
    recipient: str
    kind: NotificationKind
    contact_id: ContactId | None = None
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: str


class Notifier(Protocol):
    """Delivers notifications to the sales team."""

    name: str

    async def notify(self, notification: RepNotification) -> None:
        """Deliver `notification`.

        Raises:
            DeliveryError: it was not delivered (permanent or transient).
        """
        ...


class OutboxNotifier:
    """Notifications to `<directory>/notifications/<idempotency key>.json`, written once."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        """Write under `directory` (created when needed)."""
        self.directory = directory

    def path_for(self, idempotency_key: str) -> Path:
        """Where the notification with this key is (or will be) stored."""
        return outbox_path(self.directory / "notifications", idempotency_key, ".json")

    async def notify(self, notification: RepNotification) -> None:
        """Write the notification as JSON unless its file is already there."""
        target = self.path_for(notification.idempotency_key)
        content = notification.model_dump_json(indent=2).encode()
        await asyncio.to_thread(write_once, target, lambda: content)


class SlackWebhookNotifier:
    """Notifications through a Slack-compatible incoming webhook.

    Each one is `POST <url>` with `{"text": "<recipient> *<title>*\\n<text>"}`
    (Slack mrkdwn; `&`, `<` and `>` in the title and text are escaped so that
    contact data cannot mention `@channel` or forge links). Any 2xx answer is
    success; other answers are classified like the JSON HTTP APIs' (429 and
    5xx transient with `Retry-After`, other 4xx permanent); timeouts and
    connection errors are transient.
    """

    name = "slack"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        """Configure the webhook.

        Args:
            url: The incoming-webhook URL (a secret).
            timeout: Seconds allowed for connecting, sending and reading the answer.

        Raises:
            ValueError: `url` is not an absolute http(s) URL (the message does
                not repeat it).
        """
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the {_WEBHOOK} URL must be an absolute http(s) URL")
        self._url = url
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url=<secret>, timeout={self._timeout})"

    async def notify(self, notification: RepNotification) -> None:
        """Post the notification once.

        Raises:
            DeliveryError: no answer in time, or not a 2xx answer.
        """
        text = f"{notification.recipient} *{_escape(notification.title)}*\n"
        request = httpx.Request(
            "POST",
            self._url,
            json={"text": text + _escape(notification.text)},
            extensions={"timeout": httpx.Timeout(self._timeout).as_dict()},
        )
        # The transport, not a client: httpx clients log each request's URL at INFO.
        try:
            async with httpx.AsyncHTTPTransport(retries=0) as transport:
                response = await transport.handle_async_request(request)
                await response.aread()
        except httpx.RequestError as error:
            detail = provider_text(str(error).replace(self._url, "<webhook>"))
            raise DeliveryError(
                f"{_WEBHOOK} unreachable: {type(error).__name__}: {detail}", permanent=False
            ) from None  # its text is above, URL masked; the cause holds the request
        if not response.is_success:
            raise delivery_error_from_response(response, api=_WEBHOOK)


def _escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def notifier_from_settings(settings: Settings) -> Notifier:
    """Build the notifier named by `NOTIFIER`.

    Raises:
        ValueError: `slack` is chosen without `SLACK_WEBHOOK_URL`, or it is not
            an http(s) URL.
    """
    match settings.notifier:
        case "outbox":
            return OutboxNotifier(settings.outbox_dir)
        case "slack":
            url = settings.slack_webhook_url
            if url is None or not url.get_secret_value():
                raise ValueError(
                    "NOTIFIER=slack needs SLACK_WEBHOOK_URL (a Slack-compatible "
                    "incoming-webhook URL)"
                )
            return SlackWebhookNotifier(
                url.get_secret_value(), timeout=settings.provider_timeout_seconds
            )
