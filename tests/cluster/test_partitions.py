"""Task-queue partitions over a 3-node cluster: a queue whose 4 partitions are owned by all three members
delivers every task, matched at once or from any partition's backlog, to a worker connected to one node;
and after that node is killed -9, to a worker connected to another. Leaves the three members converged."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListTaskQueuePartitionsRequest
from temporalio.client import Client

from .checks import assert_all_complete, start_many
from .conftest import worker_on

pytestmark = pytest.mark.timeout(300)

WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW


async def _owners(client: Client, queue: str) -> tuple[list[str], list[str]]:
    """(workflow partitions' owners, activity partitions' owners) as ListTaskQueuePartitions names them."""
    resp = await client.workflow_service.list_task_queue_partitions(
        ListTaskQueuePartitionsRequest(namespace="default", task_queue=TaskQueue(name=queue))
    )
    keys = [p.key for p in resp.workflow_task_queue_partitions]
    assert keys == [queue, *(f"/_sys/{queue}/{n}" for n in (1, 2, 3))], keys
    return (
        [p.owner_host_name for p in resp.workflow_task_queue_partitions],
        [p.owner_host_name for p in resp.activity_task_queue_partitions],
    )


async def _spread_queue(client: Client, members: set[str]) -> str:
    """A queue name whose workflow and activity partitions are each owned by every member."""
    for _ in range(200):
        queue = f"parts-{uuid.uuid4().hex[:8]}"
        workflow, activity = await _owners(client, queue)
        if set(workflow) == members and set(activity) == members:
            return queue
    raise AssertionError("no queue name spreads its 4 partitions over the 3 members")


async def _backlog(client: Client, queue: str, want: int, timeout: float = 30) -> None:
    """Until DescribeTaskQueue, summed over the partitions on every node, counts `want` workflow tasks."""
    request = DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=WORKFLOW, report_stats=True
    )
    deadline = time.monotonic() + timeout
    while True:
        count = (await client.workflow_service.describe_task_queue(request)).stats.approximate_backlog_count
        if count == want:
            return
        assert time.monotonic() < deadline, f"backlog {count}, not {want}"
        await asyncio.sleep(0.3)


async def test_a_queue_spread_over_three_nodes_delivers_every_task_to_pollers_on_one_node(cluster):
    n1, n2, n3 = cluster.nodes
    c2, c3 = await cluster.connect(n2), await cluster.connect(n3)
    members = {f"{n.ip}:{n.rpc_port}" for n in cluster.nodes}
    queue = await _spread_queue(c2, members)

    # Backlog: nobody polls, so every workflow task is stored on the partition it was added to.
    backlog = await start_many([c2, c3], queue, 12, f"backlog-{queue}")
    await _backlog(c3, queue, 12)
    async with worker_on(cluster, n1, queue):
        # The worker's polls all enter through n1; they drain the backlog of all four partitions...
        await assert_all_complete(c2, backlog, timeout=90)
        # ...and meet new tasks (and their activities) as they come, whichever partition they land on.
        synced = await start_many([c2, c3], queue, 24, f"sync-{queue}")
        await assert_all_complete(c3, synced, timeout=90)
    await _backlog(c2, queue, 0)

    # Failover: tasks stored while no worker runs, then the node the worker used is killed -9.
    stranded = await start_many([c2, c3], queue, 24, f"failover-{queue}")
    await _backlog(c3, queue, 24)
    n1.kill9()
    try:
        await cluster.wait_converged([n2, n3], timeout=30)
        workflow, activity = await _owners(c2, queue)
        assert set(workflow) | set(activity) <= members - {f"{n1.ip}:{n1.rpc_port}"}
        async with worker_on(cluster, n2, queue):  # the pollers move to n2
            await assert_all_complete(c3, stranded, timeout=120)
        await _backlog(c3, queue, 0)
    finally:
        n1.start()
        await cluster.wait_converged(cluster.nodes, timeout=60)
