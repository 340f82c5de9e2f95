"""What every route gets: the services the app holds, and the caller's API key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from models.settings import ApiKey, Scope, Settings
from runtime.keys import KeyStore


@dataclass(frozen=True)
class Services:
    """What the gateway works with, created once per app (see `create_app`)."""

    settings: Settings
    engine: AsyncEngine
    temporal: Client
    codec_keys: KeyStore


def services(request: Request) -> Services:
    """The app's services."""
    held: Services = request.app.state.services
    return held


ServicesDep = Annotated[Services, Depends(services)]

bearer = HTTPBearer(auto_error=False, description="An API key from the API_KEYS setting.")


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    """The configured key equal to `presented` (compared in constant time), if any."""
    presented_digest = _digest(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(_digest(key.key.get_secret_value()), presented_digest):
            found = key
    return found


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that lets a request through only with a valid key holding `scope`.

    No or an unknown key: 401 (with `WWW-Authenticate: Bearer`); a key
    without the scope: 403.
    """

    async def check(
        request: Request,
        held: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ApiKey:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = find_key(held.settings.api_keys, credentials.credentials)
        if key is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.state.api_key_name = key.name
        if scope not in key.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"API key {key.name!r} lacks the {scope!r} scope"
            )
        return key

    return check
