"""Task queue configuration (UpdateTaskQueueConfig): one versioned blob per (namespace, queue, task type)."""

from __future__ import annotations

import pytest

from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.store import Store

ACTIVITY = 2
WORKFLOW = 1


async def test_a_queue_without_config_reads_as_none(store: Store) -> None:
    assert await store.get_task_queue_config("ns", "q", ACTIVITY) is None


async def test_configs_are_versioned_per_queue_and_type(store: Store) -> None:
    await store.write_task_queue_config("ns", "q", ACTIVITY, b"first", expected_version=0)
    assert await store.get_task_queue_config("ns", "q", ACTIVITY) == (b"first", 1)
    await store.write_task_queue_config("ns", "q", ACTIVITY, b"second", expected_version=1)
    assert await store.get_task_queue_config("ns", "q", ACTIVITY) == (b"second", 2)
    assert await store.get_task_queue_config("ns", "q", WORKFLOW) is None
    assert await store.get_task_queue_config("other", "q", ACTIVITY) is None


async def test_a_stale_version_is_rejected(store: Store) -> None:
    await store.write_task_queue_config("ns", "q", ACTIVITY, b"first", expected_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_task_queue_config("ns", "q", ACTIVITY, b"lost", expected_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_task_queue_config("ns", "q", ACTIVITY, b"lost", expected_version=5)
    assert await store.get_task_queue_config("ns", "q", ACTIVITY) == (b"first", 1)
