"""Evaluate a resolved query against visibility records in Python.

This is the reference semantics: the scan (the Store default) uses it as is, Cassandra runs it on the
rows its pushdown narrowed the read to, and the SQLite translation is tested to agree with it. Filters
use SQL's three-valued logic (None is "unknown"); ordering puts missing values last in either direction.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.attributes import Attribute
from hourglass.persistence.visibility.values import (
    NS_PER_MS,
    canonical,
    decode_search_attributes,
    text_matches,
)


class RecordView:
    """A record's attribute values in canonical form; search attributes are decoded once, on first use."""

    def __init__(self, record: VisibilityRecord) -> None:
        self.record = record
        self._search_attributes: dict[str, Any] | None = None

    def value(self, attribute: Attribute) -> Any:
        if attribute.in_search_attributes:
            if self._search_attributes is None:
                self._search_attributes = decode_search_attributes(self.record.search_attributes)
            return canonical(self._search_attributes.get(attribute.name), attribute.type)
        return system_value(self.record, attribute.name)


def system_value(record: VisibilityRecord, name: str) -> Any:
    """A system attribute's value; times and durations in nanoseconds, None when absent (a running
    workflow has no CloseTime nor ExecutionDuration; ExecutionTime defaults to StartTime)."""
    execution_time_ms = record.execution_time_ms or record.start_time_ms
    closed = record.close_time_ms != 0
    if name == names.WORKFLOW_ID:
        return record.workflow_id
    if name == names.RUN_ID:
        return record.run_id
    if name == names.WORKFLOW_TYPE:
        return record.workflow_type
    if name == names.TASK_QUEUE:
        return record.task_queue
    if name == names.EXECUTION_STATUS:
        return record.status
    if name == names.HISTORY_LENGTH:
        return record.history_length
    if name == names.STATE_TRANSITION_COUNT:
        return record.state_transition_count
    if name == names.HISTORY_SIZE_BYTES:
        return record.history_size_bytes
    # A top-level run has no parent (NULL); rows written before version 5 of the schema know no root.
    if name == names.PARENT_WORKFLOW_ID:
        return record.parent_workflow_id or None
    if name == names.PARENT_RUN_ID:
        return record.parent_run_id or None
    if name == names.ROOT_WORKFLOW_ID:
        return record.root_workflow_id or None
    if name == names.ROOT_RUN_ID:
        return record.root_run_id or None
    if name == names.START_TIME:
        return record.start_time_ms * NS_PER_MS
    if name == names.EXECUTION_TIME:
        return execution_time_ms * NS_PER_MS
    if name == names.CLOSE_TIME:
        return record.close_time_ms * NS_PER_MS if closed else None
    if name == names.EXECUTION_DURATION:
        return (record.close_time_ms - execution_time_ms) * NS_PER_MS if closed else None
    if name == model.CLOSE_TIME_OR_RUNNING.name:
        return record.close_time_ms * NS_PER_MS if closed else model.RUNNING_SORTS_AS
    raise KeyError(f"no system attribute {name!r} in a visibility record")


# ---- filters --------------------------------------------------------------------------------------------
def matches(query_filter: model.Filter | None, record: VisibilityRecord | RecordView) -> bool:
    """True if the record satisfies the filter (unknown counts as not satisfied, as in SQL's WHERE)."""
    if query_filter is None:
        return True
    view = record if isinstance(record, RecordView) else RecordView(record)
    return evaluate(query_filter, view) is True


def evaluate(node: model.Filter, view: RecordView) -> bool | None:
    """Three-valued evaluation: True, False or None (unknown)."""
    if isinstance(node, model.And):
        results = [evaluate(operand, view) for operand in node.operands]
        return False if False in results else (None if None in results else True)
    if isinstance(node, model.Or):
        results = [evaluate(operand, view) for operand in node.operands]
        return True if True in results else (None if None in results else False)
    if isinstance(node, model.Not):
        result = evaluate(node.operand, view)
        return None if result is None else not result
    if isinstance(node, model.IsNull):
        return (view.value(node.attribute) is None) != node.negated
    if isinstance(node, model.TextMatch):
        return text_matches(view.value(node.attribute), node.tokens) != node.negated
    if isinstance(node, model.ListContains):
        items = view.value(node.attribute) or []
        return any(item in node.value_set for item in items) != node.negated
    value = view.value(node.attribute)
    if value is None:
        return None
    if isinstance(node, model.Compare):
        result = _compare(value, node.op, node.value)
    elif isinstance(node, model.In):
        result = value in node.value_set
    elif isinstance(node, model.Between):
        result = node.low <= value <= node.high
    elif isinstance(node, model.StartsWith):
        result = value.startswith(node.prefix)
    else:
        raise TypeError(f"unknown filter node {node!r}")
    return result != getattr(node, "negated", False)


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    raise ValueError(f"unknown comparison operator {op!r}")


# ---- ordering -------------------------------------------------------------------------------------------
SortValues = tuple[Any, ...]


def sort_values(view: RecordView, keys: Sequence[model.SortKey]) -> SortValues:
    return tuple(view.value(key.attribute) for key in keys)


def compare_sort_values(a: SortValues, b: SortValues, keys: Sequence[model.SortKey]) -> int:
    """-1, 0 or 1: whether a row with values `a` comes before, with or after one with `b`."""
    for x, y, key in zip(a, b, keys, strict=True):
        if x == y:
            continue
        if x is None:  # missing values last, whatever the direction
            return 1
        if y is None:
            return -1
        before = x > y if key.descending else x < y
        return -1 if before else 1
    return 0


def sort_key_function(keys: Sequence[model.SortKey]):
    """A `key=` for sorted()/heapq over SortValues."""
    return functools.cmp_to_key(lambda a, b: compare_sort_values(a, b, keys))


def group_values(view: RecordView, group_by: Sequence[Attribute]) -> tuple[Any, ...]:
    return tuple(view.value(attribute) for attribute in group_by)
