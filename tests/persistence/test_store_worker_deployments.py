"""Worker deployments: one versioned blob per (namespace, deployment name), listed per namespace."""

from __future__ import annotations

import pytest

from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.store import Store


async def test_a_missing_deployment_reads_as_none(store: Store) -> None:
    assert await store.get_worker_deployment("ns", "orders") is None
    assert await store.list_worker_deployments("ns") == []


async def test_deployments_are_versioned_and_listed_per_namespace(store: Store) -> None:
    await store.write_worker_deployment("ns", "orders", b"first", expected_version=0)
    await store.write_worker_deployment("ns", "billing", b"b", expected_version=0)
    await store.write_worker_deployment("other", "orders", b"o", expected_version=0)
    await store.write_worker_deployment("ns", "orders", b"second", expected_version=1)
    assert await store.get_worker_deployment("ns", "orders") == (b"second", 2)
    assert await store.list_worker_deployments("ns") == [("billing", b"b", 1), ("orders", b"second", 2)]
    assert await store.list_worker_deployments("other") == [("orders", b"o", 1)]


async def test_a_stale_write_or_delete_is_rejected(store: Store) -> None:
    await store.write_worker_deployment("ns", "orders", b"first", expected_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_worker_deployment("ns", "orders", b"lost", expected_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_worker_deployment("ns", "orders", b"lost", expected_version=4)
    with pytest.raises(ConditionFailedError):
        await store.delete_worker_deployment("ns", "orders", expected_version=2)
    assert await store.get_worker_deployment("ns", "orders") == (b"first", 1)


async def test_delete_removes_the_row_once(store: Store) -> None:
    await store.write_worker_deployment("ns", "orders", b"first", expected_version=0)
    await store.delete_worker_deployment("ns", "orders", expected_version=1)
    assert await store.get_worker_deployment("ns", "orders") is None
    assert await store.list_worker_deployments("ns") == []
    with pytest.raises(ConditionFailedError):
        await store.delete_worker_deployment("ns", "orders", expected_version=1)
    # A deployment made again after a delete starts over.
    await store.write_worker_deployment("ns", "orders", b"again", expected_version=0)
    assert await store.get_worker_deployment("ns", "orders") == (b"again", 1)
