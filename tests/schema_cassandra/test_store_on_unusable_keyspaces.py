"""The Cassandra store on keyspaces it cannot use: it refuses or reports unavailability, never guesses.

(The store's semantics on a good keyspace are the conformance suite's, tests/persistence/.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from hourglass.persistence.cassandra.config import CassandraConfig
from hourglass.persistence.cassandra.store import CassandraStore
from hourglass.persistence.errors import PersistenceError, StoreUnavailableError
from hourglass.persistence.records import HistoryNode

if TYPE_CHECKING:
    from cassandra.cluster import Session


def test_a_missing_keyspace_is_named(cassandra: CassandraConfig, new_keyspace: Callable[[], str]) -> None:
    keyspace = new_keyspace()
    with pytest.raises(PersistenceError, match=f"keyspace {keyspace!r} does not exist"):
        CassandraStore.connect_blocking(replace(cassandra, keyspace=keyspace))


async def test_too_few_replicas_is_store_unavailable(
    admin: Session, cassandra: CassandraConfig, shipped_keyspace: tuple[str, str]
) -> None:
    """Replication factor 3 on a one-node cluster: LOCAL_QUORUM (2 of 3 replicas) cannot be met.

    Cassandra answers Unavailable before writing anything; every such call must say StoreUnavailableError.
    (Paxos v2 counts its electorate among the replicas that exist, so conditional writes still pass here.)
    The shared keyspace gets its replication factor of 1 back at the end.
    """
    keyspace = shipped_keyspace[0]
    store = await CassandraStore.connect(replace(cassandra, keyspace=keyspace))
    try:
        await asyncio.to_thread(_set_replication_factor, admin, keyspace, 3)
        with pytest.raises(StoreUnavailableError, match="Cannot achieve consistency level LOCAL_QUORUM"):
            await store.get_execution(1, "ns", "wf", "run")
        with pytest.raises(StoreUnavailableError):
            await store.append_history_node(HistoryNode("ns", "wf", "run", 1, 1, b"events"))
        with pytest.raises(StoreUnavailableError):
            await store.get_transfer_tasks(1, 0, 100, 10)
        with pytest.raises(StoreUnavailableError):
            await store.list_task_queues()
        with pytest.raises(StoreUnavailableError):
            await store.read_history_nodes("ns", "wf", "run", 1, 10, 10)
        await asyncio.to_thread(_set_replication_factor, admin, keyspace, 1)
        assert await store.get_execution(1, "ns", "wf", "run") is None  # the same store recovers
    finally:
        await asyncio.to_thread(_set_replication_factor, admin, keyspace, 1)
        await store.close()


def _set_replication_factor(admin: Session, keyspace: str, factor: int) -> None:
    admin.execute(
        f"ALTER KEYSPACE {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}"
    )
