"""Transfer and timer tasks of a shard: ordering, ranges and range deletes."""

from __future__ import annotations

import pytest
from store_factories import SHARD, acquire_shard, start, timer, transfer, update

from hourglass.persistence.store import Store

OTHER_SHARD = SHARD + 1
ALL = 1 << 62


@pytest.fixture
async def with_transfer_tasks(store: Store) -> list[int]:
    """Task ids 3, 5, 7, 9, 11 on SHARD (committed out of order across writes) and one on OTHER_SHARD."""
    range_id = await acquire_shard(store)
    await store.commit(
        SHARD,
        range_id,
        [
            start("wf-a", "run-a", transfer_tasks=[transfer(9), transfer(3)]),
            start("wf-b", "run-b", transfer_tasks=[transfer(11), transfer(5), transfer(7)]),
        ],
    )
    other = await acquire_shard(store, OTHER_SHARD)
    await store.commit(OTHER_SHARD, other, [start("wf-c", "run-c", transfer_tasks=[transfer(4)])])
    return [3, 5, 7, 9, 11]


@pytest.fixture
async def with_timer_tasks(store: Store) -> None:
    """Timers at (fire time, task id): (100, 8), (100, 9), (200, 2), (300, 1), (300, 5); one on OTHER_SHARD."""
    range_id = await acquire_shard(store)
    await store.commit(SHARD, range_id, [start("wf", "run", timer_tasks=[timer(300, 5), timer(100, 9)])])
    await store.commit(
        SHARD, range_id, [update("wf", "run", 1, timer_tasks=[timer(200, 2), timer(300, 1), timer(100, 8)])]
    )
    other = await acquire_shard(store, OTHER_SHARD)
    await store.commit(OTHER_SHARD, other, [start("wf-c", "run-c", timer_tasks=[timer(150, 3)])])


async def transfer_ids(store: Store, low: int = 0, high: int = ALL, limit: int = 100) -> list[int]:
    return [t.task_id for t in await store.get_transfer_tasks(SHARD, low, high, limit)]


async def timer_keys(store: Store, low: int = 0, high: int = ALL, limit: int = 100) -> list[tuple[int, int]]:
    return [(t.fire_time_ms, t.task_id) for t in await store.get_timer_tasks(SHARD, low, high, limit)]


async def test_transfer_tasks_come_back_whole_in_task_id_order(
    store: Store, with_transfer_tasks: list[int]
) -> None:
    tasks = await store.get_transfer_tasks(SHARD, 0, ALL, 100)
    assert tasks == [transfer(i) for i in with_transfer_tasks]


async def test_transfer_range_is_exclusive_then_inclusive(
    store: Store, with_transfer_tasks: list[int]
) -> None:
    assert await transfer_ids(store, 3, 9) == [5, 7, 9]
    assert await transfer_ids(store, 4, 8) == [5, 7]
    assert await transfer_ids(store, 11, ALL) == []


async def test_transfer_limit(store: Store, with_transfer_tasks: list[int]) -> None:
    assert await transfer_ids(store, limit=2) == [3, 5]
    assert await transfer_ids(store, 5, ALL, limit=2) == [7, 9]


async def test_transfer_range_delete(store: Store, with_transfer_tasks: list[int]) -> None:
    await store.delete_transfer_tasks(SHARD, 7)
    assert await transfer_ids(store) == [9, 11]
    assert [t.task_id for t in await store.get_transfer_tasks(OTHER_SHARD, 0, ALL, 100)] == [4]
    await store.delete_transfer_tasks(SHARD, ALL)
    assert await transfer_ids(store) == []


async def test_timer_tasks_ordered_by_fire_time_then_task_id(store: Store, with_timer_tasks: None) -> None:
    assert await timer_keys(store) == [(100, 8), (100, 9), (200, 2), (300, 1), (300, 5)]
    assert (await store.get_timer_tasks(SHARD, 0, ALL, 1)) == [timer(100, 8)]


async def test_timer_range_is_inclusive_then_exclusive(store: Store, with_timer_tasks: None) -> None:
    assert await timer_keys(store, 100, 300) == [(100, 8), (100, 9), (200, 2)]
    assert await timer_keys(store, 101, 301) == [(200, 2), (300, 1), (300, 5)]
    assert await timer_keys(store, 0, 100) == []


async def test_timer_limit(store: Store, with_timer_tasks: None) -> None:
    assert await timer_keys(store, limit=3) == [(100, 8), (100, 9), (200, 2)]


async def test_timer_range_delete_is_strictly_before(store: Store, with_timer_tasks: None) -> None:
    await store.delete_timer_tasks(SHARD, 200)
    assert await timer_keys(store) == [(200, 2), (300, 1), (300, 5)]
    assert [t.task_id for t in await store.get_timer_tasks(OTHER_SHARD, 0, ALL, 100)] == [3]


async def test_fired_timer_delete(store: Store, with_timer_tasks: None) -> None:
    await store.delete_fired_timer_tasks(SHARD, [(300, 1)])
    assert await timer_keys(store) == [(100, 8), (100, 9), (200, 2), (300, 5)]
    await store.delete_fired_timer_tasks(SHARD, [(200, 5)])  # no such timer: nothing happens
    assert await timer_keys(store) == [(100, 8), (100, 9), (200, 2), (300, 5)]
    await store.delete_fired_timer_tasks(SHARD, [])
    assert await timer_keys(store) == [(100, 8), (100, 9), (200, 2), (300, 5)]


async def test_fired_timers_deleted_together_out_of_order(store: Store, with_timer_tasks: None) -> None:
    """Several at once, not a range: a timer between them (100, 9) and one absent (200, 5) are left alone,
    and the other shard's timer is not touched."""
    await store.delete_fired_timer_tasks(SHARD, [(300, 5), (100, 8), (200, 5), (200, 2)])
    assert await timer_keys(store) == [(100, 9), (300, 1)]
    assert [t.task_id for t in await store.get_timer_tasks(OTHER_SHARD, 0, ALL, 100)] == [3]
