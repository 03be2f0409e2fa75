"""Schedules in a 3-node cluster: any node serves any schedule (the RPCs run on the member owning the
schedule's shard), every node lists all of them, and a schedule keeps its pace when its owner is killed.

Each schedule id is chosen so that its shard belongs to a given member, so the requests through the other
nodes are sure to cross the cluster.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, ListScheduleMatchingTimesRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from hourglass.cluster.history.engine import shard_id_for

from .conftest import new_queue, worker_on
from .harness import SHARDS, LocalCluster, Node
from .workflows import ActivityTimerWorkflow

pytestmark = pytest.mark.timeout(240)

TEMPORAL = shutil.which("temporal")
SCHEDULED_ID = re.compile(r"^(.*)-(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


async def schedule_id_owned_by(cluster: LocalCluster, client: Client, owner: Node, prefix: str) -> str:
    """A schedule id whose shard the cluster gives to `owner` now."""
    view = await cluster.status(cluster.nodes[0])
    owners = {s.shard_id: s.member_id for s in view.shards}
    ns = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    for i in range(1000):
        sid = f"{prefix}-{i}"
        if owners.get(shard_id_for(ns.namespace_info.id, sid, SHARDS)) == owner.member_id:
            return sid
    raise AssertionError(f"no schedule id of {owner.member_id}'s shards found")


def every(seconds: float, queue: str, workflow_id: str, *, paused: bool = False) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(ActivityTimerWorkflow.run, 1, id=workflow_id, task_queue=queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        state=ScheduleState(paused=paused),
    )


async def eventually(check, timeout: float = 30.0, step: float = 0.3):
    """Until `check()` returns something truthy (its value), or fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s (last: {value!r})")
        await asyncio.sleep(step)


async def listed(client: Client) -> list[str]:
    return [s.id async for s in await client.list_schedules()]


async def cli(cluster: LocalCluster, node: Node, *args: str) -> str:
    """The real `temporal` CLI against `node`, over mutual TLS with a JWT (the cluster's frontends)."""
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL, *args, *cluster.cli_flags(node), "--color", "never",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, f"temporal {' '.join(args)}: {err.decode()}{out.decode()}"
    return out.decode()


async def test_a_schedule_created_through_one_node_runs_and_every_node_serves_it(cluster):
    n1, n2, n3 = cluster.nodes
    c1, c2, c3 = [await cluster.connect(n) for n in cluster.nodes]
    queue = new_queue()
    sid = await schedule_id_owned_by(cluster, c1, n3, f"sched-{queue}")
    async with worker_on(cluster, n2, queue):
        await c1.create_schedule(sid, every(2, queue, f"wf-{queue}"))
        with pytest.raises(ScheduleAlreadyRunningError):  # the owner's answer, as the same error
            await c2.create_schedule(sid, every(2, queue, f"wf-{queue}"))

        for client in (c1, c2, c3):
            desc = await client.get_schedule_handle(sid).describe()
            assert desc.schedule.action.workflow == "ActivityTimerWorkflow"
            assert desc.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(seconds=2))]
            assert sid in await listed(client)

        async def fired_twice():
            desc = await c2.get_schedule_handle(sid).describe()
            return desc if desc.info.num_actions >= 2 else None

        desc = await eventually(fired_twice)
        started = desc.info.recent_actions[0].action.workflow_id
        assert await c3.get_workflow_handle(started).result() == "a1b1"

        await c2.get_schedule_handle(sid).pause(note="paused through node 2")
        desc = await c1.get_schedule_handle(sid).describe()
        assert desc.schedule.state.paused and desc.schedule.state.note == "paused through node 2"
        await c3.get_schedule_handle(sid).unpause(note="resumed through node 3")
        await c1.get_schedule_handle(sid).trigger()

        def renote(input):
            input.description.schedule.state.note = "updated through node 2"
            return ScheduleUpdate(schedule=input.description.schedule)

        await c2.get_schedule_handle(sid).update(renote)
        desc = await c3.get_schedule_handle(sid).describe()
        assert desc.schedule.state.note == "updated through node 2" and not desc.schedule.state.paused

        start = Timestamp()
        start.FromDatetime(datetime(2030, 1, 1, tzinfo=UTC))
        end = Timestamp()
        end.FromDatetime(datetime(2030, 1, 1, 0, 0, 9, tzinfo=UTC))
        times = await c1.workflow_service.list_schedule_matching_times(
            ListScheduleMatchingTimesRequest(
                namespace="default", schedule_id=sid, start_time=start, end_time=end
            )
        )
        assert [t.ToDatetime().second for t in times.start_time] == [2, 4, 6, 8]  # after the start time

        if TEMPORAL is not None:  # the real CLI, through the nodes that do not own it
            described = json.loads(
                await cli(cluster, n1, "schedule", "describe", "--schedule-id", sid, "-o", "json")
            )
            assert described["schedule"]["state"]["notes"] == "updated through node 2"
            rows = await cli(cluster, n2, "schedule", "list", "-o", "jsonl")
            assert sid in [json.loads(line)["scheduleId"] for line in rows.splitlines() if line.strip()]

        await c2.get_schedule_handle(sid).delete()
        with pytest.raises(RPCError) as gone:
            await c1.get_schedule_handle(sid).describe()
        assert gone.value.status == RPCStatusCode.NOT_FOUND
        assert sid not in await listed(c3)


async def test_every_node_lists_the_schedules_of_every_shard(cluster):
    c1, c2, c3 = [await cluster.connect(n) for n in cluster.nodes]
    queue = new_queue()
    ids = [
        await schedule_id_owned_by(cluster, c1, n, f"list-{queue}-{i}") for i, n in enumerate(cluster.nodes)
    ]
    for i, sid in enumerate(ids):
        await (c1, c2, c3)[i].create_schedule(sid, every(3600, queue, f"wf-{sid}", paused=True))
    try:
        for client in (c1, c2, c3):
            mine = [s for s in await listed(client) if s in ids]
            assert sorted(mine) == sorted(ids)
            paged = [s.id async for s in await client.list_schedules(page_size=1)]
            assert set(ids) <= set(paged) and len(paged) == len(set(paged))
    finally:
        for sid in ids:
            await c3.get_schedule_handle(sid).delete()


async def test_a_schedule_keeps_its_pace_after_its_owner_is_killed(cluster):
    n1, n2, n3 = cluster.nodes
    c1, c2 = await cluster.connect(n1), await cluster.connect(n2)
    queue = new_queue()
    sid = await schedule_id_owned_by(cluster, c1, n3, f"pace-{queue}")
    try:
        async with worker_on(cluster, n1, queue):
            await c1.create_schedule(sid, every(1, queue, f"wf-{queue}"))
            handle = c2.get_schedule_handle(sid)

            async def fired(n: int):
                desc = await handle.describe()
                return desc if desc.info.num_actions >= n else None

            await eventually(lambda: fired(2))
            n3.kill9()
            killed_at = datetime.now(UTC)
            await cluster.wait_converged([n1, n2], timeout=30)

            async def fired_after_takeover():
                desc = await handle.describe()
                late = [
                    a for a in desc.info.recent_actions if a.scheduled_at > killed_at + timedelta(seconds=2)
                ]
                return desc if late else None

            desc = await eventually(fired_after_takeover)
            await handle.delete()

            async def all_runs():
                runs = [w.id async for w in c1.list_workflows(f"TemporalScheduledById = '{sid}'")]
                return runs if len(runs) >= desc.info.num_actions else None

            runs = await eventually(all_runs)
        nominal = sorted(SCHEDULED_ID.match(r).group(2) for r in runs)
        assert len(nominal) == len(set(nominal)) >= desc.info.num_actions  # never twice for one time
        seconds = [datetime.strptime(n, "%Y-%m-%dT%H:%M:%SZ") for n in nominal]
        # No gap: the new owner caught up the times missed while the old one was dead.
        assert all(b - a == timedelta(seconds=1) for a, b in zip(seconds, seconds[1:], strict=False)), nominal
    finally:
        n3.start()
        await cluster.wait_converged(cluster.nodes, timeout=60)
