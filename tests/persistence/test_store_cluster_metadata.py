"""Cluster metadata: written once, then every node reads what the first one recorded."""

from __future__ import annotations

from hourglass.persistence.records import ClusterMetadata
from hourglass.persistence.store import Store


async def test_first_init_records_the_metadata(store: Store) -> None:
    assert await store.init_cluster_metadata(ClusterMetadata("prod", 512)) == ClusterMetadata("prod", 512)


async def test_later_inits_return_what_is_stored(store: Store) -> None:
    await store.init_cluster_metadata(ClusterMetadata("prod", 512))
    assert await store.init_cluster_metadata(ClusterMetadata("other", 4)) == ClusterMetadata("prod", 512)
