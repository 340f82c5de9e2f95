"""DKIM signatures (RFC 6376) on the finished messages we hand to a relay (SMTP, SES raw).

RFC 8058's one-click unsubscribe counts only when a valid DKIM signature
covers `List-Unsubscribe` and `List-Unsubscribe-Post`, so they are signed
with the identity headers:

- signed: `SIGNED_HEADERS` (From, To, Subject, Date, Message-ID, Reply-To,
  List-Unsubscribe, List-Unsubscribe-Post, MIME-Version, Content-Type);
  From, Subject and the two List-Unsubscribe headers are signed twice
  ("oversigned"), so a second copy added in transit breaks the signature
  instead of taking the first one's place;
- `c=relaxed/relaxed`, `a=rsa-sha256`, no body length (`l=`);
- `d=` is the sending domain whose key signs: the From address's domain, or
  the nearest parent domain with a key (`news.acme.com` mail signed by the
  `acme.com` key stays aligned for DMARC's relaxed alignment);
- a message from a domain without a key goes out unsigned (the relay, e.g.
  SES Easy DKIM, may sign it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from models.settings import DkimKey

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)
OVERSIGNED_HEADERS = ("From", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post")
MIN_RSA_BITS = 1024
"""RFC 8301: verifiers must not accept shorter RSA keys."""


@dataclass(frozen=True)
class _SigningKey:
    selector: bytes
    pem: bytes
    """PKCS#1 ("RSA PRIVATE KEY") PEM, the form dkimpy reads."""


class DkimSigner:
    """Signs messages with the DKIM key of their sending domain."""

    def __init__(self, keys: Mapping[str, DkimKey]) -> None:
        """Load every domain's key.

        Args:
            keys: DKIM keys by sending domain (`DKIM_KEYS`), domains lowercase.

        Raises:
            ValueError: a key cannot be read, is not RSA or is shorter than 1024 bits
                (the message names the domain in `DKIM_KEYS`).
        """
        self._keys = {domain: _load(domain, key) for domain, key in keys.items()}

    def domain_for(self, sender: str) -> str | None:
        """The domain whose key signs mail from `sender` (None: no key fits)."""
        labels = sender.rpartition("@")[2].rstrip(".").lower().split(".")
        for start in range(len(labels) - 1):
            domain = ".".join(labels[start:])
            if domain in self._keys:
                return domain
        return None

    def sign(self, message: bytes, *, sender: str) -> bytes:
        """`message` with a `DKIM-Signature` header on top, or unchanged when no key fits.

        Args:
            message: The finished message, CRLF line endings, as it will be sent.
            sender: The From address, which picks the key.
        """
        domain = self.domain_for(sender)
        if domain is None:
            return message
        key = self._keys[domain]
        signature: bytes = dkim.sign(
            message,
            key.selector,
            domain.encode(),
            key.pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[name.encode() for name in SIGNED_HEADERS + OVERSIGNED_HEADERS],
        )
        return signature + message


def _load(domain: str, key: DkimKey) -> _SigningKey:
    where = f"DKIM_KEYS[{domain!r}]"
    try:
        private = serialization.load_pem_private_key(key.pem(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{where}: cannot read the private key ({error})") from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"{where}: not an RSA key (the signatures are rsa-sha256)")
    if private.key_size < MIN_RSA_BITS:
        raise ValueError(f"{where}: {private.key_size}-bit key; verifiers need {MIN_RSA_BITS}+")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return _SigningKey(selector=key.selector.encode(), pem=pem)
