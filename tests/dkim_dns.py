"""DKIM keys and their DNS records, served by a real DNS server on loopback (dnslib).

`dkim_dns()` runs a UDP DNS server answering the TXT records of the keys
published to it; `verify_dkim` checks a message's signature with dkimpy,
resolving `<selector>._domainkey.<domain>` through dnspython pointed at that
server (RFC 6376 section 3.6.2: the key record, `v=DKIM1; k=rsa; p=<base64 SPKI>`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dkim  # type: ignore[import-untyped]
import dns.message
import dns.query
import dns.rdatatype
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from dnslib import QTYPE, RR, TXT, DNSRecord  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSHandler, DNSServer  # type: ignore[import-untyped]
from pydantic import SecretStr

from models.settings import DkimKey

HOST = "127.0.0.1"
TXT_STRING_LIMIT = 255
"""A TXT record's character-strings are at most 255 bytes; a 2048-bit key takes two."""


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: PrivateKeyTypes) -> str:
    """PKCS#8 PEM, what `openssl genpkey` writes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def dkim_key(selector: str, key: rsa.RSAPrivateKey) -> DkimKey:
    return DkimKey(selector=selector, private_key=SecretStr(private_pem(key)))


def key_record(key: rsa.RSAPrivateKey) -> bytes:
    """The DKIM key record of `key`'s public half."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


@dataclass
class TxtZone(BaseResolver):  # type: ignore[misc]
    """Answers TXT queries from `records` (name without the final dot → value)."""

    records: dict[str, bytes] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)

    def publish(self, selector: str, domain: str, key: rsa.RSAPrivateKey) -> None:
        self.records[f"{selector}._domainkey.{domain}"] = key_record(key)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        self.queries.append(name)
        value = self.records.get(name)
        if value is not None and request.q.qtype == QTYPE.TXT:
            chunks = [
                value[start : start + TXT_STRING_LIMIT]
                for start in range(0, len(value), TXT_STRING_LIMIT)
            ]
            reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


@dataclass(frozen=True)
class DkimDns:
    """The zone being served and the server's port."""

    zone: TxtZone
    port: int

    def txt(self, name: bytes, timeout: int = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: the TXT record of `name`, asked of the loopback server."""
        query = dns.message.make_query(name.decode().rstrip("."), dns.rdatatype.TXT)
        answer = dns.query.udp(query, HOST, port=self.port, timeout=timeout)
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(next(iter(rrset)).strings)
        return None

    def verify(self, message: bytes) -> bool:
        """Whether the topmost DKIM-Signature of `message` verifies against the served keys."""
        return bool(dkim.verify(message, dnsfunc=self.txt))


@contextmanager
def dkim_dns() -> Iterator[DkimDns]:
    """Serve an (initially empty) TXT zone over UDP on a free loopback port."""
    zone = TxtZone()
    server = DNSServer(zone, address=HOST, port=0)
    server.start_thread()
    try:
        yield DkimDns(zone=zone, port=server.server.server_address[1])
    finally:
        server.stop()
        server.server.server_close()


def signed_headers(message: bytes) -> list[str]:
    """The `h=` list of the message's topmost DKIM-Signature, lowercase."""
    header = message.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = header.replace("\r\n ", " ").replace("\r\n\t", " ")
    [signature] = [line for line in unfolded.split("\r\n") if line.startswith("DKIM-Signature:")]
    tags = dict(
        tag.strip().split("=", 1) for tag in signature.partition(":")[2].split(";") if "=" in tag
    )
    return [name.strip().lower() for name in tags["h"].replace(" ", "").split(":")]
