"""A Nexus endpoint to a worker's task queue for the length of a test (tests/compat and tests/cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    CreateNexusEndpointResponse,
    DeleteNexusEndpointRequest,
)


@asynccontextmanager
async def worker_endpoint(
    operator_service, name: str, task_queue: str, namespace: str = "default"
) -> AsyncIterator[CreateNexusEndpointResponse]:
    """Create the endpoint `name` targeting `task_queue` of `namespace`; delete it on the way out."""
    created = await operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=name,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(namespace=namespace, task_queue=task_queue)
                ),
            )
        )
    )
    try:
        yield created
    finally:
        await operator_service.delete_nexus_endpoint(
            DeleteNexusEndpointRequest(id=created.endpoint.id, version=created.endpoint.version)
        )
