"""Visibility queries on a store: filters on every system attribute and custom attribute type, ORDER BY,
keyset paging, counts, the search attribute registry.

Each query is also answered by the Python evaluator over a plain scan (the Store default), and the two
must agree row for row: that is what makes a pushed-down store (SQLite's SQL) trustworthy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from store_factories import NS
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.converter import encode_search_attributes

from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import scan
from hourglass.persistence.visibility.attributes import ValueType
from hourglass.persistence.visibility.model import VisibilityQuery
from hourglass.persistence.visibility.paging import PageTokenError
from hourglass.persistence.visibility.resolve import parse_query

RUNNING, COMPLETED, FAILED, TERMINATED = 1, 2, 3, 5
CUSTOM = {
    "Kw": ValueType.KEYWORD,
    "Txt": ValueType.TEXT,
    "Num": ValueType.INT,
    "Dbl": ValueType.DOUBLE,
    "Flag": ValueType.BOOL,
    "When": ValueType.DATETIME,
    "Tags": ValueType.KEYWORD_LIST,
}
KW = SearchAttributeKey.for_keyword("Kw")
TXT = SearchAttributeKey.for_text("Txt")
NUM = SearchAttributeKey.for_int("Num")
DBL = SearchAttributeKey.for_float("Dbl")
FLAG = SearchAttributeKey.for_bool("Flag")
WHEN = SearchAttributeKey.for_datetime("When")
TAGS = SearchAttributeKey.for_keyword_list("Tags")
SECOND = 1_000  # ms


def attrs(*pairs: SearchAttributePair) -> bytes:
    message = SearchAttributes()
    encode_search_attributes(TypedSearchAttributes(list(pairs)), message)
    return message.SerializeToString()


def run(
    n: int,
    *,
    status: int = RUNNING,
    start_s: int,
    close_s: int = 0,
    workflow_type: str = "Greet",
    task_queue: str = "q",
    history_length: int = 0,
    search_attributes: bytes = b"",
    namespace_id: str = NS,
) -> VisibilityRecord:
    return VisibilityRecord(
        namespace_id,
        f"wf-{n}",
        f"run-{n}",
        workflow_type,
        task_queue,
        status,
        start_time_ms=start_s * SECOND,
        execution_time_ms=start_s * SECOND,
        close_time_ms=close_s * SECOND,
        history_length=history_length,
        memo=b"",
        search_attributes=search_attributes,
    )


# Eight runs of one namespace (plus one elsewhere) that between them take every branch of the tests.
RUNS = [
    run(
        1,
        start_s=100,
        search_attributes=attrs(
            SearchAttributePair(KW, "alpha"),
            SearchAttributePair(TXT, "The quick brown fox"),
            SearchAttributePair(NUM, 1),
            SearchAttributePair(DBL, 1.5),
            SearchAttributePair(FLAG, True),
            SearchAttributePair(WHEN, datetime(2026, 1, 1, tzinfo=UTC)),
            SearchAttributePair(TAGS, ["red", "green"]),
        ),
    ),
    run(
        2,
        start_s=200,
        status=COMPLETED,
        close_s=260,
        history_length=11,
        search_attributes=attrs(
            SearchAttributePair(KW, "beta"),
            SearchAttributePair(TXT, "a lazy dog"),
            SearchAttributePair(NUM, 2),
            SearchAttributePair(DBL, 2.5),
            SearchAttributePair(FLAG, False),
            SearchAttributePair(WHEN, datetime(2026, 2, 1, tzinfo=UTC)),
            SearchAttributePair(TAGS, ["blue"]),
        ),
    ),
    run(
        3,
        start_s=300,
        status=FAILED,
        close_s=310,
        workflow_type="Charge",
        history_length=5,
        search_attributes=attrs(SearchAttributePair(KW, "al%pha_"), SearchAttributePair(NUM, 3)),
    ),
    run(4, start_s=400, task_queue="other", workflow_type="Charge"),
    run(5, start_s=500, status=TERMINATED, close_s=900, history_length=3),
    run(
        6, start_s=600, search_attributes=attrs(SearchAttributePair(NUM, 2), SearchAttributePair(KW, "gamma"))
    ),
    run(7, start_s=600, status=COMPLETED, close_s=700, history_length=9),
    run(8, start_s=50, search_attributes=attrs(SearchAttributePair(TXT, "Quick thinking"))),
]
ELSEWHERE = run(9, start_s=999, namespace_id="ns-other")
# Running (no close time) first, newest start first; then closed, newest close first.
DEFAULT_ORDER = ["wf-6", "wf-4", "wf-1", "wf-8", "wf-5", "wf-7", "wf-3", "wf-2"]


@pytest.fixture
async def loaded(store: Store) -> Store:
    for record in [*RUNS, ELSEWHERE]:
        await store.upsert_visibility(record)
    return store


def query(text: str) -> VisibilityQuery:
    return parse_query(text, CUSTOM)


async def listed(store: Store, text: str, page_size: int = 100, namespace_id: str = NS) -> list[str]:
    """Workflow ids of every page, in order; also checks that the scan evaluator agrees."""
    q = query(text)
    ids: list[str] = []
    token = b""
    while True:
        page, token = await store.query_visibility(namespace_id, q, page_size, token)
        assert len(page) <= page_size
        ids += [r.workflow_id for r in page]
        if not token:
            break
        assert len(page) == page_size  # a token only when more rows exist
    reference, _ = await scan.query_by_scan(store, namespace_id, q, 1000, b"")
    assert ids == [r.workflow_id for r in reference], f"store and evaluator disagree on {text!r}"
    assert await store.count_visibility(namespace_id, q) == len(ids)
    assert await scan.count_by_scan(store, namespace_id, q) == len(ids)
    return ids


async def matching(store: Store, text: str) -> set[str]:
    return set(await listed(store, text))


# ---- filters ---------------------------------------------------------------------------------------------
SYSTEM_CASES = {
    "": set(DEFAULT_ORDER),
    "WorkflowId = 'wf-3'": {"wf-3"},
    "WorkflowId IN ('wf-3', 'wf-4', 'nope')": {"wf-3", "wf-4"},
    "WorkflowId STARTS_WITH 'wf-'": set(DEFAULT_ORDER),
    "RunId != 'run-1' AND RunId > 'run-6'": {"wf-7", "wf-8"},
    "WorkflowType = 'Charge'": {"wf-3", "wf-4"},
    "TaskQueue = 'other'": {"wf-4"},
    "ExecutionStatus = 'Running'": {"wf-1", "wf-4", "wf-6", "wf-8"},
    "ExecutionStatus != 'Running'": {"wf-2", "wf-3", "wf-5", "wf-7"},
    "ExecutionStatus IN ('Failed', 'Terminated')": {"wf-3", "wf-5"},
    "ExecutionStatus > 2": {"wf-3", "wf-5"},
    # Start times are whole seconds: 50, 100, 200, ... 600 (00:05:00 is 300 s).
    "StartTime > '1970-01-01T00:05:00Z'": {"wf-4", "wf-5", "wf-6", "wf-7"},
    "StartTime >= '1970-01-01T00:05:00Z'": {"wf-3", "wf-4", "wf-5", "wf-6", "wf-7"},
    "StartTime > '1970-01-01T00:04:59.999999999Z'": {"wf-3", "wf-4", "wf-5", "wf-6", "wf-7"},
    "StartTime <= '1970-01-01T00:01:40.000000001Z'": {"wf-1", "wf-8"},
    "StartTime < '1970-01-01T00:01:40.000000001Z'": {"wf-1", "wf-8"},
    "StartTime = '1970-01-01T00:10:00Z'": {"wf-6", "wf-7"},
    "StartTime BETWEEN '1970-01-01T00:03:20Z' AND '1970-01-01T00:05:00Z'": {"wf-2", "wf-3"},
    "StartTime NOT BETWEEN '1970-01-01T00:03:20Z' AND '1970-01-01T00:05:00Z'": {
        "wf-1",
        "wf-4",
        "wf-5",
        "wf-6",
        "wf-7",
        "wf-8",
    },
    "ExecutionTime < '1970-01-01T00:02:00Z'": {"wf-1", "wf-8"},
    "CloseTime IS NULL": {"wf-1", "wf-4", "wf-6", "wf-8"},
    "CloseTime IS NOT NULL": {"wf-2", "wf-3", "wf-5", "wf-7"},
    "CloseTime > '1970-01-01T00:05:00Z'": {"wf-3", "wf-5", "wf-7"},
    "NOT CloseTime > '1970-01-01T00:05:00Z'": {"wf-2"},  # running runs have no close time: unknown
    "HistoryLength >= 9": {"wf-2", "wf-7"},
    "ExecutionDuration > '1m'": {"wf-5", "wf-7"},
    "ExecutionDuration <= 10000000000": {"wf-3"},
}


@pytest.mark.parametrize("text", list(SYSTEM_CASES))
async def test_filters_on_system_attributes(loaded: Store, text: str) -> None:
    assert await matching(loaded, text) == SYSTEM_CASES[text]


CUSTOM_CASES = {
    "Kw = 'alpha'": {"wf-1"},
    "Kw != 'alpha'": {"wf-2", "wf-3", "wf-6"},
    "Kw > 'alpha'": {"wf-2", "wf-6"},
    "Kw IN ('beta', 'gamma')": {"wf-2", "wf-6"},
    "Kw NOT IN ('beta')": {"wf-1", "wf-3", "wf-6"},
    "Kw STARTS_WITH 'al'": {"wf-1", "wf-3"},
    "Kw STARTS_WITH 'al%'": {"wf-3"},
    "Kw NOT STARTS_WITH 'al'": {"wf-2", "wf-6"},
    "Kw BETWEEN 'a' AND 'b'": {"wf-1", "wf-3"},
    "Kw IS NULL": {"wf-4", "wf-5", "wf-7", "wf-8"},
    "Txt = 'quick'": {"wf-1", "wf-8"},
    "Txt = 'DOG cat'": {"wf-2"},
    "Txt = 'brown-fox'": {"wf-1"},
    "Txt != 'quick'": {"wf-2", "wf-3", "wf-4", "wf-5", "wf-6", "wf-7"},
    "Txt IS NOT NULL": {"wf-1", "wf-2", "wf-8"},
    "Num = 2": {"wf-2", "wf-6"},
    "Num > 1.5": {"wf-2", "wf-3", "wf-6"},
    "Num BETWEEN 2 AND 3": {"wf-2", "wf-3", "wf-6"},
    "Num IN (1, 3)": {"wf-1", "wf-3"},
    "Num != 2": {"wf-1", "wf-3"},
    "NOT Num = 2": {"wf-1", "wf-3"},
    "Dbl < 2": {"wf-1"},
    "Dbl = 2.5": {"wf-2"},
    "Flag = true": {"wf-1"},
    "Flag != true": {"wf-2"},
    "Flag IS NULL": {"wf-3", "wf-4", "wf-5", "wf-6", "wf-7", "wf-8"},
    "When = '2026-01-01T00:00:00Z'": {"wf-1"},
    "When > '2026-01-15T00:00:00Z'": {"wf-2"},
    "When BETWEEN '2025-12-31T23:00:00-01:00' AND '2026-01-01T00:00:00Z'": {"wf-1"},
    "Tags = 'green'": {"wf-1"},
    "Tags = 'GREEN'": set(),
    "Tags IN ('blue', 'purple')": {"wf-2"},
    "Tags != 'blue'": {"wf-1", "wf-3", "wf-4", "wf-5", "wf-6", "wf-7", "wf-8"},
    "Tags IS NULL": {"wf-3", "wf-4", "wf-5", "wf-6", "wf-7", "wf-8"},
    "(Num = 1 OR Kw = 'beta') AND Flag IS NOT NULL": {"wf-1", "wf-2"},
    "Num = 2 AND NOT (ExecutionStatus = 'Completed')": {"wf-6"},
}


@pytest.mark.parametrize("text", list(CUSTOM_CASES))
async def test_filters_on_custom_attributes_of_every_type(loaded: Store, text: str) -> None:
    assert await matching(loaded, text) == CUSTOM_CASES[text]


async def test_queries_only_see_their_namespace(loaded: Store) -> None:
    assert await listed(loaded, "", namespace_id="ns-other") == ["wf-9"]
    assert await listed(loaded, "", namespace_id="ns-empty") == []


# ---- order ---------------------------------------------------------------------------------------------------
async def test_default_order_is_running_first_then_newest(loaded: Store) -> None:
    assert await listed(loaded, "") == DEFAULT_ORDER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ORDER BY StartTime", ["wf-8", "wf-1", "wf-2", "wf-3", "wf-4", "wf-5", "wf-6", "wf-7"]),
        ("ORDER BY StartTime DESC", ["wf-6", "wf-7", "wf-5", "wf-4", "wf-3", "wf-2", "wf-1", "wf-8"]),
        ("Num IS NOT NULL ORDER BY Num DESC", ["wf-3", "wf-6", "wf-2", "wf-1"]),
        # Missing values last in both directions; ties broken by the default order.
        ("ORDER BY Kw", ["wf-3", "wf-1", "wf-2", "wf-6", "wf-4", "wf-8", "wf-5", "wf-7"]),
        ("ORDER BY Kw DESC", ["wf-6", "wf-2", "wf-1", "wf-3", "wf-4", "wf-8", "wf-5", "wf-7"]),
        ("ORDER BY CloseTime", ["wf-2", "wf-3", "wf-7", "wf-5", "wf-6", "wf-4", "wf-1", "wf-8"]),
        (
            "ORDER BY ExecutionStatus DESC, HistoryLength",
            ["wf-5", "wf-3", "wf-7", "wf-2", *DEFAULT_ORDER[:4]],
        ),
        ("ORDER BY Flag DESC, When", ["wf-1", "wf-2", "wf-6", "wf-4", "wf-8", "wf-5", "wf-7", "wf-3"]),
    ],
)
async def test_order_by(loaded: Store, text: str, expected: list[str]) -> None:
    assert await listed(loaded, text) == expected


# ---- paging --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 8])
@pytest.mark.parametrize(
    "text", ["", "ORDER BY Kw DESC", "ExecutionStatus = 'Running' ORDER BY Num", "ORDER BY When"]
)
async def test_paging_visits_every_row_once_in_order(loaded: Store, text: str, page_size: int) -> None:
    assert await listed(loaded, text, page_size) == await listed(loaded, text, 100)


async def test_paging_is_stable_when_runs_start_between_pages(loaded: Store) -> None:
    q = query("")
    first, token = await loaded.query_visibility(NS, q, 3)
    await loaded.upsert_visibility(run(10, start_s=5_000))  # sorts first: not on the pages still to come
    rest: list[str] = []
    while token:
        page, token = await loaded.query_visibility(NS, q, 3, token)
        rest += [r.workflow_id for r in page]
    assert [r.workflow_id for r in first] + rest == DEFAULT_ORDER


async def test_a_foreign_page_token_is_rejected(loaded: Store) -> None:
    for token in (b"garbage", b'{"v": 1, "after": [1]}', json.dumps({"v": 1, "after": [{}] * 4}).encode()):
        with pytest.raises(PageTokenError):
            await loaded.query_visibility(NS, query(""), 2, token)


async def test_records_read_back_whole(loaded: Store) -> None:
    page, _ = await loaded.query_visibility(NS, query("WorkflowId = 'wf-2'"), 10)
    assert page == [RUNS[1]]


# ---- counts --------------------------------------------------------------------------------------------------
async def test_count_grouped_by_execution_status(loaded: Store) -> None:
    q = query("StartTime > '1970-01-01T00:01:00Z' GROUP BY ExecutionStatus")
    expected = [((RUNNING,), 3), ((COMPLETED,), 2), ((FAILED,), 1), ((TERMINATED,), 1)]
    assert await loaded.count_visibility_groups(NS, q) == expected
    assert await scan.count_groups_by_scan(loaded, NS, q) == expected
    assert await loaded.count_visibility(NS, q) == 7


# ---- the search attribute registry ---------------------------------------------------------------------------
async def registry_or_skip(store: Store) -> None:
    try:
        await store.get_search_attributes(NS)
    except NotImplementedError:
        pytest.skip(f"{type(store).__name__} has no search attribute registry yet")


async def test_registry_add_get_remove(store: Store) -> None:
    await registry_or_skip(store)
    assert await store.get_search_attributes(NS) == {}
    await store.add_search_attributes(NS, {"Kw": int(ValueType.KEYWORD), "Num": int(ValueType.INT)})
    await store.add_search_attributes(NS, {"Num": int(ValueType.BOOL), "Tags": int(ValueType.KEYWORD_LIST)})
    assert await store.get_search_attributes(NS) == {"Kw": 2, "Num": 3, "Tags": 7}  # Num kept its type
    assert await store.get_search_attributes("ns-other") == {}
    await store.remove_search_attributes(NS, ["Kw", "NeverThere"])
    assert await store.get_search_attributes(NS) == {"Num": 3, "Tags": 7}


async def test_a_registered_attribute_is_queryable_without_type_metadata(store: Store) -> None:
    await registry_or_skip(store)
    await store.add_search_attributes(NS, {"Num": int(ValueType.INT), "When": int(ValueType.DATETIME)})
    untyped = SearchAttributes(
        indexed_fields={
            "Num": Payload(metadata={"encoding": b"json/plain"}, data=b"5"),
            "When": Payload(metadata={"encoding": b"json/plain"}, data=b'"2026-01-01T00:00:00Z"'),
        }
    )
    await store.upsert_visibility(run(1, start_s=1, search_attributes=untyped.SerializeToString()))
    assert await listed(store, "Num = 5 AND When < '2026-01-02T00:00:00Z' ORDER BY When") == ["wf-1"]


# ---- SQLite: rows written before the search attribute index existed -----------------------------------------
async def test_sqlite_indexes_unindexed_rows_when_it_opens(tmp_path) -> None:
    path = str(tmp_path / "hourglass.db")
    store = await SQLiteStore.open(path)
    for record in RUNS:
        await store.upsert_visibility(record)
    store._conn.execute("UPDATE visibility SET search_attributes_index = NULL")  # as v1 code leaves them
    await store.close()
    reopened = await SQLiteStore.open(path)
    try:
        assert await matching(reopened, "Num = 2 OR Tags = 'green'") == {"wf-1", "wf-2", "wf-6"}
    finally:
        await reopened.close()


# ---- lineage and size (schema version 5 / 4) ---------------------------------------------------------------
def family_member(n: str, parent: str = "", root: str = "", transitions: int = 0, size: int = 0):
    record = run(0, start_s=100 + len(n))
    record.workflow_id, record.run_id = f"wf-{n}", f"run-{n}"
    if parent:
        record.parent_workflow_id, record.parent_run_id = f"wf-{parent}", f"run-{parent}"
    root = root or n
    record.root_workflow_id, record.root_run_id = f"wf-{root}", f"run-{root}"
    record.state_transition_count, record.history_size_bytes = transitions, size
    return record


LINEAGE_CASES = {
    "ParentWorkflowId IS NULL": {"wf-top", "wf-alone"},
    "ParentWorkflowId IS NOT NULL": {"wf-kid", "wf-grandkid"},
    "ParentWorkflowId = 'wf-top'": {"wf-kid"},
    "ParentRunId = 'run-kid'": {"wf-grandkid"},
    "RootWorkflowId = 'wf-top'": {"wf-top", "wf-kid", "wf-grandkid"},
    "RootRunId = 'run-alone'": {"wf-alone"},
    "StateTransitionCount > 5": {"wf-kid", "wf-alone"},
    "HistorySizeBytes >= 1000": {"wf-grandkid", "wf-alone"},
    "RootWorkflowId = 'wf-top' AND HistorySizeBytes < 1000": {"wf-top", "wf-kid"},
}


@pytest.mark.parametrize("text", list(LINEAGE_CASES))
async def test_filters_on_lineage_and_size(store: Store, text: str) -> None:
    for record in (
        family_member("top", transitions=3, size=500),
        family_member("kid", parent="top", root="top", transitions=8, size=900),
        family_member("grandkid", parent="kid", root="top", transitions=2, size=4000),
        family_member("alone", transitions=11, size=1000),
    ):
        await store.upsert_visibility(record)
    assert await matching(store, text) == LINEAGE_CASES[text]


async def test_lineage_and_size_read_back(store: Store) -> None:
    record = family_member("kid", parent="top", root="top", transitions=8, size=900)
    await store.upsert_visibility(record)
    assert await store.get_visibility(NS, "wf-kid", "run-kid") == record
