"""Visibility queries on Cassandra: the pushdown (indexes, day slices, early stop) against the plain scan.

    python -m hourglass.loadtest.visibility_pushdown [--runs 5000] [--days 5] [--repeats 5]

Writes `--runs` visibility rows spread over `--days` UTC days into a fresh keyspace of a running Cassandra
($HOURGLASS_CASSANDRA_HOSTS, else 127.0.0.1; dropped afterwards), then answers each query both ways — the
store's pushdown (CassandraStore.query_visibility / count_visibility) and the Store default that scans
the namespace and evaluates in Python (persistence/visibility/scan.py) — checks they agree, and prints
the median wall time and the rows Cassandra returned. A benchmark to run by hand, never a test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import click

from hourglass.persistence.cassandra import testing
from hourglass.persistence.cassandra.config import build_cluster
from hourglass.persistence.cassandra.store import CassandraStore
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility import scan
from hourglass.persistence.visibility.resolve import parse_query

NS = "bench-ns"
DAY_MS = 86_400_000
RUNNING, COMPLETED, FAILED = 1, 2, 3
PAGE_SIZE = 100


def runs(count: int, days: int) -> list[VisibilityRecord]:
    """1% running, 1% failed, the rest completed; 1% of type Rare; starts spread evenly over the days."""
    spacing = days * DAY_MS // count
    records = []
    for n in range(count):
        start = n * spacing
        status = RUNNING if n % 100 == 0 else FAILED if n % 100 == 50 else COMPLETED
        records.append(
            VisibilityRecord(
                NS,
                f"wf-{n}",
                f"run-{n:06d}",
                "Rare" if n % 100 == 7 else "Common",
                "queue",
                status,
                start_time_ms=start,
                execution_time_ms=start,
                close_time_ms=0 if status == RUNNING else start + 60_000,
                history_length=11,
                memo=b"",
                search_attributes=b"",
            )
        )
    return records


def queries(days: int) -> list[tuple[str, str, bool]]:
    """(label, query text, whole listing?) — a whole listing pages to the end, else the first page only."""
    last_day = f"1970-01-{days:02d}T00:00:00Z"
    return [
        ("running (1%), every page", "ExecutionStatus = 'Running'", True),
        (
            "type Rare + Completed, every page",
            "WorkflowType = 'Rare' AND ExecutionStatus = 'Completed'",
            True,
        ),
        ("failed on the last day", f"ExecutionStatus = 'Failed' AND StartTime >= '{last_day}'", True),
        ("one workflow id", "WorkflowId = 'wf-4321'", True),
        ("newest first, first page", "ORDER BY StartTime DESC", False),
        ("default order, first page", "", False),
    ]


async def timed(
    repeats: int, store: CassandraStore, action: Callable[[], Awaitable[Any]]
) -> tuple[float, int, Any]:
    """Median wall time (ms) and rows read per call of `action`, and its last answer."""
    times, result = [], None
    before = store.visibility_rows_read
    for _ in range(repeats):
        started = time.perf_counter()
        result = await action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), (store.visibility_rows_read - before) // repeats, result


async def listing(store: CassandraStore, text: str, whole: bool, by_scan: bool) -> list[str]:
    q, ids, token = parse_query(text, {}), [], b""
    while True:
        if by_scan:
            page, token = await scan.query_by_scan(store, NS, q, PAGE_SIZE, token)
        else:
            page, token = await store.query_visibility(NS, q, PAGE_SIZE, token)
        ids += [r.workflow_id for r in page]
        if not token or not whole:
            return ids


async def bench(count: int, days: int, repeats: int) -> None:
    config = testing.acquire()
    keyspace = testing.new_keyspace_name("hg_bench_vis")
    admin = build_cluster(config)
    store: CassandraStore | None = None
    try:
        testing.create_test_keyspace(admin.connect(), keyspace)
        store = await CassandraStore.connect(dataclasses.replace(config, keyspace=keyspace))
        records = runs(count, days)
        started = time.perf_counter()
        for i in range(0, len(records), 200):
            await asyncio.gather(*(store.upsert_visibility(r) for r in records[i : i + 200]))
        print(
            f"loaded {count} runs over {days} days in {time.perf_counter() - started:.1f} s; {repeats} repeats\n"
        )
        print("| query | matches | scan ms | scan rows read | pushdown ms | pushdown rows read |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, text, whole in queries(days):
            s_ms, s_rows, s_ids = await timed(
                repeats, store, functools.partial(listing, store, text, whole, True)
            )
            p_ms, p_rows, p_ids = await timed(
                repeats, store, functools.partial(listing, store, text, whole, False)
            )
            assert s_ids == p_ids, f"pushdown and scan disagree on {text!r}"
            print(f"| {label}: `{text}` | {len(p_ids)} | {s_ms:.1f} | {s_rows} | {p_ms:.1f} | {p_rows} |")
        text = "ExecutionStatus = 'Running'"
        q = parse_query(text, {})
        s_ms, s_rows, s_n = await timed(repeats, store, lambda: scan.count_by_scan(store, NS, q))
        p_ms, p_rows, p_n = await timed(repeats, store, lambda: store.count_visibility(NS, q))
        assert s_n == p_n
        print(f"| count: `{text}` | {p_n} | {s_ms:.1f} | {s_rows} | {p_ms:.1f} | {p_rows} |")
    finally:
        if store is not None:
            await store.close()
        testing.drop_keyspace(admin.connect(), keyspace)
        admin.shutdown()
        testing.release()


@click.command()
@click.option("--runs", "count", default=5000, show_default=True, help="Visibility rows to write.")
@click.option("--days", default=5, show_default=True, help="UTC days their start times spread over.")
@click.option("--repeats", default=5, show_default=True, help="Calls per query and way (median reported).")
def main(count: int, days: int, repeats: int) -> None:
    """Time visibility queries on Cassandra: pushdown vs scan."""
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    asyncio.run(bench(count, days, repeats))


if __name__ == "__main__":
    main()
