"""Errors of the list query language, shared by the parser, its bounds and the typing pass."""

from __future__ import annotations

from dataclasses import dataclass


class QueryError(ValueError):
    """A query that cannot be parsed or does not fit the attributes; `str()` names where and why.

    The frontend answers INVALID_ARGUMENT with this message (prefixed "invalid query: ", as the reference).
    """

    def __init__(self, message: str, position: Position | None = None) -> None:
        self.message = message
        self.position = position
        where = f" (at line {position.line}, column {position.column})" if position else ""
        super().__init__(f"{message}{where}")

    def __reduce__(self) -> tuple:
        # Raised in the query-parsing process too (cluster/frontend/query_process.py): rebuilt whole here.
        return (type(self), (self.message, self.position))


@dataclass(frozen=True)
class Position:
    """1-based line and column of a token in the query text."""

    line: int
    column: int


__all__ = ["Position", "QueryError"]
