"""Reads one page of a run's history from the store (or the shard's events cache), batch by batch.

Only about a page is ever in memory: batches are read a few at a time (as many as the page's remaining
bytes take if they are as large as the largest seen, at most twice as many as the read before), and each
is parsed only if the page takes events from it. So a reader of a 50 MB history
holds one page, and other requests run between its store reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.api.history.v1 import History

from hourglass.cluster.history.events_cache import EventsCache
from hourglass.cluster.history.history_wire import frame_event, split_events
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.paging import HistoryCursor, Page
from hourglass.persistence.records import ExecutionKey
from hourglass.persistence.store import Store

# Batches read per store call: at most this many, fewer when the batches seen so far are large.
MAX_BATCHES_PER_READ = 64
# And about this many bytes: SQLite reads on the event loop, and with many readers of a large history each
# takes a turn of the loop per read, so the turn is kept short (a light request waits about one turn of
# each reader; loadtest/RESULTS-stall.md).
READ_BYTES = 512 * 1024


async def read_page(
    store: Store, cache: EventsCache, ms: MutableState, cursor: HistoryCursor, page: Page
) -> HistoryCursor | None:
    """Fill `page` with the run's events from `cursor` on (the stored ones up to the cursor's end, then its
    transient ones); returns where the next page starts, or None when this page ends the history."""
    end = min(cursor.end_event_id or ms.next_event_id, ms.next_event_id)
    next_id, node_id = cursor.next_event_id, cursor.node_id
    if next_id < end:
        key = ExecutionKey(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id)
        # A serialized page reads the store: its bytes go out unparsed, where cached events (messages) would
        # have to be serialized again.
        cached = None if page.serialized else cache.span(key, next_id, end)
        if cached is not None and len(cached) <= page.page_size:
            for event in cached:
                if not page.offer(event):
                    return _next(cursor, event.event_id, 0)
            next_id, node_id = end, 0
        else:
            next_id, node_id = await _read_stored(store, ms, next_id, node_id, end, page)
            if next_id < end:
                return _next(cursor, next_id, node_id)
    for event in cursor.transient:
        if event.event_id >= next_id and not page.offer(event):
            return _next(cursor, event.event_id, 0)
    return None


def _next(cursor: HistoryCursor, next_event_id: int, node_id: int) -> HistoryCursor:
    return HistoryCursor(cursor.run_id, next_event_id, cursor.end_event_id, node_id, cursor.transient)


async def _read_stored(
    store: Store, ms: MutableState, first: int, node_hint: int, end: int, page: Page
) -> tuple[int, int]:
    """Stored events first .. end-1 into the page; returns (next event id, its batch's node id or 0)."""
    info = ms.info

    async def nodes_from(node_id: int, limit: int):
        return await store.read_history_nodes(
            info.namespace_id, info.workflow_id, info.run_id, node_id, ms.last_history_txn_id, limit
        )

    # Where the batch holding `first` starts: the token says; else a batch usually starts there (a page
    # starting a history, a sticky task's events after the last workflow task); else scan from the start.
    next_node = node_hint or first
    nodes = await nodes_from(next_node, 1)
    if (not nodes or nodes[0].node_id > first) and next_node != 1:
        next_node, nodes = 1, None
    batches, largest = 0, 1
    limit = 1
    while True:
        if nodes is None:
            nodes = await nodes_from(next_node, limit)
        for node in nodes:
            largest = max(largest, len(node.events))
            if node.node_id >= end:
                return end, 0
            if node.last_event_id and node.last_event_id < first:
                continue  # before the page: not even parsed
            last = node.node_id
            for event_id, event in _events_of(node.events, page.serialized):
                if first <= event_id < end and not page.take(event):
                    return event_id, node.node_id
                last = event_id
            batches += 1
            if page.enough_after(batches):
                return (last + 1, last + 1) if last + 1 < end else (end, 0)
        if len(nodes) < limit:
            return end, 0  # nothing more is stored
        next_node = nodes[-1].node_id + 1
        await asyncio.sleep(0)  # other requests run between reads (SQLite's are synchronous)
        # As many batches as the page's remaining bytes take if they are as large as the largest seen so
        # far, and at most twice as many as last time: a run of small batches may be followed by big ones.
        fit = (min(page.max_bytes - page.size, READ_BYTES)) // largest + 1
        limit = max(1, min(MAX_BATCHES_PER_READ, 2 * limit, fit))
        nodes = None


def _events_of(blob: bytes, serialized: bool) -> list[tuple[int, Any]]:
    """(event id, event) of a stored batch: its framed bytes for a serialized page (split, not parsed),
    else the parsed message."""
    if serialized:
        split = split_events(blob)
        if split is not None:
            return split
        return [(e.event_id, frame_event(e.SerializeToString())) for e in History.FromString(blob).events]
    return [(e.event_id, e) for e in History.FromString(blob).events]
