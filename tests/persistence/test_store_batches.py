"""Batch operation rows: create, conditional replace, listing, fenced by the shard's range id."""

from __future__ import annotations

import pytest
from store_factories import SHARD, acquire_shard

from hourglass.persistence.errors import ConditionFailedError, ShardOwnershipLostError
from hourglass.persistence.records import BatchRecord
from hourglass.persistence.store import Store


def batch(job_id: str = "job-1", version: int = 1, state: bytes = b"{}", ns: str = "ns") -> BatchRecord:
    return BatchRecord(namespace_id=ns, job_id=job_id, state=state, version=version)


async def test_create_then_read(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_batch(SHARD, range_id, batch(state=b"state-1"), expected_version=None)
    assert await store.get_batch(SHARD, "ns", "job-1") == batch(state=b"state-1")
    assert await store.get_batch(SHARD, "ns", "other") is None
    assert await store.get_batch(SHARD + 1, "ns", "job-1") is None


async def test_create_twice_is_already_exists(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_batch(SHARD, range_id, batch(), expected_version=None)
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_batch(SHARD, range_id, batch(state=b"x"), expected_version=None)
    assert failed.value.failures == {0: ConditionFailedError.ALREADY_EXISTS}
    assert (await store.get_batch(SHARD, "ns", "job-1")).state == b"{}"


async def test_replace_is_conditional_on_the_version(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_batch(SHARD, range_id, batch(), expected_version=None)
    await store.write_batch(SHARD, range_id, batch(version=2, state=b"v2"), expected_version=1)
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_batch(SHARD, range_id, batch(version=2, state=b"stale"), expected_version=1)
    assert failed.value.failures == {0: ConditionFailedError.VERSION_MISMATCH}
    assert await store.get_batch(SHARD, "ns", "job-1") == batch(version=2, state=b"v2")
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_batch(SHARD, range_id, batch("missing", version=2), expected_version=1)
    assert failed.value.failures == {0: ConditionFailedError.VERSION_MISMATCH}


async def test_writes_are_fenced_by_the_range_id(store: Store) -> None:
    old_range = await acquire_shard(store, SHARD)
    await store.write_batch(SHARD, old_range, batch(), expected_version=None)
    new_range = await acquire_shard(store, SHARD)
    with pytest.raises(ShardOwnershipLostError):
        await store.write_batch(SHARD, old_range, batch(version=2), expected_version=1)
    with pytest.raises(ShardOwnershipLostError):
        await store.write_batch(SHARD, old_range, batch("job-2"), expected_version=None)
    assert await store.get_batch(SHARD, "ns", "job-1") == batch()
    await store.write_batch(SHARD, new_range, batch(version=2), expected_version=1)
    assert await store.get_batch(SHARD, "ns", "job-2") is None


async def test_list_by_shard_and_namespace(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    other = await acquire_shard(store, SHARD + 1)
    await store.write_batch(SHARD, range_id, batch("b"), expected_version=None)
    await store.write_batch(SHARD, range_id, batch("a"), expected_version=None)
    await store.write_batch(SHARD, range_id, batch("c", ns="other-ns"), expected_version=None)
    await store.write_batch(SHARD + 1, other, batch("z"), expected_version=None)
    assert [(r.namespace_id, r.job_id) for r in await store.list_batches(SHARD)] == [
        ("ns", "a"),
        ("ns", "b"),
        ("other-ns", "c"),
    ]
    assert [r.job_id for r in await store.list_batches(SHARD, "ns")] == ["a", "b"]
    assert [r.job_id for r in await store.list_batches(SHARD + 1, "ns")] == ["z"]
    assert await store.list_batches(SHARD + 2) == []


async def test_batches_and_schedules_do_not_see_each_other(store: Store) -> None:
    """Both are rows of the shard (a separate row kind on Cassandra): one never reads as the other."""
    range_id = await acquire_shard(store, SHARD)
    await store.write_batch(SHARD, range_id, batch("same-id"), expected_version=None)
    assert await store.get_schedule(SHARD, "ns", "same-id") is None
    assert await store.list_schedules(SHARD) == []
