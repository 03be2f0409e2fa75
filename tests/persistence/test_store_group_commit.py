"""Group commit (persistence/group_commit.py) on every store: concurrent commits of one shard share batches,
and each commit still gets exactly the outcome it would have had alone."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from store_factories import NS, SHARD, acquire_shard, execution, start, timer, transfer, update

from hourglass.persistence.errors import (
    ConditionFailedError,
    ShardOwnershipLostError,
    StoreUnavailableError,
    UnencodableWriteError,
)
from hourglass.persistence.group_commit import GroupCommitter
from hourglass.persistence.records import ExecutionWrite, HistoryNode
from hourglass.persistence.store import Store

ALL = 1 << 62


class BatchLog:
    """Delegates to the real store and records the size of every batch sent (applied or not), so a test
    can see how commits were grouped. `gate`, when set, holds each batch until it is opened."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.batches: list[int] = []
        self.sent = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.lose_next_reply = False  # the next batch is applied, then its reply "times out"
        self.order: list[str] = []  # "append N" and "batch N", as sent
        self.appends: list[int] = []  # nodes per history append
        self.append_gate: asyncio.Event | None = None
        self.fail_next_append = False  # the next history append fails before reaching the store

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        self.appends.append(len(nodes))
        self.order.append(f"append {len(nodes)}")
        self.sent.set()
        if self.append_gate is not None:
            await self.append_gate.wait()
        if self.fail_next_append:
            self.fail_next_append = False
            raise StoreUnavailableError("cassandra: batch: OperationTimedOut")
        return await self._inner.append_history_nodes(nodes)

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        self.order.append(f"batch {len(writes)}")
        self.batches.append(len(writes))
        self.sent.set()
        if self.gate is not None:
            await self.gate.wait()
        await self._inner.commit(shard_id, range_id, writes)
        if self.lose_next_reply:
            self.lose_next_reply = False
            raise StoreUnavailableError("conditional write outcome unknown (it may have been applied)")

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@pytest.fixture
async def range_id(store: Store) -> int:
    return await acquire_shard(store)


def committer(log: BatchLog, range_id: int, **caps: float) -> GroupCommitter:
    """One batch in flight unless a test says otherwise: the grouping each test expects is then exact."""
    caps.setdefault("max_in_flight", 1)
    return GroupCommitter(log, SHARD, lambda: range_id, **caps)  # type: ignore[arg-type]


async def outcomes(group: GroupCommitter, requests: list[list[ExecutionWrite]]) -> list[BaseException | None]:
    return await asyncio.gather(*(group.commit(writes) for writes in requests), return_exceptions=True)


async def test_commits_ready_together_go_as_one_batch(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    group = committer(log, range_id)
    requests = [
        [start(f"wf-{i}", f"run-{i}", transfer_tasks=[transfer(100 + i, f"wf-{i}", f"run-{i}")])]
        for i in range(10)
    ]

    assert await outcomes(group, requests) == [None] * 10

    assert log.batches == [10]
    for i in range(10):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") == execution(f"wf-{i}", f"run-{i}")
    assert [t.task_id for t in await store.get_transfer_tasks(SHARD, 0, ALL, 100)] == list(range(100, 110))


async def test_the_first_commit_goes_at_once_and_later_ones_form_the_next_group(
    store: Store, range_id: int
) -> None:
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")]))
    await asyncio.wait_for(log.sent.wait(), 5)
    assert log.batches == [1]  # sent alone, without waiting for company
    later = [asyncio.create_task(group.commit([start(f"wf-{i}", f"run-{i}")])) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    assert log.batches == [1]  # they wait for the batch in flight
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 10)

    assert log.batches == [1, 5]
    for i in range(6):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None


async def test_with_two_batches_in_flight_the_third_commit_waits_for_one(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id, max_in_flight=2)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(group.commit([start("wf-1", "run-1")]))
    await asyncio.sleep(0.01)
    assert log.batches == [1, 1]  # pipelined: the second did not wait for the first
    later = [asyncio.create_task(group.commit([start(f"wf-{i}", f"run-{i}")])) for i in range(2, 5)]
    await asyncio.sleep(0.01)
    assert log.batches == [1, 1]
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second, *later), 10)

    assert log.batches == [1, 1, 3]
    for i in range(5):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None


async def test_a_failed_condition_fails_only_its_commit_and_the_others_land(
    store: Store, range_id: int
) -> None:
    await store.commit(SHARD, range_id, [start("wf-b", "run-b"), start("wf-d", "run-d")])
    log = BatchLog(store)
    group = committer(log, range_id)
    stale = update("wf-b", "run-b", expected=7)
    requests = [
        [start("wf-a", "run-a")],
        [stale],
        [start("wf-c", "run-c"), update("wf-d", "run-d", expected=1)],
    ]

    results = await outcomes(group, requests)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ConditionFailedError)
    assert results[1].failures == {0: ConditionFailedError.VERSION_MISMATCH}
    assert log.batches == [4, 3]  # the group, then the innocent ones again without the stale write
    assert await store.get_execution(SHARD, NS, "wf-a", "run-a") == execution("wf-a", "run-a")
    assert await store.get_execution(SHARD, NS, "wf-c", "run-c") == execution("wf-c", "run-c")
    assert await store.get_execution(SHARD, NS, "wf-d", "run-d") == execution("wf-d", "run-d", version=2)
    assert await store.get_execution(SHARD, NS, "wf-b", "run-b") == execution("wf-b", "run-b", version=1)


async def test_failures_are_named_by_the_index_within_each_commit(store: Store, range_id: int) -> None:
    await store.commit(SHARD, range_id, [start("wf-x", "run-x")])
    group = committer(BatchLog(store), range_id)
    requests = [[start("wf-a", "run-a")], [start("wf-b", "run-b"), start("wf-x", "run-x2")]]

    results = await outcomes(group, requests)

    assert results[0] is None
    assert isinstance(results[1], ConditionFailedError)
    assert results[1].failures == {1: ConditionFailedError.ALREADY_EXISTS}
    assert await store.get_execution(SHARD, NS, "wf-b", "run-b") is None  # a commit is all or nothing


async def test_two_commits_of_one_workflow_id_in_a_group_one_wins(store: Store, range_id: int) -> None:
    group = committer(BatchLog(store), range_id)

    results = await outcomes(
        group, [[start("wf", "run-1")], [start("wf", "run-2")], [start("wf-o", "run-o")]]
    )

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ConditionFailedError)
    assert results[1].failures == {0: ConditionFailedError.ALREADY_EXISTS}
    pointer = await store.get_current_run(SHARD, NS, "wf")
    assert pointer is not None and pointer.run_id == "run-1"


async def test_a_moved_fence_fails_every_commit_of_the_group(store: Store, range_id: int) -> None:
    await acquire_shard(store)  # another owner took the shard
    log = BatchLog(store)
    group = committer(log, range_id)

    results = await outcomes(group, [[start(f"wf-{i}", f"run-{i}")] for i in range(4)])

    assert all(isinstance(r, ShardOwnershipLostError) for r in results), results
    assert log.batches == [4]
    for i in range(4):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is None


async def test_an_unknown_outcome_reaches_every_commit_of_the_group(store: Store, range_id: int) -> None:
    """A timed-out batch may have landed: each of its commits must be told so (its shard then fences),
    none may be told it failed for sure or succeeded."""
    log = BatchLog(store)
    log.lose_next_reply = True
    group = committer(log, range_id)

    results = await outcomes(group, [[start(f"wf-{i}", f"run-{i}")] for i in range(3)])

    assert all(isinstance(r, StoreUnavailableError) for r in results), results
    assert log.batches == [3]  # not re-sent: only the shard's fence may settle it
    for i in range(3):  # here it did land
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None


async def test_a_group_never_exceeds_its_caps_nor_splits_a_commit(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    group = committer(log, range_id, max_writes=4)
    requests = [[start(f"wf-{i}", f"run-{i}")] for i in range(3)]
    requests.append([start("wf-p", "run-p"), start("wf-q", "run-q")])
    requests.append([start("wf-z", "run-z")])

    assert await outcomes(group, requests) == [None] * 5
    assert log.batches == [3, 3]


async def test_one_unencodable_commit_fails_alone(store: Store, range_id: int) -> None:
    group = committer(BatchLog(store), range_id)
    bad = start("wf-b", "run-b", timer_tasks=[timer(2**64, 2, "wf-b", "run-b")])

    results = await outcomes(group, [[start("wf-a", "run-a")], [bad], [start("wf-c", "run-c")]])

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], UnencodableWriteError)
    assert await store.get_execution(SHARD, NS, "wf-b", "run-b") is None
    assert await store.get_execution(SHARD, NS, "wf-a", "run-a") is not None
    assert await store.get_execution(SHARD, NS, "wf-c", "run-c") is not None


async def test_a_commit_cancelled_before_it_is_sent_is_never_written(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")]))
    await asyncio.wait_for(log.sent.wait(), 5)
    waiting = asyncio.create_task(group.commit([start("wf-1", "run-1")]))
    kept = asyncio.create_task(group.commit([start("wf-2", "run-2")]))
    await asyncio.sleep(0.01)
    waiting.cancel()
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, kept), 10)
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert log.batches == [1, 1]
    assert await store.get_execution(SHARD, NS, "wf-1", "run-1") is None
    assert await store.get_execution(SHARD, NS, "wf-2", "run-2") is not None


@pytest.mark.parametrize("linger", [0.0, 0.002])
async def test_random_interleavings_match_commits_applied_one_by_one(
    store: Store, range_id: int, linger: float
) -> None:
    """Rounds of concurrent commits (distinct runs per round, as the engine's run locks guarantee) arriving
    at random moments, some with stale versions or taken workflow ids: each succeeds exactly when its
    conditions held, and the store ends as the model says."""
    rng = random.Random(1616)
    log = BatchLog(store)
    group = committer(
        log,
        range_id,
        max_writes=rng.choice([3, 5, 32]),
        max_in_flight=rng.choice([1, 2, 4]),
        linger=linger,
    )
    versions: dict[str, int] = {}  # workflow id -> stored version of its only run
    for round_no in range(8):
        ids = rng.sample(range(24), rng.randint(1, 12))
        expected_ok: list[bool] = []
        requests: list[list[ExecutionWrite]] = []
        for i in ids:
            wf = f"wf-{i}"
            if wf not in versions or rng.random() < 0.2:
                requests.append([start(wf, "run")])  # ALREADY_EXISTS when the run exists
                expected_ok.append(wf not in versions)
            else:
                stale = rng.random() < 0.25
                expected = versions[wf] + (1 if stale else 0)
                requests.append([update(wf, "run", expected=expected)])
                expected_ok.append(not stale)

        async def arrive(writes: list[ExecutionWrite]) -> BaseException | None:
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            try:
                await group.commit(writes)
            except ConditionFailedError as e:
                return e
            return None

        results = await asyncio.gather(*(arrive(r) for r in requests))
        assert [r is None for r in results] == expected_ok, f"round {round_no}"
        for i, ok in zip(ids, expected_ok, strict=True):
            if ok:
                versions[f"wf-{i}"] = versions.get(f"wf-{i}", 0) + 1
    for wf, version in versions.items():
        assert await store.get_execution(SHARD, NS, wf, "run") == execution(wf, "run", version=version)
    assert max(log.batches) > 1  # some commits did share a batch


def history_node(workflow_id: str, run_id: str, txn_id: int) -> HistoryNode:
    return HistoryNode(NS, workflow_id, run_id, 1, txn_id, f"events of {run_id}".encode(), 2)


async def committed_nodes(store: Store, workflow_id: str, run_id: str) -> list[HistoryNode]:
    return await store.read_history_nodes(NS, workflow_id, run_id, 1, ALL, 10)


async def test_a_group_appends_its_history_nodes_in_one_call_before_its_batch(
    store: Store, range_id: int
) -> None:
    log = BatchLog(store)
    group = committer(log, range_id)
    nodes = [history_node(f"wf-{i}", f"run-{i}", 100 + i) for i in range(5)]

    results = await asyncio.gather(
        *(group.commit([start(f"wf-{i}", f"run-{i}")], [nodes[i]]) for i in range(5)), return_exceptions=True
    )

    assert results == [None] * 5
    assert log.order == ["append 5", "batch 5"]
    for i in range(5):
        assert await committed_nodes(store, f"wf-{i}", f"run-{i}") == [nodes[i]]


async def test_appends_go_on_while_a_batch_is_out_and_their_commits_form_the_next_group(
    store: Store, range_id: int
) -> None:
    """A pipeline: the nodes of commits that arrive while the shard's batch is out are appended at once,
    and their commits wait for that batch and go together."""
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")], [history_node("wf-0", "run-0", 100)]))
    await asyncio.wait_for(log.sent.wait(), 5)
    for _ in range(100):
        if log.order == ["append 1", "batch 1"]:
            break
        await asyncio.sleep(0.01)
    later = []
    for i in range(1, 5):
        node = history_node(f"wf-{i}", f"run-{i}", 100 + i)
        later.append(asyncio.create_task(group.commit([start(f"wf-{i}", f"run-{i}")], [node])))
    for _ in range(100):
        if log.order[-1] == "append 4":
            break
        await asyncio.sleep(0.01)
    assert log.order == ["append 1", "batch 1", "append 4"]  # appended while the batch is held
    await asyncio.sleep(0.05)
    assert log.order == ["append 1", "batch 1", "append 4"]  # and waiting for it
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 10)

    assert log.order == ["append 1", "batch 1", "append 4", "batch 4"]
    for i in range(5):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None
        assert len(await committed_nodes(store, f"wf-{i}", f"run-{i}")) == 1


async def test_commits_sent_again_after_a_failed_condition_do_not_append_again(
    store: Store, range_id: int
) -> None:
    await store.commit(SHARD, range_id, [start("wf-b", "run-b")])
    log = BatchLog(store)
    group = committer(log, range_id)
    requests = [
        ([start("wf-a", "run-a")], [history_node("wf-a", "run-a", 100)]),
        ([update("wf-b", "run-b", expected=7)], [history_node("wf-b", "run-b", 101)]),
        ([start("wf-c", "run-c")], [history_node("wf-c", "run-c", 102)]),
    ]

    results = await asyncio.gather(*(group.commit(w, n) for w, n in requests), return_exceptions=True)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ConditionFailedError)
    assert log.order == ["append 3", "batch 3", "batch 2"]
    assert await committed_nodes(store, "wf-a", "run-a") == [requests[0][1][0]]
    assert await committed_nodes(store, "wf-c", "run-c") == [requests[2][1][0]]


async def test_a_failed_append_reaches_every_commit_and_sends_no_batch(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    log.fail_next_append = True
    group = committer(log, range_id)

    results = await asyncio.gather(
        *(
            group.commit([start(f"wf-{i}", f"run-{i}")], [history_node(f"wf-{i}", f"run-{i}", 100 + i)])
            for i in range(3)
        ),
        return_exceptions=True,
    )

    assert all(isinstance(r, StoreUnavailableError) for r in results), results
    assert log.batches == []
    for i in range(3):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is None
    # the next commit goes on normally
    await group.commit([start("wf-n", "run-n")], [history_node("wf-n", "run-n", 200)])
    assert log.order[-2:] == ["append 1", "batch 1"]


async def test_a_shard_released_during_the_append_sends_no_batch(store: Store, range_id: int) -> None:
    """The shard's writability is checked again after the history append, before the batch."""
    log = BatchLog(store)
    log.append_gate = asyncio.Event()
    released = False

    def check() -> None:
        if released:
            raise ShardOwnershipLostError(SHARD, range_id, None)

    group = GroupCommitter(log, SHARD, lambda: range_id, check, max_in_flight=1)  # type: ignore[arg-type]
    pending = asyncio.create_task(
        group.commit([start("wf-r", "run-r")], [history_node("wf-r", "run-r", 100)])
    )
    await asyncio.wait_for(log.sent.wait(), 5)
    released = True
    log.append_gate.set()

    with pytest.raises(ShardOwnershipLostError):
        await asyncio.wait_for(pending, 10)
    assert log.batches == []
    assert await store.get_execution(SHARD, NS, "wf-r", "run-r") is None


async def test_with_a_linger_a_commit_waits_for_the_batch_in_flight_and_goes_with_the_next_group(
    store: Store, range_id: int
) -> None:
    """Batches could be pipelined (4 in flight), but a linger longer than the batch makes the commits that
    arrive while it is out wait for it, and go together."""
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id, max_in_flight=4, linger=30.0)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")]))
    await asyncio.wait_for(log.sent.wait(), 5)
    later = []
    for i in range(1, 4):
        later.append(asyncio.create_task(group.commit([start(f"wf-{i}", f"run-{i}")])))
        await asyncio.sleep(0.01)
    assert log.batches == [1]
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 10)

    assert log.batches == [1, 3]
    for i in range(4):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None


async def test_a_linger_is_bounded_while_the_batch_in_flight_is_slow(store: Store, range_id: int) -> None:
    log = BatchLog(store)
    log.gate = asyncio.Event()
    group = committer(log, range_id, max_in_flight=2, linger=0.05)
    first = asyncio.create_task(group.commit([start("wf-0", "run-0")]))
    await asyncio.wait_for(log.sent.wait(), 5)
    second = asyncio.create_task(group.commit([start("wf-1", "run-1")]))
    third = asyncio.create_task(group.commit([start("wf-2", "run-2")]))
    await asyncio.sleep(0.01)
    assert log.batches == [1]  # lingering
    for _ in range(100):
        if len(log.batches) == 2:
            break
        await asyncio.sleep(0.02)
    assert log.batches == [1, 2]  # the linger ran out with the first batch still out: sent anyway
    log.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second, third), 10)
    for i in range(3):
        assert await store.get_execution(SHARD, NS, f"wf-{i}", f"run-{i}") is not None


async def test_a_negative_linger_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="linger"):
        GroupCommitter(store, SHARD, lambda: 1, linger=-1)


async def test_a_commit_cancelled_during_its_append_never_reaches_a_batch(
    store: Store, range_id: int
) -> None:
    log = BatchLog(store)
    log.append_gate = asyncio.Event()
    group = committer(log, range_id)
    cancelled = asyncio.create_task(
        group.commit([start("wf-x", "run-x")], [history_node("wf-x", "run-x", 100)])
    )
    kept = asyncio.create_task(group.commit([start("wf-k", "run-k")], [history_node("wf-k", "run-k", 101)]))
    await asyncio.wait_for(log.sent.wait(), 5)
    assert log.order == ["append 2"]
    cancelled.cancel()
    log.append_gate.set()
    await asyncio.wait_for(kept, 10)
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    assert log.order == ["append 2", "batch 1"]
    assert await store.get_execution(SHARD, NS, "wf-x", "run-x") is None
    assert await store.get_execution(SHARD, NS, "wf-k", "run-k") is not None
