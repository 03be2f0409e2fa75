"""SQLite on a file: what commit() returned for survives a close, a reopen and a kill -9."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest
from store_factories import NS, SHARD, acquire_shard, start, timer, transfer

from hourglass.persistence.errors import StoreUnavailableError
from hourglass.persistence.records import (
    ClusterMetadata,
    HistoryNode,
    NamespaceRecord,
    QueueTask,
    ShardInfo,
    TaskQueueInfo,
    TaskQueueKey,
    VisibilityRecord,
)
from hourglass.persistence.sqlite.store import SQLiteStore

ALL = 1 << 62
QUEUE = TaskQueueKey(NS, "q", task_type=1)
NODE = HistoryNode(NS, "wf", "run", node_id=1, txn_id=10, events=b"events", last_event_id=2)
NAMESPACE = NamespaceRecord("id-default", "default", b"info", notification_version=1)
VISIBILITY = VisibilityRecord(NS, "wf", "run", "Greet", "q", status=1, start_time_ms=1_000)
QUEUE_TASK = QueueTask(5, NS, "wf", "run", scheduled_event_id=2)
WRITE = start("wf", "run", transfer_tasks=[transfer(3)], timer_tasks=[timer(9_000, 4)])


async def test_everything_committed_is_there_after_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "hourglass.db")
    store = await SQLiteStore.open(path)
    await store.init_cluster_metadata(ClusterMetadata("dev", 4))
    range_id = await acquire_shard(store)
    await store.commit(SHARD, range_id, [WRITE])
    await store.append_history_node(NODE)
    lease = await store.lease_task_queue(QUEUE)
    await store.create_queue_tasks(QUEUE, lease.range_id, [QUEUE_TASK])
    await store.update_task_queue(dataclasses.replace(lease, ack_level=4))
    await store.create_namespace(NAMESPACE)
    await store.upsert_visibility(VISIBILITY)
    await store.close()

    reopened = await SQLiteStore.open(path)
    try:
        assert await reopened.init_cluster_metadata(ClusterMetadata("x", 1)) == ClusterMetadata("dev", 4)
        assert await reopened.get_or_create_shard(SHARD) == ShardInfo(SHARD, range_id)
        assert await reopened.get_execution(SHARD, NS, "wf", "run") == WRITE.record
        assert await reopened.get_current_run(SHARD, NS, "wf") == WRITE.current_run.record  # type: ignore[union-attr]
        assert await reopened.get_transfer_tasks(SHARD, 0, ALL, 10) == WRITE.transfer_tasks
        assert await reopened.get_timer_tasks(SHARD, 0, ALL, 10) == WRITE.timer_tasks
        assert await reopened.read_history_nodes(NS, "wf", "run", 1, 10, 10) == [NODE]
        assert await reopened.list_task_queues() == [TaskQueueInfo(QUEUE, lease.range_id, 4)]
        assert await reopened.get_queue_tasks(QUEUE, 0, 10) == [QUEUE_TASK]
        assert await reopened.get_namespace_by_name("default") == NAMESPACE
        assert await reopened.get_visibility(NS, "wf", "run") == VISIBILITY
    finally:
        await reopened.close()


async def test_a_killed_server_loses_nothing_it_committed(tmp_path: Path) -> None:
    """The writer is SIGKILLed right after commit() returns: no close, no checkpoint."""
    path = str(tmp_path / "killed.db")
    writer = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from hourglass.persistence.records import ExecutionRecord, ExecutionWrite, ShardInfo
        from hourglass.persistence.sqlite.store import SQLiteStore

        async def main():
            store = await SQLiteStore.open({path!r})
            await store.get_or_create_shard(1)
            await store.update_shard(ShardInfo(1, range_id=1), expected_range_id=0)
            for version in range(1, 51):
                record = ExecutionRecord("ns", "wf", "run", b"state %d" % version, version)
                await store.commit(1, 1, [ExecutionWrite(record, None if version == 1 else version - 1)])
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", writer)
    assert await process.wait() == -signal.SIGKILL

    store = await SQLiteStore.open(path)
    try:
        record = await store.get_execution(1, "ns", "wf", "run")
        assert record is not None and (record.db_record_version, record.state) == (50, b"state 50")
    finally:
        await store.close()


async def test_file_database_uses_write_ahead_logging(tmp_path: Path) -> None:
    """WAL is a property of the file: any other connection sees it."""
    path = tmp_path / "wal.db"
    store = await SQLiteStore.open(str(path))
    await store.close()
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_in_memory_stores_are_separate() -> None:
    first, second = await SQLiteStore.open(None), await SQLiteStore.open(":memory:")
    try:
        await first.create_namespace(NAMESPACE)
        assert await second.get_namespace_by_name("default") is None
    finally:
        await first.close()
        await second.close()


async def test_an_unopenable_path_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="no-such-dir"):
        await SQLiteStore.open(str(tmp_path / "no-such-dir" / "db.sqlite"))
