"""Shard rows: creation, acquisition by range id, and the fence that keeps a stale owner out."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from store_factories import SHARD, acquire_shard, start, timer, transfer

from hourglass.persistence.errors import ShardOwnershipLostError
from hourglass.persistence.records import ShardInfo
from hourglass.persistence.store import Store


async def test_get_or_create_shard_creates_with_range_id_zero(store: Store) -> None:
    assert await store.get_or_create_shard(3) == ShardInfo(
        3, range_id=0, transfer_ack_level=0, timer_ack_level_ms=0
    )


async def test_get_or_create_shard_returns_the_existing_row(store: Store) -> None:
    await acquire_shard(store, 3)
    await acquire_shard(store, 3)
    assert (await store.get_or_create_shard(3)).range_id == 2


async def test_concurrent_creates_agree(store: Store) -> None:
    infos = await asyncio.gather(*(store.get_or_create_shard(4) for _ in range(5)))
    assert {info.range_id for info in infos} == {0}


async def test_update_shard_writes_range_id_and_ack_levels(store: Store) -> None:
    info = await store.get_or_create_shard(SHARD)
    new = ShardInfo(SHARD, range_id=1, transfer_ack_level=40, timer_ack_level_ms=12_345)
    await store.update_shard(new, expected_range_id=info.range_id)
    assert await store.get_or_create_shard(SHARD) == new


async def test_update_shard_with_stale_range_id_is_rejected(store: Store) -> None:
    await acquire_shard(store)  # range 1
    await acquire_shard(store)  # range 2: the first owner is fenced out
    with pytest.raises(ShardOwnershipLostError) as failed:
        await store.update_shard(ShardInfo(SHARD, range_id=2, transfer_ack_level=99), expected_range_id=1)
    assert (failed.value.expected_range_id, failed.value.actual_range_id) == (1, 2)
    assert await store.get_or_create_shard(SHARD) == ShardInfo(SHARD, range_id=2)


async def test_update_of_a_missing_shard_is_rejected(store: Store) -> None:
    with pytest.raises(ShardOwnershipLostError) as failed:
        await store.update_shard(ShardInfo(9, range_id=1), expected_range_id=0)
    assert failed.value.actual_range_id is None


async def test_shards_are_independent(store: Store) -> None:
    await acquire_shard(store, 1)
    await acquire_shard(store, 1)
    await acquire_shard(store, 2)
    assert [(await store.get_or_create_shard(s)).range_id for s in (1, 2)] == [2, 1]


async def test_stale_owner_commit_is_rejected_and_leaves_nothing(store: Store) -> None:
    old_owner = await acquire_shard(store)
    new_owner = await acquire_shard(store)
    write = start("wf", "run", transfer_tasks=[transfer(10)], timer_tasks=[timer(5_000, 11)])

    with pytest.raises(ShardOwnershipLostError) as failed:
        await store.commit(SHARD, old_owner, [write])

    assert (failed.value.shard_id, failed.value.expected_range_id) == (SHARD, old_owner)
    assert failed.value.actual_range_id == new_owner
    assert await store.get_execution(SHARD, "ns-1", "wf", "run") is None
    assert await store.get_current_run(SHARD, "ns-1", "wf") is None
    assert await store.get_transfer_tasks(SHARD, 0, 1 << 62, 100) == []
    assert await store.get_timer_tasks(SHARD, 0, 1 << 62, 100) == []
    # The new owner's identical commit goes through.
    await store.commit(SHARD, new_owner, [write])
    assert (await store.get_execution(SHARD, "ns-1", "wf", "run")) == write.record


async def test_commit_to_a_shard_never_created_is_rejected(store: Store) -> None:
    with pytest.raises(ShardOwnershipLostError) as failed:
        await store.commit(SHARD, 1, [start("wf", "run")])
    assert failed.value.actual_range_id is None
    assert await store.get_execution(SHARD, "ns-1", "wf", "run") is None


async def test_fencing_is_checked_before_execution_conditions(store: Store) -> None:
    """A stale owner learns it lost the shard, not that its state is stale."""
    old_owner = await acquire_shard(store)
    await store.commit(SHARD, old_owner, [start("wf", "run")])
    await acquire_shard(store)
    with pytest.raises(ShardOwnershipLostError):
        await store.commit(SHARD, old_owner, [start("wf", "run")])  # would also fail its own conditions


async def test_acquiring_keeps_ack_levels(store: Store) -> None:
    info = await store.get_or_create_shard(SHARD)
    acked = dataclasses.replace(info, range_id=1, transfer_ack_level=7, timer_ack_level_ms=8)
    await store.update_shard(acked, expected_range_id=0)
    await acquire_shard(store)
    assert await store.get_or_create_shard(SHARD) == ShardInfo(SHARD, 2, 7, 8)
