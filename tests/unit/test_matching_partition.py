"""Task-queue partition semantics on the real embedded store: nothing handed to matching is lost."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import WorkflowExecution

from hourglass.cluster.matching.partition import MatchedTask, Partition
from hourglass.persistence.records import TaskQueueKey
from hourglass.persistence.sqlite.store import SQLiteStore

KEY = TaskQueueKey("ns", "queue", 1)


def task(n: int) -> MatchedTask:
    return MatchedTask("ns", WorkflowExecution(workflow_id=f"wf-{n}", run_id="r"), scheduled_event_id=n)


@pytest.fixture
async def store(tmp_path):
    store = await SQLiteStore.open(str(tmp_path / "matching.db"))
    yield store
    await store.close()


async def test_sync_match_completes_only_when_the_poller_acknowledges(store):
    partition = Partition(KEY, store)
    poll = asyncio.create_task(partition.poll(5, "worker"))
    await asyncio.sleep(0.01)
    add = asyncio.create_task(partition.add(task(1)))
    got = await poll
    assert got.execution.workflow_id == "wf-1"
    await asyncio.sleep(0.01)
    assert not add.done()  # history has not recorded the start yet
    await partition.ack(got)
    await add
    assert await store.get_queue_tasks(KEY, 0, 10) == []  # sync match writes nothing


async def test_a_task_given_back_by_its_poller_is_persisted_and_handed_out_again(store):
    partition = Partition(KEY, store)
    poll = asyncio.create_task(partition.poll(5, "worker"))
    await asyncio.sleep(0.01)
    add = asyncio.create_task(partition.add(task(7)))
    got = await poll
    partition.give_back(got)  # e.g. the poller's RPC was cancelled before history answered
    await add
    assert [t.scheduled_event_id for t in await store.get_queue_tasks(KEY, 0, 10)] == [7]
    again = await partition.poll(1, "worker-2")
    assert again.scheduled_event_id == 7


async def test_backlog_is_ordered_and_survives_a_restart_minus_what_was_consumed(store):
    first = Partition(KEY, store)
    for n in range(1, 6):
        await first.add(task(n))  # no poller: persisted
    consumed = await first.poll(1, "w")
    assert consumed.scheduled_event_id == 1
    await first.ack(consumed)
    await first.flush_deletes()  # the consumed task's range delete runs in the background
    unacked = await first.poll(1, "w")
    assert unacked.scheduled_event_id == 2  # handed out, but the process dies before history answers

    restarted = Partition(KEY, store)  # a new owner leases the partition and reloads its backlog
    seen = []
    while (t := await restarted.poll(0.05, "w")) is not None:
        seen.append(t.scheduled_event_id)
        await restarted.ack(t)
    assert seen == [2, 3, 4, 5]


async def test_the_old_lease_cannot_append_after_a_new_owner_took_the_partition(store):
    from hourglass.persistence.errors import TaskQueueLeaseLostError

    old = Partition(KEY, store)
    await old.add(task(1))
    new = Partition(KEY, store)
    await new.poll(0.01, "w")  # leases the partition (bumps range_id)
    with pytest.raises(TaskQueueLeaseLostError):
        await old.add(task(2))
    assert [t.scheduled_event_id for t in await store.get_queue_tasks(KEY, 0, 10)] == [1]


async def test_a_poll_with_no_work_returns_empty_after_its_timeout(store):
    partition = Partition(KEY, store)
    started = asyncio.get_running_loop().time()
    assert await partition.poll(0.2, "w") is None
    assert asyncio.get_running_loop().time() - started >= 0.2


async def test_a_sticky_partition_knows_whether_its_worker_polled_lately_and_can_be_unloaded(store):
    partition = Partition(TaskQueueKey("ns", "sticky", 1), store, persistent=False)
    assert not partition.has_poller_within(10)
    poll = asyncio.create_task(partition.poll(5, "worker"))
    await asyncio.sleep(0.01)
    assert partition.has_poller_within(0)  # a poll is waiting right now
    partition.unload()  # the worker shut down: its waiting poll returns empty
    assert await poll is None
    assert partition.has_poller_within(10) and not partition.has_poller_within(0)


async def test_tasks_given_back_out_of_order_stay_in_the_store_until_consumed(store):
    """Pollers whose history call failed hand their tasks back in any order; the tasks that stay behind
    must survive the partition moving to another node (which reloads the backlog from the store)."""
    first = Partition(KEY, store)
    for n in (1, 2, 3, 4):
        await first.add(task(n))
    one, two, _three, four = [await first.poll(1, "w") for _ in range(4)]
    first.give_back(one)
    first.give_back(two)  # after one: now in front of it
    await first.ack(four)  # the only task history started; three is still out with its poller
    first.close()  # the partition moves: what it held in memory is gone

    moved = Partition(KEY, store)
    seen = []
    while (t := await moved.poll(0.05, "w")) is not None:
        seen.append(t.scheduled_event_id)
        await moved.ack(t)
    # Four may come again (deletes go up to the lowest unconsumed task): history drops it as stale.
    assert [n for n in seen if n != 4] == [1, 2, 3]


async def test_consumed_tasks_are_deleted_in_the_background_and_never_by_a_closed_partition(store):
    """A poller's reply does not wait for the range delete of what it consumed: the delete follows, one
    at a time per partition (acks arriving meanwhile go in the next one); a partition that moved to
    another owner deletes nothing more (the new owner may hand a consumed task out again: history
    drops it as stale)."""
    first = Partition(KEY, store)
    for n in range(1, 6):
        await first.add(task(n))
    handed = [await first.poll(1, "w") for _ in range(3)]
    for t in handed:
        await first.ack(t)  # returns at once; one delete is in flight, the next acks wait for it
    await first.flush_deletes()
    assert [t.scheduled_event_id for t in await store.get_queue_tasks(KEY, 0, 10)] == [4, 5]

    fourth = await first.poll(1, "w")
    await first.ack(fourth)
    first.close()  # moved before its delete ran
    await first.flush_deletes()
    assert [t.scheduled_event_id for t in await store.get_queue_tasks(KEY, 0, 10)] == [4, 5]


async def test_a_sticky_partition_holds_its_tasks_in_memory_and_never_leases_the_store(store):
    """A sticky queue belongs to one worker process: nothing of it is written, so two nodes that both
    briefly hold it (the ring moving) cannot fail each other's adds with a lease conflict."""
    key = TaskQueueKey("ns", "sticky", 1)
    for holder in (Partition(key, store, persistent=False), Partition(key, store, persistent=False)):
        await holder.add(task(1))  # no poller: kept in memory
        assert (await holder.poll(1, "worker")).scheduled_event_id == 1
    assert [info.key for info in await store.list_task_queues()] == []


class _WritesLandInReverse:
    """The real store, with each backlog write of a burst finishing after the ones issued after it (as
    concurrent conditional writes to a remote database may)."""

    def __init__(self, inner: SQLiteStore) -> None:
        self._inner = inner
        self.delays = [0.06, 0.04, 0.02]

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    async def create_queue_tasks(self, key, range_id, tasks) -> None:
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0)
        await self._inner.create_queue_tasks(key, range_id, tasks)


async def test_tasks_whose_writes_finish_out_of_order_stay_in_the_store_until_consumed(store):
    first = Partition(KEY, _WritesLandInReverse(store))
    await first._ensure_loaded()  # lease first: the burst below then writes concurrently
    await asyncio.gather(*(first.add(task(n)) for n in (1, 2, 3)))
    handed = await first.poll(1, "w")
    await first.ack(handed)
    await first.flush_deletes()
    first.close()

    moved = Partition(KEY, store)
    seen = []
    while (t := await moved.poll(0.05, "w")) is not None:
        seen.append(t.scheduled_event_id)
        await moved.ack(t)
    assert {handed.scheduled_event_id, *seen} == {1, 2, 3}  # nothing lost
    assert handed.scheduled_event_id == 1 and seen == [2, 3]  # and handed out in order of creation
