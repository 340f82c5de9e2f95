"""The payload codec, its data keys, and the gateway's codec endpoint (real gateway, dev server)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.converter import WorkflowSerializationContext
from temporalio.testing import WorkflowEnvironment

from models.settings import Settings
from runtime.codec import ERASED_TEXT, EncryptionCodec, contact_candidates, is_encrypted
from runtime.keys import KeyStore, key_store
from tests.factories import add_contact
from tests.gateway import READ_ONLY_KEY, Gateway, gateway_settings, serving_gateway
from workflows import catalog

UI_ORIGIN = "http://localhost:8233"


def _for(codec: EncryptionCodec, workflow_id: str) -> EncryptionCodec:
    return codec.with_context(WorkflowSerializationContext("default", workflow_id))


def _json(value: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{value}"'.encode())


@pytest.fixture
def keys(settings: Settings, engine: AsyncEngine) -> KeyStore:
    return key_store(settings, engine=engine)


def test_every_journey_id_names_its_contact() -> None:
    for name in catalog.journey_names():
        assert "ada-1" in contact_candidates(f"{name}-ada-1"), name
    assert contact_candidates("contact-ada-1") == ("ada-1",)
    assert "ada-1" in contact_candidates("abandoned-cart-ada-1-cart-7")
    assert contact_candidates("bench-42") == ()


async def test_payloads_are_sealed_per_contact_and_plain_ones_pass_through(keys: KeyStore) -> None:
    codec = EncryptionCodec(keys, namespace="default")
    ada = _for(codec, "welcome-series-ada")
    [sealed] = await ada.encode([_json("ada@example.com")])
    assert is_encrypted(sealed) and b"ada@example.com" not in sealed.SerializeToString()
    assert (await codec.decode([sealed]))[0].data == b'"ada@example.com"'
    plain = _json("recorded before the codec")
    assert await codec.decode([plain]) == [plain]
    [other] = await _for(codec, "contact-bob").encode([_json("x")])
    assert other.metadata["encryption-key-ids"] != sealed.metadata["encryption-key-ids"]


async def test_renewal_ids_with_hyphens_use_every_contact_they_may_name(
    keys: KeyStore, engine: AsyncEngine
) -> None:
    await add_contact(engine, "ada")
    await add_contact(engine, "ada-smith")
    codec = EncryptionCodec(keys, namespace="default")
    [both] = await _for(codec, "renewal-countdown-ada-smith-sub").encode([_json("x")])
    assert len(both.metadata["encryption-key-ids"].split(b",")) == 2
    await keys.destroy("ada")  # either contact's erasure shreds it
    assert (await codec.decode([both]))[0].data == f'"{ERASED_TEXT}"'.encode()


async def test_erasure_shreds_everywhere_and_later_payloads_are_write_only(
    keys: KeyStore,
) -> None:
    codec = _for(EncryptionCodec(keys, namespace="default"), "contact-eve")
    [before] = await codec.encode([_json("eve's secret")])
    other_process = keys.uncached()
    await other_process.by_id(before.metadata["encryption-key-ids"].decode())
    await keys.destroy("eve")
    [after] = await codec.encode([_json("written after erasure")])
    for payload in (before, after):
        for store in (keys, other_process):
            [opened] = await EncryptionCodec(store, namespace="default").decode([payload])
            assert opened.data == f'"{ERASED_TEXT}"'.encode()


async def test_rotation_rewraps_every_key_so_the_old_master_key_can_go(
    settings: Settings, engine: AsyncEngine
) -> None:
    old_key = SecretStr(base64.b64encode(b"o" * 32).decode())
    new_key = SecretStr(base64.b64encode(b"n" * 32).decode())
    old = key_store(
        settings.model_copy(update={"payload_master_keys": {"old": old_key}}), engine=engine
    )
    [sealed] = await _for(EncryptionCodec(old, namespace="default"), "contact-kim").encode(
        [_json("kim")]
    )
    both = settings.model_copy(
        update={
            "payload_master_keys": {"old": old_key, "new": new_key},
            "payload_master_key_id": "new",
        }
    )
    assert await key_store(both, engine=engine).rotate() == 1
    only_new = key_store(
        settings.model_copy(update={"payload_master_keys": {"new": new_key}}), engine=engine
    )
    assert (await EncryptionCodec(only_new, namespace="default").decode([sealed]))[
        0
    ].data == b'"kim"'


# --- the endpoint, on the real gateway ------------------------------------------------


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Gateway]:
    served = gateway_settings(settings, codec_cors_origins=[UI_ORIGIN])
    async with serving_gateway(dev_env.client, served) as running:
        yield running


async def test_codec_endpoint_decodes_for_the_ui_until_the_contact_is_erased(
    gateway: Gateway, dev_env: WorkflowEnvironment, engine: AsyncEngine
) -> None:
    contact_id = f"codec-{uuid.uuid4().hex[:8]}"
    await add_contact(engine, contact_id)
    accepted = await gateway.http.post(
        "/v1/events",
        json={"contact_id": contact_id, "type": "subscribed", "properties": {"source": "ui-check"}},
    )
    assert accepted.status_code == 202, accepted.text
    history = await dev_env.client.get_workflow_handle(f"contact-{contact_id}").fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    signal = next(
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    )
    body = {
        "payloads": [
            _wire(started.input.payloads[0]),
            _wire(signal.workflow_execution_signaled_event_attributes.input.payloads[0]),
        ]
    }
    assert all(is_encrypted(p) for p in (started.input.payloads[0],))
    headers = {"X-Namespace": "default", "Origin": UI_ORIGIN}

    decoded = await gateway.http.post("/codec/decode", json=body, headers=headers)
    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == UI_ORIGIN
    texts = [base64.b64decode(p["data"]) for p in decoded.json()["payloads"]]
    assert contact_id.encode() in texts[0] and b"ui-check" in texts[1]

    anonymous = await gateway.http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": ""}
    )
    assert anonymous.status_code == 401
    reader = await gateway.http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": f"Bearer {READ_ONLY_KEY}"}
    )
    assert reader.status_code == 403 and "codec:decode" in reader.text
    malformed = await gateway.http.post("/codec/decode", content=b"{nope", headers=headers)
    assert malformed.status_code == 400
    preflight = await gateway.http.options(
        "/codec/decode",
        headers={
            "Origin": UI_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-namespace,content-type",
        },
    )
    assert preflight.status_code == 200
    assert (
        "access-control-allow-origin"
        not in (await gateway.http.get("/healthz", headers={"Origin": UI_ORIGIN})).headers
    )

    erased = await gateway.http.delete(f"/v1/contacts/{contact_id}")
    assert erased.json()["status"] == "erased", erased.text
    after = await gateway.http.post("/codec/decode", json=body, headers=headers)
    assert [base64.b64decode(p["data"]) for p in after.json()["payloads"]] == [
        f'"{ERASED_TEXT}"'.encode()
    ] * 2


async def test_loopback_callers_need_no_key_only_when_the_setting_says_so(
    dev_env: WorkflowEnvironment, settings: Settings
) -> None:
    body = {"payloads": [_wire(_json("x"))]}
    for allowed, expected in ((False, 401), (True, 200)):
        served = gateway_settings(settings, codec_loopback_without_key=allowed)
        async with serving_gateway(dev_env.client, served, worker=False) as gateway:
            answer = await gateway.http.post(
                "/codec/encode", json=body, headers={"Authorization": ""}
            )
            assert answer.status_code == expected, answer.text


def _wire(payload: Payload) -> dict[str, object]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }
