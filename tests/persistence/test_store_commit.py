"""commit(): per-execution conditions, current-run pointer modes, and all-or-nothing batches."""

from __future__ import annotations

import dataclasses

import pytest
from store_factories import (
    NS,
    SHARD,
    WORKFLOW_COMPLETED,
    acquire_shard,
    close,
    current_run,
    execution,
    start,
    timer,
    transfer,
    update,
)

from hourglass.persistence.errors import ConditionFailedError, UnencodableWriteError
from hourglass.persistence.records import CurrentRunMode, CurrentRunWrite, ExecutionWrite, RunStatus
from hourglass.persistence.store import Store

ALREADY_EXISTS = ConditionFailedError.ALREADY_EXISTS
VERSION_MISMATCH = ConditionFailedError.VERSION_MISMATCH
CURRENT_RUN_MISMATCH = ConditionFailedError.CURRENT_RUN_MISMATCH
ALL = 1 << 62


@pytest.fixture
async def range_id(store: Store) -> int:
    return await acquire_shard(store)


async def failures_of(store: Store, range_id: int, writes: list[ExecutionWrite]) -> dict[int, str]:
    with pytest.raises(ConditionFailedError) as failed:
        await store.commit(SHARD, range_id, writes)
    return failed.value.failures


async def test_new_run_writes_row_pointer_and_tasks(store: Store, range_id: int) -> None:
    write = start("wf", "run", transfer_tasks=[transfer(1)], timer_tasks=[timer(500, 2)])
    await store.commit(SHARD, range_id, [write])

    assert await store.get_execution(SHARD, NS, "wf", "run") == write.record
    pointer = await store.get_current_run(SHARD, NS, "wf")
    assert pointer == current_run("wf", "run")
    assert pointer is not None and pointer.status is RunStatus.RUNNING
    assert await store.get_transfer_tasks(SHARD, 0, ALL, 10) == [transfer(1)]
    assert await store.get_timer_tasks(SHARD, 0, ALL, 10) == [timer(500, 2)]


async def test_missing_rows_read_as_none(store: Store) -> None:
    assert await store.get_execution(SHARD, NS, "wf", "run") is None
    assert await store.get_current_run(SHARD, NS, "wf") is None


async def test_rows_belong_to_their_shard(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    assert await store.get_execution(SHARD + 1, NS, "wf", "run") is None
    assert await store.get_current_run(SHARD + 1, NS, "wf") is None


async def test_update_with_the_stored_version_applies(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    await store.commit(SHARD, range_id, [update("wf", "run", expected=1)])
    await store.commit(SHARD, range_id, [update("wf", "run", expected=2)])
    assert await store.get_execution(SHARD, NS, "wf", "run") == execution("wf", "run", version=3)


async def test_update_with_a_stale_version_is_rejected(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    await store.commit(SHARD, range_id, [update("wf", "run", expected=1)])

    stale = update("wf", "run", expected=1, transfer_tasks=[transfer(5)])
    assert await failures_of(store, range_id, [stale]) == {0: VERSION_MISMATCH}
    assert await store.get_execution(SHARD, NS, "wf", "run") == execution("wf", "run", version=2)
    assert await store.get_transfer_tasks(SHARD, 0, ALL, 10) == []


async def test_update_of_a_missing_run_is_rejected(store: Store, range_id: int) -> None:
    assert await failures_of(store, range_id, [update("wf", "run", expected=1)]) == {0: VERSION_MISMATCH}
    assert await store.get_execution(SHARD, NS, "wf", "run") is None


async def test_new_run_over_an_existing_row_is_rejected(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    again = dataclasses.replace(start("wf", "run"), current_run=None)
    assert await failures_of(store, range_id, [again]) == {0: ALREADY_EXISTS}


async def test_one_bad_write_fails_the_batch_and_names_only_itself(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf-b", "run-b")])
    good_a = start("wf-a", "run-a", transfer_tasks=[transfer(10, "wf-a", "run-a")])
    bad = update("wf-b", "run-b", expected=5, timer_tasks=[timer(100, 11, "wf-b", "run-b")])
    good_c = start("wf-c", "run-c", timer_tasks=[timer(200, 12, "wf-c", "run-c")])

    assert await failures_of(store, range_id, [good_a, bad, good_c]) == {1: VERSION_MISMATCH}

    for wf, run in (("wf-a", "run-a"), ("wf-c", "run-c")):
        assert await store.get_execution(SHARD, NS, wf, run) is None
        assert await store.get_current_run(SHARD, NS, wf) is None
    assert await store.get_execution(SHARD, NS, "wf-b", "run-b") == execution("wf-b", "run-b", version=1)
    assert await store.get_transfer_tasks(SHARD, 0, ALL, 10) == []
    assert await store.get_timer_tasks(SHARD, 0, ALL, 10) == []

    await store.commit(SHARD, range_id, [good_a, good_c])
    assert await store.get_execution(SHARD, NS, "wf-a", "run-a") == good_a.record
    assert await store.get_execution(SHARD, NS, "wf-c", "run-c") == good_c.record
    assert [t.task_id for t in await store.get_transfer_tasks(SHARD, 0, ALL, 10)] == [10]
    assert [t.task_id for t in await store.get_timer_tasks(SHARD, 0, ALL, 10)] == [12]


async def test_every_failing_write_is_named(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf-a", "run-a"), start("wf-b", "run-b")])
    writes = [
        start("wf-a", "run-a2"),  # pointer exists
        update("wf-b", "run-b", expected=1),  # fine
        update("wf-c", "run-c", expected=1),  # no such run
    ]
    assert await failures_of(store, range_id, writes) == {0: ALREADY_EXISTS, 2: VERSION_MISMATCH}
    assert await store.get_execution(SHARD, NS, "wf-b", "run-b") == execution("wf-b", "run-b", version=1)


async def test_create_of_an_existing_workflow_id_is_rejected(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    assert await failures_of(store, range_id, [start("wf", "run-2")]) == {0: ALREADY_EXISTS}
    assert (await store.get_current_run(SHARD, NS, "wf")) == current_run("wf", "run-1")
    assert await store.get_execution(SHARD, NS, "wf", "run-2") is None


async def test_replace_moves_the_pointer_to_the_new_run(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    await store.commit(SHARD, range_id, [close("wf", "run-1", expected=1)])
    await store.commit(SHARD, range_id, [start("wf", "run-2", replaces="run-1")])

    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-2")
    assert await store.get_execution(SHARD, NS, "wf", "run-1") == execution("wf", "run-1", version=2)
    assert await store.get_execution(SHARD, NS, "wf", "run-2") == execution("wf", "run-2", version=1)


async def test_replace_naming_the_wrong_previous_run_is_rejected(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    assert await failures_of(store, range_id, [start("wf", "run-3", replaces="run-0")]) == {
        0: CURRENT_RUN_MISMATCH
    }
    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-1")
    assert await store.get_execution(SHARD, NS, "wf", "run-3") is None


async def test_replace_without_a_pointer_is_rejected(store: Store, range_id: int) -> None:
    assert await failures_of(store, range_id, [start("wf", "run-2", replaces="run-1")]) == {
        0: CURRENT_RUN_MISMATCH
    }
    assert await store.get_current_run(SHARD, NS, "wf") is None


async def test_update_records_the_closed_status(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    await store.commit(SHARD, range_id, [close("wf", "run-1", expected=1)])

    pointer = await store.get_current_run(SHARD, NS, "wf")
    assert pointer == current_run("wf", "run-1", RunStatus.CLOSED, WORKFLOW_COMPLETED)
    assert pointer is not None and pointer.status is RunStatus.CLOSED and pointer.close_time_ms == 2_000


async def test_update_of_a_run_that_is_no_longer_current_is_rejected(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    await store.commit(SHARD, range_id, [close("wf", "run-1", expected=1)])
    await store.commit(SHARD, range_id, [start("wf", "run-2", replaces="run-1")])

    assert await failures_of(store, range_id, [close("wf", "run-1", expected=2)]) == {0: CURRENT_RUN_MISMATCH}
    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-2")
    assert await store.get_execution(SHARD, NS, "wf", "run-1") == execution("wf", "run-1", version=2)


async def test_update_without_a_pointer_is_rejected(store: Store, range_id: int) -> None:
    no_pointer = dataclasses.replace(start("wf", "run"), current_run=None)
    await store.commit(SHARD, range_id, [no_pointer])
    assert await failures_of(store, range_id, [close("wf", "run", expected=1)]) == {0: CURRENT_RUN_MISMATCH}


async def test_terminate_and_replace_in_one_batch(store: Store, range_id: int) -> None:
    """A start that terminates the running run commits both runs together (conflict policy TERMINATE)."""
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    terminate_old = update("wf", "run-1", expected=1)
    await store.commit(SHARD, range_id, [terminate_old, start("wf", "run-2", replaces="run-1")])
    assert await store.get_execution(SHARD, NS, "wf", "run-1") == execution("wf", "run-1", version=2)
    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-2")


async def test_two_creates_of_one_workflow_id_in_a_batch(store: Store, range_id: int) -> None:
    """Both would pass against the state before the batch; the second must not silently win."""
    first, second = start("wf", "run-1"), start("wf", "run-2")
    assert await failures_of(store, range_id, [first, second]) == {1: ALREADY_EXISTS}
    assert await store.get_current_run(SHARD, NS, "wf") is None
    await store.commit(SHARD, range_id, [first])
    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-1")


async def test_two_writes_of_one_run_in_a_batch(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    writes = [update("wf", "run", expected=1), update("wf", "run", expected=1)]
    assert await failures_of(store, range_id, writes) == {1: VERSION_MISMATCH}
    assert await store.get_execution(SHARD, NS, "wf", "run") == execution("wf", "run", version=1)


async def test_pointer_naming_another_run_is_a_caller_error(store: Store, range_id: int) -> None:
    wrong = dataclasses.replace(
        start("wf", "run-1"), current_run=CurrentRunWrite(CurrentRunMode.CREATE, current_run("wf", "run-2"))
    )
    with pytest.raises(ValueError):
        await store.commit(SHARD, range_id, [wrong])
    assert await store.get_current_run(SHARD, NS, "wf") is None


async def test_empty_batch_only_checks_the_fence(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [])


async def test_delete_execution_removes_the_row_and_its_pointer(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run")])
    await store.delete_execution(SHARD, NS, "wf", "run")
    assert await store.get_execution(SHARD, NS, "wf", "run") is None
    assert await store.get_current_run(SHARD, NS, "wf") is None
    # The workflow id is free again.
    await store.commit(SHARD, range_id, [start("wf", "run-new")])


async def test_delete_execution_keeps_a_pointer_to_another_run(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf", "run-1")])
    await store.commit(SHARD, range_id, [close("wf", "run-1", expected=1)])
    await store.commit(SHARD, range_id, [start("wf", "run-2", replaces="run-1")])
    await store.delete_execution(SHARD, NS, "wf", "run-1")
    assert await store.get_execution(SHARD, NS, "wf", "run-1") is None
    assert await store.get_current_run(SHARD, NS, "wf") == current_run("wf", "run-2")
    assert await store.get_execution(SHARD, NS, "wf", "run-2") is not None


async def test_delete_of_a_missing_execution_is_harmless(store: Store) -> None:
    await store.delete_execution(SHARD, NS, "wf", "nope")


async def test_a_value_no_column_holds_fails_the_batch_as_unencodable(store: Store, range_id: int) -> None:
    """A fire time beyond 64 bits (from a client's huge timeout) is refused before anything is written,
    as UnencodableWriteError: the shard knows nothing landed and need not fence."""
    huge = start("wf", "run", timer_tasks=[timer(2**64, 2)])
    with pytest.raises(UnencodableWriteError):
        await store.commit(SHARD, range_id, [start("other", "run"), huge])
    assert await store.get_execution(SHARD, NS, "other", "run") is None
    assert await store.get_execution(SHARD, NS, "wf", "run") is None
    assert await store.get_timer_tasks(SHARD, 0, ALL, 10) == []
    await store.commit(SHARD, range_id, [start("wf", "run")])  # the shard is still this node's
