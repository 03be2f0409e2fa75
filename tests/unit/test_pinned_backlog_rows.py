"""Backlog rows an older Hourglass wrote for pinned runs ("attempt|deployment:build", when pinned tasks
waited in the task queue's own backlog) on the real embedded store: they still read, with their pin, so
the matching engine can move them to their version's queue; new rows hold just the attempt."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import WorkflowExecution

from hourglass.cluster.matching import backlog_data
from hourglass.cluster.matching.partition import MatchedTask, Partition
from hourglass.persistence.records import QueueTask, TaskQueueKey
from hourglass.persistence.sqlite.store import SQLiteStore

KEY = TaskQueueKey("ns", "queue", 1)
V1 = "deploy:b1"


@pytest.fixture
async def store(tmp_path):
    store = await SQLiteStore.open(str(tmp_path / "matching.db"))
    yield store
    await store.close()


def test_backlog_data_keeps_the_attempt_and_an_old_rows_pin() -> None:
    assert backlog_data.encode(3) == b"3"
    assert backlog_data.decode(b"7") == (7, "")
    assert backlog_data.decode(b"3|deploy:b1") == (3, V1)
    assert backlog_data.decode(backlog_data.encode(3, V1)) == (3, V1)
    assert backlog_data.decode(b"") == (0, "")


async def test_a_new_task_is_stored_with_just_its_attempt(store):
    partition = Partition(KEY, store)
    execution = WorkflowExecution(workflow_id="wf-1", run_id="r")
    await partition.add(MatchedTask("ns", execution, scheduled_event_id=1, attempt=2))
    rows = await store.get_queue_tasks(KEY, 0, 10)
    assert [row.data for row in rows] == [b"2"]


async def test_an_old_pinned_row_reads_back_with_its_pin_and_keeps_it_when_given_back(store):
    first = Partition(KEY, store)
    await first.prepare()  # takes the lease, so the row below is written under it
    old = QueueTask(
        namespace_id="ns",
        task_id=1,
        workflow_id="wf-1",
        run_id="r",
        scheduled_event_id=5,
        create_time_ms=1,
        data=b"2|deploy:b1",
    )
    await store.create_queue_tasks(KEY, first._range_id, [old])
    restarted = Partition(KEY, store)  # a new owner reloads the backlog
    got = await restarted.poll(1, "worker")
    assert (got.scheduled_event_id, got.attempt, got.pinned) == (5, 2, V1)
    restarted.give_back(got)
    again = await restarted.poll(1, "worker")
    assert again.pinned == V1
    await restarted.ack(again)
    await restarted.flush_deletes()
    assert await store.get_queue_tasks(KEY, 0, 10) == []


def test_a_routed_task_is_marked_and_reads_back_unpinned() -> None:
    data = backlog_data.encode(3, routed=True)
    assert data == b"3|~"
    assert backlog_data.decode(data) == (3, "") and backlog_data.routed(data)
    assert not backlog_data.routed(b"3") and not backlog_data.routed(b"3|deploy:b1")
    # A pin wins: a pinned task is never marked as routed.
    assert backlog_data.encode(3, V1, routed=True) == b"3|deploy:b1"


async def test_a_routed_task_keeps_its_mark_through_the_backlog(store):
    partition = Partition(KEY, store)
    execution = WorkflowExecution(workflow_id="wf-2", run_id="r")
    await partition.add(MatchedTask("ns", execution, scheduled_event_id=1, attempt=1, routed=True))
    assert [row.data for row in await store.get_queue_tasks(KEY, 0, 10)] == [b"1|~"]
    reloaded = Partition(KEY, store)
    await reloaded.prepare()
    task = reloaded.take_for_forwarding()
    assert task is not None and task.routed and not task.pinned
