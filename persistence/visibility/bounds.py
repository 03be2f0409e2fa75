"""The reference's bounds on a list query's shape, checked so no query can recurse the server to death.

The reference (temporalio/sqlparser, which its visibility query converter runs on
`select * from table1 where <query>`) refuses:
- a 200th simultaneously open `(` or prefix `NOT` while parsing: "max nesting level reached at position N"
  (N counts bytes of that wrapped statement, just past the token; " near 'not'" when the token is NOT);
- a syntax tree whose deepest node lies 1000 levels below the statement: "max ast depth reached" (a chain
  of ~1000 AND/OR terms). Parentheses and NOT are nodes of that tree, and a predicate reaches 3 levels
  below its own node (comparison, column, table name, table identifier).
Both answer INVALID_ARGUMENT "invalid query: malformed SQL query: ...". The reference has no bound on the
query's length short of the 4 MiB gRPC message limit, and neither has Hourglass; a long query is parsed
off the event loop instead (see cluster/frontend/search_attributes.py).

The nesting check is a linear scan of the text, before lark parses it; the depth is measured by the parser
itself (query.py) and checked before anything walks the tree recursively.
"""

from __future__ import annotations

import re

from hourglass.persistence.visibility.errors import QueryError

MAX_NESTING = 200
MAX_AST_DEPTH = 1000
# How far below its own node a predicate's deepest node lies in the reference's tree.
PREDICATE_HEIGHT = 3
# The statement and its WHERE node sit above the expression's root.
_ROOT_DEPTH = 2

MALFORMED = "malformed SQL query"

# Strings and quoted names are skipped whole (a '(' inside one is no parenthesis); words and parentheses
# are what the scan looks at; anything else (operators, numbers, commas, blanks) is one skipped character.
_TOKEN = re.compile(
    r"""'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`[^`]*`|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<paren>[()])|.""",
    re.DOTALL,
)
# After these a NOT starts an expression (NOT x); after anything else it is part of an operator
# (NOT IN, NOT BETWEEN, NOT STARTS_WITH, IS NOT NULL), which the reference does not count.
_EXPRESSION_STARTS = frozenset({"", "and", "or", "(", "not"})


def wrapped_prefix(text: str) -> str:
    """What the reference puts before the (trimmed) query to make it a statement it can parse."""
    where = text.strip()
    lowered = where.lower()
    if where and not lowered.startswith("order by") and not lowered.startswith("group by"):
        return "select * from table1 where "
    return "select * from table1 "


def check_nesting(text: str) -> None:
    """Raise QueryError as the reference does when 200 parentheses / NOTs are open at once."""
    query = text.strip()
    open_items: list[str] = []  # "(" and "not", innermost last
    previous = ""
    for match in _TOKEN.finditer(query):
        word, paren = match.group("word"), match.group("paren")
        if word is not None:
            token = word.lower()
            if token in ("and", "or"):
                while open_items and open_items[-1] == "not":  # NOT binds tighter than AND / OR
                    open_items.pop()
            elif token == "not" and previous in _EXPRESSION_STARTS:
                open_items.append("not")
                if len(open_items) >= MAX_NESTING:
                    raise _nesting_error(text, query, match.end(), " near 'not'")
            previous = token if token in ("and", "or", "not") else "name"
        elif paren == "(":
            open_items.append("(")
            if len(open_items) >= MAX_NESTING:
                raise _nesting_error(text, query, match.end(), "")
            previous = "("
        elif paren == ")":
            while open_items and open_items[-1] == "not":
                open_items.pop()
            if open_items:
                open_items.pop()
            previous = ")"
        elif not match.group().isspace():
            previous = "value"


def check_depth(expression_height: int) -> None:
    """Raise QueryError as the reference does when its tree for the query would be 1000 levels deep."""
    if _ROOT_DEPTH + expression_height >= MAX_AST_DEPTH:
        raise QueryError(f"{MALFORMED}: max ast depth reached")


def _nesting_error(text: str, query: str, end: int, near: str) -> QueryError:
    position = len((wrapped_prefix(text) + query[:end]).encode()) + 1
    return QueryError(f"{MALFORMED}: max nesting level reached at position {position}{near}")
