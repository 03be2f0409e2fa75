"""Visibility queries whose filters a store pushes down (Cassandra: indexes, day partitions, early stop),
over runs spread across several days: every answer must equal the Python evaluator's over a plain scan,
in every order and page size (the `listed` helper checks that), on both stores.

The Cassandra-only tests at the end check that the pushdown actually narrows what is read, with the
store's count of rows Cassandra returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from store_factories import NS
from temporalio.common import SearchAttributePair
from test_store_visibility_query import (
    COMPLETED,
    FAILED,
    NUM,
    RUNNING,
    TERMINATED,
    attrs,
    listed,
    query,
    run,
)

from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import scan

DAY_S = 86_400
STATUSES = [RUNNING, COMPLETED, FAILED, RUNNING, TERMINATED, COMPLETED]
TYPES = ["Greet", "Charge", "Ship"]


def spread_runs(count: int) -> list[VisibilityRecord]:
    """Runs over four days (UTC days 0-3), some pairs starting in the same second, closing up to a day later."""
    runs = []
    for n in range(count):
        day = n % 4
        twin = n - 4 if n % 8 == 7 else n  # every eighth run starts with another of its day
        start_s = day * DAY_S + (twin * 7919) % 40_000 // 3 * 3
        status = STATUSES[n % len(STATUSES)]
        close_s = 0 if status == RUNNING else start_s + (n * 4_111) % DAY_S + 1
        runs.append(
            run(
                n,
                status=status,
                start_s=start_s,
                close_s=close_s,
                workflow_type=TYPES[(n // 4) % 3],
                task_queue="q" if n % 5 else "other",
                search_attributes=attrs(SearchAttributePair(NUM, n % 7)),
            )
        )
    return runs


RUNS = spread_runs(48)


@pytest.fixture
async def spread(store: Store) -> Store:
    await asyncio.gather(*(store.upsert_visibility(record) for record in RUNS))
    return store


PUSHED_DOWN = [
    "ExecutionStatus = 'Running'",
    "ExecutionStatus = 'Running' AND WorkflowType = 'Charge'",
    "ExecutionStatus IN ('Failed', 'Terminated') AND StartTime >= '1970-01-02T00:00:00Z'",
    "ExecutionStatus > 1 AND ExecutionStatus < 4",
    "WorkflowType = 'Greet' AND StartTime BETWEEN '1970-01-02T00:00:00Z' AND '1970-01-03T05:00:00Z'",
    "WorkflowType IN ('Greet', 'Ship') AND StartTime < '1970-01-03T00:00:00.5Z'",
    "StartTime > '1970-01-02T03:00:00Z' AND StartTime <= '1970-01-04T00:00:00Z'",
    "StartTime = '1970-01-01T00:00:00Z'",
    "CloseTime > '1970-01-03T00:00:00Z' AND ExecutionStatus != 'Failed'",
    "CloseTime IS NULL AND WorkflowType = 'Ship'",
    "CloseTime IS NOT NULL AND StartTime < '1970-01-02T00:00:00Z'",
    "WorkflowId IN ('wf-3', 'wf-7', 'wf-11', 'wf-40') AND TaskQueue = 'q'",
    "RunId = 'run-5'",
    # Python-only predicates next to pushed-down ones
    "ExecutionStatus = 'Completed' AND Num >= 2",
    "ExecutionStatus = 'Running' AND (Num = 1 OR Num = 3) AND StartTime > '1970-01-01T06:00:00Z'",
    # no pushdown: OR / NOT at the top level
    "ExecutionStatus = 'Running' OR WorkflowType = 'Charge'",
    "NOT ExecutionStatus = 'Running' AND StartTime < '1970-01-02T06:00:00Z'",
    # contradictions and nothing in range
    "ExecutionStatus = 'Running' AND ExecutionStatus = 'Completed'",
    "WorkflowType = 'Greet' AND WorkflowType = 'Ship'",
    "StartTime > '1970-01-05T00:00:00Z'",
]
ORDERS = [
    "",
    " ORDER BY StartTime",
    " ORDER BY StartTime DESC",
    " ORDER BY CloseTime DESC",
    " ORDER BY Num, StartTime",
]


@pytest.mark.parametrize("text", PUSHED_DOWN)
async def test_pushed_down_filters_agree_with_the_scan_in_every_order_and_page_size(
    spread: Store, text: str
) -> None:
    for order in ORDERS:
        everything = await listed(spread, text + order)
        for page_size in (2, 5):
            assert await listed(spread, text + order, page_size) == everything, (text + order, page_size)


async def test_paging_one_row_at_a_time_crosses_days_in_order(spread: Store) -> None:
    for text in ("", "ORDER BY StartTime", "ExecutionStatus = 'Running' ORDER BY StartTime DESC"):
        rows = await listed(spread, text, page_size=1)
        assert len(rows) == await spread.count_visibility(NS, query(text))
    by_start = await listed(spread, "ORDER BY StartTime", page_size=1)
    days = [next(r.start_time_ms for r in RUNS if r.workflow_id == wf) // (DAY_S * 1000) for wf in by_start]
    assert days == sorted(days) and set(days) == {0, 1, 2, 3}


async def test_counts_grouped_with_a_pushed_down_filter(spread: Store) -> None:
    q = query("StartTime >= '1970-01-02T00:00:00Z' AND WorkflowType = 'Greet' GROUP BY ExecutionStatus")
    expected = await scan.count_groups_by_scan(spread, NS, q)
    assert await spread.count_visibility_groups(NS, q) == expected
    assert sum(n for _, n in expected) == sum(
        1 for r in RUNS if r.start_time_ms >= DAY_S * 1000 and r.workflow_type == "Greet"
    )


# ---- Cassandra: the pushdown narrows the read --------------------------------------------------------------
@pytest.fixture
async def cassandra(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    suite = request.getfixturevalue("cassandra_suite_keyspace")
    suite.reset()
    yield suite.store


async def load(store: Store, records: list[VisibilityRecord]) -> None:
    for i in range(0, len(records), 100):
        await asyncio.gather(*(store.upsert_visibility(r) for r in records[i : i + 100]))


def many_runs(count: int, running_every: int) -> list[VisibilityRecord]:
    """`count` runs over two days; every `running_every`-th is still running, the rest completed."""
    runs = []
    for n in range(count):
        start_s = (n % 2) * DAY_S + n * 10
        running = n % running_every == 0
        runs.append(
            run(
                n,
                status=RUNNING if running else COMPLETED,
                start_s=start_s,
                close_s=0 if running else start_s + 5,
                workflow_type="Rare" if n % 100 == 1 else "Common",
            )
        )
    return runs


async def rows_read(store: Store, text: str, page_size: int = 1000) -> tuple[list[str], int]:
    """Every page's workflow ids, and how many rows Cassandra returned to answer them."""
    before = store.visibility_rows_read  # type: ignore[attr-defined]
    q, ids, token = query(text), [], b""
    while True:
        page, token = await store.query_visibility(NS, q, page_size, token)
        ids += [r.workflow_id for r in page]
        if not token:
            return ids, store.visibility_rows_read - before  # type: ignore[attr-defined]


async def test_a_selective_filter_reads_only_matching_rows(cassandra: Store) -> None:
    runs = many_runs(600, running_every=100)  # 6 running
    await load(cassandra, runs)

    ids, read = await rows_read(cassandra, "ExecutionStatus = 'Running' ORDER BY StartTime DESC")
    assert len(ids) == 6 and read == 6
    # The default order reads open runs, then closed runs (the open ones come again and are skipped).
    ids, read = await rows_read(cassandra, "ExecutionStatus = 'Running'")
    assert len(ids) == 6 and read == 12
    ids, read = await rows_read(cassandra, "WorkflowType = 'Rare' AND ExecutionStatus = 'Completed'")
    assert len(ids) == 6 and read == 6
    ids, read = await rows_read(cassandra, "WorkflowId = 'wf-321'")
    assert ids == ["wf-321"] and read == 1
    # A StartTime range reads only the days and the slice it covers (runs 1, 3, 5... start on day 1).
    ids, read = await rows_read(
        cassandra,
        "StartTime >= '1970-01-02T00:00:00Z' AND StartTime < '1970-01-02T00:10:00Z' ORDER BY StartTime",
    )
    assert len(ids) == read == sum(1 for r in runs if DAY_S * 1000 <= r.start_time_ms < (DAY_S + 600) * 1000)

    before = cassandra.visibility_rows_read  # type: ignore[attr-defined]
    assert await cassandra.count_visibility(NS, query("ExecutionStatus = 'Running'")) == 6
    assert cassandra.visibility_rows_read - before == 6  # type: ignore[attr-defined]

    # The scan reads the whole namespace for the same answer.
    before = cassandra.visibility_rows_read  # type: ignore[attr-defined]
    assert await scan.count_by_scan(cassandra, NS, query("ExecutionStatus = 'Running'")) == 6
    assert cassandra.visibility_rows_read - before == 600  # type: ignore[attr-defined]


async def test_pages_in_start_order_stop_reading_early(cassandra: Store) -> None:
    runs = many_runs(600, running_every=3)  # 200 running: the default order lists them first
    await load(cassandra, runs)
    for text in ("ORDER BY StartTime DESC", "", "ExecutionStatus = 'Running'"):
        before = cassandra.visibility_rows_read  # type: ignore[attr-defined]
        page, token = await cassandra.query_visibility(NS, query(text), 10)
        assert len(page) == 10 and token
        read = cassandra.visibility_rows_read - before  # type: ignore[attr-defined]
        assert read <= 30, (text, read)
        # The next page starts where the token says, still reading about a page.
        before = cassandra.visibility_rows_read  # type: ignore[attr-defined]
        second, _ = await cassandra.query_visibility(NS, query(text), 10, token)
        assert cassandra.visibility_rows_read - before <= 30  # type: ignore[attr-defined]
        reference, _ = await scan.query_by_scan(cassandra, NS, query(text), 20, b"")
        assert page + second == reference


async def test_a_run_moved_to_another_day_is_found_once(cassandra: Store) -> None:
    record = run(1, start_s=100, status=RUNNING)
    await cassandra.upsert_visibility(record)
    moved = dataclasses.replace(record, start_time_ms=(2 * DAY_S + 5) * 1000)
    await cassandra.upsert_visibility(moved)
    ids, _ = await rows_read(cassandra, "ExecutionStatus = 'Running'")
    assert ids == ["wf-1"]
    ids, _ = await rows_read(cassandra, "ExecutionStatus = 'Running' AND StartTime < '1970-01-02T00:00:00Z'")
    assert ids == []
