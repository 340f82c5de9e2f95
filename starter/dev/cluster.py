"""Preparing a Temporal cluster for contact-journeys."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.search_attributes import ALL_SEARCH_ATTRIBUTES

NAMESPACE_READY_POLLS = 120
"""Half-seconds to wait for a new namespace to be usable."""


async def register_namespace(client: Client, *, retention: timedelta) -> bool:
    """Create the client's namespace if it does not exist (idempotent).

    Returns:
        True if it was created now.
    """
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
        return False
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=client.namespace,
                workflow_execution_retention_period=Duration(
                    seconds=int(retention.total_seconds())
                ),
            )
        )
    except RPCError as raced:
        if raced.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return False
    for _ in range(NAMESPACE_READY_POLLS):  # servers cache namespaces (about 10 s)
        try:
            await _registered_search_attributes(client)
            return True
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.5)
    raise RuntimeError(f"namespace {client.namespace} was created but is not usable yet")


async def register_search_attributes(client: Client) -> list[str]:
    """Register the custom search attributes of DESIGN.md that are missing (idempotent).

    Works on a real cluster, the dev server and the Java test server (which
    cannot list attributes: there every attribute is added and "already
    exists" is accepted).

    Args:
        client: Client connected to the namespace to prepare.

    Returns:
        Names of the attributes that were added (empty when all existed).
    """
    known = await _registered_search_attributes(client)
    added = []
    for key in ALL_SEARCH_ATTRIBUTES:
        if key.name in known:
            continue
        request = AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type)},
        )
        try:
            await client.operator_service.add_search_attributes(request)
        except RPCError as error:
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        else:
            added.append(key.name)
    return added


async def _registered_search_attributes(client: Client) -> set[str]:
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as error:
        if error.status == RPCStatusCode.UNIMPLEMENTED:
            return set()
        raise
    return set(response.custom_attributes) | set(response.system_attributes)
