"""The list query language: parsing (every construct, error positions), typing, and Python evaluation."""

from __future__ import annotations

import dataclasses
import re

import pytest
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.converter import encode_search_attributes

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.query_process import QueryParserProcess
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility import query as syntax
from hourglass.persistence.visibility.attributes import Kind, ValueType
from hourglass.persistence.visibility.evaluate import (
    RecordView,
    compare_sort_values,
    evaluate,
    matches,
    sort_key_function,
    sort_values,
)
from hourglass.persistence.visibility.query import Position, QueryError, parse
from hourglass.persistence.visibility.resolve import ArchetypeView, parse_query
from hourglass.persistence.visibility.values import (
    parse_datetime_ns,
    parse_duration_ns,
    strict_value,
    text_matches,
    words,
)

CUSTOM = {
    "Kw": ValueType.KEYWORD,
    "Txt": ValueType.TEXT,
    "Num": ValueType.INT,
    "Dbl": ValueType.DOUBLE,
    "Flag": ValueType.BOOL,
    "When": ValueType.DATETIME,
    "Tags": ValueType.KEYWORD_LIST,
}
RUNNING, COMPLETED, TERMINATED = 1, 2, 5
JAN_1_2026_NS = 1_767_225_600 * 10**9


def where(text: str) -> syntax.Expr | None:
    return parse(text).where


def name(text: str, line: int = 1, column: int = 1) -> syntax.Name:
    return syntax.Name(text, Position(line, column))


def lit(value: object, column: int, line: int = 1) -> syntax.Literal:
    return syntax.Literal(value, Position(line, column))  # type: ignore[arg-type]


def resolve(text: str) -> model.VisibilityQuery:
    return parse_query(text, CUSTOM)


def error_of(text: str) -> QueryError:
    with pytest.raises(QueryError) as raised:
        resolve(text)
    return raised.value


# ---- parsing: every construct ----------------------------------------------------------------------------
def test_empty_query_matches_everything() -> None:
    assert parse("") == syntax.Query()
    assert parse("  \n\t ") == syntax.Query()


@pytest.mark.parametrize("op", ["=", "!=", ">", ">=", "<", "<="])
def test_comparison_operators(op: str) -> None:
    assert where(f"Num {op} 5") == syntax.Comparison(name("Num"), op, lit(5, 6 + len(op)))


def test_angle_brackets_are_not_equal() -> None:
    assert where("Num <> 5") == syntax.Comparison(name("Num"), "!=", lit(5, 8))


def test_in_and_not_in() -> None:
    assert where("Kw IN ('a', \"b\")") == syntax.InList(name("Kw"), (lit("a", 8), lit("b", 13)))
    assert where("Kw not in ('a')") == syntax.InList(name("Kw"), (lit("a", 12),), negated=True)


def test_between_and_not_between() -> None:
    assert where("Num BETWEEN 1 AND 3") == syntax.Between(name("Num"), lit(1, 13), lit(3, 19))
    assert where("Num NOT BETWEEN 1 AND 3").negated  # type: ignore[union-attr]


def test_starts_with() -> None:
    assert where("Kw STARTS_WITH 'pre'") == syntax.StartsWith(name("Kw"), lit("pre", 16))
    assert where("Kw NOT STARTS_WITH 'pre'") == syntax.StartsWith(name("Kw"), lit("pre", 20), negated=True)


def test_is_null_and_is_not_null() -> None:
    assert where("Kw IS NULL") == syntax.IsNull(name("Kw"))
    assert where("Kw is not null") == syntax.IsNull(name("Kw"), negated=True)


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    a, b, c = (
        syntax.Comparison(name(n, column=col), "=", lit(1, col + 4))
        for n, col in (("a", 5), ("b", 15), ("c", 24))
    )
    assert where("NOT a = 1 AND b = 1 OR c = 1") == syntax.Or(syntax.And(syntax.Not(a), b), c)


def test_parentheses_group() -> None:
    tree = where("a = 1 AND (b = 2 OR c = 3)")
    assert isinstance(tree, syntax.And) and isinstance(tree.right, syntax.Or)


def test_and_or_chains_are_left_associative() -> None:
    tree = where("a = 1 AND b = 2 AND c = 3")
    assert isinstance(tree, syntax.And) and isinstance(tree.left, syntax.And)


def test_order_by_several_attributes_with_directions() -> None:
    assert parse("ORDER BY StartTime DESC, WorkflowId, RunId asc").order_by == (
        syntax.OrderItem(name("StartTime", column=10), descending=True),
        syntax.OrderItem(name("WorkflowId", column=26)),
        syntax.OrderItem(name("RunId", column=38)),
    )


def test_group_by() -> None:
    assert parse("Kw = 'x' GROUP BY ExecutionStatus").group_by == (name("ExecutionStatus", column=19),)


def test_string_literals_in_either_quote_with_escapes() -> None:
    assert where("Kw = 'it''s'").value.value == "it's"  # type: ignore[union-attr]
    assert where('Kw = "say ""hi"""').value.value == 'say "hi"'  # type: ignore[union-attr]
    assert where(r"Kw = 'back\'slash\\'").value.value == "back'slash\\"  # type: ignore[union-attr]
    assert where('Kw = "it\'s"').value.value == "it's"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "value"),
    [("7", 7), ("-7", -7), ("+7", 7), ("- 7", -7), ("1.5", 1.5), (".5", 0.5), ("1e3", 1000.0), ("2E-1", 0.2)],
)
def test_numbers(text: str, value: float) -> None:
    literal = where(f"Num = {text}").value  # type: ignore[union-attr]
    assert literal.value == value and type(literal.value) is type(value)


def test_booleans_in_any_case() -> None:
    assert where("Flag = TRUE").value.value is True  # type: ignore[union-attr]
    assert where("Flag = false").value.value is False  # type: ignore[union-attr]


def test_backtick_quoted_names() -> None:
    assert where("`My Attr` = 1").attribute == name("My Attr")  # type: ignore[union-attr]


def test_keywords_are_case_insensitive_and_names_containing_them_are_names() -> None:
    assert (
        parse("kw = 1 aNd Notable = 2 oR Orders IS nOt NuLl order BY Andy").order_by[0].attribute.name
        == "Andy"
    )
    assert where("starts_withx = 1").attribute.name == "starts_withx"  # type: ignore[union-attr]


def test_positions_span_lines() -> None:
    tree = where("Kw = 'a'\n  AND Num = 2")
    assert tree.right.attribute.position == Position(2, 7)  # type: ignore[union-attr]


# ---- parsing: errors name the position and what was expected ------------------------------------------------
@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("WorkflowType = ", Position(1, 16), "unexpected end of query, expected a value"),
        ("WorkflowType = 'x' AND (", Position(1, 25), "expected one of: '(', NOT, an attribute name"),
        ("x == 1", Position(1, 4), "unexpected '=', expected a value"),
        (
            "x = 1 LIMIT 3",
            Position(1, 7),
            "unexpected name 'LIMIT', expected one of: AND, GROUP BY, OR, ORDER BY",
        ),
        ("x in ()", Position(1, 7), "unexpected ')', expected a value"),
        ("x = 'abc", Position(1, 5), "unterminated string"),
        ("x ~ 1", Position(1, 3), "unexpected character '~'"),
        ("x = 1\n and y", Position(2, 7), "a comparison operator"),
        ("order by", Position(1, 9), "expected an attribute name"),
        (
            "x = 1 order by y sideways",
            Position(1, 18),
            "expected one of: ',', ASC or DESC, the end of the query",
        ),
    ],
)
def test_syntax_errors(text: str, position: Position, fragment: str) -> None:
    with pytest.raises(QueryError) as raised:
        parse(text)
    assert raised.value.position == position
    assert fragment in str(raised.value)
    assert f"(at line {position.line}, column {position.column})" in str(raised.value)


def test_an_unquoted_value_gets_a_hint() -> None:
    with pytest.raises(QueryError, match=r"did you forget to quote 'Running'\?"):
        parse("ExecutionStatus = Running")


# ---- typing -------------------------------------------------------------------------------------------------
def test_the_issues_example_query() -> None:
    query = resolve(
        "WorkflowType = 'X' AND ExecutionStatus = 'Running' AND StartTime > '2026-01-01T00:00:00Z' "
        "ORDER BY StartTime DESC"
    )
    assert isinstance(query.filter, model.And)
    (workflow_type, status, start) = query.filter.operands  # a run of ANDs is one n-ary And
    assert (workflow_type.attribute.name, workflow_type.op, workflow_type.value) == ("WorkflowType", "=", "X")
    assert (status.attribute.name, status.value) == ("ExecutionStatus", RUNNING)
    assert (start.attribute.type, start.op, start.value) == (ValueType.DATETIME, ">", JAN_1_2026_NS)  # type: ignore[union-attr]
    assert [(k.attribute.name, k.descending) for k in query.order_by] == [("StartTime", True)]
    assert query.sort_keys[: len(query.order_by)] == query.order_by
    assert query.sort_keys[len(query.order_by) :] == model.DEFAULT_ORDER


def test_unknown_attribute_is_named_with_its_position() -> None:
    error = error_of("Kw = 'x' AND Nope = 1")
    assert error.position == Position(1, 14)
    assert "unknown search attribute 'Nope'" in str(error)


def test_attribute_names_are_case_sensitive() -> None:
    assert "unknown search attribute 'workflowid'" in str(error_of("workflowid = 'x'"))


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("StartTime = 'yesterday'", "unable to parse datetime 'yesterday' for StartTime", 13),
        ("StartTime > '2026-01-01'", "unable to parse datetime '2026-01-01'", 13),
        ("Num = 'abc'", "invalid value 'abc' for search attribute Num of type Int", 7),
        ("Num = TRUE", "invalid value TRUE for search attribute Num of type Int", 7),
        ("Flag = 1", "invalid value 1 for search attribute Flag of type Bool", 8),
        ("Kw = 1", "invalid value 1 for search attribute Kw of type Keyword", 6),
        ("Num IN (1, 'x')", "invalid value 'x'", 12),
        ("ExecutionStatus = 'running'", "invalid ExecutionStatus value 'running'", 19),
        ("ExecutionDuration > 'soon'", "invalid duration 'soon' for ExecutionDuration", 21),
    ],
)
def test_values_of_the_wrong_type(text: str, fragment: str, column: int) -> None:
    error = error_of(text)
    assert fragment in str(error)
    assert error.position == Position(1, column)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Txt > 'a'", "operator '>' is not supported for Text search attribute 'Txt'"),
        ("Txt IN ('a')", "operator 'IN' is not supported for Text"),
        ("Txt STARTS_WITH 'a'", "operator 'STARTS_WITH' is not supported for Text"),
        ("Tags > 'a'", "operator '>' is not supported for KeywordList"),
        ("Tags STARTS_WITH 'a'", "operator 'STARTS_WITH' is not supported for KeywordList"),
        ("Num STARTS_WITH 'a'", "operator 'STARTS_WITH' is not supported for Int"),
        ("ExecutionStatus STARTS_WITH 'Run'", "operator 'STARTS_WITH' is not supported"),
        ("Flag BETWEEN false AND true", "cannot use BETWEEN on search attribute 'Flag' of type Bool"),
        ("Txt BETWEEN 'a' AND 'b'", "cannot use BETWEEN on search attribute 'Txt' of type Text"),
        ("Txt = '   '", "no words to search for in Text search attribute 'Txt'"),
        ("ORDER BY Txt", "cannot ORDER BY search attribute 'Txt' of type Text"),
        ("ORDER BY Tags", "cannot ORDER BY search attribute 'Tags' of type KeywordList"),
        ("GROUP BY WorkflowType", "'GROUP BY' clause is not supported for search attribute WorkflowType"),
        ("GROUP BY ExecutionStatus, WorkflowType", "'GROUP BY' clause supports only a single field"),
    ],
)
def test_unsupported_operations(text: str, fragment: str) -> None:
    assert fragment in str(error_of(text))


@pytest.mark.parametrize("value", ["'Completed'", "'WORKFLOW_EXECUTION_STATUS_COMPLETED'", "2"])
def test_execution_status_by_name_full_name_or_number(value: str) -> None:
    assert resolve(f"ExecutionStatus = {value}").filter == model.Compare(
        resolve("ExecutionStatus = 'Running'").filter.attribute,
        "=",
        COMPLETED,  # type: ignore[union-attr]
    )


def test_datetimes_take_offsets_fractions_or_nanoseconds() -> None:
    for text, ns in [
        ("'2026-01-01T02:00:00+02:00'", JAN_1_2026_NS),
        ("'2026-01-01T00:00:00.000000001Z'", JAN_1_2026_NS + 1),
        (str(JAN_1_2026_NS), JAN_1_2026_NS),
    ]:
        assert resolve(f"When > {text}").filter.value == ns  # type: ignore[union-attr]


def test_execution_duration_literals() -> None:
    for text, ns in [
        ("'1h30m'", 5400 * 10**9),
        ("'00:01:00'", 60 * 10**9),
        ("5", 5),
        ("'300ms'", 300 * 10**6),
    ]:
        assert resolve(f"ExecutionDuration > {text}").filter.value == ns  # type: ignore[union-attr]


def test_numbers_are_accepted_for_int_and_double_alike() -> None:
    assert resolve("Num > 1.5").filter.value == 1.5  # type: ignore[union-attr]
    assert resolve("Dbl = 2").filter.value == 2  # type: ignore[union-attr]


def test_text_equality_is_a_word_match_and_keyword_list_equality_is_membership() -> None:
    assert resolve("Txt = 'quick  fox'").filter == model.TextMatch(
        resolve("Txt = 'x'").filter.attribute,
        ("quick", "fox"),  # type: ignore[union-attr]
    )
    tags = resolve("Tags = 'a'").filter
    assert isinstance(tags, model.ListContains) and tags.values == ("a",) and not tags.negated
    assert resolve("Tags NOT IN ('a', 'b')").filter == dataclasses.replace(
        tags, values=("a", "b"), negated=True
    )
    assert resolve("Txt != 'x'").filter.negated  # type: ignore[union-attr]


def test_temporal_prefix_may_be_added_or_left_out() -> None:
    assert resolve("ChangeVersion = 'v1'").filter.attribute.name == "TemporalChangeVersion"  # type: ignore[union-attr]
    assert resolve("BuildIds = 'x'").filter.attribute.kind is Kind.PREDEFINED  # type: ignore[union-attr]


def test_a_custom_attribute_may_not_shadow_a_system_one() -> None:
    query = parse_query("WorkflowId = 'x'", {"WorkflowId": int(ValueType.INT)})
    assert query.filter.attribute.kind is Kind.SYSTEM  # type: ignore[union-attr]


# ---- evaluation ---------------------------------------------------------------------------------------------
def encoded(*pairs: SearchAttributePair) -> bytes:
    message = SearchAttributes()
    encode_search_attributes(TypedSearchAttributes(list(pairs)), message)
    return message.SerializeToString()


KW = SearchAttributeKey.for_keyword("Kw")
TXT = SearchAttributeKey.for_text("Txt")
NUM = SearchAttributeKey.for_int("Num")
TAGS = SearchAttributeKey.for_keyword_list("Tags")


def record(
    workflow_id: str = "wf",
    run_id: str = "run",
    status: int = RUNNING,
    start_ms: int = 1_000,
    close_ms: int = 0,
    search_attributes: bytes = b"",
) -> VisibilityRecord:
    return VisibilityRecord(
        "ns", workflow_id, run_id, "Greet", "q", status, start_ms, 0, close_ms, 3, b"", search_attributes
    )


def check(text: str, rec: VisibilityRecord) -> bool:
    return matches(resolve(text).filter, rec)


def test_system_attributes() -> None:
    closed = record(status=COMPLETED, start_ms=1_000, close_ms=4_000)
    assert check("WorkflowId = 'wf' AND RunId = 'run' AND WorkflowType = 'Greet' AND TaskQueue = 'q'", closed)
    assert check("ExecutionStatus = 'Completed' AND HistoryLength = 3", closed)
    assert check("StartTime = '1970-01-01T00:00:01Z'", closed)
    assert check("CloseTime BETWEEN '1970-01-01T00:00:03Z' AND '1970-01-01T00:00:04Z'", closed)
    assert check("ExecutionDuration = '3s'", closed)
    assert check("ExecutionTime = '1970-01-01T00:00:01Z'", closed)  # defaults to the start time


def test_missing_values_are_unknown_so_not_does_not_flip_them() -> None:
    running = record()
    assert not check("CloseTime < '2030-01-01T00:00:00Z'", running)
    assert not check("NOT CloseTime < '2030-01-01T00:00:00Z'", running)
    assert check("CloseTime IS NULL", running)
    assert evaluate(resolve("Num != 1").filter, RecordView(running)) is None  # type: ignore[arg-type]
    assert check("Num != 1 OR WorkflowId = 'wf'", running)  # unknown OR true is true
    assert not check("NOT (Num = 1 AND WorkflowId = 'wf')", running)  # NOT (unknown AND true) is unknown


# A standalone archetype's list (ListActivityExecutions): its own names over the hidden runs' columns.
ACTIVITIES = ArchetypeView(
    id_prefix="hidden/",
    aliases={"ActivityId": "WorkflowId", "ActivityType": "WorkflowType"},
    keywords=("Service",),
    statuses={"Running": RUNNING, "Completed": COMPLETED, "Terminated": TERMINATED},
)


def check_activity(text: str, rec: VisibilityRecord) -> bool:
    return matches(parse_query(text, CUSTOM, ACTIVITIES).filter, rec)


def activity_error(text: str) -> str:
    with pytest.raises(QueryError) as raised:
        parse_query(text, CUSTOM, ACTIVITIES)
    return str(raised.value)


def test_archetype_view_reads_its_own_names_over_the_hidden_runs() -> None:
    done = record(workflow_id="hidden/a-1", status=COMPLETED, close_ms=2_000)
    # The business id is written without the hidden prefix, as ActivityId or WorkflowId.
    assert check_activity("ActivityId = 'a-1'", done) and check_activity("WorkflowId = 'a-1'", done)
    assert check_activity("ActivityId IN ('x', 'a-1') AND ActivityId STARTS_WITH 'a-'", done)
    assert not check_activity("ActivityId = 'hidden/a-1'", done)
    assert check_activity("ActivityType = 'Greet' AND TaskQueue = 'q'", done)
    # ExecutionStatus is a Keyword of the archetype's status names: exact, unknown names match nothing.
    assert check_activity("ExecutionStatus = 'Completed'", done)
    assert check_activity("ExecutionStatus STARTS_WITH 'Comp'", done)
    assert not check_activity("ExecutionStatus STARTS_WITH 'Run'", done)
    assert not check_activity("ExecutionStatus = 'completed'", done)
    assert not check_activity("ExecutionStatus = 'Bogus'", done)
    assert check_activity("ExecutionStatus != 'Bogus'", done)
    assert parse_query("GROUP BY ExecutionStatus", CUSTOM, ACTIVITIES).group_by[0].name == "ExecutionStatus"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Status = 'Running'", "unknown search attribute 'Status'"),
        ("activityid = 'a'", "unknown search attribute 'activityid'"),
        ("ExecutionStatus = 1", "invalid value type for search attribute ExecutionStatus of type Keyword: 1"),
        ("ActivityType = 3", "invalid value 3 for search attribute ActivityType of type Keyword"),
        ("ActivityId = 'a' ORDER BY StartTime", "operation is not supported: 'ORDER BY' clause"),
        ("GROUP BY ActivityType", "'GROUP BY' clause is not supported for search attribute ActivityType"),
        ("GROUP BY ExecutionStatus, ActivityType", "'GROUP BY' clause supports only a single field"),
    ],
)
def test_archetype_view_errors_name_what_was_written(text: str, fragment: str) -> None:
    assert fragment in activity_error(text)


def test_text_and_keyword_list_are_two_valued() -> None:
    bare = record()
    assert check("Txt != 'anything'", bare) and check("Tags NOT IN ('a')", bare)
    tagged = record(search_attributes=encoded(SearchAttributePair(TAGS, ["a", "b c"])))
    assert (
        check("Tags = 'b c'", tagged) and not check("Tags = 'b'", tagged) and not check("Tags = 'A'", tagged)
    )
    assert check("Tags IN ('x', 'a')", tagged) and not check("Tags != 'a'", tagged)


def test_text_matches_words_case_and_accent_insensitively_and_phrases_in_order() -> None:
    text = "Héllo brave new-world"
    assert words(text) == ["hello", "brave", "new", "world"]
    assert text_matches(text, ["HELLO"]) and text_matches(text, ["zzz", "world"])
    assert text_matches(text, ["new-world"]) and not text_matches(text, ["world-new"])
    assert not text_matches(text, ["wor"]) and not text_matches(None, ["hello"])
    assert check("Txt = 'brave'", record(search_attributes=encoded(SearchAttributePair(TXT, text))))


def test_keyword_comparisons_and_prefixes_are_case_sensitive() -> None:
    rec = record(search_attributes=encoded(SearchAttributePair(KW, "alpha"), SearchAttributePair(NUM, 7)))
    assert check("Kw = 'alpha' AND Kw STARTS_WITH 'al' AND Kw > 'aa' AND Num BETWEEN 7 AND 8", rec)
    assert not check("Kw = 'ALPHA'", rec) and not check("Kw STARTS_WITH 'AL'", rec)
    assert check(
        "Kw NOT STARTS_WITH 'be' AND Kw IN ('x', 'alpha') AND Num NOT IN (1) AND Kw IS NOT NULL", rec
    )


def test_values_of_another_type_read_as_missing() -> None:
    rec = record(search_attributes=encoded(SearchAttributePair(KW, "7")))
    assert RecordView(rec).value(resolve("Num = 1").filter.attribute) is None  # type: ignore[union-attr]


def test_undecodable_search_attributes_read_as_none() -> None:
    assert check("Kw IS NULL", record(search_attributes=b"\xff\xff not a proto"))


def test_default_order_running_first_then_newest_close_start_and_run_id() -> None:
    rows = [
        record("a", "r1", COMPLETED, start_ms=1, close_ms=10),
        record("b", "r2", RUNNING, start_ms=5),
        record("c", "r3", COMPLETED, start_ms=2, close_ms=20),
        record("d", "r4", RUNNING, start_ms=7),
        record("e", "r0", RUNNING, start_ms=7),
    ]
    keys = model.DEFAULT_ORDER
    ordered = sorted(rows, key=lambda r: sort_key_function(keys)(sort_values(RecordView(r), keys)))
    assert [r.workflow_id for r in ordered] == ["e", "d", "b", "c", "a"]


def test_missing_values_sort_last_in_both_directions() -> None:
    ascending = model.SortKey(resolve("Num = 1").filter.attribute)  # type: ignore[union-attr]
    descending = dataclasses.replace(ascending, descending=True)
    assert compare_sort_values((None,), (1,), [ascending]) == 1
    assert compare_sort_values((None,), (1,), [descending]) == 1
    assert compare_sort_values((2,), (1,), [descending]) == -1
    assert compare_sort_values((1,), (1,), [descending]) == 0


# ---- values -------------------------------------------------------------------------------------------------
def test_datetime_and_duration_parsing() -> None:
    assert parse_datetime_ns("2026-01-01T00:00:00.5-01:00") == JAN_1_2026_NS + 3600 * 10**9 + 5 * 10**8
    with pytest.raises(ValueError):
        parse_datetime_ns("2026-13-01T00:00:00Z")
    assert parse_duration_ns("-1.5h") == -5400 * 10**9
    assert parse_duration_ns("2d") == 2 * 86400 * 10**9


def test_values_workflows_set_are_checked_strictly() -> None:
    assert strict_value(["a"], ValueType.KEYWORD) == "a"
    assert strict_value(None, ValueType.INT) is None and strict_value([], ValueType.INT) is None
    assert strict_value("2026-01-01T00:00:00Z", ValueType.DATETIME) == JAN_1_2026_NS
    for value, value_type in [
        (1.5, ValueType.INT),
        (True, ValueType.INT),
        ("x", ValueType.KEYWORD_LIST),
        (["a", "b"], ValueType.KEYWORD),
        (1, ValueType.BOOL),
        ("soon", ValueType.DATETIME),
    ]:
        with pytest.raises(ValueError):
            strict_value(value, value_type)


# ---- the frontend's registry: names, types and the values workflows set -------------------------------------
@pytest.fixture
async def registry():
    store = await SQLiteStore.open(None)
    registry = SearchAttributeRegistry(store)
    await registry.add("ns", {"Kw": ValueType.KEYWORD, "Num": ValueType.INT, "Tags": ValueType.KEYWORD_LIST})
    yield registry
    await store.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("WorkflowId", "Search attribute WorkflowId is reserved by system."),
        ("TemporalAnything", "Search attribute TemporalAnything is reserved by system."),
        ("BuildIds", "Search attribute BuildIds is reserved by system."),
        ("", "Search attribute name is empty."),
        ("back`tick", "contains a backtick"),
        ('double"quote', "a double quote"),
    ],
)
async def test_bad_names_cannot_be_registered(
    registry: SearchAttributeRegistry, name: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await registry.add("ns", {name: ValueType.KEYWORD})


async def test_registering_an_existing_name_keeps_its_type(registry: SearchAttributeRegistry) -> None:
    await registry.add("ns", {"Kw": ValueType.INT, "New Attr": ValueType.BOOL})
    assert await registry.custom("ns") == {"Kw": 2, "Num": 3, "Tags": 7, "New Attr": 5}
    with pytest.raises(InvalidArgument, match=r"Unknown search attribute type: 99\."):
        await registry.add("ns", {"Other": 99})
    with pytest.raises(InvalidArgument, match="Unable to remove non-custom search attributes: StartTime."):
        await registry.remove("ns", ["StartTime"])


def sa(**values: bytes) -> SearchAttributes:
    return SearchAttributes(
        indexed_fields={k: Payload(metadata={"encoding": b"json/plain"}, data=v) for k, v in values.items()}
    )


async def test_valid_search_attributes_pass(registry: SearchAttributeRegistry) -> None:
    await registry.validate_search_attributes("ns", None)
    await registry.validate_search_attributes(
        "ns", sa(Kw=b'"x"', Num=b"5", Tags=b'["a", "b"]', TemporalChangeVersion=b'["patch-1"]')
    )
    await registry.validate_search_attributes("ns", sa(Kw=b"null", Num=b"[]"))  # unsetting


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (sa(Nope=b'"x"'), "Namespace ns has no mapping defined for search attribute Nope"),
        (sa(WorkflowId=b'"x"'), "WorkflowId attribute can't be set in SearchAttributes"),
        (sa(TemporalWorkerDeployment=b'"x"'), "TemporalWorkerDeployment attribute can't be set"),
        (sa(Num=b'"abc"'), 'invalid value for search attribute Num of type Int: "abc"'),
        (sa(Num=b"1.5"), "invalid value for search attribute Num of type Int: 1.5"),
        (sa(Kw=b'["a", "b"]'), "invalid value for search attribute Kw of type Keyword"),
        (sa(Tags=b'"a"'), "invalid value for search attribute Tags of type KeywordList"),
        (sa(Kw=b"{not json"), "invalid value for search attribute Kw of type Keyword"),
        (sa(Kw=b'"' + b"x" * 3000 + b'"'), "search attribute Kw value size 3002 exceeds size limit 2048"),
    ],
)
async def test_invalid_search_attributes_are_invalid_argument(
    registry: SearchAttributeRegistry, attributes: SearchAttributes, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        await registry.validate_search_attributes("ns", attributes)


async def test_bad_queries_become_invalid_argument_naming_the_position(
    registry: SearchAttributeRegistry,
) -> None:
    with pytest.raises(
        InvalidArgument, match=r"^invalid query: unknown search attribute 'Nope' \(at line 1, column 1\)$"
    ):
        await registry.parse_query("ns", "Nope = 1")
    assert (await registry.parse_query("ns", "Num > 1")).filter is not None


async def test_a_huge_in_list_is_answered_in_parts_with_the_same_pages(monkeypatch) -> None:
    """SQLite answers an IN of more than IN_CHUNK values in slices (yielding to the loop between them);
    the pages and the count are those of the single query."""
    from hourglass.persistence.sqlite import store as sqlite_store

    store = await SQLiteStore.open(None)
    for i in range(120):
        await store.upsert_visibility(
            VisibilityRecord(
                namespace_id="ns", workflow_id=f"wf-{i:04d}", run_id=f"r{i}", workflow_type="T",
                task_queue="q", status=1 + i % 2, start_time_ms=1000 + (i * 7) % 13,
            )
        )  # fmt: skip
    query = parse_query(
        "WorkflowId IN (" + ",".join(f"'wf-{i:04d}'" for i in range(0, 240, 3)) + ") "
        "AND ExecutionStatus = 'Running' ORDER BY StartTime DESC",
        CUSTOM,
    )

    async def all_pages() -> tuple[list[str], int]:
        listed, token = [], b""
        while True:
            records, token = await store.query_visibility("ns", query, 7, token)
            listed += [r.workflow_id for r in records]
            if not token:
                return listed, await store.count_visibility("ns", query)

    whole = await all_pages()
    monkeypatch.setattr(sqlite_store, "IN_CHUNK", 4)
    assert await all_pages() == whole
    assert whole[1] == len(whole[0]) == 20


async def test_a_long_query_parsed_in_the_parser_process_is_the_same_query() -> None:
    parser = QueryParserProcess()
    try:
        text = "WorkflowId IN (" + ",".join(f"'wf-{i}'" for i in range(2000)) + ") ORDER BY StartTime"
        assert await parser.parse(text, {}) == parse_query(text, {})
        bad = "WorkflowId IN (" + "'a'," * 2000 + ")"
        with pytest.raises(QueryError) as in_process:
            parse_query(bad, {})
        with pytest.raises(QueryError) as from_the_process:
            await parser.parse(bad, {})
        assert str(from_the_process.value) == str(in_process.value)
        assert from_the_process.value.position == in_process.value.position
    finally:
        parser.close()
