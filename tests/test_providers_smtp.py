"""The SMTP provider against a real aiosmtpd server on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from activities.providers import DeliveryError, OutgoingEmail, SmtpEmailProvider
from tests.factories import outgoing_email

HOST = "127.0.0.1"


class RecordingHandler:
    """Accepts (or refuses, as told) and keeps every envelope it accepted."""

    def __init__(self, *, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply is not None:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(handler: RecordingHandler, **smtp_options: Any) -> Iterator[int]:
    """Run aiosmtpd on a free loopback port; yield the port."""
    controller = Controller(handler, hostname=HOST, port=free_port(), **smtp_options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def make_email(key: str = "welcome-series-ada/day0") -> OutgoingEmail:
    return outgoing_email(
        key,
        text="Hi Ada,\nwelcome aboard.",
        html="<p>Hi Ada,</p><p>welcome aboard — café inclus.</p>",
    )


def parse(envelope: Envelope) -> EmailMessage:
    assert isinstance(envelope.content, bytes)
    message = BytesParser(policy=policy.default).parsebytes(envelope.content)
    assert isinstance(message, EmailMessage)
    return message


async def test_delivers_text_and_html_with_headers() -> None:
    handler = RecordingHandler()
    email = make_email()
    with smtp_server(handler) as port:
        message_id = await SmtpEmailProvider(HOST, port, timeout=5).deliver(email)

    assert message_id == email.message_id
    [envelope] = handler.envelopes
    assert envelope.mail_from == "grace@acme.test"
    assert envelope.rcpt_tos == ["ada@example.com"]
    received = parse(envelope)
    assert received.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part for part in received.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert isinstance(parts["text/plain"], EmailMessage)
    assert isinstance(parts["text/html"], EmailMessage)
    assert parts["text/plain"].get_content().splitlines() == email.text.splitlines()
    assert parts["text/html"].get_content().splitlines() == email.html.splitlines()
    assert received["From"] == "Grace from Acme <grace@acme.test>"
    assert received["To"] == "ada@example.com"
    assert received["Reply-To"] == "hello@acme.test"
    assert received["Subject"] == "Welcome to Acme, Ada"
    assert received["Message-ID"] == email.message_id
    assert received["X-Journey"] == "welcome-series"
    assert received["X-Journey-Step"] == "day0"


async def test_same_key_carries_same_message_id() -> None:
    handler = RecordingHandler()
    provider_email = make_email()
    with smtp_server(handler) as port:
        provider = SmtpEmailProvider(HOST, port, timeout=5)
        first = await provider.deliver(provider_email)
        second = await provider.deliver(make_email())
        other = await provider.deliver(make_email("welcome-series-ada/day1"))

    assert first == second != other
    ids = [parse(envelope)["Message-ID"] for envelope in handler.envelopes]
    assert ids == [first, first, other]


@pytest.mark.parametrize(
    ("handler", "permanent", "invalid_recipient", "code"),
    [
        (RecordingHandler(rcpt_reply="550 5.1.1 <ada@example.com>: no such user"), True, True, 550),
        (RecordingHandler(rcpt_reply="553 mailbox name not allowed"), True, True, 553),
        (RecordingHandler(rcpt_reply="550 5.7.1 relaying denied"), True, False, 550),
        (RecordingHandler(rcpt_reply="451 4.3.0 try again later"), False, False, 451),
        (RecordingHandler(data_reply="554 5.6.0 message rejected"), True, False, 554),
        (RecordingHandler(data_reply="452 4.3.1 insufficient storage"), False, False, 452),
    ],
    ids=["550-no-user", "553", "550-relay-denied", "451-rcpt", "554-data", "452-data"],
)
async def test_reply_codes_are_classified(
    handler: RecordingHandler, permanent: bool, invalid_recipient: bool, code: int
) -> None:
    with smtp_server(handler) as port, pytest.raises(DeliveryError) as caught:
        await SmtpEmailProvider(HOST, port, timeout=5).deliver(make_email())

    assert caught.value.permanent is permanent
    assert caught.value.invalid_recipient is invalid_recipient
    assert caught.value.status_code == code
    assert str(code) in str(caught.value)
    assert "ada@example.com" not in str(caught.value)  # error texts end up in logs and history
    assert handler.envelopes == []


async def test_server_down_is_transient() -> None:
    provider = SmtpEmailProvider(HOST, free_port(), timeout=5)
    with pytest.raises(DeliveryError) as caught:
        await provider.deliver(make_email())

    assert caught.value.permanent is False
    assert caught.value.status_code is None


async def test_silent_server_times_out_as_transient() -> None:
    with socket.create_server((HOST, 0)) as silent:  # accepts connections, never greets
        provider = SmtpEmailProvider(HOST, silent.getsockname()[1], timeout=0.3)
        with pytest.raises(DeliveryError) as caught:
            await provider.deliver(make_email())

    assert caught.value.permanent is False
    assert "Timeout" in str(caught.value)


def accept_grace(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    """Accept exactly grace / s3cret."""
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"grace", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize(("password", "delivered"), [("s3cret", True), ("wrong", False)])
async def test_login(password: str, delivered: bool) -> None:
    handler = RecordingHandler()
    options = {"authenticator": accept_grace, "auth_require_tls": False}
    with smtp_server(handler, **options) as port:
        provider = SmtpEmailProvider(HOST, port, username="grace", password=password, timeout=5)
        if delivered:
            await provider.deliver(make_email())
        else:
            with pytest.raises(DeliveryError) as caught:
                await provider.deliver(make_email())
            assert caught.value.permanent is True
            assert caught.value.status_code == 535

    assert len(handler.envelopes) == (1 if delivered else 0)


async def test_starttls_required_but_not_offered_is_permanent() -> None:
    handler = RecordingHandler()
    with smtp_server(handler) as port, pytest.raises(DeliveryError) as caught:
        await SmtpEmailProvider(HOST, port, starttls=True, timeout=5).deliver(make_email())

    assert caught.value.permanent is True
    assert handler.envelopes == []


@pytest.mark.parametrize(
    "options",
    [{"starttls": True, "use_tls": True}, {"username": "grace"}],
    ids=["both-tls-modes", "username-without-password"],
)
def test_contradictory_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SmtpEmailProvider(HOST, 25, **options)
