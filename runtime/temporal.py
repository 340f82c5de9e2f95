"""Connecting to Temporal through the SDK's environment configuration.

`temporalio.envconfig` reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH /
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_PROFILE and the TOML config file, as
the Temporal CLI does; an API key turns TLS on (Temporal Cloud). Without any
of them the client connects to localhost:7233, namespace `default`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig, RPCError, RPCStatusCode

from models.settings import get_settings
from runtime.codec import encrypting_data_converter
from runtime.keys import KeyStore, key_store

DEFAULT_ADDRESS = "localhost:7233"

UNAVAILABLE_STATUSES = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
)
"""RPC failures that mean "the server cannot be reached now", not "the request is wrong"."""

SERVICE_RETRY = RetryConfig(max_elapsed_time_millis=3_000, max_interval_millis=1_000)
"""How long a long-running service (the gateway) retries one call before it answers 503."""


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
            and reconnects when it is back).
        retry: How the client retries failed calls (the SDK's default if None).
        runtime: SDK runtime of the client and its workers, e.g. one exporting
            metrics (the SDK's default runtime if None).
        keys: Data keys of the payload codec (default: the settings' database
            and master keys, see `runtime/keys.py`).

    Raises:
        TemporalUnavailable: the server is not reachable (not raised when `lazy`).
    """
    config: dict[str, Any] = dict(ClientConfigProfile.load().to_client_connect_config())
    if target_host is not None:
        config["target_host"] = target_host
    config.setdefault("target_host", DEFAULT_ADDRESS)
    if retry is not None:
        config["retry_config"] = retry
    converter = encrypting_data_converter(
        keys or key_store(get_settings()), namespace=config.get("namespace", "default")
    )
    try:
        return await Client.connect(**config, lazy=lazy, data_converter=converter, runtime=runtime)
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {config['target_host']} "
            f"(namespace {config.get('namespace', 'default')}): {error}"
        ) from error
