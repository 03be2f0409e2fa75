"""Pinned tasks in a task-queue partition on the real embedded store: a task pinned to a worker deployment
version goes only to pollers of that version, waits in the backlog (without holding up other work) until
one polls, and stays pinned across a restart of the partition."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import WorkflowExecution

from hourglass.cluster.matching import pinned
from hourglass.cluster.matching.partition import MatchedTask, Partition
from hourglass.persistence.records import TaskQueueKey
from hourglass.persistence.sqlite.store import SQLiteStore

KEY = TaskQueueKey("ns", "queue", 1)
V1, V2 = "deploy:b1", "deploy:b2"


def task(n: int, pin: str = "") -> MatchedTask:
    execution = WorkflowExecution(workflow_id=f"wf-{n}", run_id="r")
    return MatchedTask("ns", execution, scheduled_event_id=n, attempt=2, pinned=pin)


@pytest.fixture
async def store(tmp_path):
    store = await SQLiteStore.open(str(tmp_path / "matching.db"))
    yield store
    await store.close()


def test_backlog_data_keeps_the_attempt_and_the_pin() -> None:
    assert pinned.decode_data(pinned.encode_data(3, V1)) == (3, V1)
    assert pinned.decode_data(pinned.encode_data(3, "")) == (3, "")
    assert pinned.decode_data(b"7") == (7, "")  # a row written before versioning
    assert pinned.may_take("", "") and pinned.may_take("", V2) and pinned.may_take(V1, V1)
    assert not pinned.may_take(V1, V2) and not pinned.may_take(V1, "")


async def test_a_waiting_poller_of_another_version_does_not_get_a_pinned_task(store):
    partition = Partition(KEY, store)
    other = asyncio.create_task(partition.poll(5, "w2", version=V2))
    await asyncio.sleep(0.01)
    await partition.add(task(1, V1))  # nobody may take it now: persisted
    assert not other.done()
    mine = await partition.poll(1, "w1", version=V1)
    assert mine is not None and mine.execution.workflow_id == "wf-1" and mine.pinned == V1
    await partition.ack(mine)
    add = asyncio.create_task(partition.add(task(2)))  # unpinned work reaches the waiting v2 poller
    got = await other
    assert got.execution.workflow_id == "wf-2"
    await partition.ack(got)
    await add  # a sync match: done once the poller acknowledged


async def test_a_pinned_task_waits_without_holding_up_the_tasks_behind_it(store):
    partition = Partition(KEY, store)
    await partition.add(task(1, V1))
    await partition.add(task(2))
    await partition.add(task(3, V2))
    got = await partition.poll(1, "w2", version=V2)
    assert got.scheduled_event_id == 2  # the first task a v2 poller may take
    await partition.ack(got)
    got = await partition.poll(1, "w2", version=V2)
    assert got.scheduled_event_id == 3
    await partition.ack(got)
    assert await partition.poll(0.05, "w2", version=V2) is None
    assert await partition.poll(0.05, "unversioned") is None
    # Consumed tasks are deleted by range, below the first one still waiting: all once task 1 is taken.
    assert 1 in [t.scheduled_event_id for t in await store.get_queue_tasks(KEY, 0, 10)]
    got = await partition.poll(1, "w1", version=V1)
    assert got.scheduled_event_id == 1
    await partition.ack(got)
    assert await store.get_queue_tasks(KEY, 0, 10) == []


async def test_a_pinned_backlog_task_is_still_pinned_after_a_restart(store):
    first = Partition(KEY, store)
    await first.add(task(1, V1))
    restarted = Partition(KEY, store)  # a new owner leases the partition and reloads its backlog
    assert await restarted.poll(0.05, "w2", version=V2) is None
    got = await restarted.poll(1, "w1", version=V1)
    assert (got.scheduled_event_id, got.attempt, got.pinned) == (1, 2, V1)


async def test_a_task_given_back_keeps_its_pin(store):
    partition = Partition(KEY, store)
    await partition.add(task(1, V1))
    got = await partition.poll(1, "w1", version=V1)
    partition.give_back(got)  # the poller's RPC ended before history answered
    assert await partition.poll(0.05, "w2", version=V2) is None
    again = await partition.poll(1, "w1", version=V1)
    assert again.scheduled_event_id == 1 and again.pinned == V1


async def test_a_poller_arriving_later_is_woken_for_its_pinned_backlog(store):
    partition = Partition(KEY, store)
    waiting_v2 = asyncio.create_task(partition.poll(0.5, "w2", version=V2))
    waiting_v1 = asyncio.create_task(partition.poll(5, "w1", version=V1))
    await asyncio.sleep(0.01)
    add = asyncio.create_task(partition.add(task(1, V1)))  # sync-matched to the v1 poller behind v2
    got = await waiting_v1
    assert got.scheduled_event_id == 1
    await partition.ack(got)
    await add
    assert await waiting_v2 is None
    assert partition.versions_seen == {V1, V2}
