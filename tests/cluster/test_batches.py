"""Batch operations in a 3-node cluster: a batch runs on the member owning its job's shard, any node
describes and lists it, and when that member is killed -9 mid-batch the shard's next owner finishes it
from its last committed progress: every workflow handled, none twice."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.api.batch.v1 import BatchOperationSignal
from temporalio.api.enums.v1 import BatchOperationState, EventType
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    DescribeNamespaceRequest,
    ListBatchOperationsRequest,
    StartBatchOperationRequest,
)
from temporalio.client import Client

from hourglass.cluster.history.engine import shard_id_for

from .conftest import new_queue
from .harness import SHARDS, LocalCluster, Node

pytestmark = pytest.mark.timeout(300)
WORKFLOWS = 60
RATE = 8  # operations a second: the batch takes ~7.5 s, long enough to kill its owner in the middle


async def job_id_owned_by(cluster: LocalCluster, client: Client, owner: Node, prefix: str) -> str:
    view = await cluster.status(cluster.nodes[0])
    owners = {s.shard_id: s.member_id for s in view.shards}
    ns = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    for i in range(1000):
        job_id = f"{prefix}-{i}"
        if owners.get(shard_id_for(ns.namespace_info.id, job_id, SHARDS)) == owner.member_id:
            return job_id
    raise AssertionError(f"no job id of {owner.member_id}'s shards found")


async def describe(client: Client, job_id: str):
    return await client.workflow_service.describe_batch_operation(
        DescribeBatchOperationRequest(namespace="default", job_id=job_id)
    )


async def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await check()
        except Exception as e:  # a node between owners answers UNAVAILABLE for a moment
            value = e
        if value and not isinstance(value, Exception):
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s (last: {value!r})"
        await asyncio.sleep(0.3)


async def test_a_batch_survives_its_owner_killed_and_signals_each_workflow_once(cluster: LocalCluster):
    n1, n2, n3 = cluster.nodes
    c1, c2 = await cluster.connect(n1), await cluster.connect(n2)
    queue = new_queue()
    wf_type = f"BatchKill-{queue}"
    handles = [
        await c1.start_workflow(wf_type, id=f"{wf_type}-{i}", task_queue=queue) for i in range(WORKFLOWS)
    ]
    query = f"WorkflowType='{wf_type}'"

    async def all_visible():
        return (await c2.count_workflows(query)).count == WORKFLOWS

    await until(all_visible, 30, "every workflow visible")
    job_id = await job_id_owned_by(cluster, c1, n3, f"job-{queue}")
    await c1.workflow_service.start_batch_operation(  # through n1: the batch runs on n3
        StartBatchOperationRequest(
            namespace="default",
            job_id=job_id,
            reason="cluster",
            visibility_query=query,
            max_operations_per_second=RATE,
            signal_operation=BatchOperationSignal(signal="once", identity="cluster-test"),
        )
    )

    async def some_done():
        d = await describe(c2, job_id)
        return d if 10 <= d.complete_operation_count < WORKFLOWS - 10 else None

    before = await until(some_done, 30, "a third of the batch done")
    assert before.state == BatchOperationState.BATCH_OPERATION_STATE_RUNNING
    assert before.total_operation_count == WORKFLOWS
    try:
        n3.kill9()
        await cluster.wait_converged([n1, n2], timeout=60)

        async def finished():
            d = await describe(c1, job_id)
            return d if d.state != BatchOperationState.BATCH_OPERATION_STATE_RUNNING else None

        done = await until(finished, 120, "the batch finished by the shard's next owner")
        assert done.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
        assert (done.total_operation_count, done.complete_operation_count, done.failure_operation_count) == (
            WORKFLOWS,
            WORKFLOWS,
            0,
        )
        signalled = []
        for h in handles:
            history = await h.fetch_history()
            signalled.append(
                sum(
                    1
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                )
            )
        assert signalled == [1] * WORKFLOWS, "every workflow signalled exactly once"
        listed = await c2.workflow_service.list_batch_operations(
            ListBatchOperationsRequest(namespace="default")
        )
        assert [b.state for b in listed.operation_info if b.job_id == job_id] == [
            BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
        ]
    finally:
        # The cluster is shared by the session's other tests: bring the member back.
        n3.start()
        await cluster.wait_converged(cluster.nodes, timeout=60)
