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
from aiohttp import web
from compat.nexus_endpoint import worker_endpoint
from compat.nexus_workflows import GreetingHandler, GreetingService, GreetingWorkflow, NexusCaller
from compat.servers import free_port
from temporalio.api.common.v1 import Callback, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CallbackState
from temporalio.api.operatorservice.v1 import (
    ListNexusEndpointsRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.converter import default as default_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from .conftest import new_queue

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


async def test_a_completion_callback_is_delivered_though_its_node_dies(cluster) -> None:
    """A run with a completion callback to an http URL closes while the URL refuses (503, retryable): the
    delivery backs off. The node doing it (the run's shard owner) is killed with kill -9 and the URL starts
    accepting: the new owner of the shard takes the delivery over from its durable retry timer, the caller
    gets the run's result once, with the callback's headers, and describe shows the callback SUCCEEDED."""
    received: list[tuple[bool, dict[str, str], bytes]] = []
    accepting = asyncio.Event()

    async def complete(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        received.append((accepting.is_set(), headers, await request.read()))
        if not accepting.is_set():
            return web.json_response({"message": "not yet"}, status=503)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/namespaces/caller/nexus/callback", complete)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}/namespaces/caller/nexus/callback"
    queue, workflow_id = new_queue(), f"callback-{uuid.uuid4().hex[:8]}"
    n1, n2, n3 = cluster.nodes
    owner = None
    try:
        client = await cluster.connect(n1)
        async with Worker(
            client,
            task_queue=queue,
            workflows=[GreetingWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            started = await client.workflow_service.start_workflow_execution(
                StartWorkflowExecutionRequest(
                    namespace="default",
                    workflow_id=workflow_id,
                    workflow_type=WorkflowType(name="GreetingWorkflow"),
                    task_queue=TaskQueue(name=queue),
                    input=default_converter().payload_converter.to_payloads_wrapper(["cluster"]),
                    request_id=str(uuid.uuid4()),
                    completion_callbacks=[
                        Callback(nexus=Callback.Nexus(url=url, header={"temporal-callback-token": "token-1"}))
                    ],
                )
            )
            result = await client.get_workflow_handle(workflow_id, run_id=started.run_id).result()
        assert result == "Hello from a workflow, cluster!"
        for _ in range(300):  # the first attempt is refused, the delivery backs off
            owner = next(
                (n for n in cluster.nodes if f"completion callback to {url}: attempt" in _log(n)), None
            )
            if received and owner is not None:
                break
            await asyncio.sleep(0.1)
        assert received and owner is not None, "no delivery attempt was made"
        owner.kill9()
        accepting.set()
        survivors = [n for n in cluster.nodes if n is not owner]
        await cluster.wait_converged(survivors, timeout=30)
        survivor = await cluster.connect(survivors[0])
        execution = WorkflowExecution(workflow_id=workflow_id, run_id=started.run_id)
        state = None
        for _ in range(240):
            try:
                described = await survivor.workflow_service.describe_workflow_execution(
                    DescribeWorkflowExecutionRequest(namespace="default", execution=execution)
                )
                state = described.callbacks[0].state
                if state == CallbackState.CALLBACK_STATE_SUCCEEDED:
                    break
            except Exception:  # the run's shard may be between owners for a moment
                pass
            await asyncio.sleep(0.5)
        assert state == CallbackState.CALLBACK_STATE_SUCCEEDED, CallbackState.Name(state or 0)
        assert described.callbacks[0].attempt >= 2  # refused before the kill, accepted after
        accepted = [(headers, body) for ok, headers, body in received if ok]
        assert accepted, "the completion never reached the caller"
        headers, body = accepted[-1]
        assert headers["nexus-operation-state"] == "succeeded"
        assert headers["temporal-callback-token"] == "token-1"
        assert headers["content-type"] == "application/json"
        assert body == b'"Hello from a workflow, cluster!"'
    finally:
        await runner.cleanup()
        if owner is not None:
            owner.start()
            await cluster.wait_converged(cluster.nodes, timeout=60)


def _log(node) -> str:
    try:
        return node.log.read_text(errors="replace")
    except OSError:
        return ""


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
