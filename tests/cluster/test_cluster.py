"""A 3-node cluster over a real Cassandra: membership, routing, and faults (kill -9, SIGSTOP, a gossip
partition, a rolling restart). Each test leaves the three members converged again."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from hourglass.cluster.rpc import internal_pb2 as pb

from .checks import assert_all_complete, shard_ranges, start_many, writes_with_ranges_since
from .conftest import new_queue, worker_on
from .harness import SHARDS
from .workflows import WaitForSignal

pytestmark = pytest.mark.timeout(240)

LOAD = 200


async def test_membership_converges_and_the_shard_map_covers_every_shard_once(cluster):
    views = [await cluster.status(n) for n in cluster.nodes]
    for view in views:
        assert sorted(m.id for m in view.members) == sorted(n.member_id for n in cluster.nodes)
        assert all(
            m.state == "alive" and list(m.roles) == ["frontend", "history", "matching"] for m in view.members
        )
        owners = [s.shard_id for s in view.shards if s.member_id]
        assert sorted(owners) == list(range(SHARDS))  # each shard exactly once
        assert sum(m.shard_count for m in view.members) == SHARDS
    assert {(s.shard_id, s.member_id) for s in views[0].shards} == {
        (s.shard_id, s.member_id) for s in views[2].shards
    }

    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("hourglass")),
        "cluster",
        "status",
        *cluster.cli_flags(cluster.nodes[1], "temporal-system:admin"),
        "--shards",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    out = stdout.decode()
    member_lines = [line for line in out.splitlines() if line.startswith("127.0.0.")]
    assert len(member_lines) == 3 and all(" alive " in line for line in member_lines)
    assert sum(1 for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()) == SHARDS


async def test_requests_through_any_node_succeed(cluster):
    queue = new_queue()
    n1, n2, n3 = cluster.nodes
    async with worker_on(cluster, n2, queue):
        c1, c3 = await cluster.connect(n1), await cluster.connect(n3)
        ids = await start_many([c1, c3], queue, 20, f"any-{queue}")
        # Reads, queries, updates and history through the other nodes, on runs that wait for a signal (a
        # 2 s workflow may be over before a loaded machine gets to its update).
        for i, starter in enumerate((c1, c3, c1)):
            wid = f"any-interactive-{i}-{queue}"
            await starter.start_workflow(WaitForSignal.run, id=wid, task_queue=queue)
            assert await c3.get_workflow_handle(wid).query(WaitForSignal.ping) == "pong"
            assert await c3.get_workflow_handle(wid).execute_update(WaitForSignal.bump, 41) == 42
            assert (await c1.get_workflow_handle(wid).describe()).id == wid
            await c1.get_workflow_handle(wid).signal(WaitForSignal.finish, "done")
            assert await c3.get_workflow_handle(wid).result() == "done"
        await assert_all_complete(c3, ids, timeout=60)
        await assert_all_complete(c1, ids[:5], timeout=10)


async def test_task_queue_statistics_read_through_any_node(cluster):
    """DescribeTaskQueue's statistics live in the partition's owner: every frontend routes there."""
    queue = new_queue()
    clients = [await cluster.connect(node) for node in cluster.nodes]
    handle = await clients[0].start_workflow(WaitForSignal.run, id=f"stats-{queue}", task_queue=queue)
    request = DescribeTaskQueueRequest(
        namespace="default", task_queue=TaskQueue(name=queue), report_stats=True
    )
    deadline = time.monotonic() + 20
    for client in clients:
        while True:
            stats = (await client.workflow_service.describe_task_queue(request)).stats
            if stats.approximate_backlog_count == 1:
                break
            assert time.monotonic() < deadline, f"backlog {stats.approximate_backlog_count}, not 1"
            await asyncio.sleep(0.2)
        assert stats.tasks_add_rate > 0
        assert stats.approximate_backlog_age.ToNanoseconds() > 0
    await handle.terminate()


async def test_a_worker_shutting_down_through_any_node_gives_up_its_sticky_queue(cluster):
    """ShutdownWorker reaches the member holding the worker's sticky queue, whichever node the worker used:
    the run's next task goes to the normal queue at once, not to the dead sticky queue until it times out.
    One worker through each node, so (the ring placing each sticky queue) most of them cross the cluster."""

    async def through(entry, other) -> None:
        queue = new_queue()
        async with worker_on(cluster, entry, queue) as client:
            handle = await client.start_workflow(WaitForSignal.run, id=f"unload-{queue}", task_queue=queue)
            for _ in range(100):
                events = [e.event_type async for e in handle.fetch_history_events()]
                if EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events:
                    break
                await asyncio.sleep(0.1)
        await handle.signal(WaitForSignal.finish, "after shutdown")
        async with worker_on(cluster, other, queue):
            assert await handle.result() == "after shutdown"
        events = [e.event_type async for e in handle.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT not in events

    nodes = cluster.nodes
    await asyncio.gather(*(through(n, nodes[(i + 1) % len(nodes)]) for i, n in enumerate(nodes)))


async def test_kill9_under_load_every_workflow_completes_and_the_node_rejoins(cluster):
    queue = new_queue()
    n1, n2, n3 = cluster.nodes
    async with worker_on(cluster, n1, queue) as c1:
        c2 = await cluster.connect(n2)
        ids = await start_many([c1, c2], queue, LOAD, f"kill-{queue}")
        await asyncio.sleep(1.0)
        n3.kill9()
        await cluster.wait_converged([n1, n2], timeout=30)
        await assert_all_complete(c2, ids, timeout=120)
    n3.start()
    view = await cluster.wait_converged(cluster.nodes, timeout=60)
    assert next(m for m in view.members if m.id == n3.member_id).shard_count > 0  # it took its share again


async def test_a_paused_node_loses_its_shards_and_writes_nothing_after_it_resumes(cluster, session):
    queue = new_queue()
    n1, n2, n3 = cluster.nodes
    before = await cluster.status(n1)
    held = [s.shard_id for s in before.shards if s.member_id == n3.member_id]
    async with worker_on(cluster, n1, queue) as c1:
        ids = await start_many([c1], queue, 100, f"pause-{queue}")
        await asyncio.sleep(1.0)
        ranges = {s: r for s, r in shard_ranges(session).items() if s in held}
        n3.signal(signal.SIGSTOP)
        try:
            await cluster.wait_converged([n1, n2], timeout=30)  # past failure detection: shards moved
            moved = shard_ranges(session)
            assert all(moved[s] > ranges[s] for s in held)  # the new owners fenced it out
        finally:
            resumed = time.time()
            n3.signal(signal.SIGCONT)
        await assert_all_complete(c1, ids, timeout=120)
        await cluster.wait_converged(cluster.nodes, timeout=60)
    assert writes_with_ranges_since(session, ranges, 0)  # the check sees what it wrote before the pause
    assert writes_with_ranges_since(session, ranges, resumed) == []
    assert "stalled" in n3.log.read_text()  # it noticed it had been away, and gave everything up


async def _set_gossip_blocked(cluster, node, blocked: bool) -> None:
    """The test hook, on the node's internal port only (mutual TLS; the harness turns test_hooks on)."""
    async with cluster.internal_channel(node) as ch:
        call = ch.unary_unary(
            "/hourglass.internal.v1.ClusterService/SetGossipBlocked",
            request_serializer=pb.SetGossipBlockedRequest.SerializeToString,
            response_deserializer=pb.SetGossipBlockedResponse.FromString,
        )
        await call(pb.SetGossipBlockedRequest(blocked=blocked), timeout=5)


async def _local_ownership(cluster, node) -> pb.LocalOwnershipResponse:
    async with cluster.internal_channel(node) as ch:
        call = ch.unary_unary(
            "/hourglass.internal.v1.ClusterService/LocalOwnership",
            request_serializer=pb.LocalOwnershipRequest.SerializeToString,
            response_deserializer=pb.LocalOwnershipResponse.FromString,
        )
        return await call(pb.LocalOwnershipRequest(), timeout=5)


async def test_a_node_cut_off_from_gossip_stops_writing_the_shards_it_lost(cluster, session):
    queue = new_queue()
    n1, n2, n3 = cluster.nodes
    before = await cluster.status(n1)
    held = [s.shard_id for s in before.shards if s.member_id == n3.member_id]
    async with worker_on(cluster, n1, queue) as c1:
        ids = await start_many([c1], queue, 100, f"cut-{queue}")
        await asyncio.sleep(1.0)
        ranges = {s: r for s, r in shard_ranges(session).items() if s in held}
        await _set_gossip_blocked(cluster, n3, True)
        cut_at = time.time()
        try:
            await cluster.wait_converged([n1, n2], timeout=30)
            own = await _local_ownership(cluster, n3)
            assert not own.quorum and list(own.shard_ids) == []  # it knows it is in the minority
            await assert_all_complete(c1, ids, timeout=120)
            # Its lease ran out (suspicion timeout without contact) before the others took over.
            assert writes_with_ranges_since(session, ranges, 0)  # what it wrote before the cut is seen
            assert writes_with_ranges_since(session, ranges, cut_at + 3.0) == []
        finally:
            await _set_gossip_blocked(cluster, n3, False)
        await cluster.wait_converged(cluster.nodes, timeout=60)


async def test_rolling_restart_loses_nothing(cluster):
    queue = new_queue()
    n1, n2, n3 = cluster.nodes
    ids: list[str] = []
    for i, node in enumerate(cluster.nodes):
        others = [n for n in cluster.nodes if n is not node]
        async with worker_on(cluster, others[0], queue) as client:
            ids += await start_many([client], queue, 30, f"roll{i}-{queue}")
            node.stop()
            await cluster.wait_converged(others, timeout=30)
            node.start()
            await cluster.wait_converged(cluster.nodes, timeout=60)
            await assert_all_complete(client, ids, timeout=120)
