"""Store faults injected around the real SQLite store: users must see nothing of them but retried RPCs.

- Commits whose outcome the node cannot know: the batch was applied, but the store reported a timeout.
  That is what a Cassandra LWT timeout looks like to the node (the write may land after the coordinator
  gave up). No task the lost acknowledgement left in the store may be forgotten (a workflow task dispatched
  by no one, a timer never fired).
- Reads of timer tasks failing for a while (the database unreachable): timers still fire.

Every workflow completes with its result and a sound history.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from hourglass.cluster.history import queues
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.errors import StoreUnavailableError
from hourglass.persistence.records import ExecutionWrite
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store

from .workflows import ActivitiesAndTimer, assert_history_sound, double, expected_result

WORKFLOWS = 12
# Faults are drawn with a seeded generator: a fixed period could fall into step with a workflow's own
# cycle of store calls and starve it.
SEED = 7


class FaultyStore:
    """Delegates to a real store, injecting the failures a remote database shows under faults.

    - commit_lost_reply: probability that a conditional batch is applied and then reported unavailable
      (a Cassandra LWT that timed out at the coordinator but landed);
    - timer_read_failure: probability that reading timer tasks fails (the database is unreachable).
    """

    def __init__(self, inner: Store, commit_lost_reply: float = 0.0, timer_read_failure: float = 0.0) -> None:
        self._inner = inner
        self._commit_lost_reply = commit_lost_reply
        self._timer_read_failure = timer_read_failure
        self._random = random.Random(SEED)
        self.faults = 0
        self.armed = False  # faults start once the node is up: a node that cannot start just says so

    def _fault(self, probability: float) -> bool:
        hit = self.armed and self._random.random() < probability
        self.faults += hit
        return hit

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        await self._inner.commit(shard_id, range_id, writes)
        if self._fault(self._commit_lost_reply):
            raise StoreUnavailableError("injected: batch applied, then the reply was lost")

    async def get_timer_tasks(self, *args, **kwargs):
        if self._fault(self._timer_read_failure):
            raise StoreUnavailableError("injected: timer tasks unreadable")
        return await self._inner.get_timer_tasks(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@contextlib.asynccontextmanager
async def node_on(store: FaultyStore) -> AsyncIterator[Node]:
    node = Node(NodeConfig(port=0), store)  # type: ignore[arg-type]  # duck-typed like MeteredStore
    await node.start()
    store.armed = True
    try:
        yield node
    finally:
        await node.stop(grace=0.5)


async def run_workload(node: Node) -> None:
    """WORKFLOWS workflows with activities and a timer: all complete, with their results and sound histories."""
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    queue = f"faults-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ActivitiesAndTimer], activities=[double]):
        handles = [
            await client.start_workflow(
                ActivitiesAndTimer.run,
                seed,
                id=f"{queue}-{seed}",
                task_queue=queue,
                # A lost reply to a poll leaves its task started with no worker: it is retried on timeout.
                task_timeout=timedelta(seconds=2),
            )
            for seed in range(WORKFLOWS)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=90)
    assert results == [expected_result(seed) for seed in range(WORKFLOWS)]
    for handle in handles:
        await assert_history_sound(client, handle.id)


async def test_every_workflow_completes_when_commit_replies_are_lost() -> None:
    store = FaultyStore(await SQLiteStore.open(None), commit_lost_reply=0.25)
    async with node_on(store) as node:
        await run_workload(node)
    assert store.faults >= WORKFLOWS, f"only {store.faults} faults injected: nothing tested"


async def test_timers_fire_when_reading_them_fails_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    # A look-ahead window shorter than the workflows' timers: they are only ever seen through reads of the
    # window (every ~0.2 s per shard), half of which fail.
    monkeypatch.setattr(queues, "TIMER_LOOKAHEAD_MS", 400)
    store = FaultyStore(await SQLiteStore.open(None), timer_read_failure=0.5)
    async with node_on(store) as node:
        await run_workload(node)
    assert store.faults >= 3, f"only {store.faults} timer reads failed: nothing tested"
