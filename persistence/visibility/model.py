"""The typed form of a list query, after `resolve()`: what stores evaluate or translate.

Every attribute is resolved (name, type, where its value lives) and every value is in its canonical
form (see values.py): times and durations in nanoseconds, ExecutionStatus as its enum number.
Filters follow SQL's three-valued logic: a comparison against a missing value is unknown, NOT of
unknown is unknown, and a run matches only when the whole filter is true. Text and KeywordList
matches are the exception: they are plain true/false (a missing value contains nothing), as the
reference's full-text matches are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from hourglass.persistence.visibility.attributes import (
    RUN_ID,
    START_TIME,
    WORKFLOW_ID,
    Attribute,
    Kind,
    ValueType,
)


@dataclass(frozen=True)
class Compare:
    """`attribute op value` with op one of = != < <= > >= (for scalar types)."""

    attribute: Attribute
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    attribute: Attribute
    values: tuple[Any, ...]
    negated: bool = False

    # For evaluation in Python: a query may list 100k values, and each record is tested against them. Built
    # when first asked for: a store that translates the query to SQL never needs it, and a query parsed in
    # another process then travels (pickled) without it.
    @cached_property
    def value_set(self) -> frozenset[Any]:
        return frozenset(self.values)


@dataclass(frozen=True)
class Between:
    """Inclusive range, as SQL's BETWEEN."""

    attribute: Attribute
    low: Any
    high: Any
    negated: bool = False


@dataclass(frozen=True)
class StartsWith:
    """Case-sensitive prefix match of a Keyword."""

    attribute: Attribute
    prefix: str
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    attribute: Attribute
    negated: bool = False


@dataclass(frozen=True)
class TextMatch:
    """`Text = 'a b'`: the text contains any of the tokens (each a word or a phrase); see values.py."""

    attribute: Attribute
    tokens: tuple[str, ...]
    negated: bool = False


@dataclass(frozen=True)
class ListContains:
    """`KeywordList = 'x'` / `IN (...)`: the list holds any of the values (exact, case-sensitive)."""

    attribute: Attribute
    values: tuple[str, ...]
    negated: bool = False

    @cached_property
    def value_set(self) -> frozenset[str]:  # as In.value_set
        return frozenset(self.values)


@dataclass(frozen=True)
class And:
    operands: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    operand: Filter


Filter = Compare | In | Between | StartsWith | IsNull | TextMatch | ListContains | And | Or | Not


def split_large_in(node: Filter | None, chunk: int) -> list[Filter] | None:
    """The filter as several whose matches are disjoint and together the filter's, when it is (or ANDs)
    an `IN` of more than `chunk` values: one per slice of the list. None when there is nothing to split.

    A store can then answer a huge `IN (...)` in short steps (and merge), instead of in one long one.
    """
    if isinstance(node, In):
        operands: tuple[Filter, ...] = (node,)
    elif isinstance(node, And):
        operands = node.operands
    else:
        return None
    for i, operand in enumerate(operands):
        if isinstance(operand, In) and not operand.negated and len(operand.values) > chunk:
            values = tuple(dict.fromkeys(operand.values))  # a value in two slices would match twice
            slices = [replace(operand, values=values[j : j + chunk]) for j in range(0, len(values), chunk)]
            if isinstance(node, In):
                return list(slices)
            return [And((*operands[:i], part, *operands[i + 1 :])) for part in slices]
    return None


def filter_depth(node: Filter | None) -> int:
    """How many AND / OR / NOT levels the filter nests (0 for a single predicate), found without
    recursion. Stores with a bounded expression parser (SQLite's) check it before translating."""
    deepest = 0
    pending: list[tuple[Filter, int]] = [] if node is None else [(node, 0)]
    while pending:
        current, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(current, And | Or):
            pending += [(operand, depth + 1) for operand in current.operands]
        elif isinstance(current, Not):
            pending.append((current.operand, depth + 1))
    return deepest


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY item. Missing values sort last in either direction (as Elasticsearch does)."""

    attribute: Attribute
    descending: bool = False


# A pseudo attribute for the default order: the close time, with running workflows (no close time) above
# everything. Its value is never missing, so keyset paging over it needs no NULL handling.
CLOSE_TIME_OR_RUNNING = Attribute("_CloseTimeOrRunning", ValueType.DATETIME, Kind.SYSTEM)
RUNNING_SORTS_AS = 2**63 - 1

# The reference's SQL order (running first, then newest close, newest start, run id); it also breaks
# the ties of every ORDER BY, with the workflow id last so that the order is total and keyset paging
# never skips or repeats a run.
DEFAULT_ORDER: tuple[SortKey, ...] = (
    SortKey(CLOSE_TIME_OR_RUNNING, descending=True),
    SortKey(Attribute(START_TIME, ValueType.DATETIME, Kind.SYSTEM), descending=True),
    SortKey(Attribute(RUN_ID, ValueType.KEYWORD, Kind.SYSTEM)),
    SortKey(Attribute(WORKFLOW_ID, ValueType.KEYWORD, Kind.SYSTEM)),
)


@dataclass(frozen=True)
class VisibilityQuery:
    """A resolved query. `order_by` is what the user asked for; `sort_keys` adds the tie-breakers."""

    filter: Filter | None = None
    order_by: tuple[SortKey, ...] = ()
    group_by: tuple[Attribute, ...] = ()
    sort_keys: tuple[SortKey, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sort_keys", self.order_by + DEFAULT_ORDER)


MATCH_ALL = VisibilityQuery()
