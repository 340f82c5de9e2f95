"""Connecting to Temporal through the SDK's environment configuration.

`temporalio.envconfig` reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH /
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
TEMPORAL_TLS_SERVER_NAME, TEMPORAL_PROFILE and the TOML config file
(TEMPORAL_CONFIG_FILE), as the Temporal CLI does; an API key turns TLS on
(Temporal Cloud). Without any of them the client connects to localhost:7233,
namespace `default`. `runtime/temporal_settings.py` checks them first: a wrong
file, or a TLS handshake the server refuses, is a `TemporalSettingsError`
naming the setting, not an unreachable server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from models.settings import get_settings
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore, key_store
from runtime.temporal_settings import (
    CLOSED_AFTER_HANDSHAKE,
    ConnectionSettings,
    TemporalSettingsError,
    connection_settings,
    tls_refusal,
)

UNAVAILABLE_STATUSES = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)
"""RPC failures that mean "the server cannot be reached now", not "the request is wrong"."""

SERVICE_RETRY = RetryConfig(max_elapsed_time_millis=3_000, max_interval_millis=1_000)
"""How long a long-running service (the gateway) retries one call before it answers 503."""

CHECK_TIMEOUT_SECONDS = 10.0
"""How long `check_connection` waits for an answer (a firewall may drop the packets)."""


class TemporalUnavailable(Exception):
    """The Temporal server could not be reached; the message says where and why."""


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn "cannot reach the server" failures of the calls inside into `TemporalUnavailable`."""
    try:
        yield
    except RPCError as error:
        if error.status not in UNAVAILABLE_STATUSES:
            raise
        raise TemporalUnavailable(f"Temporal is unavailable: {error.message}") from error
    except RuntimeError as error:  # a lazy client that could not connect
        if "connect" not in str(error):
            raise
        raise TemporalUnavailable(f"Temporal is unavailable: {error}") from error


async def connect(
    *,
    target_host: str | None = None,
    lazy: bool = False,
    retry: RetryConfig | None = None,
    runtime: Runtime | None = None,
    keys: KeyStore | None = None,
) -> Client:
    """Connect a client with the project's data converter (pydantic, encrypted).

    Args:
        target_host: Server address, instead of the environment's.
        lazy: Connect on first use (a service starts while Temporal is down,
            and reconnects when it is back). The settings are checked all the same.
        retry: How the client retries failed calls (the SDK's default if None).
        runtime: SDK runtime of the client and its workers, e.g. one exporting
            metrics (the SDK's default runtime if None).
        keys: Data keys of the payload codec (default: the settings' database
            and master keys, see `runtime/keys.py`).

    Raises:
        TemporalSettingsError: a connection setting is wrong (a TLS file, the
            profile, a certificate the server or the client refuses).
        TemporalUnavailable: the server is not reachable (not raised when `lazy`).
    """
    settings = connection_settings()
    if target_host is not None:
        settings = dataclasses.replace(
            settings, connect_args={**settings.connect_args, "target_host": target_host}
        )
    converter = encrypting_data_converter(
        keys or key_store(get_settings()), namespace=settings.namespace
    )
    return await _connect(settings, lazy=lazy, retry=retry, runtime=runtime, converter=converter)


async def check_connection(
    *, retry: RetryConfig = SERVICE_RETRY, timeout: float = CHECK_TIMEOUT_SECONDS
) -> str | None:
    """Connect once, to find wrong settings at the start of a service that connects lazily.

    Returns:
        None if the server answered; otherwise why it could not be reached (the
        service may start anyway and wait for it).

    Raises:
        TemporalSettingsError: a connection setting is wrong, as for `connect`.
    """
    settings = connection_settings()
    try:
        async with asyncio.timeout(timeout):
            await _connect(settings, lazy=False, retry=retry)
    except TemporalUnavailable as error:
        return str(error)
    except TimeoutError:
        return f"no answer from Temporal at {settings.address} within {timeout:.0f} s"
    return None


async def _connect(
    settings: ConnectionSettings,
    *,
    lazy: bool,
    retry: RetryConfig | None,
    runtime: Runtime | None = None,
    converter: DataConverter | None = None,
) -> Client:
    options: dict[str, Any] = {"lazy": lazy, "runtime": runtime}
    if retry is not None:
        options["retry_config"] = retry
    if converter is not None:
        options["data_converter"] = converter
    try:
        return await Client.connect(**settings.connect_args, **options)
    except RuntimeError as error:
        refusal = tls_refusal(error, settings)
        if refusal is not None:
            raise TemporalSettingsError(refusal) from None
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.address} (namespace {settings.namespace}): "
            f"{_unreachable_reason(error, settings)}"
        ) from error


def _unreachable_reason(error: RuntimeError, settings: ConnectionSettings) -> str:
    """The SDK's connection error in a few words where it is a common one, else as it is."""
    text = str(error)
    if "ConnectionRefused" in text:
        return "connection refused"
    if "dns error" in text:
        return "the host name does not resolve"
    if not settings.uses_tls and CLOSED_AFTER_HANDSHAKE.search(text):
        return (
            "the server closed the connection; if it serves TLS, set TEMPORAL_TLS=true "
            "(and TEMPORAL_TLS_SERVER_CA_CERT_PATH for a private CA)"
        )
    return text
