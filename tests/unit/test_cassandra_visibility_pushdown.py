"""Which conjuncts of a visibility query become CQL restrictions on Cassandra (no database needed: the
conformance suite in tests/persistence checks the answers on a real Cassandra)."""

from __future__ import annotations

import pytest

from hourglass.persistence.cassandra.visibility_pushdown import (
    Pushdown,
    Range,
    day_read,
    ordered_by_cql,
    pushdown_of,
)
from hourglass.persistence.visibility.resolve import parse_query

DAY_MS = 86_400_000


def push(text: str) -> Pushdown:
    return pushdown_of(parse_query(text, {"Num": 3}).filter)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Pushdown()),
        ("ExecutionStatus = 'Running'", Pushdown(status=Range(1, 1))),
        ("ExecutionStatus IN ('Failed', 'Terminated')", Pushdown(status=Range(3, 5))),
        ("ExecutionStatus > 2 AND ExecutionStatus <= 6", Pushdown(status=Range(3, 6))),
        # ns bounds rounded so that ms * 1e6 keeps the comparison's meaning
        ("StartTime > '1970-01-01T00:00:01.0000005Z'", Pushdown(start_ms=Range(low=1001))),
        ("StartTime >= '1970-01-01T00:00:01.0000005Z'", Pushdown(start_ms=Range(low=1001))),
        ("StartTime < '1970-01-01T00:00:01Z'", Pushdown(start_ms=Range(high=999))),
        ("StartTime <= '1970-01-01T00:00:01.5Z'", Pushdown(start_ms=Range(high=1500))),
        ("StartTime = '1970-01-01T00:00:01.0000005Z'", Pushdown(start_ms=Range(1001, 1000))),
        (
            "StartTime BETWEEN '1970-01-01T00:00:01Z' AND '1970-01-01T00:00:02Z'",
            Pushdown(start_ms=Range(1000, 2000)),
        ),
        ("CloseTime < '1970-01-01T00:00:02Z'", Pushdown(close_ms=Range(1, 1999))),
        ("CloseTime IS NULL", Pushdown(close_ms=Range(high=0))),
        ("CloseTime IS NOT NULL", Pushdown(close_ms=Range(low=1))),
        ("WorkflowType = 'A'", Pushdown(equals=(("workflow_type", ("A",)),))),
        (
            "WorkflowId IN ('b', 'a') AND TaskQueue = 'q' AND WorkflowId = 'a'",
            Pushdown(equals=(("task_queue", ("q",)), ("workflow_id", ("a",)))),
        ),
        # nested top-level ANDs count; OR, NOT and search attributes stay in Python
        (
            "(ExecutionStatus = 'Running' AND Num = 1) AND WorkflowType = 'A'",
            Pushdown(status=Range(1, 1), equals=(("workflow_type", ("A",)),)),
        ),
        ("ExecutionStatus = 'Running' OR WorkflowType = 'A'", Pushdown()),
        ("NOT ExecutionStatus = 'Running'", Pushdown()),
        ("ExecutionStatus != 'Running' AND WorkflowType != 'A'", Pushdown()),
        ("WorkflowId STARTS_WITH 'a' AND HistoryLength > 3", Pushdown()),
    ],
)
def test_top_level_conjuncts_become_restrictions(text: str, expected: Pushdown) -> None:
    assert push(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "ExecutionStatus = 'Running' AND ExecutionStatus = 'Completed'",
        "WorkflowId = 'a' AND WorkflowId = 'b'",
        "StartTime > '2024-01-02T00:00:00Z' AND StartTime < '2024-01-01T00:00:00Z'",
        "CloseTime IS NULL AND CloseTime > '2024-01-01T00:00:00Z'",
        "StartTime = '1970-01-01T00:00:01.0000005Z'",
    ],
)
def test_contradictions_read_nothing(text: str) -> None:
    assert push(text).empty


def test_day_read_binds_every_value_and_slices_the_day() -> None:
    read = day_read(
        "run_id",
        push(
            "ExecutionStatus = 'Running' AND WorkflowType = 'A' AND WorkflowId = 'w' AND StartTime > '1970-01-01T00:00:01Z'"
        ),
        "ns",
        0,
        DAY_MS,
        ascending=False,
    )
    assert read.cql == (
        "SELECT run_id FROM visibility WHERE namespace_id = ? AND start_day = ? AND start_time_ms >= ? "
        "AND start_time_ms <= ? AND status >= ? AND status <= ? AND workflow_id IN ? AND workflow_type = ? "
        "ALLOW FILTERING"
    )
    assert read.params == ("ns", 0, 1001, DAY_MS - 1, 1, 1, ["w"], "A")


def test_cql_orders_ascending_only_an_unrestricted_slice() -> None:
    plain = day_read("run_id", push("StartTime > '1970-01-01T00:00:01Z'"), "ns", 3, DAY_MS, ascending=True)
    assert plain.cql.endswith("ORDER BY start_time_ms ASC, run_id ASC")
    assert plain.params == ("ns", 3, 3 * DAY_MS, 4 * DAY_MS - 1)
    assert not ordered_by_cql(push("WorkflowId = 'w'"), ascending=True)
    assert "ORDER BY" not in day_read("run_id", push("WorkflowId = 'w'"), "ns", 0, DAY_MS, True).cql
    assert ordered_by_cql(push("WorkflowId = 'w'"), ascending=False)
