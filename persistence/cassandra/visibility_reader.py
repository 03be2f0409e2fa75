"""Visibility list and count queries on Cassandra: read only the rows the pushdown admits, then evaluate.

A query becomes one or more phases, each a pushdown (visibility_pushdown.py) read day partition by day
partition. Every row read is evaluated against the whole query in Python, and the page is the first
rows in the query's full sort order after the page token (persistence/visibility/paging.py), exactly as
the scan computes it (persistence/visibility/scan.py). What the pushdown adds:
- fewer rows: the filter's top-level restrictions run in Cassandra (indexes, clustering slices), and a
  StartTime range bounds which days are read at all;
- early stop: when the order's leading key is StartTime, rows arrive in that order (days newest first,
  each partition clustered newest first; or reversed), so a page stops reading once it has page_size + 1
  candidates and a row starts strictly later in the order than the last of them. The default order
  (running first, then newest close) is read as two phases: open runs (close_time_ms = 0) in start order
  with early stop, then closed runs only if the page is not full yet (a token past the open runs skips
  the first phase);
- reads that need no order (counts, closed runs) request a few day partitions at once.
The store counts the rows Cassandra returned (`rows_read`), so tests and benchmarks see the narrowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cassandra.query import PreparedStatement

from hourglass.persistence.cassandra.visibility_pushdown import (
    NOTHING,
    Pushdown,
    Range,
    ceil_ms,
    day_read,
    floor_ms,
    ordered_by_cql,
    pushdown_of,
)
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
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

Row = dict[str, Any]
Pages = Callable[[Any], AsyncIterator[list[Row]]]
Prepare = Callable[[str], Awaitable[PreparedStatement]]

MIN_DAY, MAX_DAY = -(2**31), 2**31 - 1
# Rows per request when a phase is read whole; an early-stopping phase asks for about a page at a time.
FULL_READ_ROWS = 1000
MIN_ORDERED_ROWS = 10
# Day partitions an unordered read (counts, closed runs of the default order) requests at once.
DAYS_AT_ONCE = 4


@dataclass(frozen=True)
class Phase:
    """A pushdown read in start order (`descending` True/False, for early stop) or in any order (None);
    `closed_only` drops open runs (close_time_ms = 0) in Python, an earlier phase having read them;
    `open_only` drops closed ones: an index can still hand over a row that closed a moment ago, and the
    closed-runs phase reads that row too."""

    push: Pushdown
    descending: bool | None = None
    closed_only: bool = False
    open_only: bool = False


def plan(query: VisibilityQuery, after: tuple[Any, ...] | None) -> list[Phase]:
    """The phases answering a page of the query, in sort order: every row a phase yields sorts before every
    row of the next phase, so a page filled by one phase needs no later one."""
    base = pushdown_of(query.filter)
    keys = query.sort_keys
    lead = keys[0]
    if lead.attribute.name == names.START_TIME:
        return [Phase(base.narrowed(start_ms=_after_start(after, lead.descending)), lead.descending)]
    if (
        lead.attribute.name == model.CLOSE_TIME_OR_RUNNING.name
        and lead.descending
        and keys[1].attribute.name == names.START_TIME
        and keys[1].descending
    ):
        running = base.narrowed(close_ms=Range(0, 0))
        if after is not None and after[0] == model.RUNNING_SORTS_AS:
            running = running.narrowed(start_ms=_after_start(after[1:], descending=True))
        elif after is not None:
            running = NOTHING  # the previous page ended among closed runs: every open one came before
        # Closed runs are not restricted to close_time_ms >= 1 in CQL: an index range that admits nearly
        # every row costs Cassandra more than handing over the few open rows the phase then skips.
        return [Phase(running, descending=True, open_only=True), Phase(base, closed_only=True)]
    return [Phase(base)]


def _after_start(after: tuple[Any, ...] | None, descending: bool) -> Range:
    """Start times (ms) that can still sort after the page token's row, StartTime being the leading key."""
    if after is None or not isinstance(after[0], int):
        return Range()
    return Range(high=floor_ms(after[0])) if descending else Range(low=ceil_ms(after[0]))


class VisibilityReader:
    """Runs pushed-down visibility reads with the store's request plumbing (`pages`, `prepare`)."""

    def __init__(
        self,
        pages: Pages,
        prepare: Prepare,
        days_desc: PreparedStatement,
        days_asc: PreparedStatement,
        columns: str,
        day_ms: int,
        from_row: Callable[[Row], VisibilityRecord],
    ) -> None:
        self._pages = pages
        self._prepare = prepare
        self._days_desc = days_desc
        self._days_asc = days_asc
        self._columns = columns
        self._day_ms = day_ms
        self._from_row = from_row
        self._statements: dict[str, PreparedStatement] = {}
        self.rows_read = 0

    # ---- queries -----------------------------------------------------------------------------------------
    async def query(
        self, namespace_id: str, query: VisibilityQuery, page_size: int, next_page_token: bytes
    ) -> tuple[list[VisibilityRecord], bytes]:
        """One page in the query's order and the next page's token, as scan.query_by_scan answers it."""
        if page_size < 1:
            raise ValueError(f"page_size must be positive, not {page_size}")
        keys = query.sort_keys
        after = decode_page_token(next_page_token, len(keys))
        wanted = page_size + 1
        candidates: list[tuple[tuple[Any, ...], VisibilityRecord]] = []
        # A run read open by one phase may have closed before the next phase reads it: a page shows it
        # once, as the later read saw it.
        seen: dict[tuple[str, str], int] = {}
        for phase in plan(query, after):
            fetch = (
                FULL_READ_ROWS
                if phase.descending is None
                else max(MIN_ORDERED_ROWS, min(wanted + 1, FULL_READ_ROWS))
            )
            boundary: int | None = None
            async with contextlib.aclosing(self.records(namespace_id, phase, fetch)) as records:
                async for record in records:
                    if boundary is not None and _beyond(record.start_time_ms, boundary, phase.descending):
                        break
                    if phase.closed_only and record.close_time_ms == 0:
                        continue
                    if phase.open_only and record.close_time_ms != 0:
                        continue
                    view = RecordView(record)
                    if not matches(query.filter, view):
                        continue
                    values = sort_values(view, keys)
                    if after is not None and compare_sort_values(values, after, keys) <= 0:
                        continue
                    run = (record.workflow_id, record.run_id)
                    if run in seen:
                        candidates[seen[run]] = (values, record)
                        continue
                    seen[run] = len(candidates)
                    candidates.append((values, record))
                    if phase.descending is not None and boundary is None and len(candidates) >= wanted:
                        boundary = record.start_time_ms
            if len(candidates) >= wanted:
                break
        by_order = sort_key_function(keys)
        first = heapq.nsmallest(wanted, candidates, key=lambda item: by_order(item[0]))
        page = first[:page_size]
        token = encode_page_token(page[-1][0]) if len(first) > page_size else b""
        return [record for _, record in page], token

    async def count(self, namespace_id: str, query: VisibilityQuery) -> int:
        return sum([1 async for _ in self._matching(namespace_id, query)])

    async def count_groups(
        self, namespace_id: str, query: VisibilityQuery
    ) -> list[tuple[tuple[Any, ...], int]]:
        counts: Counter[tuple[Any, ...]] = Counter()
        async for view in self._matching(namespace_id, query):
            counts[group_values(view, query.group_by)] += 1
        return sorted(counts.items(), key=lambda item: tuple((v is not None, v) for v in item[0]))

    async def _matching(self, namespace_id: str, query: VisibilityQuery) -> AsyncIterator[RecordView]:
        phase = Phase(pushdown_of(query.filter))
        async with contextlib.aclosing(self.records(namespace_id, phase, FULL_READ_ROWS)) as records:
            async for record in records:
                view = RecordView(record)
                if matches(query.filter, view):
                    yield view

    # ---- reads ---------------------------------------------------------------------------------------------
    async def records(
        self, namespace_id: str, phase: Phase, fetch_size: int
    ) -> AsyncIterator[VisibilityRecord]:
        """The rows the phase's pushdown admits: in start order when the phase is ordered, else a few days
        at a time read concurrently."""
        push = phase.push
        if push.empty:
            return
        ascending = phase.descending is False
        days = await self._days(namespace_id, push.start_ms, ascending)
        if phase.descending is None:
            for i in range(0, len(days), DAYS_AT_ONCE):
                chunk = await asyncio.gather(
                    *(
                        self._day_rows(namespace_id, push, day, fetch_size)
                        for day in days[i : i + DAYS_AT_ONCE]
                    )
                )
                for rows in chunk:
                    for record in rows:
                        yield record
            return
        for day in days:
            async with contextlib.aclosing(self._day(namespace_id, push, day, ascending, fetch_size)) as rows:
                async for record in rows:
                    yield record

    async def _days(self, namespace_id: str, start_ms: Range, ascending: bool) -> list[int]:
        """The namespace's days with rows that the start range overlaps (a namespace has one per day of
        retention: few enough to hold)."""
        low = MIN_DAY if start_ms.low is None else max(MIN_DAY, start_ms.low // self._day_ms)
        high = MAX_DAY if start_ms.high is None else min(MAX_DAY, start_ms.high // self._day_ms)
        statement = (self._days_asc if ascending else self._days_desc).bind((namespace_id, low, high))
        statement.fetch_size = FULL_READ_ROWS
        return [row["start_day"] async for page in self._pages(statement) for row in page]

    async def _day_rows(
        self, namespace_id: str, push: Pushdown, day: int, fetch_size: int
    ) -> list[VisibilityRecord]:
        return [record async for record in self._day(namespace_id, push, day, False, fetch_size)]

    async def _day(
        self, namespace_id: str, push: Pushdown, day: int, ascending: bool, fetch_size: int
    ) -> AsyncIterator[VisibilityRecord]:
        read = day_read(self._columns, push, namespace_id, day, self._day_ms, ascending)
        statement = (await self._prepared(read.cql)).bind(read.params)
        statement.fetch_size = fetch_size
        buffer = not ordered_by_cql(push, ascending)
        buffered: list[VisibilityRecord] = []
        async with contextlib.aclosing(self._pages(statement)) as pages:
            async for page in pages:
                self.rows_read += len(page)
                records = [self._from_row(row) for row in page]
                if buffer:
                    buffered += records
                    continue
                for record in records:
                    yield record
        buffered.sort(key=lambda record: (record.start_time_ms, record.run_id))
        for record in buffered:
            yield record

    async def _prepared(self, cql: str) -> PreparedStatement:
        """Statements are prepared once per shape (the text names only columns and bind markers)."""
        statement = self._statements.get(cql)
        if statement is None:
            statement = await self._prepare(cql)
            statement.is_idempotent = True
            self._statements[cql] = statement
        return statement


def _beyond(start_ms: int, boundary: int, descending: bool | None) -> bool:
    """A row starting here sorts after every candidate collected up to the boundary's row."""
    return start_ms < boundary if descending else start_ms > boundary
