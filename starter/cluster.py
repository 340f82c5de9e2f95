"""Preparing a Temporal cluster for contact-journeys."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.search_attributes import ALL_SEARCH_ATTRIBUTES


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
