"""Which part of a visibility query Cassandra can answer, and the CQL that reads only those rows.

A query's filter is a tree; the conjuncts at its top level (the operands of top-level ANDs) that name
a column of the `visibility` table (schema/cassandra/v1/visibility.cql) become restrictions of the
per-day CQL read:
- StartTime ranges: a slice of the clustering column start_time_ms, and the days to read at all;
- ExecutionStatus (=, IN, ranges) and CloseTime ranges: Storage-Attached Index ranges (an IN becomes its
  [min, max] range: SAI serves no IN, and a range still uses the index);
- WorkflowType =: its SAI; WorkflowType IN, WorkflowId, TaskQueue, RunId (= / IN): server-side
  filtering (ALLOW FILTERING) inside the one partition a read names, so the rows never cross the wire.
Everything else (OR, NOT, search attributes, ...) is left to Python. The pushdown only ever narrows:
callers still evaluate the whole query on every row that comes back (persistence/visibility/evaluate.py),
so answers are identical to the scan's by construction. Times are compared in milliseconds with bounds
rounded so that `ms * 1e6 op ns` keeps its meaning (as the SQLite translation does).

Rows are written with every column set (close_time_ms is 0 while a run is open), which the CloseTime
restrictions rely on: a missing CloseTime is exactly close_time_ms = 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.values import NS_PER_MS

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Keyword system attributes pushed down as equality sets: attribute -> column.
_INDEXED_EQUALITY = {names.WORKFLOW_TYPE: "workflow_type"}
_FILTERED_EQUALITY = {
    names.WORKFLOW_ID: "workflow_id",
    names.TASK_QUEUE: "task_queue",
    names.RUN_ID: "run_id",
}
_EQUALITY_COLUMNS = {**_INDEXED_EQUALITY, **_FILTERED_EQUALITY}


@dataclass(frozen=True)
class Range:
    """An inclusive integer range; None is unbounded on that side."""

    low: int | None = None
    high: int | None = None

    @property
    def empty(self) -> bool:
        return self.low is not None and self.high is not None and self.low > self.high

    @property
    def bounded(self) -> bool:
        return self.low is not None or self.high is not None

    def __and__(self, other: Range) -> Range:
        return Range(_max(self.low, other.low), _min(self.high, other.high))


@dataclass(frozen=True)
class Pushdown:
    """The restrictions a per-day visibility read applies. `equals` maps a column to the values it may take
    (sorted, so equal pushdowns prepare the same statement)."""

    start_ms: Range = Range()
    close_ms: Range = Range()
    status: Range = Range()
    equals: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def empty(self) -> bool:
        """True when no row can satisfy the restrictions (a contradiction such as two statuses)."""
        return (
            self.start_ms.empty
            or self.close_ms.empty
            or _clamp(self.status, INT32_MIN, INT32_MAX) is None
            or any(not values for _, values in self.equals)
        )

    @property
    def restricts_columns(self) -> bool:
        """Whether anything but the clustering slice is restricted. Cassandra then refuses ORDER BY (with
        row filtering it even serves the start_time_ms slice from that column's index)."""
        return self.status.bounded or self.close_ms.bounded or bool(self.equals)

    def narrowed(self, *, start_ms: Range = Range(), close_ms: Range = Range()) -> Pushdown:
        return dataclasses.replace(self, start_ms=self.start_ms & start_ms, close_ms=self.close_ms & close_ms)

    def with_equal(self, column: str, values: Sequence[str]) -> Pushdown:
        current = dict(self.equals)
        allowed = set(values) if column not in current else set(current[column]) & set(values)
        current[column] = tuple(sorted(allowed))
        return dataclasses.replace(self, equals=tuple(sorted(current.items())))


NOTHING = Pushdown(start_ms=Range(1, 0))


def pushdown_of(query_filter: model.Filter | None) -> Pushdown:
    """The restrictions implied by the filter's top-level conjuncts (the rest stays Python-only)."""
    push = Pushdown()
    for conjunct in top_level_conjuncts(query_filter):
        push = _fold(push, conjunct)
    return push


def top_level_conjuncts(query_filter: model.Filter | None) -> Iterator[model.Filter]:
    if query_filter is None:
        return
    if isinstance(query_filter, model.And):
        for operand in query_filter.operands:
            yield from top_level_conjuncts(operand)
    else:
        yield query_filter


def _fold(push: Pushdown, node: model.Filter) -> Pushdown:
    if isinstance(node, model.TextMatch | model.ListContains | model.StartsWith | model.And | model.Or):
        return push
    if isinstance(node, model.Not) or node.attribute.in_search_attributes:
        return push
    name = node.attribute.name
    if name == names.CLOSE_TIME and isinstance(node, model.IsNull):
        # A run without a close time has close_time_ms = 0; any other comparison needs a close time.
        return push.narrowed(close_ms=Range(high=0) if not node.negated else Range(low=1))
    if isinstance(node, model.IsNull):
        return push
    if name == names.START_TIME:
        return push.narrowed(start_ms=_millisecond_range(node))
    if name == names.CLOSE_TIME:
        return push.narrowed(close_ms=_millisecond_range(node) & Range(low=1))
    if name == names.EXECUTION_STATUS:
        status = _integer_range(node)
        return push if status is None else dataclasses.replace(push, status=push.status & status)
    column = _EQUALITY_COLUMNS.get(name)
    if column is not None:
        values = _equal_values(node)
        return push if values is None else push.with_equal(column, values)
    return push


def _equal_values(node: model.Filter) -> tuple[str, ...] | None:
    if isinstance(node, model.Compare) and node.op == "=":
        values: tuple[Any, ...] = (node.value,)
    elif isinstance(node, model.In) and not node.negated:
        values = node.values
    else:
        return None
    return values if all(isinstance(v, str) for v in values) else None


def _integers(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _integer_range(node: model.Filter) -> Range | None:
    """The inclusive range of integers the comparison admits, or None if it admits no single range."""
    if isinstance(node, model.Compare) and _integers([node.value]):
        v = node.value
        return {
            "=": Range(v, v),
            ">": Range(low=v + 1),
            ">=": Range(low=v),
            "<": Range(high=v - 1),
            "<=": Range(high=v),
        }.get(node.op)
    if isinstance(node, model.In) and not node.negated and node.values and _integers(node.values):
        return Range(min(node.values), max(node.values))
    if isinstance(node, model.Between) and not node.negated and _integers([node.low, node.high]):
        return Range(node.low, node.high)
    return None


def _millisecond_range(node: model.Filter) -> Range:
    """The milliseconds m with `m * 1e6 op value` true (values in nanoseconds); unbounded if unknown."""
    if isinstance(node, model.Compare) and _integers([node.value]):
        v = node.value
        return {
            "=": Range(ceil_ms(v), floor_ms(v)),
            ">": Range(low=floor_ms(v) + 1),
            ">=": Range(low=ceil_ms(v)),
            "<": Range(high=ceil_ms(v) - 1),
            "<=": Range(high=floor_ms(v)),
        }.get(node.op, Range())
    if isinstance(node, model.In) and not node.negated and node.values and _integers(node.values):
        return Range(ceil_ms(min(node.values)), floor_ms(max(node.values)))
    if isinstance(node, model.Between) and not node.negated and _integers([node.low, node.high]):
        return Range(ceil_ms(node.low), floor_ms(node.high))
    return Range()


def floor_ms(ns: int) -> int:
    return ns // NS_PER_MS


def ceil_ms(ns: int) -> int:
    return -(-ns // NS_PER_MS)


# ---- CQL ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayRead:
    """The statement text reading one day partition under a pushdown, and its parameters."""

    cql: str
    params: tuple[Any, ...]


def day_read(
    columns: str, push: Pushdown, namespace_id: str, day: int, day_ms: int, ascending: bool
) -> DayRead:
    """CQL for the rows of one (namespace, day) partition that satisfy the pushdown's restrictions.

    The text is assembled only from fixed fragments (every value is a bind marker), so equal shapes share
    one prepared statement. Rows come newest start first, or oldest first when `ascending` (asked of CQL
    only of an unrestricted slice: see `ordered_by_cql`).
    """
    start = push.start_ms & Range(day * day_ms, day * day_ms + day_ms - 1)
    where = ["namespace_id = ?", "start_day = ?", "start_time_ms >= ?", "start_time_ms <= ?"]
    params: list[Any] = [namespace_id, day, start.low, start.high]
    filtering = False
    status = _clamp(push.status, INT32_MIN, INT32_MAX)
    if push.status.bounded and status is not None:
        where += ["status >= ?", "status <= ?"]
        params += [status.low, status.high]
    close = _clamp(push.close_ms, INT64_MIN, INT64_MAX)
    if close is not None and close.low != INT64_MIN:
        where.append("close_time_ms >= ?")
        params.append(close.low)
    if close is not None and close.high != INT64_MAX:
        where.append("close_time_ms <= ?")
        params.append(close.high)
    for column, values in push.equals:
        if column in _INDEXED_EQUALITY.values() and len(values) == 1:
            where.append(f"{column} = ?")
            params.append(values[0])
        else:
            where.append(f"{column} IN ?")
            params.append(list(values))
            filtering = True
    cql = f"SELECT {columns} FROM visibility WHERE " + " AND ".join(where)
    if ascending and ordered_by_cql(push, ascending):
        cql += " ORDER BY start_time_ms ASC, run_id ASC"
    if filtering:
        cql += " ALLOW FILTERING"
    return DayRead(cql, tuple(params))


def ordered_by_cql(push: Pushdown, ascending: bool) -> bool:
    """Whether CQL returns the rows in the wanted start order itself (else the caller sorts a day's rows)."""
    return not ascending or not push.restricts_columns


def _clamp(bounds: Range, low: int, high: int) -> Range | None:
    """The range within [low, high] (both sides then bound), or None if nothing of it is left."""
    clamped = Range(
        low if bounds.low is None else max(bounds.low, low),
        high if bounds.high is None else min(bounds.high, high),
    )
    return None if clamped.empty else clamped


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
