"""Fixtures of the store conformance suite: every test taking `store` runs once per backend.

A backend is an async context manager yielding a fresh, empty store. Only SQLite exists today; a Cassandra
backend registers itself in STORE_BACKENDS the same way (a store on a keyspace with the schema applied and
every table truncated, skipped when no Cassandra is reachable), and the whole suite then runs against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store


@contextlib.asynccontextmanager
async def sqlite_store() -> AsyncIterator[Store]:
    store = await SQLiteStore.open(None)
    try:
        yield store
    finally:
        await store.close()


STORE_BACKENDS: dict[str, Callable[[], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    async with STORE_BACKENDS[request.param]() as fresh:
        yield fresh
