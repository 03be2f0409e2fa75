"""ListNexusEndpoints on a server with no endpoint registered: an empty list (the Web UI's Nexus page), on
Hourglass as on the reference (HOURGLASS_COMPAT_TARGET=reference)."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListNexusEndpointsRequest
from temporalio.client import Client

from .conftest import ServerProcess


async def test_no_endpoint_is_an_empty_list(server: ServerProcess) -> None:
    client = await Client.connect(server.address)
    answer = await client.operator_service.list_nexus_endpoints(ListNexusEndpointsRequest(page_size=100))
    assert list(answer.endpoints) == [] and answer.next_page_token == b""
    # Asking for one name (the UI's search box) finds none either.
    answer = await client.operator_service.list_nexus_endpoints(ListNexusEndpointsRequest(name="orders"))
    assert list(answer.endpoints) == []
