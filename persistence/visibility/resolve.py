"""The typing pass: check a parsed query against the known attributes and type its values.

Which operators each type allows and which literals each type accepts follow the reference's query
converter, so a query Temporal accepts is accepted here and one it rejects is rejected (with a position).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hourglass.persistence.visibility import model
from hourglass.persistence.visibility import query as syntax
from hourglass.persistence.visibility.attributes import (
    EXECUTION_DURATION,
    EXECUTION_STATUS,
    SYSTEM,
    UNSUPPORTED_SYSTEM,
    WORKFLOW_ID,
    Attribute,
    Kind,
    ValueType,
    lookup,
)
from hourglass.persistence.visibility.query import QueryError
from hourglass.persistence.visibility.values import (
    parse_datetime_ns,
    parse_duration_ns,
    parse_status,
    status_name,
    text_query_tokens,
)

_RANGE_TYPES = (ValueType.DATETIME, ValueType.DOUBLE, ValueType.INT, ValueType.KEYWORD)
_GROUP_BY_ALLOWED = (EXECUTION_STATUS,)


# What a status-like value of an archetype's ExecutionStatus that no run has turns into: matches nothing.
NO_STATUS = -1


@dataclass(frozen=True)
class ArchetypeView:
    """How a list of one standalone archetype (activities, Nexus operations) reads a query, as the
    reference's CHASM visibility does. Each is kept as hidden runs whose workflow ids start with
    `id_prefix`; its own names stand for the runs' columns (`aliases`, e.g. ActivityId -> WorkflowId,
    ActivityType -> WorkflowType) or for Keyword search attributes of the runs (`keywords`). The
    business id (its alias and WorkflowId itself) is written without the prefix. ExecutionStatus is a
    Keyword of the archetype's status names (`statuses`, name -> the run's status): a name no run has
    matches nothing, STARTS_WITH works on the names. ORDER BY is refused, GROUP BY takes ExecutionStatus.
    """

    id_prefix: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    keywords: tuple[str, ...] = ()
    statuses: Mapping[str, int] = field(default_factory=dict)


def parse_query(
    text: str, custom: Mapping[str, int], view: ArchetypeView | None = None
) -> model.VisibilityQuery:
    """Parse and resolve in one step: what the frontend calls. Raises QueryError."""
    return resolve(syntax.parse(text), custom, view)


def resolve(
    query: syntax.Query, custom: Mapping[str, int], view: ArchetypeView | None = None
) -> model.VisibilityQuery:
    """Type a parsed query given the namespace's custom attributes (name -> IndexedValueType), for
    workflows or (`view`) for a standalone archetype's hidden runs."""
    resolver = _Resolver(custom, view)
    where = None if query.where is None else resolver.filter(query.where)
    if len(query.group_by) > 1:
        raise QueryError(
            "operation is not supported: 'GROUP BY' clause supports only a single field",
            query.group_by[1].position,
        )
    group_by = tuple(resolver.group_by_attribute(name) for name in query.group_by)
    if view is not None and query.order_by:
        raise QueryError(
            "operation is not supported: 'ORDER BY' clause", query.order_by[0].attribute.position
        )
    order_by = tuple(resolver.sort_key(item) for item in query.order_by)
    return model.VisibilityQuery(where, order_by, group_by)


class _Resolver:
    def __init__(self, custom: Mapping[str, int], view: ArchetypeView | None = None) -> None:
        self.custom = custom
        self.view = view

    # ---- attributes ----------------------------------------------------------------------------------------
    def attribute(self, name: syntax.Name) -> Attribute:
        if self.view is not None:
            column = self.view.aliases.get(name.name)
            if column is not None:
                return Attribute(column, SYSTEM[column], Kind.SYSTEM)
            if name.name in self.view.keywords:
                return Attribute(name.name, ValueType.KEYWORD, Kind.CUSTOM)
        attribute = lookup(name.name, self.custom)
        if attribute is None:
            raise QueryError(f"unknown search attribute {name.name!r}", name.position)
        if attribute.name in UNSUPPORTED_SYSTEM:
            raise QueryError(
                f"search attribute {attribute.name!r} is not supported by Hourglass visibility yet",
                name.position,
            )
        return attribute

    def group_by_attribute(self, name: syntax.Name) -> Attribute:
        attribute = self.attribute(name)
        if attribute.name not in _GROUP_BY_ALLOWED:
            raise QueryError(
                "operation is not supported: 'GROUP BY' clause is not supported for search attribute "
                f"{name.name} (only {', '.join(_GROUP_BY_ALLOWED)})",
                name.position,
            )
        return attribute

    def sort_key(self, item: syntax.OrderItem) -> model.SortKey:
        attribute = self.attribute(item.attribute)
        if attribute.type in (ValueType.TEXT, ValueType.KEYWORD_LIST):
            raise QueryError(
                f"cannot ORDER BY search attribute {attribute.name!r} of type {attribute.type.display_name}",
                item.attribute.position,
            )
        return model.SortKey(attribute, item.descending)

    # ---- filters -------------------------------------------------------------------------------------------
    def filter(self, expr: syntax.Expr) -> model.Filter:
        if isinstance(expr, syntax.And):
            return model.And(tuple(self.filter(e) for e in _chain(expr, syntax.And)))
        if isinstance(expr, syntax.Or):
            return model.Or(tuple(self.filter(e) for e in _chain(expr, syntax.Or)))
        if isinstance(expr, syntax.Not):
            return model.Not(self.filter(expr.operand))
        if isinstance(expr, syntax.Comparison):
            return self.comparison(expr)
        if isinstance(expr, syntax.InList):
            return self.in_list(expr)
        if isinstance(expr, syntax.Between):
            return self.between(expr)
        if isinstance(expr, syntax.StartsWith):
            return self.starts_with(expr)
        if isinstance(expr, syntax.IsNull):
            return model.IsNull(self.attribute(expr.attribute), expr.negated)
        raise TypeError(f"unknown syntax node {expr!r}")

    def comparison(self, expr: syntax.Comparison) -> model.Filter:
        attribute = self.attribute(expr.attribute)
        if attribute.type is ValueType.TEXT:
            _check_operator(attribute, expr.op, ("=", "!="), expr.attribute)
            text = self.value(attribute, expr.attribute, expr.value)
            tokens = text_query_tokens(text)
            if not tokens:
                raise QueryError(
                    f"no words to search for in Text search attribute {attribute.name!r}", expr.value.position
                )
            return model.TextMatch(attribute, tokens, negated=expr.op == "!=")
        if attribute.type is ValueType.KEYWORD_LIST:
            _check_operator(attribute, expr.op, ("=", "!="), expr.attribute)
            return model.ListContains(
                attribute, (self.value(attribute, expr.attribute, expr.value),), negated=expr.op == "!="
            )
        return model.Compare(attribute, expr.op, self.value(attribute, expr.attribute, expr.value))

    def in_list(self, expr: syntax.InList) -> model.Filter:
        attribute = self.attribute(expr.attribute)
        operator = "NOT IN" if expr.negated else "IN"
        _check_operator(
            attribute, operator, () if attribute.type is ValueType.TEXT else (operator,), expr.attribute
        )
        values = tuple(self.value(attribute, expr.attribute, literal) for literal in expr.values)
        if attribute.type is ValueType.KEYWORD_LIST:
            return model.ListContains(attribute, values, expr.negated)
        return model.In(attribute, values, expr.negated)

    def between(self, expr: syntax.Between) -> model.Between:
        attribute = self.attribute(expr.attribute)
        if attribute.type not in _RANGE_TYPES:
            raise QueryError(
                f"cannot use BETWEEN on search attribute {attribute.name!r} of type "
                f"{attribute.type.display_name}",
                expr.attribute.position,
            )
        low, high = (
            self.value(attribute, expr.attribute, expr.low),
            self.value(attribute, expr.attribute, expr.high),
        )
        return model.Between(attribute, low, high, expr.negated)

    def starts_with(self, expr: syntax.StartsWith) -> model.Filter:
        attribute = self.attribute(expr.attribute)
        if self.view is not None and attribute.name == EXECUTION_STATUS:
            # A Keyword of names there: the statuses whose names start so.
            prefix = self.value(attribute, expr.attribute, expr.prefix, as_name=True)
            matching = tuple(v for n, v in self.view.statuses.items() if n.startswith(prefix))
            return model.In(attribute, matching or (NO_STATUS,), expr.negated)
        operator = "NOT STARTS_WITH" if expr.negated else "STARTS_WITH"
        allowed = (
            (operator,) if attribute.type is ValueType.KEYWORD and attribute.name != EXECUTION_STATUS else ()
        )
        _check_operator(attribute, operator, allowed, expr.attribute)
        return model.StartsWith(attribute, self.value(attribute, expr.attribute, expr.prefix), expr.negated)

    # ---- values --------------------------------------------------------------------------------------------
    def value(
        self, attribute: Attribute, written: syntax.Name, literal: syntax.Literal, *, as_name: bool = False
    ) -> Any:
        """The literal in the attribute's canonical form (see values.py), or a QueryError saying why not
        (naming the attribute as `written`: an archetype's own name rather than the column behind it)."""
        raw = literal.value
        if self.view is not None and attribute.name in (EXECUTION_STATUS, WORKFLOW_ID):
            if not isinstance(raw, str):
                raise QueryError(
                    f"invalid value type for search attribute {written.name} of type Keyword: {_show(raw)}",
                    literal.position,
                )
            if as_name:
                return raw
            if attribute.name == WORKFLOW_ID:
                return self.view.id_prefix + raw
            return self.view.statuses.get(raw, NO_STATUS)
        if attribute.name == EXECUTION_STATUS:
            status = parse_status(raw) if isinstance(raw, str | int) else None
            if status is None:
                names = ", ".join(status_name(s) for s in range(1, 8))
                raise QueryError(
                    f"invalid ExecutionStatus value {_show(raw)} (expected one of {names})", literal.position
                )
            return status
        if attribute.name == EXECUTION_DURATION and isinstance(raw, str):
            try:
                return parse_duration_ns(raw)
            except ValueError:
                raise QueryError(
                    f"invalid duration {_show(raw)} for ExecutionDuration (expected nanoseconds, "
                    "a duration such as '1h30m' or 'hh:mm:ss')",
                    literal.position,
                ) from None
        value_type = attribute.type
        if value_type is ValueType.DATETIME:
            if isinstance(raw, str):
                try:
                    return parse_datetime_ns(raw)
                except ValueError:
                    raise QueryError(
                        f"unable to parse datetime {_show(raw)} for {attribute.name} "
                        "(expected RFC 3339, e.g. '2026-01-01T00:00:00Z')",
                        literal.position,
                    ) from None
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw  # nanoseconds since the epoch, as the reference reads an integer
        elif value_type in (ValueType.INT, ValueType.DOUBLE):
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return raw
        elif value_type is ValueType.BOOL:
            if isinstance(raw, bool):
                return raw
        elif isinstance(raw, str):
            return raw
        raise QueryError(
            f"invalid value {_show(raw)} for search attribute {written.name} of type {value_type.display_name}",
            literal.position,
        )


def _chain(expr: syntax.And | syntax.Or, kind: type[syntax.And] | type[syntax.Or]) -> list[syntax.Expr]:
    """The operands of a run of one connective, in order, found without recursion: `a AND b AND c` is a
    1000-deep tree at the reference's depth limit, far past Python's recursion limit."""
    operands: list[syntax.Expr] = []
    pending: list[syntax.Expr] = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, kind):
            pending += (node.right, node.left)
        else:
            operands.append(node)
    return operands


def _check_operator(attribute: Attribute, operator: str, allowed: tuple[str, ...], name: syntax.Name) -> None:
    if operator not in allowed:
        raise QueryError(
            f"operator {operator!r} is not supported for {attribute.type.display_name} search attribute "
            f"{attribute.name!r}",
            name.position,
        )


def _show(raw: Any) -> str:
    """A literal as the user wrote it: strings quoted, TRUE/FALSE as keywords."""
    if isinstance(raw, bool):
        return "TRUE" if raw else "FALSE"
    return repr(raw)
