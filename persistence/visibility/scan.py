"""Answer visibility queries by scanning a namespace's records and evaluating the query in Python.

The default behind Store.query_visibility / count_visibility: correct for any store that implements
list_visibility, at the price of reading every record of the namespace per call. Stores that can push
filters down (SQLite, Cassandra) override it.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility.evaluate import (
    RecordView,
    compare_sort_values,
    group_values,
    matches,
    sort_key_function,
    sort_values,
)
from hourglass.persistence.visibility.model import VisibilityQuery
from hourglass.persistence.visibility.paging import decode_page_token, encode_page_token

if TYPE_CHECKING:
    from hourglass.persistence.store import Store

SCAN_PAGE_SIZE = 1000


async def scan_visibility(store: Store, namespace_id: str) -> AsyncIterator[VisibilityRecord]:
    """Every visibility record of the namespace, through list_visibility's keyset pages."""
    after: tuple[int, str] | None = None
    while True:
        page = await store.list_visibility(namespace_id, SCAN_PAGE_SIZE, after)
        if not page:
            return
        for record in page:
            yield record
        after = (page[-1].start_time_ms, page[-1].run_id)
        await asyncio.sleep(0)  # a store whose reads never suspend must still let other requests run


async def matching_views(
    store: Store, namespace_id: str, query: VisibilityQuery
) -> AsyncIterator[RecordView]:
    async for record in scan_visibility(store, namespace_id):
        view = RecordView(record)
        if matches(query.filter, view):
            yield view


async def query_by_scan(
    store: Store, namespace_id: str, query: VisibilityQuery, page_size: int, next_page_token: bytes
) -> tuple[list[VisibilityRecord], bytes]:
    """One page in the query's order, and the token of the next page (empty when there is none)."""
    if page_size < 1:
        raise ValueError(f"page_size must be positive, not {page_size}")
    keys = query.sort_keys
    after = decode_page_token(next_page_token, len(keys))
    candidates: list[tuple[tuple[Any, ...], VisibilityRecord]] = []
    async for view in matching_views(store, namespace_id, query):
        values = sort_values(view, keys)
        if after is None or compare_sort_values(values, after, keys) > 0:
            candidates.append((values, view.record))
    by_order = sort_key_function(keys)
    first = heapq.nsmallest(page_size + 1, candidates, key=lambda item: by_order(item[0]))
    page = first[:page_size]
    token = encode_page_token(page[-1][0]) if len(first) > page_size else b""
    return [record for _, record in page], token


async def count_by_scan(store: Store, namespace_id: str, query: VisibilityQuery) -> int:
    return sum([1 async for _ in matching_views(store, namespace_id, query)])


async def count_groups_by_scan(
    store: Store, namespace_id: str, query: VisibilityQuery
) -> list[tuple[tuple[Any, ...], int]]:
    """Counts per distinct value of the query's GROUP BY attributes, ordered by value (missing first)."""
    counts: Counter[tuple[Any, ...]] = Counter()
    async for view in matching_views(store, namespace_id, query):
        counts[group_values(view, query.group_by)] += 1
    return sorted(counts.items(), key=lambda item: tuple((v is not None, v) for v in item[0]))
