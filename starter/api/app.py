"""The HTTP gateway: FastAPI app for backend services, served by `journeys api`.

Routes: `POST /v1/events`, `/v1/contacts/…`, `GET /v1/report`, `/v1/experiments/…`
(bearer keys with scopes),
`/codec/decode` and `/codec/encode` (the Temporal UI's remote codec),
`/u/{token}` (one-click unsubscribe), `/k/{token}` (keep me subscribed),
`/webhooks/email` and `/webhooks/sms` (signed provider events, inbound SMS keywords),
`/webhooks/<provider>` (each named provider's webhooks, verified its way: `hooks/`),
`/healthz` (liveness) and `/readyz` (Temporal and database reachable).
OpenAPI at `/openapi.json`, docs at `/docs`.

Cross-cutting rules, applied here once:
- a body larger than `api_max_body_bytes` gets 413, before it is read whole
  (`api_import_max_bytes` for a contact import);
- Temporal or the database unreachable → 503 with `Retry-After`, never 2xx;
- malformed JSON → 400, invalid fields → 422 naming the field;
- one access-log line per request with the route template (never the path's
  token or ids in a query), status, duration and the API key's name;
- CORS only for the origins in `api_cors_origins` (none by default), and on
  the codec endpoint (`/codec/…`) for those in `codec_cors_origins` (the UI's).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from models.db import create_engine
from models.settings import Settings
from runtime.keys import KeyStore, key_store
from runtime.temporal import SERVICE_RETRY, TemporalUnavailable, connect, unavailable_as_error
from starter.api import (
    broadcasts,
    codec,
    contacts,
    deliverability,
    events,
    experiments,
    imports,
    journeys,
    keep_subscribed,
    report,
    segments,
    sla,
    sms_webhook,
    unsubscribe,
    webhooks,
)
from starter.api.dependencies import Services, ServicesDep
from starter.api.hooks import mailgun, postmark, resend, sendgrid
from starter.api.hooks import ses as ses_hooks
from starter.api.hooks import twilio as twilio_hooks
from starter.api.hooks import vonage as vonage_hooks
from starter.services import operations

log = structlog.stdlib.get_logger("journeys.api")

_BODY_MODELS = (*events.SCHEMA_MODELS, webhooks.DeliveryEvents, sms_webhook.InboundMessages)
"""Request bodies read by hand (signed webhooks, batches), described in the schema."""
READINESS_TIMEOUT = 2.0
"""Seconds each readiness check may take."""

TemporalConnector = Callable[[], Awaitable[Client]]


def default_temporal(settings: Settings) -> TemporalConnector:
    """A lazily connecting client from the environment (TEMPORAL_ADDRESS…), short retries,
    encrypting with the data keys of `settings`' database."""
    return lambda: connect(lazy=True, retry=SERVICE_RETRY, keys=key_store(settings))


def create_app(
    settings: Settings,
    *,
    temporal: TemporalConnector | None = None,
    codec_keys: KeyStore | None = None,
) -> FastAPI:
    """Build the gateway.

    Args:
        settings: Keys, limits, database, task queue.
        temporal: Creates the Temporal client at start-up; it should connect
            lazily so the gateway starts (and answers 503) while Temporal is down
            (default: `default_temporal(settings)`).
        codec_keys: Data keys of the codec endpoint (default: the settings'
            database, read on every request).
    """
    temporal = temporal or default_temporal(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        app.state.services = Services(
            settings=settings,
            engine=engine,
            temporal=await temporal(),
            codec_keys=(codec_keys or key_store(settings, engine=engine)).uncached(),
        )
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="contact-journeys gateway",
        version="1",
        summary="Behaviour events in, durable contact journeys out.",
        lifespan=lifespan,
    )
    for router in (
        events.router,
        imports.router,
        contacts.router,
        journeys.router,
        report.router,
        experiments.router,
        segments.preview_router,
        segments.router,
        broadcasts.router,
        deliverability.router,
        unsubscribe.router,
        keep_subscribed.router,
        webhooks.router,
        sms_webhook.router,
        twilio_hooks.router,
        resend.router,
        mailgun.router,
        postmark.router,
        sendgrid.router,
        ses_hooks.router,
        vonage_hooks.router,
        codec.router,
        sla.router,
    ):
        app.include_router(router)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        tags=["health"],
        responses={503: {"description": "Temporal or the database is unreachable."}},
    )
    _add_error_handlers(app, retry_after=settings.temporal_retry_after_seconds)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if settings.codec_cors_origins:
        app.add_middleware(CodecCors, origins=settings.codec_cors_origins)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.api_max_body_bytes,
        larger={imports.PATH: settings.api_import_max_bytes},
    )
    app.add_middleware(AccessLog)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class CodecCors:
    """CORS for the Temporal UI's origins on the codec endpoint (`/codec/…`) only."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(f"{codec.PREFIX}/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)


async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


async def readyz(held: ServicesDep) -> JSONResponse:
    """Readiness: Temporal and the database answer within a couple of seconds."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            async with held.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except (OperationalError, OSError, TimeoutError) as error:
        checks["database"] = f"unavailable: {type(error).__name__}"
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            with unavailable_as_error():
                await held.temporal.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=None
                )
        checks["temporal"] = "ok"
    except (TemporalUnavailable, TimeoutError) as error:
        checks["temporal"] = f"unavailable: {type(error).__name__}"
    ready = all(check == "ok" for check in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def _add_error_handlers(app: FastAPI, *, retry_after: int) -> None:
    def problem(code: int, detail: Any, **headers: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=code, headers=headers or None)

    async def temporal_down(request: Request, error: Exception) -> JSONResponse:
        log.warning("temporal unavailable", error=str(error))
        return problem(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Temporal is unreachable; nothing in this request was acknowledged: retry later",
            **{"Retry-After": str(retry_after)},
        )

    async def database_down(request: Request, error: Exception) -> JSONResponse:
        log.warning("database unavailable", error=type(error).__name__)
        return problem(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the database is unreachable: retry later",
            **{"Retry-After": str(retry_after)},
        )

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        issues = error.errors()
        json_errors = [issue for issue in issues if issue.get("type") == "json_invalid"]
        if json_errors:
            reason = json_errors[0].get("ctx", {}).get("error", "malformed")
            return problem(status.HTTP_400_BAD_REQUEST, f"request body is not valid JSON: {reason}")
        return problem(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {"loc": list(issue["loc"]), "msg": issue["msg"], "type": issue["type"]}
                for issue in issues
            ],
        )

    def operation_error(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(request: Request, error: Exception) -> JSONResponse:
            return problem(code, str(error))

        return handle

    app.add_exception_handler(TemporalUnavailable, temporal_down)
    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(operations.NotFound, operation_error(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(operations.Conflict, operation_error(status.HTTP_409_CONFLICT))
    app.add_exception_handler(operations.Gone, operation_error(status.HTTP_410_GONE))
    app.add_exception_handler(
        operations.InvalidRequest, operation_error(status.HTTP_422_UNPROCESSABLE_CONTENT)
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the models only `openapi_extra` bodies refer to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        _, extra = models_json_schema(
            [
                (model, "validation")
                for model in (
                    *events.SCHEMA_MODELS,
                    webhooks.DeliveryEvents,
                    sms_webhook.InboundMessages,
                )
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(extra.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413 (declared or streamed); the paths in
    `larger` have a limit of their own."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, larger: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.default_max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            response = JSONResponse(
                {"detail": f"request body is larger than {max_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise HTTPException(
                    status.HTTP_413_CONTENT_TOO_LARGE,
                    f"request body is larger than {max_bytes} bytes",
                )
            return message

        await self.app(scope, limited, send)


class AccessLog:
    """One log line per request: method, route template, status, duration, key name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500
        state = scope.setdefault("state", {})  # shared with the routed copy of the scope

        async def recording(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            log.info(
                "request",
                method=scope["method"],
                route=_route_template(scope),
                status=status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                api_key=state.get("api_key_name"),
            )


def _route_template(scope: Scope) -> str:
    """`/u/{token}` rather than the path itself, which may hold a token or an id."""
    return str(getattr(scope.get("route"), "path", "unmatched"))
