"""Amazon SNS messages POSTed to an HTTPS subscription: parsed, verified, confirmed.

How a message is verified (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):

1. Its `Type` is `Notification`, `SubscriptionConfirmation` or
   `UnsubscribeConfirmation` and matches the `x-amz-sns-message-type` header;
   its `TopicArn` is one of `SES_SNS_TOPIC_ARNS`.
2. `SigningCertURL` is `https://` on a host of `SES_SNS_CERT_HOSTS`
   (Amazon's `sns.<region>.amazonaws.com` by default; `*` is one DNS label).
   The certificate is fetched (httpx, TLS verified against the system's CAs or
   `SES_SNS_CA_BUNDLE`, no redirects) and cached by URL; it must be current.
3. `Signature` (base64) verifies with the certificate's RSA key, PKCS#1 v1.5,
   over the canonical string: each signed field present, as `<name>\\n<value>\\n`,
   in this order — Notification: Message, MessageId, Subject (if present),
   Timestamp, TopicArn, Type; the confirmations: Message, MessageId,
   SubscribeURL, Timestamp, Token, TopicArn, Type. `SignatureVersion` 1 is
   SHA1withRSA, 2 is SHA256withRSA.
4. `Timestamp` is at most `MAX_AGE` old (one hour, which covers SNS's default
   HTTP delivery retries; keep a custom delivery policy's retries within it)
   and at most `MAX_SKEW` ahead. Replays within that hour are harmless: each
   notification's `MessageId` is its event id, processed once.

A subscription is confirmed by GETting its `SubscribeURL`, under the same host
rules as the certificate.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import ssl
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

MESSAGE_TYPE_HEADER = "x-amz-sns-message-type"
MAX_AGE = timedelta(hours=1)
MAX_SKEW = timedelta(minutes=5)
"""How far in the future a `Timestamp` may be (clock skew)."""
CERTIFICATE_CACHE_SIZE = 32
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_FIELDS = {
    "Notification": NOTIFICATION_FIELDS,
    "SubscriptionConfirmation": CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": CONFIRMATION_FIELDS,
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class SnsRefused(Exception):
    """The request is not a verified SNS message for us.

    Attributes:
        status: 400 (malformed), 401 (unsigned, wrongly signed, stale, not our
            topic) or 503 (the certificate could not be fetched: SNS retries).
    """

    def __init__(self, status: int, detail: str) -> None:
        """Say why, and with which HTTP status."""
        super().__init__(detail)
        self.status = status
        self.detail = detail


class SnsMessage(BaseModel):
    """The fields of an SNS message we read (the JSON body of the POST)."""

    model_config = ConfigDict(extra="ignore")

    Type: Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
    MessageId: str
    TopicArn: str
    Message: str
    Timestamp: AwareDatetime
    SignatureVersion: Literal["1", "2"]
    Signature: str
    SigningCertURL: str
    Subject: str | None = None
    SubscribeURL: str | None = None
    Token: str | None = None


def canonical_string(fields: dict[str, object]) -> bytes:
    """What SNS signs: the signed fields present, `<name>\\n<value>\\n` each, in order.

    Raises:
        SnsRefused: 400, `Type` is not a message type SNS signs.
    """
    names = SIGNED_FIELDS.get(str(fields.get("Type")))
    if names is None:
        raise SnsRefused(400, f"unknown SNS message Type {fields.get('Type')!r}")
    return "".join(
        f"{name}\n{fields[name]}\n" for name in names if fields.get(name) is not None
    ).encode()


def host_allowed(url: str, hosts: Sequence[str]) -> bool:
    """Whether `url` is https on one of `hosts` (`*` stands for one DNS label)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    host = parsed.host.lower()
    return parsed.scheme == "https" and any(
        _host_pattern(allowed).fullmatch(host) for allowed in hosts
    )


def _host_pattern(allowed: str) -> re.Pattern[str]:
    return re.compile(re.escape(allowed.lower()).replace(r"\*", "[a-z0-9-]+"))


class SnsVerifier:
    """Verifies SNS messages for the accepted topics (see the module docstring)."""

    _certificates: OrderedDict[str, x509.Certificate] = OrderedDict()
    """Fetched certificates by URL, shared by every verifier of the process."""

    def __init__(
        self,
        *,
        topic_arns: Sequence[str],
        cert_hosts: Sequence[str],
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Configure what is accepted.

        Args:
            topic_arns: The topics whose messages are accepted.
            cert_hosts: Where certificates and subscription URLs may be.
            ca_bundle: CAs trusted for those fetches (default: the system's).
            timeout: Seconds allowed for each fetch.
        """
        self._topic_arns = frozenset(topic_arns)
        self._cert_hosts = tuple(cert_hosts)
        self._ca_bundle = ca_bundle
        self._timeout = timeout

    async def verify(self, body: bytes, *, message_type: str | None, now: datetime) -> SnsMessage:
        """The message in `body`, once everything checks out.

        Args:
            body: The raw request body.
            message_type: The `x-amz-sns-message-type` header.
            now: The current time (aware).

        Raises:
            SnsRefused: why not (400, 401 or 503).
        """
        fields = _json_object(body)
        try:
            message = SnsMessage.model_validate(fields)
        except ValidationError as error:
            raise SnsRefused(400, f"not an SNS message: {error.errors()[0]['msg']}") from None
        if message.Type != message_type:
            raise SnsRefused(400, f"{MESSAGE_TYPE_HEADER} does not match the message's Type")
        if message.TopicArn not in self._topic_arns:
            raise SnsRefused(401, "not a topic of SES_SNS_TOPIC_ARNS")
        if message.Timestamp < now - MAX_AGE or message.Timestamp > now + MAX_SKEW:
            raise SnsRefused(401, "SNS message Timestamp is stale or in the future")
        certificate = await self._certificate(message.SigningCertURL, now=now)
        _check_signature(certificate, message, canonical_string(fields))
        return message

    async def confirm(self, message: SnsMessage) -> None:
        """Confirm a subscription: GET its `SubscribeURL`.

        Raises:
            SnsRefused: 400 for a SubscribeURL off the allowed hosts, 503 when the
                confirmation fails (SNS sends the confirmation again).
        """
        url = message.SubscribeURL
        if url is None or not host_allowed(url, self._cert_hosts):
            raise SnsRefused(400, "SubscribeURL is not https on a host of SES_SNS_CERT_HOSTS")
        await self._get(url, what="confirm the subscription")

    async def _certificate(self, url: str, *, now: datetime) -> x509.Certificate:
        if not host_allowed(url, self._cert_hosts):
            raise SnsRefused(401, "SigningCertURL is not https on a host of SES_SNS_CERT_HOSTS")
        certificates = SnsVerifier._certificates
        certificate = certificates.get(url)
        if certificate is None:
            pem = await self._get(url, what="fetch the SNS signing certificate")
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise SnsRefused(401, "SigningCertURL does not serve a certificate") from None
            certificates[url] = certificate
            while len(certificates) > CERTIFICATE_CACHE_SIZE:
                certificates.popitem(last=False)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsRefused(401, "the SNS signing certificate is not valid now")
        return certificate

    async def _get(self, url: str, *, what: str) -> bytes:
        try:
            verify = ssl.create_default_context(cafile=self._ca_bundle) if self._ca_bundle else True
            async with httpx.AsyncClient(
                verify=verify, timeout=self._timeout, follow_redirects=False
            ) as client:
                response = await client.get(url)
        except (httpx.HTTPError, OSError) as error:  # OSError: an unreadable CA bundle
            raise SnsRefused(503, f"could not {what}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise SnsRefused(503, f"could not {what}: HTTP {response.status_code}")
        return response.content


def _json_object(body: bytes) -> dict[str, object]:
    try:
        fields = json.loads(body)
    except ValueError:
        raise SnsRefused(400, "the body is not JSON") from None
    if not isinstance(fields, dict):
        raise SnsRefused(400, "the body is not a JSON object")
    return fields


def _check_signature(certificate: x509.Certificate, message: SnsMessage, signed: bytes) -> None:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SnsRefused(401, "the SNS signing certificate does not hold an RSA key")
    try:
        signature = base64.b64decode(message.Signature, validate=True)
        key.verify(signature, signed, padding.PKCS1v15(), HASHES[message.SignatureVersion]())
    except (InvalidSignature, binascii.Error):
        raise SnsRefused(401, "SNS message signature does not match") from None
