"""Nexus across a 3-node cluster: the endpoint registered through one node is seen by every node, the caller
workflow's worker is connected to one node and the handler's worker to another, and both a synchronous and
an asynchronous (workflow-backed) operation complete. The Nexus request goes from the caller's history shard
owner through the handler queue's matching owner to the handler's poll (each possibly another member), the
handler's answer back to the member that dispatched it, and the handler workflow's completion callback to
the caller's shard owner."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from compat.nexus_endpoint import worker_endpoint
from compat.nexus_workflows import GreetingHandler, GreetingService, GreetingWorkflow, NexusCaller
from temporalio.api.operatorservice.v1 import (
    ListNexusEndpointsRequest,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

pytestmark = pytest.mark.timeout(300)


async def test_caller_and_handler_on_different_nodes(cluster) -> None:
    n1, n2, n3 = cluster.nodes
    admin = await cluster.connect(n3, "temporal-system:admin")
    suffix = uuid.uuid4().hex[:8]
    caller_queue, handler_queue, endpoint = f"caller-{suffix}", f"handler-{suffix}", f"cluster-ep-{suffix}"
    async with worker_endpoint(admin.operator_service, endpoint, handler_queue) as created:
        # The registry is in the store: every node lists the endpoint at once.
        for node in cluster.nodes:
            listed = await (
                await cluster.connect(node, "temporal-system:admin")
            ).operator_service.list_nexus_endpoints(ListNexusEndpointsRequest(name=endpoint))
            assert [e.id for e in listed.endpoints] == [created.endpoint.id]

        caller_client, handler_client = await cluster.connect(n1), await cluster.connect(n2)
        async with (
            Worker(
                caller_client,
                task_queue=caller_queue,
                workflows=[NexusCaller],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ),
            Worker(
                handler_client,
                task_queue=handler_queue,
                workflows=[GreetingWorkflow],
                nexus_service_handlers=[GreetingHandler()],
                workflow_runner=UnsandboxedWorkflowRunner(),
            ),
        ):
            starter = await cluster.connect(n3)
            handles = [
                await starter.start_workflow(
                    NexusCaller.run,
                    args=[endpoint, operation, 0],
                    id=f"cluster-nexus-{operation}-{i}-{suffix}",
                    task_queue=caller_queue,
                )
                for i in range(4)
                for operation in ("greet", "greet_in_workflow")
            ]
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120)
        assert results == ["Hello, Nexus!", "Hello from a workflow, Nexus!"] * 4


async def test_standalone_operations_across_nodes(cluster) -> None:
    """Standalone operations (no caller workflow) started through one node: each hidden run lives on its
    id's shard owner (any member), the handler's worker polls another node, and a third node answers the
    results, describe and list."""
    n1, n2, n3 = cluster.nodes
    admin = await cluster.connect(n3, "temporal-system:admin")
    suffix = uuid.uuid4().hex[:8]
    handler_queue, endpoint = f"sa-handler-{suffix}", f"sa-cluster-ep-{suffix}"
    async with worker_endpoint(admin.operator_service, endpoint, handler_queue):
        async with Worker(
            await cluster.connect(n2),
            task_queue=handler_queue,
            workflows=[GreetingWorkflow],
            nexus_service_handlers=[GreetingHandler()],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            ops = (await cluster.connect(n3)).create_nexus_client(service=GreetingService, endpoint=endpoint)
            started = [
                await ops.start_operation(
                    operation,
                    f"op {i}",
                    id=f"sa-{operation.name}-{i}-{suffix}",
                    schedule_to_close_timeout=timedelta(seconds=60),
                )
                for i in range(4)
                for operation in (GreetingService.greet, GreetingService.greet_in_workflow)
            ]
            reader = await cluster.connect(n1)
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        reader.get_nexus_operation_handle(
                            h.operation_id, run_id=h.run_id, result_type=str
                        ).result()
                        for h in started
                    )
                ),
                120,
            )
    assert results == [
        greeting for i in range(4) for greeting in (f"Hello, op {i}!", f"Hello from a workflow, op {i}!")
    ]
    for h in started:
        described = await reader.get_nexus_operation_handle(h.operation_id, run_id=h.run_id).describe()
        assert described.status.name == "COMPLETED" and described.endpoint == endpoint
    query = f'Endpoint = "{endpoint}"'
    for _ in range(100):
        listed = sorted([o.operation_id async for o in reader.list_nexus_operations(query)])
        if len(listed) == len(started):
            break
        await asyncio.sleep(0.2)
    assert listed == sorted(h.operation_id for h in started)
