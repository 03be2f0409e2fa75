"""Commits whose outcome the node cannot know: the batch was applied, but the store reported a timeout.

That is what a Cassandra LWT timeout looks like to the node (the write may land after the coordinator gave
up). The real SQLite store applies every batch here; `AppliedButUnavailable` then reports some of them as
unavailable. Users must see nothing of it but retried RPCs: every workflow completes with its result, and
no task the lost acknowledgement left in the store is forgotten (a workflow task dispatched by no one, a
timer never fired).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.errors import StoreUnavailableError
from hourglass.persistence.records import ExecutionWrite
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store

from .workflows import ActivitiesAndTimer, assert_history_sound, double, expected_result

WORKFLOWS = 12
# A conditional batch is applied and then reported as unavailable with this probability (seeded: a fixed
# period would fall into step with a workflow's own cycle of commits and starve it).
FAULT_PROBABILITY = 0.25


class AppliedButUnavailable:
    """Delegates to a real store; some commits are applied, then raise StoreUnavailableError."""

    def __init__(self, inner: Store, probability: float) -> None:
        self._inner = inner
        self._probability = probability
        self._random = random.Random(7)
        self.commits = 0
        self.faults = 0

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        await self._inner.commit(shard_id, range_id, writes)
        self.commits += 1
        if self._random.random() < self._probability:
            self.faults += 1
            raise StoreUnavailableError("injected: batch applied, then the reply was lost")

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.fixture
async def faulty_node() -> AsyncIterator[tuple[Node, AppliedButUnavailable]]:
    store = AppliedButUnavailable(await SQLiteStore.open(None), FAULT_PROBABILITY)
    node = Node(NodeConfig(port=0), store)  # type: ignore[arg-type]  # duck-typed like MeteredStore
    await node.start()
    try:
        yield node, store
    finally:
        await node.stop(grace=0.5)


async def test_every_workflow_completes_when_commit_replies_are_lost(
    faulty_node: tuple[Node, AppliedButUnavailable],
) -> None:
    node, store = faulty_node
    client = await Client.connect(f"127.0.0.1:{node.bound_port}")
    queue = f"unknown-outcome-{uuid.uuid4()}"
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
    assert store.faults >= WORKFLOWS, f"only {store.faults} faults in {store.commits} commits: nothing tested"
