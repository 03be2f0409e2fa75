"""History nodes: idempotent appends, visibility by transaction id, paging."""

from __future__ import annotations

from store_factories import NS

from hourglass.persistence.records import HistoryNode
from hourglass.persistence.store import Store

MAX_TXN = 1 << 62


def node(node_id: int, txn_id: int, run_id: str = "run", last_event_id: int | None = None) -> HistoryNode:
    return HistoryNode(
        NS,
        "wf",
        run_id,
        node_id,
        txn_id,
        events=f"events {node_id}@{txn_id}".encode(),
        last_event_id=node_id + 1 if last_event_id is None else last_event_id,
    )


async def read(
    store: Store, min_node_id: int = 1, max_txn_id: int = MAX_TXN, limit: int = 100
) -> list[HistoryNode]:
    return await store.read_history_nodes(NS, "wf", "run", min_node_id, max_txn_id, limit)


async def test_appended_node_reads_back_whole(store: Store) -> None:
    await store.append_history_node(node(1, 10, last_event_id=3))
    assert await read(store) == [node(1, 10, last_event_id=3)]


async def test_a_run_without_history_reads_empty(store: Store) -> None:
    assert await read(store) == []


async def test_append_is_idempotent(store: Store) -> None:
    await store.append_history_node(node(1, 10))
    await store.append_history_node(node(1, 10))
    assert await read(store) == [node(1, 10)]


async def test_nodes_come_back_in_node_id_order(store: Store) -> None:
    for node_id, txn_id in ((5, 30), (1, 10), (3, 20)):
        await store.append_history_node(node(node_id, txn_id))
    assert await read(store) == [node(1, 10), node(3, 20), node(5, 30)]


async def test_an_uncommitted_higher_txn_id_is_invisible(store: Store) -> None:
    await store.append_history_node(node(1, 10))
    await store.append_history_node(node(3, 20))
    # A transition that wrote node 3 again (txn 25) and node 5 (txn 25) but never committed.
    await store.append_history_node(node(3, 25))
    await store.append_history_node(node(5, 25))
    assert await read(store, max_txn_id=20) == [node(1, 10), node(3, 20)]


async def test_a_later_txn_id_wins_once_committed(store: Store) -> None:
    await store.append_history_node(node(1, 10))
    await store.append_history_node(node(3, 20))
    await store.append_history_node(node(3, 30))  # the retried transition's node replaces the lost one
    assert await read(store, max_txn_id=29) == [node(1, 10), node(3, 20)]
    assert await read(store, max_txn_id=30) == [node(1, 10), node(3, 30)]
    assert await read(store) == [node(1, 10), node(3, 30)]


async def test_nodes_above_max_txn_id_only_are_skipped(store: Store) -> None:
    await store.append_history_node(node(1, 10))
    await store.append_history_node(node(3, 50))
    assert await read(store, max_txn_id=10) == [node(1, 10)]
    assert await read(store, max_txn_id=9) == []


async def test_paging_with_limit_and_min_node_id(store: Store) -> None:
    for i, node_id in enumerate((1, 3, 5, 7, 9)):
        await store.append_history_node(node(node_id, 10 + i))
    first = await read(store, min_node_id=1, limit=2)
    second = await read(store, min_node_id=first[-1].node_id + 1, limit=2)
    third = await read(store, min_node_id=second[-1].node_id + 1, limit=2)
    assert [[n.node_id for n in page] for page in (first, second, third)] == [[1, 3], [5, 7], [9]]
    assert await read(store, min_node_id=10) == []
    assert [n.node_id for n in await read(store, min_node_id=5)] == [5, 7, 9]


async def test_limit_counts_node_ids_not_versions(store: Store) -> None:
    for txn_id in (10, 11, 12):
        await store.append_history_node(node(1, txn_id))
    await store.append_history_node(node(4, 13))
    await store.append_history_node(node(6, 14))
    assert await read(store, limit=2) == [node(1, 12), node(4, 13)]


async def test_runs_do_not_see_each_others_nodes(store: Store) -> None:
    await store.append_history_node(node(1, 10, run_id="run"))
    await store.append_history_node(node(1, 11, run_id="other"))
    await store.append_history_node(node(3, 12, run_id="other"))
    assert await read(store) == [node(1, 10)]


async def test_delete_history_removes_only_that_run(store: Store) -> None:
    await store.append_history_node(node(1, 10, run_id="run"))
    await store.append_history_node(node(3, 20, run_id="run"))
    await store.append_history_node(node(1, 11, run_id="other"))
    await store.delete_history(NS, "wf", "run")
    assert await read(store) == []
    assert await store.read_history_nodes(NS, "wf", "other", 1, MAX_TXN, 10) == [node(1, 11, run_id="other")]


async def test_a_group_of_nodes_of_many_runs_reads_back_whole_whatever_their_sizes(store: Store) -> None:
    """A group commit appends its runs' nodes together (on Cassandra in UNLOGGED batches capped by count and
    bytes): 23 runs, one node far above a batch's byte cap, each reads back as appended, in fewer requests
    than nodes on a store that can group them."""
    nodes = [
        HistoryNode(
            NS, "wf", f"run-{i}", 1, 10 + i, events=bytes([i]) * (9000 if i == 7 else 40 + i), last_event_id=2
        )
        for i in range(23)
    ]
    requests = await store.append_history_nodes(nodes)

    assert 1 <= requests < len(nodes)
    for n in nodes:
        assert await store.read_history_nodes(NS, "wf", n.run_id, 1, MAX_TXN, 10) == [n]
    assert await store.append_history_nodes(nodes) == requests  # idempotent, as one append
    assert await store.read_history_nodes(NS, "wf", "run-7", 1, MAX_TXN, 10) == [nodes[7]]
    assert await store.append_history_nodes([]) == 0
