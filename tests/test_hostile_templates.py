"""Hostile contact data in messages: template injection renders as text, header injection adds
no header.

A first name or company comes from a signup form, so it may be anything. Real welcome series
run (real worker, outbox provider) for contacts named like template code, HTML and encoded
headers, and the `.eml` files are read back with the email package: the text is literal, the
HTML escaped, and each message has exactly our headers. What would break a header line is
refused by the API, and neutralised by the providers (outbox, SMTP, HTTP API) for data that
got in another way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import WorkflowEnvironment

from activities.providers import HttpEmailProvider, OutgoingEmail, SmtpEmailProvider
from activities.providers.messages import build_mime
from models.settings import Settings
from tests.factories import add_contact, outgoing_email
from tests.fake_api import FakeApi
from tests.gateway import Gateway, gateway_settings, serving_gateway
from tests.hostile import INJECTIONS, PROPERTY
from tests.outbox import html_body, read_outbox, text_body
from tests.test_api import journey_state, new_id, put_contact
from tests.test_providers_smtp import HOST, RecordingHandler, parse, smtp_server

HEADERS = [
    "Message-ID", "Date", "From", "To", "Reply-To", "Subject", "X-Journey", "X-Journey-Step",
    "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version", "Content-Type",
]  # fmt: skip
"""Every header of a sent journey email, in order: contact data adds none."""
SECRET = "maya@northwind.example"
"""The brand's sender address: in a body only if contact data were evaluated as Liquid."""
LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
ZERO_WIDTH_SPACE = "\u200b"

NAMES = [
    ("{{ secret }}", "{{ brand.sender_email }}"),
    ("{% include 'x' %}", "{% raw %}{{ brand.name }}{% endraw %}"),
    ("{% raw %}", "{% if true %}Pwned{% endif %}"),
    ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'),
    ("=?utf-8?q?=0D=0ABcc:_evil@attacker.example?=", "=?utf-8?b?DQpYLUV2aWw6IDE=?="),
    ("https://[oops", "Acme <b>&amp;</b> Co"),
    ('O\'Neil & "Sons"', "Acme\u202egnp.exe"),
]
"""First names and companies the API takes: they must render as typed."""


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    async with serving_gateway(dev_env.client, gateway_settings(settings)) as served:
        yield served


def one_line(text: str) -> str:
    """What a header shows of `text`: runs of control characters are one space."""
    return LINE_BREAKING.sub(" ", text)


def shown(message: EmailMessage, header: str) -> str:
    """A header as a mail client shows it (zero-width spaces are invisible)."""
    return str(message[header]).replace(ZERO_WIDTH_SPACE, "")


async def test_contact_data_renders_as_text_in_every_message_and_adds_no_header(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    """Day 7 has the first name in its subject; days 2, 4 and 7 the company in their body.
    One contact got in without the API (an import into the database): its line breaks are
    neutralised when it is mailed."""
    contacts: dict[str, tuple[str, str]] = {}
    for first_name, company in NAMES:
        contact_id = new_id("tpl")
        await put_contact(gateway, contact_id, first_name=first_name, company=company)
        contacts[contact_id] = (first_name, company)
    imported = new_id("tpl-imported")
    contacts[imported] = ("Kim\r\nBcc: evil@attacker.example", "Acme\nX-Evil: 1")
    await add_contact(
        engine, imported, first_name=contacts[imported][0], company=contacts[imported][1]
    )
    for contact_id in contacts:
        enrolled = await gateway.http.post(
            f"/v1/contacts/{contact_id}/journeys/welcome-series", json={"day_seconds": 1}
        )
        assert enrolled.status_code == 201, enrolled.text
    for contact_id in contacts:
        await journey_state(
            dev_env.client, f"welcome-series-{contact_id}", lambda state: state.messages_sent == 5
        )

    outbox = read_outbox(gateway.settings.outbox_dir)
    for contact_id, (first_name, company) in contacts.items():
        sent = {
            key.rsplit("/", 1)[1]: message for key, message in outbox.items() if contact_id in key
        }
        assert sorted(sent) == ["day0", "day1", "day2", "day4", "day7"]
        for step, message in sent.items():
            assert message.keys() == HEADERS, (contact_id, step, message.keys())
            assert SECRET not in text_body(message) + html_body(message), (contact_id, step)
        day7 = sent["day7"]
        assert shown(day7, "Subject") == f"{one_line(first_name)}, want a second pair of eyes?"
        if contact_id == imported:
            continue
        for step in ("day0", "day7"):
            greeting = "Hey {}" + ("!" if step == "day0" else ",")
            assert greeting.format(first_name) in text_body(sent[step]), step
            assert greeting.format(escape(first_name)) in html_body(sent[step]), step
        assert f"from {company}, " in text_body(day7)
        assert f"from {escape(company)}, " in html_body(day7)


async def test_what_would_break_a_header_line_is_refused_naming_the_field(
    gateway: Gateway,
) -> None:
    contact_id = new_id("crlf")
    for field, value in [
        ("first_name", "Kim\r\nBcc: evil@attacker.example"),
        ("first_name", "Kim\nBcc: evil@attacker.example"),
        ("first_name", "Kim\u2028Bcc: evil@attacker.example"),
        ("first_name", "Kim\x85Bcc: evil@attacker.example"),
        ("first_name", "Kim\x00"),
        ("company", "Acme\rX-Evil: 1"),
        ("company", "Acme\tInc"),
    ]:
        refused = await gateway.http.put(f"/v1/contacts/{contact_id}", json={field: value})
        assert refused.status_code == 422, (field, value)
        [issue] = refused.json()["detail"]
        assert issue["loc"] == ["body", field]
        assert "one line of text without control characters" in issue["msg"], issue
    refused = await gateway.http.put(
        f"/v1/contacts/{contact_id}", json={"email": "kim@example.com\r\nBcc: evil@x.example"}
    )
    assert refused.json()["detail"][0]["loc"] == ["body", "email"]
    refused = await gateway.http.put(
        f"/v1/contacts/{contact_id}",
        json={"email_consent": {"granted": True, "source": "form\r\nX-Evil: 1"}},
    )
    assert refused.json()["detail"][0]["loc"] == ["body", "email_consent", "source"]
    refused = await gateway.http.put("/v1/contacts/kim%0D%0ABcc:%20x", json={})
    assert refused.json()["detail"][0]["loc"] == ["path", "contact_id"]
    for field in ("event_id", "contact_id"):
        event = {"event_id": "e1", "contact_id": contact_id, "type": "x", field: "a\r\nBcc: x"}
        refused = await gateway.http.post("/v1/events", json=event)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", field]


@given(
    subject=st.text(st.characters(exclude_categories=["Cs"])) | st.sampled_from(INJECTIONS),
    name=st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
)
@PROPERTY
def test_any_subject_and_sender_name_stay_in_their_header(subject: str, name: str) -> None:
    email = dataclasses.replace(outgoing_email(), subject=subject, from_name=name)
    message = parse_bytes(bytes(build_mime(email)))
    assert message.keys() == [*HEADERS[:8], *HEADERS[-2:]]
    assert words(shown(message, "Subject")) == words(
        one_line(subject).replace(ZERO_WIDTH_SPACE, "")
    )
    assert message["From"].addresses[0].addr_spec == email.from_address


def words(text: str) -> list[str]:
    """`text` as words: header folding may change the white space between them."""
    return text.split()


def parse_bytes(raw: bytes) -> EmailMessage:
    """A raw message, parsed as a mail client would."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def hostile_email(subject: str) -> OutgoingEmail:
    """The factory's email with `subject`, and a sender name with a line break."""
    return dataclasses.replace(
        outgoing_email(), subject=subject, from_name="Grace\r\nBcc: evil@attacker.example"
    )


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_the_smtp_provider_sends_one_recipient_and_our_headers(injection: str) -> None:
    handler = RecordingHandler()
    email = hostile_email(f"Hi {injection}, welcome")
    with smtp_server(handler) as port:
        await SmtpEmailProvider(HOST, port, timeout=5).deliver(email)
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == [email.to_address]
    received = parse(envelope)
    assert received.keys() == [*HEADERS[:8], *HEADERS[-2:]]
    assert shown(received, "Subject") == one_line(email.subject)
    assert received["From"].addresses[0].addr_spec == email.from_address


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_the_http_provider_sends_header_fields_as_one_line(
    api: FakeApi, injection: str
) -> None:
    email = hostile_email(f"Hi {injection}, welcome")
    await HttpEmailProvider(api.url, "key", timeout=5).deliver(email)
    [request] = api.received
    body: dict[str, Any] = request.body
    header_fields = [body["from"], body["subject"], *body["headers"].values()]
    assert not any(LINE_BREAKING.search(value) or "=?" in value for value in header_fields)
    assert body["subject"].replace(ZERO_WIDTH_SPACE, "") == one_line(email.subject)
    assert body["text"] == email.text  # bodies are left as they are
