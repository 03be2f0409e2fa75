"""Fixtures of the store conformance suite: every test taking `store` runs once per backend.

A backend is a function of the test's request returning an async context manager that yields a fresh,
empty store:
- "sqlite": a new in-memory database per test.
- "cassandra": a real Cassandra: HOURGLASS_CASSANDRA_HOSTS, else the development node that
  tools/cassandra/devserver.py starts if it is down (and that the last test session to finish stops
  again, if a test session started it; see hourglass.persistence.cassandra.testing). One keyspace per
  session, made by the schema tool's code and dropped at the end; before each test every partition of it
  is deleted (~0.1 s; TRUNCATE of every table takes ~1 s), so each test starts empty.
  HOURGLASS_SKIP_CASSANDRA=1 skips this backend. No fake of Cassandra anywhere.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace

import pytest

from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store


@contextlib.asynccontextmanager
async def sqlite_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    store = await SQLiteStore.open(None)
    try:
        yield store
    finally:
        await store.close()


@dataclass
class CassandraSuiteKeyspace:
    """The session's keyspace: a connected store on it, and the reset that empties it between tests."""

    store: Store
    reset: Callable[[], int]


@contextlib.asynccontextmanager
async def cassandra_store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The session's store on an emptied keyspace (connecting once per session keeps the suite fast)."""
    suite: CassandraSuiteKeyspace = request.getfixturevalue("cassandra_suite_keyspace")
    suite.reset()
    yield suite.store


STORE_BACKENDS: dict[str, Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "cassandra": cassandra_store,
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    async with STORE_BACKENDS[request.param](request) as fresh:
        yield fresh


@pytest.fixture(scope="session")
def cassandra_suite_keyspace() -> Iterator[CassandraSuiteKeyspace]:
    """Cassandra (started if needed), a keyspace with the latest schema, a store on it, and a reset."""
    from hourglass.persistence.cassandra import testing

    if testing.skip_requested():
        pytest.skip(f"{testing.SKIP_ENV} is set")
    from hourglass.persistence.cassandra.config import build_cluster
    from hourglass.persistence.cassandra.store import CassandraStore

    logging.getLogger("cassandra").setLevel(logging.ERROR)  # driver chatter about node discovery
    config = testing.acquire()
    keyspace = testing.new_keyspace_name("hg_conformance")
    admin = build_cluster(config)
    store: CassandraStore | None = None
    try:
        session = admin.connect()
        testing.create_test_keyspace(session, keyspace)
        # Deletes stamped by the coordinator, like the Paxos ballots of the next test's writes.
        session.use_client_timestamp = False
        store = CassandraStore.connect_blocking(replace(config, keyspace=keyspace))
        yield CassandraSuiteKeyspace(store, testing.KeyspaceReset(session, keyspace))
    finally:
        if store is not None:
            store.close_blocking()
        with contextlib.suppress(Exception):
            testing.drop_keyspace(admin.connect(), keyspace)
        admin.shutdown()
        testing.release()
