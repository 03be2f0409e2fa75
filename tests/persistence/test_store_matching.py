"""Task-queue partitions: leases fenced by range id, ack levels, and backlog tasks."""

from __future__ import annotations

import dataclasses

import pytest
from store_factories import NS

from hourglass.persistence.errors import TaskQueueLeaseLostError
from hourglass.persistence.records import QueueTask, TaskQueueInfo, TaskQueueKey
from hourglass.persistence.store import Store

WORKFLOW_QUEUE = TaskQueueKey(NS, "orders", task_type=1, partition=0)
ACTIVITY_QUEUE = TaskQueueKey(NS, "orders", task_type=2, partition=0)
OTHER_PARTITION = TaskQueueKey(NS, "orders", task_type=1, partition=3)


def task(task_id: int) -> QueueTask:
    return QueueTask(
        task_id,
        NS,
        "wf",
        "run",
        scheduled_event_id=task_id * 10,
        create_time_ms=1_000 + task_id,
        expiry_time_ms=0 if task_id % 2 else 9_000,
        data=f"task {task_id}".encode(),
    )


async def backlog(
    store: Store, key: TaskQueueKey = WORKFLOW_QUEUE, after: int = 0, limit: int = 100
) -> list[int]:
    return [t.task_id for t in await store.get_queue_tasks(key, after, limit)]


async def test_first_lease_creates_the_partition(store: Store) -> None:
    assert await store.lease_task_queue(WORKFLOW_QUEUE) == TaskQueueInfo(
        WORKFLOW_QUEUE, range_id=1, ack_level=0
    )


async def test_each_lease_bumps_the_range_id_and_keeps_the_ack_level(store: Store) -> None:
    lease = await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.update_task_queue(dataclasses.replace(lease, ack_level=42))
    assert await store.lease_task_queue(WORKFLOW_QUEUE) == TaskQueueInfo(WORKFLOW_QUEUE, 2, 42)
    assert await store.lease_task_queue(WORKFLOW_QUEUE) == TaskQueueInfo(WORKFLOW_QUEUE, 3, 42)


async def test_partitions_and_types_lease_independently(store: Store) -> None:
    await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.lease_task_queue(WORKFLOW_QUEUE)
    assert (await store.lease_task_queue(ACTIVITY_QUEUE)).range_id == 1
    assert (await store.lease_task_queue(OTHER_PARTITION)).range_id == 1


async def test_update_by_an_old_lease_is_rejected(store: Store) -> None:
    old = await store.lease_task_queue(WORKFLOW_QUEUE)
    new = await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.update_task_queue(dataclasses.replace(new, ack_level=5))
    with pytest.raises(TaskQueueLeaseLostError):
        await store.update_task_queue(dataclasses.replace(old, ack_level=99))
    assert await store.list_task_queues() == [TaskQueueInfo(WORKFLOW_QUEUE, range_id=2, ack_level=5)]


async def test_update_of_a_partition_never_leased_is_rejected(store: Store) -> None:
    with pytest.raises(TaskQueueLeaseLostError):
        await store.update_task_queue(TaskQueueInfo(WORKFLOW_QUEUE, range_id=1, ack_level=1))
    assert await store.list_task_queues() == []


async def test_create_tasks_by_an_old_lease_is_rejected(store: Store) -> None:
    old = await store.lease_task_queue(WORKFLOW_QUEUE)
    new = await store.lease_task_queue(WORKFLOW_QUEUE)
    with pytest.raises(TaskQueueLeaseLostError):
        await store.create_queue_tasks(WORKFLOW_QUEUE, old.range_id, [task(1), task(2)])
    assert await backlog(store) == []
    await store.create_queue_tasks(WORKFLOW_QUEUE, new.range_id, [task(1), task(2)])
    assert await backlog(store) == [1, 2]


async def test_create_tasks_without_a_lease_is_rejected(store: Store) -> None:
    with pytest.raises(TaskQueueLeaseLostError):
        await store.create_queue_tasks(WORKFLOW_QUEUE, 1, [task(1)])
    assert await backlog(store) == []


async def test_backlog_reads_back_whole_in_task_id_order(store: Store) -> None:
    lease = await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.create_queue_tasks(WORKFLOW_QUEUE, lease.range_id, [task(7), task(2)])
    await store.create_queue_tasks(WORKFLOW_QUEUE, lease.range_id, [task(5), task(9)])
    assert await store.get_queue_tasks(WORKFLOW_QUEUE, 0, 100) == [task(2), task(5), task(7), task(9)]


async def test_backlog_paging_is_exclusive_of_the_cursor(store: Store) -> None:
    lease = await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.create_queue_tasks(WORKFLOW_QUEUE, lease.range_id, [task(i) for i in (2, 5, 7, 9)])
    assert await backlog(store, after=0, limit=2) == [2, 5]
    assert await backlog(store, after=5, limit=2) == [7, 9]
    assert await backlog(store, after=9) == []


async def test_backlog_range_delete(store: Store) -> None:
    lease = await store.lease_task_queue(WORKFLOW_QUEUE)
    await store.create_queue_tasks(WORKFLOW_QUEUE, lease.range_id, [task(i) for i in (2, 5, 7, 9)])
    await store.delete_queue_tasks(WORKFLOW_QUEUE, 7)
    assert await backlog(store) == [9]


async def test_backlogs_of_partitions_are_separate(store: Store) -> None:
    for key, ids in ((WORKFLOW_QUEUE, [1, 2]), (ACTIVITY_QUEUE, [3]), (OTHER_PARTITION, [4])):
        lease = await store.lease_task_queue(key)
        await store.create_queue_tasks(key, lease.range_id, [task(i) for i in ids])
    await store.delete_queue_tasks(WORKFLOW_QUEUE, 100)
    assert await backlog(store, WORKFLOW_QUEUE) == []
    assert await backlog(store, ACTIVITY_QUEUE) == [3]
    assert await backlog(store, OTHER_PARTITION) == [4]


async def test_list_task_queues_returns_every_partition(store: Store) -> None:
    assert await store.list_task_queues() == []
    for key in (WORKFLOW_QUEUE, ACTIVITY_QUEUE, OTHER_PARTITION):
        await store.lease_task_queue(key)
    lease = await store.lease_task_queue(ACTIVITY_QUEUE)
    await store.update_task_queue(dataclasses.replace(lease, ack_level=17))
    listed = sorted(await store.list_task_queues(), key=lambda i: (i.key.task_type, i.key.partition))
    assert listed == [
        TaskQueueInfo(WORKFLOW_QUEUE, 1, 0),
        TaskQueueInfo(OTHER_PARTITION, 1, 0),
        TaskQueueInfo(ACTIVITY_QUEUE, 2, 17),
    ]
