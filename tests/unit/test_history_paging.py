"""History pages: bounded by count (the reference's batch semantics) and by bytes, even inside a batch;
their tokens resume exactly where a page ended, and a forged token is INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import json

import pytest
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    History,
    HistoryEvent,
    WorkflowExecutionSignaledEventAttributes,
)
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryResponse

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history.events_cache import EventsCache
from hourglass.cluster.history.history_wire import history_response, split_events
from hourglass.cluster.history.page_reader import read_page
from hourglass.cluster.history.paging import (
    MAX_PAGE_SIZE,
    HistoryCursor,
    Page,
    effective_page_size,
    framed_size,
    split_pages,
)
from hourglass.persistence.records import ExecutionKey, HistoryNode

from .states import minimal_state

KIB = 1024


def event(event_id: int, payload_bytes: int = 10) -> HistoryEvent:
    return HistoryEvent(
        event_id=event_id,
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        workflow_execution_signaled_event_attributes=WorkflowExecutionSignaledEventAttributes(
            signal_name="s", input=Payloads(payloads=[Payload(data=b"x" * payload_bytes)])
        ),
    )


class NodeStore:
    """The one store read a page needs, over batches given as lists of (event id, payload bytes)."""

    def __init__(self, batches: list[list[tuple[int, int]]]) -> None:
        self.nodes = [
            HistoryNode(
                "ns",
                "w",
                "r",
                batch[0][0],
                1,
                History(events=[event(i, n) for i, n in batch]).SerializeToString(),
                batch[-1][0],
            )
            for batch in batches
        ]
        self.reads: list[tuple[int, int]] = []

    async def read_history_nodes(self, namespace_id, workflow_id, run_id, min_node_id, max_txn_id, limit):
        self.reads.append((min_node_id, limit))
        return [n for n in self.nodes if n.node_id >= min_node_id][:limit]


def state(next_event_id: int):
    ms = minimal_state()
    ms.next_event_id = next_event_id
    ms.last_history_txn_id = 1
    return ms


async def read_all(store, ms, page_size: int, max_bytes: int, cursor: HistoryCursor | None = None):
    """Every page from `cursor` (default: the whole history), each token round-tripped as a client would."""
    cursor = cursor or HistoryCursor("r", 1, ms.next_event_id, 1)
    pages = []
    while cursor is not None:
        page = Page(page_size, max_bytes)
        cursor = await read_page(store, EventsCache(1 << 20), ms, cursor, page)
        pages.append(page)
        if cursor is not None:
            cursor = HistoryCursor.decode(cursor.encode())
    return pages


def test_split_by_bytes_keeps_order_and_puts_an_oversized_event_alone():
    events = [event(1, 100), event(2, 5 * KIB), event(3, 100), event(4, 100)]
    pages = split_pages(events, 2 * KIB)
    assert [[e.event_id for e in p] for p in pages] == [[1], [2], [3, 4]]
    for page in pages:
        assert len(page) == 1 or sum(framed_size(e) for e in page) <= 2 * KIB


def test_framed_size_is_what_the_event_adds_to_a_history():
    for n in (0, 100, 200 * KIB):
        e = event(1, n)
        assert History(events=[e, e]).ByteSize() - History(events=[e]).ByteSize() == framed_size(e)


async def test_count_follows_the_reference_whole_batches_in_chunks_of_page_size():
    store = NodeStore([[(1, 10), (2, 10)], [(3, 10)], [(4, 10)], [(5, 10), (6, 10), (7, 10)]])
    ms = state(8)
    assert [[e.event_id for e in p.events] for p in await read_all(store, ms, 1, 1 << 20)] == [
        [1, 2],
        [3],
        [4],
        [5, 6, 7],
    ]
    assert [[e.event_id for e in p.events] for p in await read_all(store, ms, 2, 1 << 20)] == [
        [1, 2, 3],
        [4, 5, 6, 7],
    ]
    assert [len(p.events) for p in await read_all(store, ms, 256, 1 << 20)] == [7]


async def test_bytes_split_a_batch_larger_than_a_page_and_the_token_resumes_inside_it():
    # One 5 MiB batch of five 1 MiB events (a reset copies a run's history in one batch), then small ones.
    big = [(i, 1024 * KIB) for i in range(1, 6)]
    store = NodeStore([big, [(6, 10)], [(7, 10)]])
    ms = state(8)
    pages = await read_all(store, ms, 256, 4 * 1024 * KIB - 64 * KIB)
    assert [[e.event_id for e in p.events] for p in pages] == [[1, 2, 3], [4, 5, 6, 7]]
    assert all(p.size <= 4 * 1024 * KIB - 64 * KIB for p in pages)


async def test_an_event_over_the_budget_goes_alone():
    store = NodeStore([[(1, 10)], [(2, 3000 * KIB)], [(3, 10)]])
    pages = await read_all(store, state(4), 256, 1000 * KIB)
    assert [[e.event_id for e in p.events] for p in pages] == [[1], [2], [3]]


async def test_transient_events_come_last_even_across_pages():
    store = NodeStore([[(1, 10), (2, 10)], [(3, 600 * KIB)]])
    transient = [event(4, 600 * KIB), event(5, 10)]
    pages = await read_all(store, state(4), 256, 1000 * KIB, HistoryCursor("r", 1, 4, 1, transient))
    assert [[e.event_id for e in p.events] for p in pages] == [[1, 2, 3], [4, 5]]


async def test_a_page_holds_at_most_its_end_and_reads_only_what_it_needs():
    store = NodeStore([[(i, 100 * KIB)] for i in range(1, 101)])
    ms = state(101)
    pages = await read_all(store, ms, 256, 1024 * KIB, HistoryCursor("r", 1, 50, 1))
    assert [e.event_id for p in pages for e in p.events] == list(range(1, 50))
    # Each store read asks for about as many batches as the page still has room for, not all of them.
    assert max(limit for _, limit in store.reads) <= 11


async def test_small_batches_first_do_not_make_it_read_all_the_big_ones_at_once():
    store = NodeStore([[(1, 10)]] + [[(i, 1900 * KIB)] for i in range(2, 32)])
    pages = await read_all(store, state(32), 256, 4 * 1024 * KIB - 64 * KIB)
    assert [e.event_id for p in pages for e in p.events] == list(range(1, 32))
    assert max(limit for _, limit in store.reads) <= 3


async def test_a_wrong_or_missing_batch_hint_falls_back_to_a_scan():
    store = NodeStore([[(1, 10), (2, 10)], [(3, 10), (4, 10), (5, 10)], [(6, 10)]])
    ms = state(7)
    for hint in (0, 5, 6, 99):
        pages = await read_all(store, ms, 256, 1 << 20, HistoryCursor("r", 4, 7, hint))
        assert [e.event_id for p in pages for e in p.events] == [4, 5, 6], hint


async def test_the_events_cache_serves_a_page_it_holds_whole():
    store = NodeStore([])  # nothing stored: only the cache can answer
    cache = EventsCache(1 << 20)
    cache.add(ExecutionKey("ns", "w", "r"), [event(i) for i in range(1, 4)])
    page = Page(256, 1 << 20)
    assert await read_page(store, cache, state(4), HistoryCursor("r", 1, 4, 1), page) is None
    assert [e.event_id for e in page.events] == [1, 2, 3]


def test_page_size_as_the_reference():
    assert effective_page_size(0, 256) == 256
    assert effective_page_size(-5, 256) == 256
    assert effective_page_size(3, 256) == 3
    assert effective_page_size(10_000, 256) == MAX_PAGE_SIZE
    assert effective_page_size(0, 1000) == MAX_PAGE_SIZE


@pytest.mark.parametrize(
    "token",
    [
        b"garbage",
        b"\xff\xfe",
        b"[]",
        b'{"next_event_id": 1}',
        b'{"run_id": 5, "next_event_id": 1}',
        b'{"run_id": "r", "next_event_id": 1e400}',
        b'{"run_id": "r", "next_event_id": "1"}',
        b'{"run_id": "r", "next_event_id": true}',
        b'{"run_id": "r", "next_event_id": 0}',
        b'{"run_id": "r", "next_event_id": 1, "node_id": -1}',
        b'{"run_id": "r", "next_event_id": 99999999999999999999999}',
        b'{"run_id": "r", "next_event_id": 1, "transient": "%%%"}',
        b'{"run_id": "r", "next_event_id": 1, "transient": "' + base64.b64encode(b"\xff\xff\xff") + b'"}',
    ],
)
def test_forged_tokens_are_invalid_argument(token: bytes):
    with pytest.raises(InvalidArgument, match=r"^Invalid NextPageToken\.$"):
        HistoryCursor.decode(token)


def test_a_token_round_trips_with_its_transient_events():
    cursor = HistoryCursor("r", 7, 9, 5, [event(9), event(10)])
    again = HistoryCursor.decode(cursor.encode())
    assert again == cursor
    # Tokens of the earlier format (run id and next event id only) still read.
    assert HistoryCursor.decode(json.dumps({"run_id": "r", "next_event_id": 3}).encode()) == HistoryCursor(
        "r", 3
    )


def test_the_reference_page_size_keys_set_the_limits():
    from hourglass.cluster.history.limits import LIMITS, apply_dynamic_config

    keys = {
        "limit.historyMaxPageSize": "history_max_page_size",
        "frontend.historyMaxPageSize": "frontend_history_max_page_size",
        "matching.historyMaxPageSize": "matching_history_max_page_size",
    }
    saved = {field: getattr(LIMITS, field) for field in keys.values()}
    try:
        assert set(saved.values()) == {256}  # the reference's default
        apply_dynamic_config({key: 7 for key in keys})
        assert {getattr(LIMITS, field) for field in keys.values()} == {7}
        with pytest.raises(ValueError, match="frontend.historyMaxPageSize must be a positive integer"):
            apply_dynamic_config({"frontend.historyMaxPageSize": -1})
    finally:
        for field, value in saved.items():
            setattr(LIMITS, field, value)


# ---- serialized pages (history_wire.py): the same pages, as bytes -----------------------------------------
SCENARIOS = [
    ([[(1, 10), (2, 10)], [(3, 10)], [(4, 10)], [(5, 10), (6, 10), (7, 10)]], 8, 2, 1 << 20),
    ([[(i, 1024 * KIB) for i in range(1, 6)], [(6, 10)], [(7, 10)]], 8, 256, 4 * 1024 * KIB - 64 * KIB),
    ([[(1, 10)], [(2, 3000 * KIB)], [(3, 10)]], 4, 256, 1000 * KIB),
    ([[(1, 10)]] + [[(i, 1900 * KIB)] for i in range(2, 32)], 32, 256, 4 * 1024 * KIB - 64 * KIB),
]


async def read_all_serialized(store, ms, page_size: int, max_bytes: int, cursor: HistoryCursor):
    """Every page as GetWorkflowExecutionHistory would send it: (response bytes, the page)."""
    pages = []
    while cursor is not None:
        page = Page(page_size, max_bytes, serialized=True)
        cursor = await read_page(store, EventsCache(1 << 20), ms, cursor, page)
        token = b"" if cursor is None else cursor.encode()
        pages.append((history_response(page.framed, token), page))
        if cursor is not None:
            cursor = HistoryCursor.decode(token)
    return pages


@pytest.mark.parametrize("batches, next_id, page_size, max_bytes", SCENARIOS)
async def test_serialized_pages_are_the_pages_byte_for_byte(batches, next_id, page_size, max_bytes):
    transient = [event(next_id, 300 * KIB), event(next_id + 1)]
    parsed = await read_all(
        NodeStore(batches), state(next_id), page_size, max_bytes, HistoryCursor("r", 1, next_id, 1, transient)
    )
    serialized = await read_all_serialized(
        NodeStore(batches), state(next_id), page_size, max_bytes, HistoryCursor("r", 1, next_id, 1, transient)
    )
    assert len(serialized) == len(parsed) > 1
    for (raw, page), expected in zip(serialized, parsed, strict=True):
        response = GetWorkflowExecutionHistoryResponse.FromString(raw)
        assert list(response.history.events) == expected.events
        assert raw == response.SerializeToString()  # what protobuf itself would have sent
        assert page.size == expected.size


def test_split_events_finds_each_event_and_refuses_what_it_cannot_read():
    events = [event(1), event(300, 200 * KIB), event(2**40)]
    blob = History(events=events).SerializeToString()
    split = split_events(blob)
    assert split is not None
    assert [i for i, _ in split] == [1, 300, 2**40]
    assert [History.FromString(bytes(framed)).events[0] for _, framed in split] == events
    assert split_events(b"") == []
    assert split_events(History(events=[HistoryEvent(event_type=1)]).SerializeToString()) is None  # no id
    assert split_events(blob[:-1]) is None  # cut short
    assert split_events(b"\x12\x00" + blob) is None  # a field History does not have


async def test_a_batch_split_events_cannot_read_is_parsed_instead():
    store = NodeStore([[(1, 10), (2, 10)]])
    store.nodes[0].events = b"\x12\x00" + store.nodes[0].events  # an unknown field first: parse, skip it
    pages = await read_all_serialized(store, state(3), 256, 1 << 20, HistoryCursor("r", 1, 3, 1))
    response = GetWorkflowExecutionHistoryResponse.FromString(pages[0][0])
    assert [e.event_id for e in response.history.events] == [1, 2]


def test_an_empty_page_still_carries_a_history():
    response = GetWorkflowExecutionHistoryResponse.FromString(history_response([], b"tok"))
    assert response.HasField("history") and not response.history.events
    assert response.next_page_token == b"tok"
