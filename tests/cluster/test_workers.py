"""Worker heartbeats on a 3-node cluster: a worker polling through each node, and ListWorkers (and
CountWorkers, DescribeWorker, `temporal worker list`) through any node lists all three, as one reference
cluster does (each namespace's registry lives on one member; every node routes to it). Also pausing and
unpausing a workflow through different nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import uuid
from datetime import timedelta

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.common.v1 import Priority, WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from .harness import LocalCluster
from .workflows import WaitForSignal

pytestmark = pytest.mark.timeout(180)


async def _listed(client, query: str) -> list[str]:
    resp = await client.workflow_service.list_workers(rr.ListWorkersRequest(namespace="default", query=query))
    return sorted(w.task_queue for w in resp.workers)


async def test_list_workers_through_any_node_lists_the_workers_of_every_node(cluster: LocalCluster):
    prefix = f"hb-{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}-{i}" for i in range(len(cluster.nodes))]
    runtime = Runtime(telemetry=TelemetryConfig(), worker_heartbeat_interval=timedelta(seconds=1))
    query = f"TaskQueue STARTS_WITH '{prefix}'"
    async with contextlib.AsyncExitStack() as stack:
        for node, queue in zip(cluster.nodes, queues, strict=True):
            client = await cluster.connect(node, runtime=runtime)
            worker = Worker(
                client,
                task_queue=queue,
                workflows=[WaitForSignal],
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
            await stack.enter_async_context(worker)
        readers = [await cluster.connect(node, "default:read") for node in cluster.nodes]
        deadline = time.monotonic() + 30
        while True:
            seen = [await _listed(reader, query) for reader in readers]
            if all(s == queues for s in seen):
                break
            assert time.monotonic() < deadline, f"ListWorkers per node: {seen}\n{cluster.logs()}"
            await asyncio.sleep(0.5)

        for reader in readers:
            count = await reader.workflow_service.count_workers(
                rr.CountWorkersRequest(namespace="default", query=query)
            )
            assert count.count == len(queues)
            resp = await reader.workflow_service.list_workers(
                rr.ListWorkersRequest(namespace="default", query=query)
            )
            keys = {w.task_queue: w.worker_instance_key for w in resp.workers}
            for queue, key in keys.items():
                described = await reader.workflow_service.describe_worker(
                    rr.DescribeWorkerRequest(namespace="default", worker_instance_key=key)
                )
                assert described.worker_info.worker_heartbeat.task_queue == queue

        temporal = shutil.which("temporal")
        if temporal is not None:
            for node in cluster.nodes:
                proc = await asyncio.create_subprocess_exec(
                    temporal,
                    "worker",
                    "list",
                    "--query",
                    query,
                    "-o",
                    "json",
                    *cluster.cli_flags(node, "default:read"),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(proc.communicate(), 60)
                assert proc.returncode == 0, err.decode()
                assert sorted(w["workerHeartbeat"]["taskQueue"] for w in json.loads(out)) == queues


async def test_pause_and_unpause_through_different_nodes(cluster: LocalCluster):
    """Pause through one node, read and signal through the others, unpause through another: each call
    runs on the member owning the run's shard (routing.HISTORY_ROUTES)."""
    queue = f"pause-{uuid.uuid4().hex[:8]}"
    clients = [await cluster.connect(node) for node in cluster.nodes]
    first, second, third = clients
    async with Worker(
        first, task_queue=queue, workflows=[WaitForSignal], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await first.start_workflow(WaitForSignal.run, id=f"{queue}-wf", task_queue=queue)
        deadline = time.monotonic() + 30
        while (await handle.describe()).raw_description.workflow_execution_info.history_length < 4:
            assert time.monotonic() < deadline, "the first workflow task never completed"
            await asyncio.sleep(0.2)
        await second.workflow_service.pause_workflow_execution(
            rr.PauseWorkflowExecutionRequest(namespace="default", workflow_id=handle.id, reason="maintenance")
        )
        described = await third.workflow_service.describe_workflow_execution(
            rr.DescribeWorkflowExecutionRequest(namespace="default", execution={"workflow_id": handle.id})
        )
        assert (
            described.workflow_execution_info.status
            == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_PAUSED
        )
        assert described.workflow_extended_info.pause_info.reason == "maintenance"
        await third.get_workflow_handle(handle.id).signal("finish", "after the pause")
        await asyncio.sleep(1.0)
        assert not (
            await first.workflow_service.describe_workflow_execution(
                rr.DescribeWorkflowExecutionRequest(namespace="default", execution={"workflow_id": handle.id})
            )
        ).HasField("pending_workflow_task")
        await first.workflow_service.unpause_workflow_execution(
            rr.UnpauseWorkflowExecutionRequest(namespace="default", workflow_id=handle.id)
        )
        assert await asyncio.wait_for(handle.result(), 30) == "after the pause"


async def test_update_workflow_options_through_any_node(cluster: LocalCluster):
    """UpdateWorkflowExecutionOptions asked of each node runs on the run's shard owner: every node then
    describes the same options and the history holds one WorkflowExecutionOptionsUpdated per change."""
    queue = f"options-{uuid.uuid4().hex[:8]}"
    clients = [await cluster.connect(node) for node in cluster.nodes]
    handle = await clients[0].start_workflow("NoWorker", id=f"{queue}-wf", task_queue=queue)
    execution = WorkflowExecution(workflow_id=handle.id)
    for key, c in enumerate(clients, start=1):
        answer = await c.workflow_service.update_workflow_execution_options(
            rr.UpdateWorkflowExecutionOptionsRequest(
                namespace="default",
                workflow_execution=execution,
                workflow_execution_options=WorkflowExecutionOptions(priority=Priority(priority_key=key)),
                update_mask=FieldMask(paths=["priority"]),
            )
        )
        assert answer.workflow_execution_options.priority.priority_key == key
    for c in clients:
        described = await c.workflow_service.describe_workflow_execution(
            rr.DescribeWorkflowExecutionRequest(namespace="default", execution=execution)
        )
        assert described.workflow_execution_info.priority.priority_key == len(clients)
    history = await handle.fetch_history()
    updates = [
        e.workflow_execution_options_updated_event_attributes.priority.priority_key
        for e in history.events
        if e.HasField("workflow_execution_options_updated_event_attributes")
    ]
    assert updates == list(range(1, len(clients) + 1))
    await handle.terminate()
