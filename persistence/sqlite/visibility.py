"""Translate resolved visibility queries into parameterized SQLite, and index search attributes for it.

Every value (and every search attribute name, which becomes a JSON path) travels as a `?` parameter;
the SQL text is only ever assembled from the fixed column expressions below. Semantics match
persistence/visibility/evaluate.py exactly, which the store tests check:
- system attributes are expressions over the record's columns, in canonical units (nanoseconds);
- search attributes are read from the `search_attributes_index` JSON column, guarded by their JSON
  type so that a value of another type (the attribute was re-registered with a new type) reads as NULL;
- Text matching calls `hg_text_match`, a deterministic function registered on the connection that runs
  the evaluator's own matcher (the reference needs an FTS5 table per pre-allocated column for this).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.attributes import Attribute, ValueType
from hourglass.persistence.visibility.values import (
    NS_PER_MS,
    InvalidValue,
    canonical,
    decode_payload,
    parse_search_attributes,
    payload_type,
    text_matches,
)

INDEX_COLUMN = "search_attributes_index"
TEXT_MATCH_FUNCTION = "hg_text_match"

_EXECUTION_TIME_MS = "(CASE WHEN execution_time_ms = 0 THEN start_time_ms ELSE execution_time_ms END)"

# System attributes as SQL expressions yielding the same canonical values as evaluate.system_value.
_SYSTEM_EXPRESSIONS: dict[str, str] = {
    names.WORKFLOW_ID: "workflow_id",
    names.RUN_ID: "run_id",
    names.WORKFLOW_TYPE: "workflow_type",
    names.TASK_QUEUE: "task_queue",
    names.EXECUTION_STATUS: "status",
    names.HISTORY_LENGTH: "history_length",
    names.STATE_TRANSITION_COUNT: "state_transition_count",
    names.HISTORY_SIZE_BYTES: "history_size_bytes",
    names.PARENT_WORKFLOW_ID: "NULLIF(parent_workflow_id, '')",
    names.PARENT_RUN_ID: "NULLIF(parent_run_id, '')",
    names.ROOT_WORKFLOW_ID: "NULLIF(root_workflow_id, '')",
    names.ROOT_RUN_ID: "NULLIF(root_run_id, '')",
    names.START_TIME: f"(start_time_ms * {NS_PER_MS})",
    names.EXECUTION_TIME: f"({_EXECUTION_TIME_MS} * {NS_PER_MS})",
    names.CLOSE_TIME: f"(NULLIF(close_time_ms, 0) * {NS_PER_MS})",
    names.EXECUTION_DURATION: (
        f"(CASE WHEN close_time_ms = 0 THEN NULL ELSE (close_time_ms - {_EXECUTION_TIME_MS}) * {NS_PER_MS} END)"
    ),
    model.CLOSE_TIME_OR_RUNNING.name: (
        f"(CASE WHEN close_time_ms = 0 THEN {model.RUNNING_SORTS_AS} ELSE close_time_ms * {NS_PER_MS} END)"
    ),
}

# Time attributes stored as a millisecond column: range filters on them compare the column itself
# (with the bound rounded the exact way), so SQLite can use the index on it.
_MILLISECOND_COLUMNS: dict[str, str] = {
    names.START_TIME: "start_time_ms",
    names.CLOSE_TIME: "NULLIF(close_time_ms, 0)",
}

_NEVER_NULL = frozenset(_SYSTEM_EXPRESSIONS) - {
    names.CLOSE_TIME,
    names.EXECUTION_DURATION,
    names.PARENT_WORKFLOW_ID,
    names.PARENT_RUN_ID,
    names.ROOT_WORKFLOW_ID,
    names.ROOT_RUN_ID,
}

# json_type() results a canonical value of each type may have in the index.
_JSON_TYPES: dict[ValueType, tuple[str, ...]] = {
    ValueType.KEYWORD: ("text",),
    ValueType.TEXT: ("text",),
    ValueType.INT: ("integer", "real"),
    ValueType.DOUBLE: ("integer", "real"),
    ValueType.BOOL: ("true", "false"),
    ValueType.DATETIME: ("integer",),
    ValueType.KEYWORD_LIST: ("array",),
}


@dataclass
class Sql:
    """A fragment of SQL and the parameters its `?` placeholders take, in order."""

    text: str
    params: list[Any] = field(default_factory=list)


def json_path(name: str) -> str:
    """The JSON path of a search attribute in the index (a parameter, never part of the SQL text)."""
    return f'$."{name}"'


def attribute_expression(attribute: Attribute) -> Sql:
    """An expression with the attribute's canonical value, NULL when the run has none."""
    if not attribute.in_search_attributes:
        return Sql(_SYSTEM_EXPRESSIONS[attribute.name])
    json_types = ", ".join(f"'{t}'" for t in _JSON_TYPES[attribute.type])
    path = json_path(attribute.name)
    return Sql(
        f"(CASE WHEN json_type({INDEX_COLUMN}, ?) IN ({json_types}) THEN json_extract({INDEX_COLUMN}, ?) END)",
        [path, path],
    )


# ---- WHERE --------------------------------------------------------------------------------------------
def where_clause(query_filter: model.Filter | None) -> Sql:
    """The filter as a boolean SQL expression ("1" when there is none)."""
    return Sql("1") if query_filter is None else _condition(query_filter)


def _condition(node: model.Filter) -> Sql:
    if isinstance(node, model.And | model.Or):
        parts = [_condition(operand) for operand in node.operands]
        joiner = " AND " if isinstance(node, model.And) else " OR "
        return Sql("(" + joiner.join(p.text for p in parts) + ")", [x for p in parts for x in p.params])
    if isinstance(node, model.Not):
        inner = _condition(node.operand)
        return Sql(f"(NOT {inner.text})", inner.params)
    if isinstance(node, model.ListContains):
        return _negate(_list_contains(node), node.negated)
    value = attribute_expression(node.attribute)
    if isinstance(node, model.IsNull):
        return Sql(f"({value.text} IS {'NOT ' if node.negated else ''}NULL)", value.params)
    if isinstance(node, model.TextMatch):
        matched = Sql(f"{TEXT_MATCH_FUNCTION}({value.text}, ?)", [*value.params, json.dumps(node.tokens)])
        return _negate(matched, node.negated)
    if isinstance(node, model.StartsWith):
        prefix = Sql(f"(substr({value.text}, 1, ?) = ?)", [*value.params, len(node.prefix), node.prefix])
        return _negate(prefix, node.negated)
    column = _MILLISECOND_COLUMNS.get(node.attribute.name)
    if column is not None:
        ranged = _millisecond_condition(column, node)
        if ranged is not None:
            return ranged
    if isinstance(node, model.Compare):
        return Sql(f"({value.text} {node.op} ?)", [*value.params, node.value])
    if isinstance(node, model.In):
        placeholders = ", ".join("?" for _ in node.values)
        keyword = "NOT IN" if node.negated else "IN"
        return Sql(f"({value.text} {keyword} ({placeholders}))", [*value.params, *node.values])
    if isinstance(node, model.Between):
        keyword = "NOT BETWEEN" if node.negated else "BETWEEN"
        return Sql(f"({value.text} {keyword} ? AND ?)", [*value.params, node.low, node.high])
    raise TypeError(f"unknown filter node {node!r}")


def _negate(condition: Sql, negated: bool) -> Sql:
    return Sql(f"(NOT {condition.text})", condition.params) if negated else condition


def _list_contains(node: model.ListContains) -> Sql:
    """EXISTS is never NULL: a run without the list contains nothing (two-valued, as the reference)."""
    path = json_path(node.attribute.name)
    placeholders = ", ".join("?" for _ in node.values)
    return Sql(
        f"EXISTS (SELECT 1 FROM json_each({INDEX_COLUMN}, ?) AS item "
        f"WHERE json_type({INDEX_COLUMN}, ?) = 'array' AND item.value IN ({placeholders}))",
        [path, path, *node.values],
    )


def _millisecond_condition(column: str, node: model.Filter) -> Sql | None:
    """`ms * 1e6 op ns` rewritten as `ms op bound` with the bound rounded so the result is identical."""
    if isinstance(node, model.Compare) and node.op in ("<", "<=", ">", ">="):
        floor, ceil = _floor_ms(node.value), _ceil_ms(node.value)
        bound = {">": floor, ">=": ceil, "<": ceil, "<=": floor}[node.op]
        return Sql(f"({column} {node.op} ?)", [bound])
    if isinstance(node, model.Between):
        keyword = "NOT BETWEEN" if node.negated else "BETWEEN"
        return Sql(f"({column} {keyword} ? AND ?)", [_ceil_ms(node.low), _floor_ms(node.high)])
    return None


def _floor_ms(ns: int) -> int:
    return ns // NS_PER_MS


def _ceil_ms(ns: int) -> int:
    return -(-ns // NS_PER_MS)


# ---- ORDER BY and keyset paging ---------------------------------------------------------------------------
def sort_expressions(keys: Sequence[model.SortKey]) -> list[Sql]:
    return [attribute_expression(key.attribute) for key in keys]


def order_by_clause(keys: Sequence[model.SortKey]) -> Sql:
    """ORDER BY with missing values last in either direction (evaluate.compare_sort_values)."""
    parts: list[str] = []
    params: list[Any] = []
    for key, expression in zip(keys, sort_expressions(keys), strict=True):
        if key.attribute.name not in _NEVER_NULL:
            parts.append(f"({expression.text} IS NULL)")
            params += expression.params
        parts.append(f"{expression.text} {'DESC' if key.descending else 'ASC'}")
        params += expression.params
    return Sql(", ".join(parts), params)


def after_clause(keys: Sequence[model.SortKey], after: Sequence[Any]) -> Sql:
    """Rows sorting strictly after the given sort values: the keyset condition of the next page.

    For keys k1..kn and values v1..vn: OR over i of (k1 = v1 AND ... AND k(i-1) = v(i-1) AND ki after vi),
    where "after" follows the key's direction and missing values come last.
    """
    expressions = sort_expressions(keys)
    alternatives: list[Sql] = []
    equal_so_far: list[Sql] = []
    for key, expression, value in zip(keys, expressions, after, strict=True):
        later = _after_value(expression, value, key.descending)
        if later is not None:
            alternatives.append(_all([*equal_so_far, later]))
        equal_so_far.append(_equal_value(expression, value))
    if not alternatives:
        return Sql("0")
    return Sql(
        "(" + " OR ".join(a.text for a in alternatives) + ")", [x for a in alternatives for x in a.params]
    )


def _after_value(expression: Sql, value: Any, descending: bool) -> Sql | None:
    if value is None:
        return None  # nothing sorts after a missing value except on later keys
    op = "<" if descending else ">"
    return Sql(
        f"({expression.text} {op} ? OR {expression.text} IS NULL)",
        [*expression.params, value, *expression.params],
    )


def _equal_value(expression: Sql, value: Any) -> Sql:
    if value is None:
        return Sql(f"({expression.text} IS NULL)", list(expression.params))
    return Sql(f"({expression.text} = ?)", [*expression.params, value])


def _all(conditions: list[Sql]) -> Sql:
    return Sql(
        "(" + " AND ".join(c.text for c in conditions) + ")", [x for c in conditions for x in c.params]
    )


# ---- the search attribute index -------------------------------------------------------------------------
def index_document(search_attributes: bytes, types: Mapping[str, ValueType]) -> str:
    """The JSON written to `search_attributes_index`: each attribute's canonical value.

    An attribute's type is the registered one (`types`: predefined and the namespace's custom ones), else
    the type its payload names; values that do not fit their type, and unset values, are left out.
    Datetimes become epoch nanoseconds, so that JSON comparisons order them correctly.
    """
    document: dict[str, Any] = {}
    for name, payload in parse_search_attributes(search_attributes).indexed_fields.items():
        value_type = types.get(name) or payload_type(payload)
        if value_type is None:
            continue
        try:
            value = canonical(decode_payload(payload), value_type)
        except InvalidValue:
            continue
        if value is not None:
            document[name] = value
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def register_functions(conn: sqlite3.Connection) -> None:
    """Functions the generated SQL calls; must be registered on every connection that runs it."""
    conn.create_function(TEXT_MATCH_FUNCTION, 2, _text_match, deterministic=True)


def _text_match(text: Any, tokens_json: str) -> int:
    return int(text_matches(text if isinstance(text, str) else None, _tokens(tokens_json)))


@functools.lru_cache(maxsize=256)
def _tokens(tokens_json: str) -> tuple[str, ...]:
    """Called once per row with the same argument: decode it once per query."""
    return tuple(json.loads(tokens_json))
