"""Namespaces: unique names and ids, lookups, and updates conditional on notification_version."""

from __future__ import annotations

import dataclasses

import pytest

from hourglass.persistence.errors import (
    ConditionFailedError,
    NamespaceAlreadyExistsError,
    NamespaceNotFoundError,
)
from hourglass.persistence.records import NamespaceRecord
from hourglass.persistence.store import Store

DEFAULT = NamespaceRecord("id-default", "default", b"info: default", notification_version=1)
ORDERS = NamespaceRecord("id-orders", "orders", b"info: orders", notification_version=4)


async def test_created_namespace_is_found_by_name_and_id(store: Store) -> None:
    await store.create_namespace(DEFAULT)
    assert await store.get_namespace_by_name("default") == DEFAULT
    assert await store.get_namespace_by_id("id-default") == DEFAULT


async def test_unknown_namespace_reads_as_none(store: Store) -> None:
    assert await store.get_namespace_by_name("nope") is None
    assert await store.get_namespace_by_id("nope") is None


async def test_list_namespaces(store: Store) -> None:
    assert await store.list_namespaces() == []
    await store.create_namespace(ORDERS)
    await store.create_namespace(DEFAULT)
    assert sorted(await store.list_namespaces(), key=lambda n: n.name) == [DEFAULT, ORDERS]


async def test_duplicate_name_is_rejected(store: Store) -> None:
    await store.create_namespace(DEFAULT)
    with pytest.raises(NamespaceAlreadyExistsError):
        await store.create_namespace(NamespaceRecord("id-other", "default", b"other"))
    assert await store.get_namespace_by_name("default") == DEFAULT
    assert await store.get_namespace_by_id("id-other") is None


async def test_duplicate_id_is_rejected(store: Store) -> None:
    await store.create_namespace(DEFAULT)
    with pytest.raises(NamespaceAlreadyExistsError):
        await store.create_namespace(NamespaceRecord("id-default", "other", b"other"))
    assert await store.get_namespace_by_id("id-default") == DEFAULT
    assert await store.get_namespace_by_name("other") is None


async def test_update_with_the_stored_version_applies(store: Store) -> None:
    await store.create_namespace(ORDERS)
    updated = dataclasses.replace(ORDERS, data=b"info: orders v2", notification_version=5)
    await store.update_namespace(updated, expected_notification_version=4)
    assert await store.get_namespace_by_id("id-orders") == updated
    assert await store.get_namespace_by_name("orders") == updated


async def test_stored_version_is_the_one_the_record_carries(store: Store) -> None:
    await store.create_namespace(ORDERS)
    await store.update_namespace(
        dataclasses.replace(ORDERS, notification_version=10), expected_notification_version=4
    )
    assert (await store.get_namespace_by_id("id-orders")).notification_version == 10  # type: ignore[union-attr]


async def test_update_with_a_stale_version_is_rejected(store: Store) -> None:
    await store.create_namespace(ORDERS)
    with pytest.raises(ConditionFailedError) as failed:
        await store.update_namespace(dataclasses.replace(ORDERS, data=b"lost", notification_version=4), 3)
    assert failed.value.failures == {0: ConditionFailedError.VERSION_MISMATCH}
    assert await store.get_namespace_by_id("id-orders") == ORDERS


async def test_update_of_an_unknown_namespace_is_rejected(store: Store) -> None:
    with pytest.raises(NamespaceNotFoundError):
        await store.update_namespace(ORDERS, expected_notification_version=4)
    assert await store.list_namespaces() == []


async def test_renaming_onto_a_taken_name_is_rejected(store: Store) -> None:
    await store.create_namespace(DEFAULT)
    await store.create_namespace(ORDERS)
    with pytest.raises(NamespaceAlreadyExistsError):
        await store.update_namespace(dataclasses.replace(ORDERS, name="default", notification_version=5), 4)
    assert await store.get_namespace_by_id("id-orders") == ORDERS
    assert await store.get_namespace_by_name("default") == DEFAULT


async def test_deleted_namespace_is_gone_by_name_and_id_and_its_name_is_free(store: Store) -> None:
    await store.create_namespace(DEFAULT)
    await store.create_namespace(ORDERS)
    await store.delete_namespace("id-orders", expected_notification_version=4)
    assert await store.get_namespace_by_id("id-orders") is None
    assert await store.get_namespace_by_name("orders") is None
    assert await store.list_namespaces() == [DEFAULT]
    await store.create_namespace(dataclasses.replace(ORDERS, id="id-orders-2"))
    assert (await store.get_namespace_by_name("orders")).id == "id-orders-2"  # type: ignore[union-attr]


async def test_delete_after_a_rename_removes_the_new_name(store: Store) -> None:
    await store.create_namespace(ORDERS)
    await store.update_namespace(
        dataclasses.replace(ORDERS, name="orders-deleted-id-or", notification_version=5), 4
    )
    await store.delete_namespace("id-orders", expected_notification_version=5)
    assert await store.get_namespace_by_name("orders-deleted-id-or") is None
    assert await store.list_namespaces() == []


async def test_delete_with_a_stale_version_is_rejected_and_a_repeat_is_harmless(store: Store) -> None:
    await store.create_namespace(ORDERS)
    with pytest.raises(ConditionFailedError):
        await store.delete_namespace("id-orders", expected_notification_version=3)
    assert await store.get_namespace_by_id("id-orders") == ORDERS
    await store.delete_namespace("id-orders", expected_notification_version=4)
    await store.delete_namespace("id-orders", expected_notification_version=4)  # already gone: no error
    assert await store.get_namespace_by_name("orders") is None
