"""DKIM signatures on what we relay, verified by dkimpy against keys served by a loopback DNS.

Reproduces:
- RFC 6376 (DKIM): the `DKIM-Signature` header, relaxed/relaxed canonicalisation,
  rsa-sha256, the key record `v=DKIM1; k=rsa; p=…` at `<selector>._domainkey.<domain>`;
- RFC 8058 section 4: the signature covers List-Unsubscribe and List-Unsubscribe-Post.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from activities.providers import DkimSigner, OutgoingEmail, SmtpEmailProvider
from activities.providers.factory import email_provider_from_settings
from activities.providers.messages import wire_bytes
from models.settings import DkimKey, Settings
from tests.dkim_dns import DkimDns, dkim_dns, dkim_key, private_pem, rsa_key, signed_headers
from tests.factories import outgoing_email
from tests.test_providers_smtp import HOST, RecordingHandler, parse, smtp_server

KEY = rsa_key()
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://journeys.acme.test/u/token-abc>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def marketing_email(sender: str = "grace@acme.test") -> OutgoingEmail:
    email = outgoing_email()
    return dataclasses.replace(email, from_address=sender, headers={**email.headers, **UNSUBSCRIBE})


@pytest.fixture
def dns() -> Iterator[DkimDns]:
    with dkim_dns() as served:
        served.zone.publish("s2025", "acme.test", KEY)
        yield served


def test_signature_covers_the_one_click_headers_and_verifies(dns: DkimDns) -> None:
    signer = DkimSigner({"acme.test": dkim_key("s2025", KEY)})

    signed = signer.sign(wire_bytes(marketing_email()), sender="grace@acme.test")

    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.test;")
    assert b"s=s2025;" in signed
    assert dns.verify(signed)
    assert dns.zone.queries == ["s2025._domainkey.acme.test"]
    covered = signed_headers(signed)
    for name in ("from", "to", "subject", "date", "message-id"):
        assert name in covered
    assert covered.count("list-unsubscribe") == 2  # oversigned: a second copy breaks it
    assert covered.count("list-unsubscribe-post") == 2


@pytest.mark.parametrize(
    ("find", "replace"),
    [
        (b"<https://journeys.acme.test/u/token-abc>", b"<https://evil.example/u/token-abc>"),
        (b"Subject: Welcome to Acme, Ada", b"Subject: Welcome to Acme, Bob"),
        (b"<p>Hi Ada, welcome aboard.</p>", b"<p>Hi Bob, welcome aboard.</p>"),
    ],
    ids=["list-unsubscribe", "subject", "body"],
)
def test_a_changed_header_or_body_fails_verification(
    dns: DkimDns, find: bytes, replace: bytes
) -> None:
    signed = DkimSigner({"acme.test": dkim_key("s2025", KEY)}).sign(
        wire_bytes(marketing_email()), sender="grace@acme.test"
    )
    assert find in signed

    assert not dns.verify(signed.replace(find, replace))


def test_an_added_list_unsubscribe_header_fails_verification(dns: DkimDns) -> None:
    signed = DkimSigner({"acme.test": dkim_key("s2025", KEY)}).sign(
        wire_bytes(marketing_email()), sender="grace@acme.test"
    )
    head, _, body = signed.partition(b"\r\n\r\n")

    added = head + b"\r\nList-Unsubscribe: <https://evil.example/u>\r\n\r\n" + body
    assert not dns.verify(added)


def test_a_subdomain_is_signed_by_its_parent_domain_key_and_others_are_not_signed(
    dns: DkimDns,
) -> None:
    signer = DkimSigner({"acme.test": dkim_key("s2025", KEY)})

    news = signer.sign(
        wire_bytes(marketing_email("news@mail.acme.test")), sender="news@Mail.Acme.test"
    )
    assert b"d=acme.test;" in news
    assert dns.verify(news)
    other = wire_bytes(marketing_email("ada@example.com"))
    assert signer.sign(other, sender="ada@example.com") == other
    assert signer.domain_for("grace@notacme.test") is None


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (DkimKey(selector="s1", private_key=SecretStr("not a key")), "cannot read the private key"),
        (
            DkimKey(selector="s1", private_key_file=Path("/nonexistent/dkim.pem")),
            "cannot read the private key",
        ),
        (
            DkimKey(
                selector="s1",
                private_key=SecretStr(private_pem(ec.generate_private_key(ec.SECP256R1()))),
            ),
            "not an RSA key",
        ),
    ],
    ids=["garbage", "missing-file", "ec-key"],
)
def test_an_unusable_key_stops_the_provider_naming_the_domain(key: DkimKey, says: str) -> None:
    settings = Settings(email_provider="smtp", dkim_keys={"acme.test": key})
    with pytest.raises(ValueError, match=rf"DKIM_KEYS\['acme.test'\]: {says}"):
        email_provider_from_settings(settings)


def test_dkim_keys_are_read_from_the_environment_with_a_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dns: DkimDns
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_text(private_pem(KEY))
    monkeypatch.setenv(
        "DKIM_KEYS",
        json.dumps({"ACME.test.": {"selector": "s2025", "private_key_file": str(key_file)}}),
    )
    settings = Settings()

    signer = DkimSigner(settings.dkim_keys)
    assert dns.verify(signer.sign(wire_bytes(marketing_email()), sender="grace@acme.test"))


@pytest.mark.parametrize(
    "fields",
    [{"selector": "s1"}, {"selector": "s1", "private_key": "x", "private_key_file": "/k.pem"},
     {"selector": "bad selector", "private_key": "x"}],
    ids=["no-key", "both", "bad-selector"],
)  # fmt: skip
def test_a_dkim_key_needs_one_key_and_a_dns_selector(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        DkimKey.model_validate(fields)


async def test_smtp_delivers_a_message_whose_signature_verifies(dns: DkimDns) -> None:
    handler = RecordingHandler()
    email = marketing_email()
    with smtp_server(handler) as port:
        provider = SmtpEmailProvider(
            HOST, port, timeout=5, dkim=DkimSigner({"acme.test": dkim_key("s2025", KEY)})
        )
        await provider.deliver(email)

    [envelope] = handler.envelopes
    assert isinstance(envelope.original_content, bytes)
    assert dns.verify(envelope.original_content)
    received = parse(envelope)
    assert received["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert received["Message-ID"] == email.message_id
    assert received["DKIM-Signature"] is not None
