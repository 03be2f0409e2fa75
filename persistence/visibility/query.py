"""The syntax of Temporal's list filter language, parsed with a real LALR grammar (lark).

`parse()` turns a query string into a small syntax tree: attribute names and literal values exactly as
written, each with its position. It knows nothing about which attributes exist or what type they have;
`resolve.py` checks that against the namespace's search attributes. Keeping the two apart means a
syntax error never depends on the registry, and the grammar stays the whole truth about the syntax.

The language is the WHERE clause of a SQL SELECT, as the reference server accepts it:
comparisons (= != <> > >= < <=), [NOT] IN (...), [NOT] BETWEEN a AND b, [NOT] STARTS_WITH 'x',
IS [NOT] NULL, AND / OR / NOT with SQL precedence, parentheses, then optional GROUP BY and ORDER BY.
Keywords are case-insensitive; attribute names are case-sensitive and may be `backtick-quoted`.
Strings take single or double quotes, with a doubled quote or a backslash escape inside.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import lark
from lark import Lark, Token, Transformer, v_args

from hourglass.persistence.visibility import bounds
from hourglass.persistence.visibility.errors import Position, QueryError

_GRAMMAR = r"""
    start: [expr] [group_by] [order_by]

    ?expr: or_expr
    ?or_expr: and_expr (_OR and_expr)*
    ?and_expr: not_expr (_AND not_expr)*
    ?not_expr: NOT not_expr                           -> not_
             | predicate
    ?predicate: "(" expr ")"                         -> paren
              | name COMPARE value                    -> comparison
              | name [NOT] _IN "(" value ("," value)* ")" -> in_list
              | name [NOT] _BETWEEN value _AND value  -> between
              | name [NOT] _STARTS_WITH value         -> starts_with
              | name _IS [NOT] _NULL                  -> is_null

    group_by: _GROUP _BY name ("," name)*
    order_by: _ORDER _BY order_item ("," order_item)*
    order_item: name [DIRECTION]

    name: NAME | QUOTED_NAME
    value: STRING                                     -> string
         | SIGN? NUMBER                               -> number
         | TRUE                                       -> true
         | FALSE                                      -> false

    COMPARE: "=" | "!=" | "<>" | ">=" | "<=" | ">" | "<"
    SIGN: "-" | "+"
    NUMBER: /(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?/
    STRING: /'([^'\\]|\\.|'')*'/s | /"([^"\\]|\\.|"")*"/s
    QUOTED_NAME: /`[^`]+`/
    NAME: /[A-Za-z_][A-Za-z0-9_]*/i

    NOT: "not"i
    DIRECTION: "asc"i | "desc"i
    TRUE: "true"i
    FALSE: "false"i
    _AND: "and"i
    _OR: "or"i
    _IN: "in"i
    _BETWEEN: "between"i
    _STARTS_WITH: "starts_with"i
    _IS: "is"i
    _NULL: "null"i
    _GROUP: "group"i
    _ORDER: "order"i
    _BY: "by"i

    %import common.WS
    %ignore WS
"""

# How the parser's terminals read in an error message ("expected a value, found ...").
_EXPECTED_WORDS = {
    "NAME": "an attribute name",
    "QUOTED_NAME": "an attribute name",
    "STRING": "a value",
    "NUMBER": "a value",
    "SIGN": "a value",
    "TRUE": "a value",
    "FALSE": "a value",
    "COMPARE": "a comparison operator (= != > >= < <=)",
    "NOT": "NOT",
    "DIRECTION": "ASC or DESC",
    "_AND": "AND",
    "_OR": "OR",
    "_IN": "IN",
    "_BETWEEN": "BETWEEN",
    "_STARTS_WITH": "STARTS_WITH",
    "_IS": "IS",
    "_NULL": "NULL",
    "_GROUP": "GROUP BY",
    "_ORDER": "ORDER BY",
    "_BY": "BY",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "$END": "the end of the query",
}


@dataclass(frozen=True)
class Name:
    """An attribute name as written (backticks removed)."""

    name: str
    position: Position


LiteralValue = str | int | float | bool


@dataclass(frozen=True)
class Literal:
    """A value as written: str for quoted strings, int or float for numbers, bool for TRUE/FALSE."""

    value: LiteralValue
    position: Position


@dataclass(frozen=True)
class Comparison:
    """`attribute op value`; `op` is one of = != > >= < <= (`<>` is read as `!=`)."""

    attribute: Name
    op: str
    value: Literal


@dataclass(frozen=True)
class InList:
    attribute: Name
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    attribute: Name
    low: Literal
    high: Literal
    negated: bool = False


@dataclass(frozen=True)
class StartsWith:
    attribute: Name
    prefix: Literal
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    attribute: Name
    negated: bool = False


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Expr = Comparison | InList | Between | StartsWith | IsNull | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    attribute: Name
    descending: bool = False


@dataclass(frozen=True)
class Query:
    """A whole query: the filter (None: everything), then GROUP BY and ORDER BY, as written."""

    where: Expr | None = None
    group_by: tuple[Name, ...] = ()
    order_by: tuple[OrderItem, ...] = ()


def _position(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


def _unquote(text: str) -> str:
    """The content of a quoted string: a doubled quote or a backslash escape stands for one character."""
    quote, body = text[0], text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_BACKSLASH_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif ch == quote and i + 1 < len(body) and body[i + 1] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT64_DIGITS = 20  # sign included: longer texts are out of range, and int() of huge texts is slow

_BACKSLASH_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "0": "\0", "Z": "\x1a"}


class _Heights(threading.local):
    """Per-parse (and per-thread) height of each expression built so far, keyed by id(node).

    The reference bounds the depth of its syntax tree, in which parentheses are nodes of their own; ours
    drops them, so the parser records each expression's height as the reference would count it.
    """

    table: dict[int, int] | None = None


_HEIGHTS = _Heights()


def _record(node: Expr, height: int) -> Expr:
    table = _HEIGHTS.table
    if table is not None:
        table[id(node)] = height
    return node


def _height(node: Expr) -> int:
    table = _HEIGHTS.table
    return 0 if table is None else table.get(id(node), bounds.PREDICATE_HEIGHT)


@v_args(inline=True)
class _ToSyntaxTree(Transformer):
    """Builds the dataclasses above while lark parses (its callbacks run on each reduction, iteratively)."""

    def start(self, where, group_by, order_by) -> Query:
        return Query(where, group_by or (), order_by or ())

    def or_expr(self, *items) -> Expr:
        return _fold(Or, items)

    def and_expr(self, *items) -> Expr:
        return _fold(And, items)

    def not_(self, _not: Token, operand: Expr) -> Not:
        return _record(Not(operand), _height(operand) + 1)  # type: ignore[return-value]

    def paren(self, expr: Expr) -> Expr:
        return _record(expr, _height(expr) + 1)

    def comparison(self, attribute: Name, op: Token, value: Literal) -> Comparison:
        return Comparison(attribute, "!=" if op == "<>" else str(op), value)

    def in_list(self, attribute: Name, negated: Token | None, *values: Literal) -> InList:
        return InList(attribute, values, negated is not None)

    def between(self, attribute: Name, negated: Token | None, low: Literal, high: Literal) -> Between:
        return Between(attribute, low, high, negated is not None)

    def starts_with(self, attribute: Name, negated: Token | None, prefix: Literal) -> StartsWith:
        return StartsWith(attribute, prefix, negated is not None)

    def is_null(self, attribute: Name, negated: Token | None) -> IsNull:
        return IsNull(attribute, negated is not None)

    def group_by(self, *names: Name) -> tuple[Name, ...]:
        return names

    def order_by(self, *items: OrderItem) -> tuple[OrderItem, ...]:
        return items

    def order_item(self, attribute: Name, direction: Token | None) -> OrderItem:
        return OrderItem(attribute, direction is not None and direction.lower() == "desc")

    def name(self, token: Token) -> Name:
        text = str(token)
        return Name(text[1:-1] if token.type == "QUOTED_NAME" else text, _position(token))

    def string(self, token: Token) -> Literal:
        return Literal(_unquote(str(token)), _position(token))

    def number(self, *tokens: Token) -> Literal:
        text = "".join(str(t) for t in tokens)
        is_int = not any(c in text for c in ".eE")
        value: int | float = float(text)
        if is_int and len(text) <= _MAX_INT64_DIGITS and INT64_MIN <= int(text) <= INT64_MAX:
            value = int(text)
        # A larger integer stays a float (possibly inf): it compares as on the reference, and no store
        # can bind it as a 64-bit integer.
        return Literal(value, _position(tokens[0]))

    def true(self, token: Token) -> Literal:
        return Literal(True, _position(token))

    def false(self, token: Token) -> Literal:
        return Literal(False, _position(token))


def _fold(node: type[And] | type[Or], items: tuple[Expr, ...]) -> Expr:
    """Left-associative chain: a AND b AND c is (a AND b) AND c, as in SQL."""
    result = items[0]
    height = _height(result)
    for item in items[1:]:
        result = node(result, item)
        height = max(height, _height(item)) + 1
        _record(result, height)
    return result


# The transformer is embedded: lark calls it on each reduction, so no parse tree is built and nothing
# recurses however deep the query (a separate Transformer pass recursed, and took as long as the parse).
_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=True, transformer=_ToSyntaxTree())


def parse(text: str) -> Query:
    """Parse a list filter query; an empty (or blank) query matches everything. Raises QueryError.

    The reference's bounds come first: its nesting limit before parsing (bounds.check_nesting), its
    syntax-tree depth limit after (a deeper tree is refused before anything walks it recursively).
    """
    bounds.check_nesting(text)
    _HEIGHTS.table = {}
    try:
        try:
            query = _PARSER.parse(text)
        except lark.exceptions.UnexpectedInput as e:
            raise _syntax_error(text, e) from None
        if query.where is not None:
            bounds.check_depth(_height(query.where))
        return query
    finally:
        _HEIGHTS.table = None


def _syntax_error(text: str, error: lark.exceptions.UnexpectedInput) -> QueryError:
    """Say where the query stops making sense, what was found there and what could have come instead."""
    expected = _acceptable_terminals(error)
    if isinstance(error, lark.exceptions.UnexpectedCharacters):
        char = text[error.pos_in_stream]
        found = "unterminated string" if char in "'\"" else f"unexpected character {char!r}"
        position = Position(error.line, error.column)
        return QueryError(f"syntax error: {found}{_describe_expected(expected)}", position)
    token = getattr(error, "token", None)
    if token is None or token.type == "$END":
        position = _end_position(text)
        found = "unexpected end of query"
    else:
        position = Position(token.line or 1, token.column or 1)
        found = f"unexpected {_describe_token(token)}"
    hint = ""
    if token is not None and token.type == "NAME" and "STRING" in expected:
        hint = f" (did you forget to quote {str(token)!r}?)"
    return QueryError(f"syntax error: {found}{_describe_expected(expected)}{hint}", position)


def _acceptable_terminals(error: lark.exceptions.UnexpectedInput) -> set[str]:
    """What the parser would have accepted at the error, computed by trying each candidate token.

    The LALR table's own "expected" set merges look-aheads of states that share rules (a name may start
    a predicate or an ORDER BY item), so it can list tokens that would fail one step later.
    """
    parser = getattr(error, "interactive_parser", None)
    if parser is not None:
        try:
            return set(parser.accepts())
        except lark.exceptions.LarkError:
            pass
    return set(getattr(error, "expected", None) or getattr(error, "allowed", None) or ())


def _describe_token(token: Token) -> str:
    if token.type in ("NAME", "QUOTED_NAME"):
        return f"name {str(token)!r}"
    if token.type in ("STRING", "NUMBER"):
        return f"value {str(token)}"
    return f"{str(token)!r}"


def _describe_expected(terminals: set[str]) -> str:
    words = sorted({_EXPECTED_WORDS.get(t, t) for t in terminals})
    if not words:
        return ""
    if len(words) == 1:
        return f", expected {words[0]}"
    return f", expected one of: {', '.join(words)}"


def _end_position(text: str) -> Position:
    """Line and column just after the last character (where the missing token should have been)."""
    lines = text.split("\n")
    return Position(len(lines), len(lines[-1]) + 1)
