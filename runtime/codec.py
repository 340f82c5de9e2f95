"""The payload codec: every payload the project writes to Temporal is encrypted (AES-256-GCM).

Which key encrypts a payload follows from the workflow it belongs to (the SDK's
serialization context carries the workflow id):

- `contact-{id}`, `welcome-series-{id}`, `pricing-abandon-{id}`, `nurture-{id}`,
  `lead-sla-{id}`, `churn-prevention-{id}`, `re-engagement-{id}`, `win-back-{id}`,
  `onboarding-{id}`, `recycling-{id}` → the contact's key;
- `renewal-countdown-{contact}-{subscription}`, `abandoned-cart-{contact}-{cart}`
  → the contact's key. Both ids may
  hold hyphens, so every left part of the id up to a hyphen (and the whole id:
  the contact workflow addresses `renewal-countdown-{contact}` too) that is (or
  was) a contact counts; when several do, the payload needs all their keys
  (erasing any of them shreds it); when none does, every part counts;
- anything else, or no workflow → the namespace's key.

An encrypted payload is self-describing: `encoding: binary/encrypted`,
`encryption-cipher: AES-256-GCM` and `encryption-key-ids` (the data key ids,
comma-separated) in its metadata; its data is a 12-byte nonce and the
ciphertext of the whole original payload (metadata included), the key ids as
associated data. Decoding needs nothing else, so the gateway's codec endpoint
can decode what the Temporal UI shows.

- A payload without that encoding is passed through: histories written before
  the codec still replay. So is `binary/null` (a `None`, which holds nothing).
- After erasure the contact's key is gone: its payloads decode to a readable
  notice (`ERASED_TEXT`) instead of failing, and anything written for it
  afterwards is encrypted with a throwaway key that is never stored.
- Search attributes do not pass through codecs; they hold no personal data
  (`ContactId` is an opaque id, see `models/search_attributes.py`).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from models.ids import is_contact_id
from runtime.keys import NONCE_BYTES, DataKeyMaterial, KeyStore, namespace_owner

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_IDS = "encryption-key-ids"
ERASED_TEXT = "erased contact: data key destroyed"
"""What an erased contact's payload decodes to (the Temporal UI shows it)."""

CONTACT_WORKFLOW_PREFIXES = (
    "contact",
    "welcome-series",
    "pricing-abandon",
    "nurture",
    "lead-sla",
    "churn-prevention",
    "re-engagement",
    "win-back",
    "onboarding",
    "recycling",
    "first-purchase",
)
"""Workflow types whose id is `{type}-{contact_id}`."""
PER_ITEM_PREFIXES = ("renewal-countdown", "abandoned-cart")
"""Workflow types whose id is `{type}-{contact_id}-{item}` (a subscription, a cart)."""
RESOLVED_WORKFLOWS = 10_000
"""Workflow ids whose owners one process remembers."""


def contact_candidates(workflow_id: str) -> tuple[str, ...]:
    """The contact ids a workflow id may name (see the module's table); empty for none."""
    prefix = next((p for p in PER_ITEM_PREFIXES if workflow_id.startswith(f"{p}-")), None)
    if prefix is not None:
        rest = workflow_id.removeprefix(f"{prefix}-")
        splits = [rest[:at] for at, char in enumerate(rest) if char == "-"] + [rest]
        return tuple(part for part in splits if is_contact_id(part))
    for prefix in CONTACT_WORKFLOW_PREFIXES:
        contact_id = workflow_id.removeprefix(f"{prefix}-")
        if contact_id != workflow_id and is_contact_id(contact_id):
            return (contact_id,)
    return ()


def is_encrypted(payload: Payload) -> bool:
    """Whether the payload is one this codec encrypted."""
    return payload.metadata.get("encoding") == ENCODING and KEY_IDS in payload.metadata


def erased_notice() -> Payload:
    """What a payload whose data key erasure destroyed decodes to: a readable notice."""
    return Payload(
        metadata={"encoding": b"json/plain", "erased": b"true"},
        data=json.dumps(ERASED_TEXT).encode(),
    )


@dataclass
class _Owners:
    """Workflow id → key owners, remembered (a workflow's owners do not change)."""

    resolved: OrderedDict[str, tuple[str, ...]] = field(default_factory=OrderedDict)

    async def of(self, keys: KeyStore, namespace: str, workflow_id: str | None) -> tuple[str, ...]:
        if workflow_id is None:
            return (namespace_owner(namespace),)
        owners = self.resolved.get(workflow_id)
        if owners is None:
            owners = await self._resolve(keys, namespace, workflow_id)
            self.resolved[workflow_id] = owners
            if len(self.resolved) > RESOLVED_WORKFLOWS:
                self.resolved.popitem(last=False)
        return owners

    @staticmethod
    async def _resolve(keys: KeyStore, namespace: str, workflow_id: str) -> tuple[str, ...]:
        candidates = contact_candidates(workflow_id)
        if not candidates:
            return (namespace_owner(namespace),)
        if len(candidates) == 1:
            return candidates
        known = await keys.known_contacts(candidates)
        return tuple(c for c in candidates if c in known) or candidates


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-256-GCM with the data key of the contact a payload belongs to (module docstring)."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        namespace: str,
        workflow_id: str | None = None,
        owners: _Owners | None = None,
    ) -> None:
        """A codec for `namespace`; `with_context` gives one for a workflow.

        Args:
            keys: Where data keys come from.
            namespace: Namespace of payloads without a workflow context.
            workflow_id: The workflow the payloads belong to (from the context).
            owners: Shared memory of resolved workflow ids (internal).
        """
        self.keys = keys
        self._namespace = namespace
        self._workflow_id = workflow_id
        self._owners = owners or _Owners()

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        """The codec for the workflow (or activity's workflow) of `context`."""
        return EncryptionCodec(
            self.keys,
            namespace=getattr(context, "namespace", self._namespace),
            workflow_id=getattr(context, "workflow_id", None),
            owners=self._owners,
        )

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the key(s) of its workflow's contact."""
        if all(_holds_nothing(payload) for payload in payloads):
            return list(payloads)
        owners = await self._owners.of(self.keys, self._namespace, self._workflow_id)
        materials = [await self.keys.for_owner(owner) for owner in owners]
        return [
            payload if _holds_nothing(payload) else _seal(payload, materials)
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt what this codec encrypted; pass anything else through.

        Raises:
            UnknownDataKey: a payload names a key this database never held.
            MasterKeyMissing: a key's master key is not configured.
        """
        decoded = []
        for payload in payloads:
            if not is_encrypted(payload):
                decoded.append(payload)
                continue
            key_ids = payload.metadata[KEY_IDS].decode().split(",")
            materials = [await self.keys.by_id(key_id) for key_id in key_ids]
            decoded.append(_open(payload, materials))
        return decoded


def _holds_nothing(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == b"binary/null" and not payload.data


def _secret(materials: Sequence[DataKeyMaterial]) -> bytes | None:
    """The payload key: the one data key, or HKDF over several; None if any was destroyed."""
    secrets = [material.secret for material in materials]
    if any(secret is None for secret in secrets):
        return None
    if len(secrets) == 1:
        return secrets[0]
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"contact-journeys payload")
    return hkdf.derive(b"".join(secret for secret in secrets if secret is not None))


def _seal(payload: Payload, materials: Sequence[DataKeyMaterial]) -> Payload:
    key_ids = ",".join(material.key_id for material in materials).encode()
    secret = _secret(materials) or AESGCM.generate_key(bit_length=256)  # erased: write-only
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(secret).encrypt(nonce, payload.SerializeToString(), key_ids)
    return Payload(
        metadata={"encoding": ENCODING, "encryption-cipher": CIPHER, KEY_IDS: key_ids},
        data=nonce + sealed,
    )


def _open(payload: Payload, materials: Sequence[DataKeyMaterial]) -> Payload:
    secret = _secret(materials)
    if secret is None:
        return erased_notice()
    nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
    opened = Payload()
    opened.ParseFromString(AESGCM(secret).decrypt(nonce, sealed, payload.metadata[KEY_IDS]))
    return opened


def encrypting_data_converter(keys: KeyStore, *, namespace: str = "default") -> DataConverter:
    """The project's data converter: pydantic payloads, encrypted, failures' messages too."""
    return DataConverter(
        payload_converter_class=PydanticPayloadConverter,
        payload_codec=EncryptionCodec(keys, namespace=namespace),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def key_store_of(converter: DataConverter) -> KeyStore | None:
    """The key store of a converter made by `encrypting_data_converter` (None for others)."""
    codec = converter.payload_codec
    return codec.keys if isinstance(codec, EncryptionCodec) else None
