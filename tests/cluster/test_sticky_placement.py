"""Sticky queues live where their worker polls (cluster/matching/sticky_placement.py), on a 3-node cluster
of its own (each node serves /metrics, so the test reads the members' internal calls).

An SDK worker polls through one node while the runs live on every member's shards: each run's workflow
tasks after the first go to the worker's sticky queue, which that node serves (the cluster status lists it
there and nowhere else) and its sticky polls take no internal hop; any node describes the sticky queue and
answers a query from the worker's cache. Killed -9, that node's runs fall back to the normal queue and
complete on a worker polling another node, nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import httpx
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    ListTaskQueuePartitionsRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from hourglass.cluster.history.engine import shard_id_for
from hourglass.cluster.status import fetch_status
from hourglass.persistence.cassandra import testing as cassandra

from .checks import assert_all_complete, start_many
from .harness import SHARDS, LocalCluster, Node
from .workflows import ActivityTimerWorkflow, WaitForSignal, echo

pytestmark = pytest.mark.timeout(300)

STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY


@pytest_asyncio.fixture(scope="module")
async def cluster(cassandra_session, tmp_path_factory):
    config, session, _ = cassandra_session
    keyspace = cassandra.new_keyspace_name("sticky")
    cassandra.create_test_keyspace(session, keyspace)
    c = LocalCluster.create(
        tmp_path_factory.mktemp("sticky"),
        config.hosts,
        config.port,
        keyspace,
        secure_frontend=False,
        http=True,
    )
    try:
        c.start()
        await c.wait_converged(c.nodes)
        yield c
    finally:
        c.stop()
        with contextlib.suppress(Exception):
            cassandra.drop_keyspace(session, keyspace)


@contextlib.asynccontextmanager
async def worker(client: Client, queue: str, identity: str):
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ActivityTimerWorkflow, WaitForSignal],
        activities=[echo],
        workflow_runner=UnsandboxedWorkflowRunner(),
        identity=identity,
    ):
        yield


async def internal_calls(node: Node, method: str) -> float:
    """`matching.<method>` calls this member made to the others (hourglass_internal_rpc_calls_total)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{node.ip}:{node.http_port}/metrics", timeout=10)).text
    for line in text.splitlines():
        if line.startswith("hourglass_internal_rpc_calls_total{") and f'method="{method}"' in line:
            if 'service="matching"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def queue_on(client: Client, node: Node) -> str:
    """A queue name whose workflow partitions all live on `node`: its normal polls through `node` take no
    hop either, so any poll `node` forwards would be a sticky one."""
    for _ in range(1000):
        queue = f"sticky-{uuid.uuid4().hex[:8]}"
        resp = await client.workflow_service.list_task_queue_partitions(
            ListTaskQueuePartitionsRequest(namespace="default", task_queue=TaskQueue(name=queue))
        )
        if {p.owner_host_name for p in resp.workflow_task_queue_partitions} == {f"{node.ip}:{node.rpc_port}"}:
            return queue
    raise AssertionError(f"no queue name has all its workflow partitions on {node.ip}")


async def scheduled_queues(handle: WorkflowHandle) -> list[TaskQueue]:
    """The queue of each WorkflowTaskScheduled of the run, in order."""
    return [
        e.workflow_task_scheduled_event_attributes.task_queue
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    ]


async def wait_for_event(handle: WorkflowHandle, event_type: int, count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while True:
        events = [e.event_type async for e in handle.fetch_history_events()]
        if events.count(event_type) >= count:
            return
        assert time.monotonic() < deadline, (
            f"{handle.id}: {count} x {EventType.Name(event_type)} not in history"
        )
        await asyncio.sleep(0.2)


async def test_sticky_tasks_are_served_where_the_worker_polls(cluster):
    n1, n2, n3 = cluster.nodes
    c1, c2, c3 = [await cluster.connect(n) for n in (n1, n2, n3)]
    queue = await queue_on(c2, n1)
    async with worker(c1, queue, f"worker-on-n1-{queue}"):
        polls_before = await internal_calls(n1, "poll_workflow_task")
        ids = await start_many([c2, c3], queue, 24, f"sticky-{queue}")
        # The runs live on every member's shards: most sticky adds come from another member's history.
        namespace_id = (
            await c2.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        ).namespace_info.id
        owners = {s.shard_id: s.member_id for s in (await cluster.status(n2)).shards}
        assert {owners[shard_id_for(namespace_id, wid, SHARDS)] for wid in ids} == {
            n.member_id for n in cluster.nodes
        }
        await assert_all_complete(c2, ids, timeout=120)

        # Every workflow task after the first went to the worker's one sticky queue.
        sticky_names = set()
        for wid in ids:
            first, *later = await scheduled_queues(c2.get_workflow_handle(wid))
            assert (first.name, first.kind) == (queue, TaskQueueKind.TASK_QUEUE_KIND_NORMAL), wid
            assert later and all(q.kind == STICKY for q in later), (wid, later)
            sticky_names |= {q.name for q in later}
        assert len(sticky_names) == 1, sticky_names
        sticky = sticky_names.pop()

        # n1 serves it, nobody else; its polls through n1 (sticky or not) were never forwarded.
        status = await fetch_status(n3.address, False, timeout=5.0, partitions=True)
        holders = {p.member_id for p in status.partitions if p.task_queue == sticky}
        assert holders == {n1.member_id}, holders
        assert await internal_calls(n1, "poll_workflow_task") == polls_before

        # Any node describes the sticky queue: its poller is the worker on n1.
        for client in (c2, c3):
            resp = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=sticky, kind=STICKY))
            )
            assert [p.identity for p in resp.pollers] == [f"worker-on-n1-{queue}"]

        # A query through another node is answered on the sticky queue: the run stays sticky.
        handle = await c3.start_workflow(WaitForSignal.run, id=f"query-{queue}", task_queue=queue)
        await wait_for_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        assert await c2.get_workflow_handle(handle.id).query(WaitForSignal.ping) == "pong"
        await handle.signal(WaitForSignal.finish, "done")
        assert await handle.result() == "done"
        first, *later = await scheduled_queues(handle)
        assert [(q.name, q.kind) for q in later] == [(sticky, STICKY)]


async def test_after_kill9_of_the_worker_node_its_runs_complete_on_the_others(cluster):
    n1, n2, n3 = cluster.nodes
    c1, c2, c3 = [await cluster.connect(n) for n in (n1, n2, n3)]
    queue = f"sticky-kill-{uuid.uuid4().hex[:8]}"
    handles = []
    async with worker(c1, queue, "worker-on-n1"):
        for i in range(12):
            handles.append(
                await (c2 if i % 2 else c3).start_workflow(
                    WaitForSignal.run, id=f"kill-{queue}-{i}", task_queue=queue
                )
            )
        for h in handles:  # each run is now sticky to the worker's queue on n1
            await wait_for_event(h, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        n1.kill9()
        try:
            async with worker(c2, queue, "worker-on-n2"):
                # Half signalled at once (n1 still in the others' rings: its sticky queue unreachable), half
                # once the others have seen it die.
                for h in handles[:6]:
                    await h.signal(WaitForSignal.finish, h.id)
                await cluster.wait_converged([n2, n3], timeout=30)
                for h in handles[6:]:
                    await h.signal(WaitForSignal.finish, h.id)
                for h in handles:
                    assert await asyncio.wait_for(h.result(), 60) == h.id
                    identities = [
                        e.workflow_task_started_event_attributes.identity
                        async for e in h.fetch_history_events()
                        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
                    ]
                    assert identities[0] == "worker-on-n1" and identities[-1] == "worker-on-n2", identities
        finally:
            n1.start()
            await cluster.wait_converged(cluster.nodes, timeout=60)
