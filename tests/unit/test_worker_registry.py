"""The worker heartbeat registry: the reference's ListWorkers query language, paging, expiry, shutdown."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import WorkerStatus
from temporalio.api.worker.v1 import WorkerHeartbeat
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.matching.workers import WorkerRegistry

RUNNING = WorkerStatus.WORKER_STATUS_RUNNING


def _hb(key: str, queue: str, start_s: int, status: int = RUNNING, build: str = "") -> WorkerHeartbeat:
    hb = WorkerHeartbeat(worker_instance_key=key, task_queue=queue, sdk_name="temporal-python", status=status)
    hb.host_info.host_name = "host-" + key
    hb.start_time.FromSeconds(start_s)
    hb.heartbeat_time.FromSeconds(start_s + 10)
    if build:
        hb.deployment_version.build_id = build
    return hb


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def registry() -> tuple[WorkerRegistry, Clock]:
    clock = Clock()
    reg = WorkerRegistry(clock)
    # 2024-01-01T00:00:00Z = 1704067200
    reg.record(
        "ns", [_hb("a", "q1", 1704067200, build="b1"), _hb("b", "q2", 1704067300), _hb("c", "q1", 1704067400)]
    )
    reg.record("other", [_hb("z", "q1", 1704067200)])
    return reg, clock


def _keys(reg: WorkerRegistry, query: str) -> list[str]:
    resp = reg.list("ns", rr.ListWorkersRequest(query=query))
    assert [w.worker_instance_key for w in resp.workers] == [
        i.worker_heartbeat.worker_instance_key for i in resp.workers_info
    ]
    return sorted(w.worker_instance_key for w in resp.workers)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["a", "b", "c"]),
        ("TaskQueue = 'q1'", ["a", "c"]),
        ("TaskQueue != 'q1'", ["b"]),
        ("TaskQueue = 'q1' AND BuildId = 'b1'", ["a"]),
        ("TaskQueue = 'q2' OR WorkerInstanceKey = 'c'", ["b", "c"]),
        ("HostName STARTS_WITH 'host-'", ["a", "b", "c"]),
        ("BuildId IS NULL", ["b", "c"]),
        ("BuildId IS NOT NULL", ["a"]),
        ("StartTime > '2024-01-01T00:01:00Z'", ["b", "c"]),
        ("StartTime BETWEEN '2024-01-01T00:01:00Z' AND '2024-01-01T00:02:00Z'", ["b"]),
        ("WorkerStatus = 'WORKER_STATUS_RUNNING'", ["a", "b", "c"]),
        # What the reference cannot evaluate matches no worker (it drops the error).
        ("Foo = 'x'", []),
        ("NOT TaskQueue = 'q1'", []),
        ("TaskQueue = ''", []),
    ],
)
def test_query_selects_workers(registry, query: str, expected: list[str]) -> None:
    reg, _ = registry
    assert _keys(reg, query) == expected
    assert reg.count("ns", rr.CountWorkersRequest(query=query)).count == len(expected)


@pytest.mark.parametrize(
    "query", ["TaskQueue = ", "select * from x", "where TaskQueue = 'q1'", "(TaskQueue = 'q1'"]
)
def test_malformed_query_is_invalid_argument(registry, query: str) -> None:
    reg, _ = registry
    with pytest.raises(InvalidArgument):
        reg.list("ns", rr.ListWorkersRequest(query=query))


def test_pages_in_key_order(registry) -> None:
    reg, _ = registry
    first = reg.list("ns", rr.ListWorkersRequest(page_size=2))
    assert [w.worker_instance_key for w in first.workers] == ["a", "b"]
    assert first.next_page_token
    second = reg.list("ns", rr.ListWorkersRequest(page_size=2, next_page_token=first.next_page_token))
    assert [w.worker_instance_key for w in second.workers] == ["c"]
    assert not second.next_page_token
    with pytest.raises(InvalidArgument, match="invalid next_page_token"):
        reg.list("ns", rr.ListWorkersRequest(page_size=2, next_page_token=b"junk"))


def test_shutdown_removes_and_ttl_expires(registry) -> None:
    reg, clock = registry
    reg.record("ns", [_hb("a", "q1", 1704067200, status=WorkerStatus.WORKER_STATUS_SHUTDOWN)])
    assert _keys(reg, "") == ["b", "c"]
    clock.now += LIMITS.worker_registry_entry_ttl_ms / 1000 - 1
    reg.record("ns", [_hb("b", "q2", 1704067300)])
    clock.now += 2
    assert _keys(reg, "") == ["b"]
    with pytest.raises(NotFound, match="Worker c not found"):
        reg.describe("ns", "c")
    described = reg.describe("ns", "b").worker_info.worker_heartbeat
    assert described.host_info.host_name == "host-b"
