"""What the cluster tests assert about workflows and about Cassandra's rows."""

from __future__ import annotations

import asyncio
import time

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from hourglass.cluster.history.engine import shard_id_for
from hourglass.cluster.history.shard import RANGE_BITS

from .harness import SHARDS
from .workflows import ActivityTimerWorkflow


async def start_many(clients: list[Client], queue: str, n: int, prefix: str) -> list[str]:
    """Start n workflows, spread over the given clients (so over several frontends)."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    sem = asyncio.Semaphore(20)

    async def start(i: int, wid: str) -> None:
        async with sem:
            await clients[i % len(clients)].start_workflow(
                ActivityTimerWorkflow.run, i, id=wid, task_queue=queue
            )

    await asyncio.gather(*(start(i, wid) for i, wid in enumerate(ids)))
    return ids


async def assert_all_complete(client: Client, ids: list[str], timeout: float) -> None:
    """Every workflow completes with its result, and its history is valid: contiguous event ids, one
    completion per activity, closed by WorkflowExecutionCompleted."""
    deadline = time.monotonic() + timeout
    sem = asyncio.Semaphore(20)

    async def check(wid: str) -> None:
        async with sem:
            n = int(wid.rsplit("-", 1)[1])
            handle = client.get_workflow_handle(wid)
            try:
                result = await asyncio.wait_for(handle.result(), max(deadline - time.monotonic(), 1))
            except TimeoutError:
                # Say whether the run is stuck or only its result poll is: the history as it stands.
                events = [e.event_type async for e in handle.fetch_history_events()]
                names = [EventType.Name(t).removeprefix("EVENT_TYPE_") for t in events]
                raise AssertionError(f"{wid} gave no result in {timeout} s; its history: {names}") from None
            assert result == f"a{n}b{n}", wid
            history = await handle.fetch_history()
            events = history.events
            assert [e.event_id for e in events] == list(range(1, len(events) + 1)), wid
            completed = [
                e.activity_task_completed_event_attributes.scheduled_event_id
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            ]
            assert len(completed) == len(set(completed)) == 2, (wid, completed)
            assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, wid

    await asyncio.gather(*(check(wid) for wid in ids))


def shard_ranges(session) -> dict[int, int]:
    """Each shard's range id now (the owner's fence)."""
    rows = [
        row
        for shard in range(SHARDS)
        for row in session.execute(
            "SELECT shard_id, range_id FROM executions WHERE shard_id = %s AND type = 1", (shard,)
        )
    ]
    return {r["shard_id"]: r["range_id"] for r in rows}


def writes_with_ranges_since(session, ranges: dict[int, int], since_s: float) -> list[str]:
    """Rows written after `since_s` (epoch seconds) with task/transaction ids of the given shard ranges,
    i.e. by the owner that held those ranges: history nodes and transfer/timer task rows."""
    since_us = int(since_s * 1_000_000)
    found = []
    for row in session.execute(
        "SELECT namespace_id, workflow_id, run_id, node_id, txn_id, writetime(events) AS wt FROM history_node"
    ):
        shard = shard_id_for(row["namespace_id"], row["workflow_id"], SHARDS)
        if shard in ranges and row["txn_id"] >> RANGE_BITS == ranges[shard] and row["wt"] > since_us:
            found.append(f"history node {row['workflow_id']}/{row['node_id']} (shard {shard})")
    for shard, range_id in ranges.items():
        for row in session.execute(
            "SELECT type, task_id, writetime(kind) AS wt FROM executions WHERE shard_id = %s AND type IN (4, 5)",
            (shard,),
        ):
            if row["task_id"] >> RANGE_BITS == range_id and row["wt"] is not None and row["wt"] > since_us:
                found.append(f"task row type {row['type']} id {row['task_id']} (shard {shard})")
    return found
