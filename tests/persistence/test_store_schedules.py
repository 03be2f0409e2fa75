"""Schedule rows: create, conditional replace and delete, fenced by the shard's range id like a transition."""

from __future__ import annotations

import pytest
from store_factories import SHARD, acquire_shard

from hourglass.persistence.errors import ConditionFailedError, ShardOwnershipLostError
from hourglass.persistence.records import ScheduleRecord
from hourglass.persistence.store import Store


def schedule(
    schedule_id: str = "s1", version: int = 1, state: bytes = b"{}", ns: str = "ns"
) -> ScheduleRecord:
    return ScheduleRecord(namespace_id=ns, schedule_id=schedule_id, state=state, version=version)


async def test_create_then_read(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, range_id, schedule(state=b"state-1"), expected_version=None)
    assert await store.get_schedule(SHARD, "ns", "s1") == schedule(state=b"state-1")
    assert await store.get_schedule(SHARD, "ns", "other") is None
    assert await store.get_schedule(SHARD + 1, "ns", "s1") is None


async def test_create_twice_is_already_exists(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, range_id, schedule(), expected_version=None)
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_schedule(SHARD, range_id, schedule(state=b"x"), expected_version=None)
    assert failed.value.failures == {0: ConditionFailedError.ALREADY_EXISTS}
    assert (await store.get_schedule(SHARD, "ns", "s1")).state == b"{}"


async def test_replace_is_conditional_on_the_version(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, range_id, schedule(), expected_version=None)
    await store.write_schedule(SHARD, range_id, schedule(version=2, state=b"v2"), expected_version=1)
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_schedule(SHARD, range_id, schedule(version=2, state=b"stale"), expected_version=1)
    assert failed.value.failures == {0: ConditionFailedError.VERSION_MISMATCH}
    assert await store.get_schedule(SHARD, "ns", "s1") == schedule(version=2, state=b"v2")


async def test_replace_of_a_missing_row_is_a_version_mismatch(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    with pytest.raises(ConditionFailedError) as failed:
        await store.write_schedule(SHARD, range_id, schedule(version=2), expected_version=1)
    assert failed.value.failures == {0: ConditionFailedError.VERSION_MISMATCH}
    assert await store.get_schedule(SHARD, "ns", "s1") is None


async def test_writes_are_fenced_by_the_range_id(store: Store) -> None:
    old_range = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, old_range, schedule(), expected_version=None)
    new_range = await acquire_shard(store, SHARD)
    with pytest.raises(ShardOwnershipLostError):
        await store.write_schedule(SHARD, old_range, schedule(version=2), expected_version=1)
    with pytest.raises(ShardOwnershipLostError):
        await store.write_schedule(SHARD, old_range, schedule("s2"), expected_version=None)
    with pytest.raises(ShardOwnershipLostError):
        await store.delete_schedule(SHARD, old_range, "ns", "s1", expected_version=1)
    assert await store.get_schedule(SHARD, "ns", "s1") == schedule()
    await store.write_schedule(SHARD, new_range, schedule(version=2), expected_version=1)


async def test_delete_is_conditional_on_the_version(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, range_id, schedule(), expected_version=None)
    with pytest.raises(ConditionFailedError):
        await store.delete_schedule(SHARD, range_id, "ns", "s1", expected_version=5)
    await store.delete_schedule(SHARD, range_id, "ns", "s1", expected_version=1)
    assert await store.get_schedule(SHARD, "ns", "s1") is None
    with pytest.raises(ConditionFailedError):
        await store.delete_schedule(SHARD, range_id, "ns", "s1", expected_version=1)
    # The id can be used again once deleted.
    await store.write_schedule(SHARD, range_id, schedule(state=b"again"), expected_version=None)
    assert (await store.get_schedule(SHARD, "ns", "s1")).state == b"again"


async def test_list_by_shard_and_namespace(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    other_range = await acquire_shard(store, SHARD + 1)
    for ns, sid in [("ns-b", "b"), ("ns-a", "z"), ("ns-a", "a")]:
        await store.write_schedule(SHARD, range_id, schedule(sid, ns=ns), expected_version=None)
    await store.write_schedule(
        SHARD + 1, other_range, schedule("elsewhere", ns="ns-a"), expected_version=None
    )
    listed = await store.list_schedules(SHARD)
    assert [(r.namespace_id, r.schedule_id) for r in listed] == [("ns-a", "a"), ("ns-a", "z"), ("ns-b", "b")]
    assert [r.schedule_id for r in await store.list_schedules(SHARD, "ns-a")] == ["a", "z"]
    assert await store.list_schedules(SHARD, "ns-none") == []


async def test_schedules_do_not_disturb_the_shard_queues(store: Store) -> None:
    range_id = await acquire_shard(store, SHARD)
    await store.write_schedule(SHARD, range_id, schedule(), expected_version=None)
    assert await store.get_transfer_tasks(SHARD, 0, 2**62, 100) == []
    assert await store.get_timer_tasks(SHARD, 0, 2**62, 100) == []
    assert await store.get_execution(SHARD, "ns", "s1", "") is None
    assert await store.get_current_run(SHARD, "ns", "s1") is None
