"""Connecting to Temporal through the SDK's environment configuration.

`temporalio.envconfig` reads TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH /
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_PROFILE and the TOML config file, as
the Temporal CLI does; an API key turns TLS on (Temporal Cloud). Without any
of them the client connects to localhost:7233, namespace `default`.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile

DEFAULT_ADDRESS = "localhost:7233"


class TemporalUnavailable(Exception):
    """The Temporal server could not be reached; the message says where and why."""


async def connect() -> Client:
    """Connect a client with the pydantic data converter.

    Raises:
        TemporalUnavailable: the server is not reachable.
    """
    config: dict[str, Any] = dict(ClientConfigProfile.load().to_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {config['target_host']} "
            f"(namespace {config.get('namespace', 'default')}): {error}. "
            "Is `make run` running, or TEMPORAL_ADDRESS set?"
        ) from error
