"""Visibility records: upsert, lookup, newest-first listing with keyset paging, delete."""

from __future__ import annotations

import dataclasses

from store_factories import NS, SHARD, acquire_shard, start

from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.store import Store

RUNNING, COMPLETED = 1, 2


def record(workflow_id: str, run_id: str, start_time_ms: int, namespace_id: str = NS) -> VisibilityRecord:
    return VisibilityRecord(
        namespace_id,
        workflow_id,
        run_id,
        workflow_type="Greet",
        task_queue="q",
        status=RUNNING,
        start_time_ms=start_time_ms,
        execution_time_ms=start_time_ms + 1,
        memo=b"memo",
        search_attributes=b"attrs",
    )


# Two pairs share a start time, so ordering falls back to run id (descending).
RECORDS = [
    record("wf-1", "run-a", 1_000),
    record("wf-2", "run-b", 3_000),
    record("wf-3", "run-c", 2_000),
    record("wf-4", "run-d", 3_000),
    record("wf-5", "run-e", 2_000),
]
NEWEST_FIRST = ["run-d", "run-b", "run-e", "run-c", "run-a"]


def runs(records: list[VisibilityRecord]) -> list[str]:
    return [r.run_id for r in records]


async def test_upserted_record_reads_back_whole(store: Store) -> None:
    await store.upsert_visibility(RECORDS[0])
    assert await store.get_visibility(NS, "wf-1", "run-a") == RECORDS[0]
    assert await store.get_visibility(NS, "wf-1", "run-z") is None


async def test_upsert_replaces_the_record(store: Store) -> None:
    await store.upsert_visibility(RECORDS[0])
    closed = dataclasses.replace(RECORDS[0], status=COMPLETED, close_time_ms=5_000, history_length=11)
    await store.upsert_visibility(closed)
    assert await store.get_visibility(NS, "wf-1", "run-a") == closed
    assert await store.list_visibility(NS, 10) == [closed]


async def test_list_is_newest_first_with_ties_by_run_id(store: Store) -> None:
    for r in RECORDS:
        await store.upsert_visibility(r)
    assert runs(await store.list_visibility(NS, 10)) == NEWEST_FIRST


async def test_keyset_paging_visits_every_record_once(store: Store) -> None:
    for r in RECORDS:
        await store.upsert_visibility(r)
    pages: list[list[str]] = []
    after = None
    while True:
        page = await store.list_visibility(NS, 2, after)
        if not page:
            break
        pages.append(runs(page))
        after = (page[-1].start_time_ms, page[-1].run_id)
    assert pages == [["run-d", "run-b"], ["run-e", "run-c"], ["run-a"]]


async def test_list_only_shows_the_namespace(store: Store) -> None:
    await store.upsert_visibility(RECORDS[0])
    await store.upsert_visibility(record("wf-9", "run-9", 9_000, namespace_id="ns-other"))
    assert await store.list_visibility(NS, 10) == [RECORDS[0]]
    assert runs(await store.list_visibility("ns-other", 10)) == ["run-9"]
    assert await store.list_visibility("ns-empty", 10) == []


async def test_delete_visibility(store: Store) -> None:
    for r in RECORDS[:2]:
        await store.upsert_visibility(r)
    await store.delete_visibility(NS, "wf-1", "run-a")
    assert await store.get_visibility(NS, "wf-1", "run-a") is None
    assert runs(await store.list_visibility(NS, 10)) == ["run-b"]


async def test_a_changed_start_time_moves_the_record(store: Store) -> None:
    await store.upsert_visibility(RECORDS[0])
    moved = dataclasses.replace(RECORDS[0], start_time_ms=400_000_000)  # another day too
    await store.upsert_visibility(moved)
    assert await store.get_visibility(NS, "wf-1", "run-a") == moved
    assert await store.list_visibility(NS, 10) == [moved]


async def test_a_record_with_a_large_memo_reads_back_whole(store: Store) -> None:
    """On Cassandra a small upsert is one UNLOGGED batch; one above the batch size warning goes as
    separate writes: both read back the same."""
    large = dataclasses.replace(RECORDS[1], memo=b"m" * 20_000, search_attributes=b"s" * 3_000)
    await store.upsert_visibility(RECORDS[0])
    await store.upsert_visibility(large)
    assert await store.get_visibility(NS, "wf-1", "run-a") == RECORDS[0]
    assert await store.get_visibility(NS, "wf-2", "run-b") == large
    assert runs(await store.list_visibility(NS, 10)) == ["run-b", "run-a"]


async def test_a_deleted_record_upserted_again_is_back(store: Store) -> None:
    await store.upsert_visibility(RECORDS[0])
    await store.delete_visibility(NS, "wf-1", "run-a")
    await store.upsert_visibility(RECORDS[0])
    assert await store.get_visibility(NS, "wf-1", "run-a") == RECORDS[0]
    await store.delete_visibility(NS, "wf-1", "run-a")
    assert await store.list_visibility(NS, 10) == []


async def test_a_run_created_by_the_store_is_listed_once_as_its_start_time_changes(store: Store) -> None:
    """The store created the run (Cassandra then upserts its visibility without reading it first): its
    first record is listed, and a later start time still moves it rather than adding a second one."""
    shard = await acquire_shard(store)
    await store.commit(SHARD, shard, [start("wf-1", "run-a")])
    await store.upsert_visibility(RECORDS[0])
    assert await store.list_visibility(NS, 10) == [RECORDS[0]]
    moved = dataclasses.replace(RECORDS[0], start_time_ms=400_000_000)
    await store.upsert_visibility(moved)
    assert await store.get_visibility(NS, "wf-1", "run-a") == moved
    assert await store.list_visibility(NS, 10) == [moved]
