"""Amazon SNS as the webhook sees it: a signing certificate served over HTTPS on loopback,
messages signed as SNS signs them, and a SubscribeURL that records its confirmations.

Reproduces https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html:
the canonical string (signed fields in order, `<name>\\n<value>\\n`), SignatureVersion 1
(SHA1withRSA) and 2 (SHA256withRSA), base64 `Signature`, `SigningCertURL`.
"""

from __future__ import annotations

import base64
import ipaddress
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ses-events"
SIGNED = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ],
}  # fmt: skip
"""The signed fields by message type, in canonical order (the documentation's lists)."""


def self_signed(
    key: rsa.RSAPrivateKey, name: str, *, ip: str | None = None, days: int = 30
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SnsEndpoint:
    """An HTTPS server on loopback: `/cert.pem` (the signing certificate) and `/confirm`."""

    directory: Path
    signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tls_cert = self_signed(tls_key, "sns.loopback.test", ip=HOST)
        self.ca_bundle = self.directory / "sns-ca.pem"
        self.ca_bundle.write_bytes(pem(tls_cert))
        key_file = self.directory / "sns-tls-key.pem"
        key_file.write_bytes(
            tls_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.certificate = pem(self_signed(self.signing_key, "sns.amazonaws.com"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, key_file)
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests.append(self.path)
                body = endpoint.certificate if self.path == "/cert.pem" else b"<Confirmed/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def message(
        self,
        message_type: str,
        message: str,
        *,
        timestamp: datetime | None = None,
        topic: str = TOPIC_ARN,
        version: str = "1",
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """An SNS message of `message_type`, signed as SNS signs it."""
        fields = {
            "Type": message_type,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": message,
            "Timestamp": (timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z",
            "SignatureVersion": version,
            "SigningCertURL": f"{self.url}/cert.pem",
            **(extra or {}),
        }
        return sign(fields, self.signing_key)


def sign(fields: dict[str, str], key: rsa.RSAPrivateKey) -> dict[str, str]:
    """`fields` with the `Signature` SNS would put on them."""
    canonical = "".join(
        f"{name}\n{fields[name]}\n" for name in SIGNED[fields["Type"]] if name in fields
    )
    digest = hashes.SHA1() if fields["SignatureVersion"] == "1" else hashes.SHA256()
    signature = key.sign(canonical.encode(), padding.PKCS1v15(), digest)
    return {**fields, "Signature": base64.b64encode(signature).decode()}
