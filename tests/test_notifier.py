"""Sales-team notifiers: the outbox writes once; the Slack webhook against a real local server."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from activities.providers import (
    DeliveryError,
    OutboxNotifier,
    RepNotification,
    SlackWebhookNotifier,
    notifier_from_settings,
)
from models.settings import Settings
from tests.fake_api import FakeApi, Reply

SECRET_PATH = "/services/T0001/B0001/s3cr3tW3bh00k"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A fresh fake webhook endpoint per test."""
    with FakeApi() as server:
        yield server


def notification(
    key: str = "lead-sla-ada/handoff/notify",
    *,
    title: str = "New SQL lead: Ada (Acme), score 58",
    text: str = "Score: 58 (SQL)\nLast actions:\n• demo_requested · 2026-03-04 08:50 UTC",
) -> RepNotification:
    return RepNotification(
        idempotency_key=key,
        recipient_id="sdr-mia",
        recipient="<@UMIA>",
        kind="hand_off",
        contact_id="ada",
        title=title,
        text=text,
    )


def webhook(api: FakeApi, *, timeout: float = 5) -> SlackWebhookNotifier:
    return SlackWebhookNotifier(f"{api.url}{SECRET_PATH}", timeout=timeout)


async def failure(api: FakeApi, reply: Reply, *, timeout: float = 5) -> DeliveryError:
    """The DeliveryError the webhook notifier raises when the endpoint answers `reply`."""
    api.answer(reply)
    with pytest.raises(DeliveryError) as caught:
        await webhook(api, timeout=timeout).notify(notification())
    assert "s3cr3t" not in str(caught.value)
    return caught.value


async def test_outbox_writes_the_notification_once(tmp_path: Path) -> None:
    notifier = OutboxNotifier(tmp_path)

    await notifier.notify(notification())
    await notifier.notify(notification(text="A different text, same key"))

    target = tmp_path / "notifications" / "lead-sla-ada" / "handoff" / "notify.json"
    assert json.loads(target.read_text()) == {
        "idempotency_key": "lead-sla-ada/handoff/notify",
        "recipient_id": "sdr-mia",
        "recipient": "<@UMIA>",
        "kind": "hand_off",
        "contact_id": "ada",
        "title": "New SQL lead: Ada (Acme), score 58",
        "text": "Score: 58 (SQL)\nLast actions:\n• demo_requested · 2026-03-04 08:50 UTC",
    }
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["notify.json"]


async def test_slack_gets_a_webhook_body_with_mention_and_bold_title(api: FakeApi) -> None:
    api.answer(Reply(200, "ok"))

    await webhook(api).notify(notification())

    [request] = api.received
    assert request.path == SECRET_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "text": "<@UMIA> *New SQL lead: Ada (Acme), score 58*\n"
        "Score: 58 (SQL)\nLast actions:\n• demo_requested · 2026-03-04 08:50 UTC"
    }


async def test_contact_data_cannot_ping_the_channel_or_forge_links(api: FakeApi) -> None:
    api.answer(Reply(200, "ok"))

    await webhook(api).notify(
        notification(title="New lead: Bob <!channel>", text="Company: R&D <https://x.test|y>")
    )

    assert api.received[0].body == {
        "text": "<@UMIA> *New lead: Bob &lt;!channel&gt;*\n"
        "Company: R&amp;D &lt;https://x.test|y&gt;"
    }


async def test_server_error_is_transient(api: FakeApi) -> None:
    error = await failure(api, Reply(500, "upstream down"))

    assert error.permanent is False
    assert error.retry_after is None
    assert error.status_code == 500
    assert "Slack webhook answered HTTP 500: upstream down" in str(error)


async def test_rate_limit_is_transient_with_retry_after(api: FakeApi) -> None:
    error = await failure(api, Reply(429, "rate_limited", headers={"Retry-After": "30"}))

    assert error.permanent is False
    assert error.retry_after == timedelta(seconds=30)
    assert error.status_code == 429


@pytest.mark.parametrize(
    ("status", "text"), [(400, "invalid_payload"), (403, "action_prohibited"), (404, "no_service")]
)
async def test_other_client_errors_are_permanent(api: FakeApi, status: int, text: str) -> None:
    error = await failure(api, Reply(status, text))

    assert error.permanent is True
    assert error.status_code == status
    assert text in str(error)


async def test_slow_webhook_is_a_transient_timeout(api: FakeApi) -> None:
    error = await failure(api, Reply(200, "ok", delay=1.0), timeout=0.2)

    assert error.permanent is False
    assert error.status_code is None
    assert "Timeout" in str(error)


async def test_unreachable_webhook_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = SlackWebhookNotifier(f"http://127.0.0.1:{port}{SECRET_PATH}", timeout=2)

    with pytest.raises(DeliveryError) as caught:
        await notifier.notify(notification())

    assert caught.value.permanent is False
    assert "Slack webhook unreachable" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_the_webhook_url_is_never_logged(
    api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.answer(Reply(200, "ok"), Reply(503, "busy"))
    notifier = webhook(api)

    with caplog.at_level(logging.DEBUG):
        await notifier.notify(notification())
        with pytest.raises(DeliveryError):
            await notifier.notify(notification())

    assert len(api.received) == 2
    assert "s3cr3t" not in caplog.text
    assert "s3cr3t" not in repr(notifier)


def test_the_settings_choose_the_notifier(tmp_path: Path) -> None:
    outbox = notifier_from_settings(Settings(outbox_dir=tmp_path))
    assert isinstance(outbox, OutboxNotifier)
    assert outbox.directory == tmp_path

    url = f"https://hooks.example.test{SECRET_PATH}"
    slack = notifier_from_settings(Settings(notifier="slack", slack_webhook_url=url))
    assert isinstance(slack, SlackWebhookNotifier)
    assert slack.name == "slack"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "NOTIFIER=slack needs SLACK_WEBHOOK_URL"),
        ("", "NOTIFIER=slack needs SLACK_WEBHOOK_URL"),
        (f"hooks.example.test{SECRET_PATH}", "absolute http"),
    ],
)
def test_slack_without_a_usable_webhook_url_is_refused(url: str | None, message: str) -> None:
    settings = Settings(notifier="slack", slack_webhook_url=url)

    with pytest.raises(ValueError, match=message) as raised:
        notifier_from_settings(settings)
    assert "s3cr3t" not in str(raised.value)
