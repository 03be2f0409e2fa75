"""Cluster metadata: written once, then every node reads what the first one recorded."""

from __future__ import annotations

import asyncio

from hourglass.persistence.records import ClusterMetadata
from hourglass.persistence.store import Store

SECRET_A = bytes(range(32))
SECRET_B = bytes(range(1, 33))


async def test_first_init_records_the_metadata(store: Store) -> None:
    assert await store.init_cluster_metadata(ClusterMetadata("prod", 512)) == ClusterMetadata("prod", 512)


async def test_later_inits_return_what_is_stored(store: Store) -> None:
    await store.init_cluster_metadata(ClusterMetadata("prod", 512))
    assert await store.init_cluster_metadata(ClusterMetadata("other", 4)) == ClusterMetadata("prod", 512)


async def test_the_first_task_token_secret_is_kept(store: Store) -> None:
    first = await store.init_cluster_metadata(ClusterMetadata("prod", 512, SECRET_A))
    assert first.task_token_secret == SECRET_A
    again = await store.init_cluster_metadata(ClusterMetadata("prod", 512, SECRET_B))
    assert again == ClusterMetadata("prod", 512, SECRET_A)


async def test_metadata_recorded_without_a_secret_gets_the_first_one_brought(store: Store) -> None:
    """A store made before the secret existed: the first node starting on it records its own."""
    assert (await store.init_cluster_metadata(ClusterMetadata("prod", 512))).task_token_secret == b""
    assert (await store.init_cluster_metadata(ClusterMetadata("x", 1, SECRET_B))) == ClusterMetadata(
        "prod", 512, SECRET_B
    )
    assert (
        await store.init_cluster_metadata(ClusterMetadata("x", 1, SECRET_A))
    ).task_token_secret == SECRET_B


async def test_nodes_starting_together_agree_on_one_secret(store: Store) -> None:
    await store.init_cluster_metadata(ClusterMetadata("prod", 512))
    proposals = [bytes([n]) * 32 for n in range(1, 6)]
    answers = await asyncio.gather(
        *(store.init_cluster_metadata(ClusterMetadata("prod", 512, secret)) for secret in proposals)
    )
    assert len({answer.task_token_secret for answer in answers}) == 1
    assert answers[0].task_token_secret in proposals
