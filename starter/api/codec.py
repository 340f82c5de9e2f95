"""`POST /codec/decode`, `POST /codec/encode`: the Temporal remote codec protocol for the UI.

The body is a `Payloads` message as protobuf JSON (`{"payloads": [{"metadata":
{…base64…}, "data": "…base64…"}]}`); the answer is the same shape. The
Temporal Web UI (`--ui-codec-endpoint` / TEMPORAL_CODEC_ENDPOINT) and the
`temporal` CLI (`--codec-endpoint`) call it with the header `X-Namespace`.

- Authentication: a gateway key with the `codec:decode` (or `codec:encode`)
  scope as `Authorization: Bearer <key>` (the CLI's `--codec-auth`). With
  CODEC_LOOPBACK_WITHOUT_KEY (`journeys dev`), requests from a loopback
  address need none: the dev server's UI sends no credentials.
- Browsers: CORS for the origins in CODEC_CORS_ORIGINS, on `/codec/…` only.
- Keys are read from the database on every request (no cache): a contact
  erased a moment ago decodes as `erased contact: data key destroyed`.
- Encoding uses the namespace's data key (a payload given here belongs to no
  workflow the codec could know of).
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf.json_format import MessageToJson, Parse, ParseError
from temporalio.api.common.v1 import Payloads

from models.settings import Scope
from runtime.codec import EncryptionCodec
from runtime.keys import MasterKeyMissing, UnknownDataKey
from starter.api.dependencies import ServicesDep, bearer, require

router = APIRouter(prefix="/codec", tags=["codec"])
PREFIX = "/codec"

_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"payloads": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
    "required": True,
}


def codec_access(scope: Scope) -> object:
    """A dependency: loopback callers pass when the setting allows, others need `scope`."""
    check_key = require(scope)

    async def check(
        request: Request,
        held: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if held.settings.codec_loopback_without_key and _from_loopback(request):
            request.state.api_key_name = "loopback"
            return
        await check_key(request, held, credentials)

    return Depends(check)


def _from_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def _payloads(request: Request) -> Payloads:
    try:
        return Parse(await request.body(), Payloads())
    except (ParseError, UnicodeDecodeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f'body is not {{"payloads": [...]}} protobuf JSON: {error}'
        ) from error


def _codec(held: ServicesDep, namespace: str | None) -> EncryptionCodec:
    return EncryptionCodec(held.codec_keys, namespace=namespace or "default")


def _answer(payloads: Payloads) -> Response:
    return Response(MessageToJson(payloads), media_type="application/json")


@router.post(
    "/decode",
    summary="Decode payloads (Temporal remote codec)",
    openapi_extra={"requestBody": _BODY},
    dependencies=[codec_access("codec:decode")],  # type: ignore[list-item]
    responses={400: {"description": "Not protobuf JSON"}, 422: {"description": "Unknown key"}},
)
async def decode(
    request: Request,
    held: ServicesDep,
    x_namespace: Annotated[str | None, Header()] = None,
) -> Response:
    """Decrypt the payloads; an erased contact's come back as a readable notice saying so."""
    given = await _payloads(request)
    try:
        decoded = await _codec(held, x_namespace).decode(given.payloads)
    except UnknownDataKey as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(error)) from error
    except MasterKeyMissing as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    return _answer(Payloads(payloads=decoded))


@router.post(
    "/encode",
    summary="Encode payloads (Temporal remote codec)",
    openapi_extra={"requestBody": _BODY},
    dependencies=[codec_access("codec:encode")],  # type: ignore[list-item]
    responses={400: {"description": "Not protobuf JSON"}},
)
async def encode(
    request: Request,
    held: ServicesDep,
    x_namespace: Annotated[str | None, Header()] = None,
) -> Response:
    """Encrypt the payloads with the namespace's data key."""
    given = await _payloads(request)
    return _answer(Payloads(payloads=await _codec(held, x_namespace).encode(given.payloads)))
