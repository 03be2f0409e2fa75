"""The Nexus endpoint registry: endpoints ordered by id under one table version that every change bumps."""

from __future__ import annotations

import pytest

from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.records import NexusEndpointRecord
from hourglass.persistence.store import Store


async def test_an_empty_registry_has_version_zero(store: Store) -> None:
    assert await store.list_nexus_endpoints() == (0, [])


async def test_writes_bump_the_table_version_and_list_orders_by_id(store: Store) -> None:
    await store.write_nexus_endpoint(NexusEndpointRecord("b-id", 1, b"b"), expected_table_version=0)
    await store.write_nexus_endpoint(NexusEndpointRecord("a-id", 1, b"a"), expected_table_version=1)
    await store.write_nexus_endpoint(NexusEndpointRecord("b-id", 2, b"b2"), expected_table_version=2)
    assert await store.list_nexus_endpoints() == (
        3,
        [NexusEndpointRecord("a-id", 1, b"a"), NexusEndpointRecord("b-id", 2, b"b2")],
    )


async def test_delete_bumps_the_version_and_an_emptied_registry_keeps_it(store: Store) -> None:
    await store.write_nexus_endpoint(NexusEndpointRecord("a-id", 1, b"a"), expected_table_version=0)
    await store.delete_nexus_endpoint("a-id", expected_table_version=1)
    assert await store.list_nexus_endpoints() == (2, [])
    await store.write_nexus_endpoint(NexusEndpointRecord("c-id", 1, b"c"), expected_table_version=2)
    assert await store.list_nexus_endpoints() == (3, [NexusEndpointRecord("c-id", 1, b"c")])


async def test_a_stale_table_version_changes_nothing(store: Store) -> None:
    await store.write_nexus_endpoint(NexusEndpointRecord("a-id", 1, b"a"), expected_table_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_nexus_endpoint(NexusEndpointRecord("b-id", 1, b"b"), expected_table_version=0)
    with pytest.raises(ConditionFailedError):
        await store.write_nexus_endpoint(NexusEndpointRecord("b-id", 1, b"b"), expected_table_version=7)
    with pytest.raises(ConditionFailedError):
        await store.delete_nexus_endpoint("a-id", expected_table_version=0)
    assert await store.list_nexus_endpoints() == (1, [NexusEndpointRecord("a-id", 1, b"a")])
