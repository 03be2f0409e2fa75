"""The frontend's limits as decisions: buckets, priorities, namespaces, concurrent long polls and config.

A fake clock drives every bucket, so the counts are exact: the reference's burst and refill arithmetic.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from google.rpc import status_pb2
from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    GetSystemInfoResponse,
    PollActivityTaskQueueRequest,
    PollActivityTaskQueueResponse,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import (
    WorkflowServiceServicer,
    WorkflowServiceStub,
    add_WorkflowServiceServicer_to_server,
)

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, load_config
from hourglass.cluster.frontend import rate_limits
from hourglass.cluster.frontend.rate_limit_interceptor import RateLimitInterceptor
from hourglass.cluster.frontend.rate_limits import (
    CONCURRENT_POLLERS_LIMITED,
    NAMESPACE_RATE_LIMITED,
    SERVICE_RATE_LIMITED,
    WORKFLOW_SERVICE,
    RateLimitConfig,
    Refusal,
    RequestLimiter,
    TokenBucket,
)
from hourglass.cluster.metrics import REQUESTS_REFUSED

REGISTER = WORKFLOW_SERVICE + "RegisterNamespace"
START = WORKFLOW_SERVICE + "StartWorkflowExecution"
POLL = WORKFLOW_SERVICE + "PollWorkflowTaskQueue"
HISTORY = WORKFLOW_SERVICE + "GetWorkflowExecutionHistory"
LIST = WORKFLOW_SERVICE + "ListWorkflowExecutions"
SYSTEM_INFO = WORKFLOW_SERVICE + "GetSystemInfo"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(members: int = 1, **values: object) -> tuple[RequestLimiter, Clock]:
    clock = Clock()
    config = RateLimitConfig({key.replace("__", "."): value for key, value in values.items()})
    return RequestLimiter(config, lambda: members, clock), clock


def admitted(limiter: RequestLimiter, method: str, namespace: str, count: int, **kw: bool) -> list:
    """The outcome of `count` requests at the current instant (admitted ones released at once)."""
    outcomes = []
    for _ in range(count):
        outcome = limiter.admit(method, namespace, **kw)
        if not isinstance(outcome, Refusal):
            outcome()
            outcome = "ok"
        outcomes.append(outcome)
    return outcomes


def test_a_bucket_starts_full_refills_at_its_rate_and_never_exceeds_its_burst() -> None:
    bucket = TokenBucket(rate=2, burst=4, now=0)
    assert [bucket.allow(0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.allow(0.5) and not bucket.allow(0.5)  # one token per half second
    assert [bucket.allow(100) for _ in range(5)] == [True] * 4 + [False]  # capped at the burst
    bucket.reserve(100)  # a reservation may overdraw: the next token comes a half second later
    assert not bucket.allow(100.4) and bucket.allow(100.5 + 0.5)


def test_register_namespace_flood_gets_the_references_node_burst_then_its_rate() -> None:
    limits, clock = limiter()
    # frontend.rps.namespaceReplicationInducingAPIs = 20: a burst of 40, then 20 per second; each name is
    # its own namespace, so only the node's bucket refuses.
    outcomes = [admitted(limits, REGISTER, f"ns-{i}", 1)[0] for i in range(50)]
    assert outcomes.count("ok") == 40 and outcomes[40:] == [SERVICE_RATE_LIMITED] * 10
    clock.now += 0.5
    outcomes = [admitted(limits, REGISTER, f"later-{i}", 1)[0] for i in range(12)]
    assert outcomes.count("ok") == 10


def test_the_same_namespace_is_limited_by_its_own_bucket() -> None:
    limits, _ = limiter(frontend__rps__namespaceReplicationInducingAPIs=1000)
    # frontend.globalNamespaceRPS.namespaceReplicationInducingAPIs = 10 on one frontend, burst ratio 10.
    outcomes = admitted(limits, WORKFLOW_SERVICE + "UpdateNamespace", "busy", 101)
    assert outcomes[:100] == ["ok"] * 100 and outcomes[100] == NAMESPACE_RATE_LIMITED


def test_namespace_rate_refuses_one_namespace_and_leaves_the_others_alone() -> None:
    limits, clock = limiter(frontend__namespaceRPS=5)
    outcomes = admitted(limits, START, "noisy", 12)
    assert outcomes == ["ok"] * 10 + [NAMESPACE_RATE_LIMITED] * 2  # burst ratio 2
    assert admitted(limits, START, "quiet", 10) == ["ok"] * 10
    clock.now += 1
    assert admitted(limits, START, "noisy", 6) == ["ok"] * 5 + [NAMESPACE_RATE_LIMITED]


def test_lower_priorities_give_way_to_higher_ones() -> None:
    limits, _ = limiter(frontend__namespaceRPS=5)
    # Starts (priority 1) spend the polls' (priority 4) tokens too: the polls are refused after them...
    assert admitted(limits, START, "a", 10) == ["ok"] * 10
    assert admitted(limits, POLL, "a", 1) == [NAMESPACE_RATE_LIMITED]
    # ...but polls never spend the starts' tokens.
    assert admitted(limits, POLL, "b", 10) == ["ok"] * 10
    assert admitted(limits, START, "b", 10) == ["ok"] * 10


def test_operator_calls_run_at_the_operator_share_of_the_rate() -> None:
    limits, clock = limiter(frontend__namespaceRPS=10, system__operatorRPSRatio=0.5)
    assert admitted(limits, START, "ops", 21, operator=True).count("ok") == 20  # same burst
    clock.now += 1
    assert admitted(limits, START, "ops", 6, operator=True).count("ok") == 5  # half the refill


def test_system_calls_and_unrated_methods() -> None:
    limits, _ = limiter(frontend__rps=1)
    # GetSystemInfo has no namespace: only the node's bucket (priority 0: operator share, burst 2).
    assert admitted(limits, SYSTEM_INFO, "", 3) == ["ok", "ok", SERVICE_RATE_LIMITED]
    # Health checks and OperatorService are not rated, as on the reference.
    assert admitted(limits, "/grpc.health.v1.Health/Check", "", 50) == ["ok"] * 50
    assert (
        admitted(limits, "/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes", "", 50)
        == ["ok"] * 50
    )


def test_visibility_has_its_own_namespace_rate() -> None:
    limits, _ = limiter()
    # frontend.namespaceRPS.visibility = 10 (the server's default), burst ratio 1.
    assert admitted(limits, LIST, "default", 11) == ["ok"] * 10 + [NAMESPACE_RATE_LIMITED]
    assert admitted(limits, START, "default", 10) == ["ok"] * 10


def test_history_long_polls_and_reachability_are_rated_as_the_reference_rates_them() -> None:
    limits, _ = limiter(frontend__namespaceRPS=5, frontend__rps=1000)
    # A waiting history read is priority 5 for the namespace: behind everything else.
    assert admitted(limits, START, "ns", 10) == ["ok"] * 10
    assert admitted(limits, HISTORY, "ns", 1, long_poll=True) == [NAMESPACE_RATE_LIMITED]
    # DescribeTaskQueue with reachability spends the node's visibility bucket, not its execution one.
    node, _ = limiter(frontend__rps=1)
    describe = WORKFLOW_SERVICE + "DescribeTaskQueue"
    assert admitted(node, describe, "", 3, reachability=True) == ["ok", "ok", SERVICE_RATE_LIMITED]
    assert admitted(node, describe, "", 2) == ["ok", "ok"]


def test_global_quotas_are_split_between_the_frontends() -> None:
    limits, _ = limiter(members=2, frontend__globalNamespaceRPS=10)
    assert limits.namespace_rate(rate_limits.EXECUTION, "x") == 5
    assert admitted(limits, START, "x", 11) == ["ok"] * 10 + [NAMESPACE_RATE_LIMITED]
    counted, _ = limiter(members=4, frontend__globalNamespaceCount=8)
    assert counted.concurrent_quota("x") == 2


def test_the_long_poll_past_the_namespace_count_is_refused_and_slots_come_back() -> None:
    limits, _ = limiter(frontend__namespaceCount=2)
    first, second = limits.admit(POLL, "ns"), limits.admit(POLL, "ns")
    assert limits.admit(POLL, "ns") == CONCURRENT_POLLERS_LIMITED
    assert limits.active("ns", POLL) == 2
    # Per method and per namespace: other pollers and namespaces have their own count.
    other = limits.admit(WORKFLOW_SERVICE + "PollActivityTaskQueue", "ns")
    elsewhere = limits.admit(POLL, "other")
    assert not isinstance(other, Refusal) and not isinstance(elsewhere, Refusal)
    first()
    first()  # releasing twice gives back one slot only
    third = limits.admit(POLL, "ns")
    assert not isinstance(third, Refusal)
    assert limits.admit(POLL, "ns") == CONCURRENT_POLLERS_LIMITED
    for release in (second, third, other, elsewhere):
        release()
    assert limits.active("ns", POLL) == 0


def test_history_reads_count_only_when_they_wait_for_new_events() -> None:
    limits, _ = limiter(frontend__namespaceCount=1)
    holding = limits.admit(HISTORY, "ns", long_poll=True)
    assert not isinstance(holding, Refusal)
    assert limits.admit(HISTORY, "ns", long_poll=True) == CONCURRENT_POLLERS_LIMITED
    assert admitted(limits, HISTORY, "ns", 3, long_poll=False) == ["ok"] * 3


def test_a_long_poll_refused_by_the_rate_gives_its_slot_back() -> None:
    limits, _ = limiter(frontend__namespaceRPS=1, frontend__namespaceCount=5)
    assert admitted(limits, POLL, "ns", 3) == ["ok", "ok", NAMESPACE_RATE_LIMITED]
    assert limits.active("ns", POLL) == 0


def test_buckets_of_idle_namespaces_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rate_limits, "MAX_IDLE_BUCKETS", 50)
    limits, clock = limiter()
    for i in range(200):
        admitted(limits, START, f"ns-{i}", 1)
        clock.now += 0.01  # a bucket is full again a moment after its one request
    assert len(limits._namespace) <= 51


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"frontend.namespaceRPS": -1}, "frontend.namespaceRPS must be a non-negative integer, not -1"),
        ({"frontend.rps": "fast"}, "frontend.rps must be a non-negative integer"),
        ({"frontend.namespaceCount": 1.5}, "frontend.namespaceCount must be a non-negative integer"),
        (
            {"frontend.namespaceBurstRatio": True},
            "frontend.namespaceBurstRatio must be a non-negative number",
        ),
        ({"system.operatorRPSRatio": 0}, "system.operatorRPSRatio must be in (0, 1]"),
        ({"frontend.rps": [{"value": 1}]}, "frontend.rps is node-wide"),
        (
            {"frontend.namespaceRPS": [{"value": 1, "constraints": {"taskQueueName": "x"}}]},
            "only a `namespace`",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(values: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        RateLimitConfig(values)
    assert message in str(info.value)


def test_namespace_constrained_values_as_in_the_references_yaml() -> None:
    config = RateLimitConfig(
        {"frontend.namespaceRPS": [{"value": 7, "constraints": {"namespace": "slow"}}, {"value": 300}]}
    )
    assert config.value("frontend.namespaceRPS", "slow") == 7
    assert config.value("frontend.namespaceRPS", "other") == 300
    only = RateLimitConfig({"frontend.namespaceCount": [{"value": 3, "constraints": {"namespace": "a"}}]})
    assert only.value("frontend.namespaceCount", "b") == 1200  # the reference's default elsewhere


def test_node_yaml_and_start_dev_name_a_bad_limit(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("store: {kind: sqlite}\ndynamic_config:\n  frontend.namespaceCount: -3\n")
    with pytest.raises(ConfigError, match=r"frontend\.namespaceCount must be a non-negative integer"):
        load_config(path)
    result = CliRunner().invoke(
        main, ["server", "start-dev", "--port", "0", "--dynamic-config-value", "frontend.rps=-5"]
    )
    assert result.exit_code == 2
    assert "frontend.rps must be a non-negative integer, not -5" in result.output


class _Frontend(WorkflowServiceServicer):
    """Answers at once, or holds a poll until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.polling = asyncio.Event()

    async def GetSystemInfo(self, request, context):  # noqa: N802 (the gRPC method's name)
        return GetSystemInfoResponse(server_version="test")

    async def PollActivityTaskQueue(self, request, context):  # noqa: N802
        self.polling.set()
        await self.release.wait()
        return PollActivityTaskQueueResponse()


async def test_the_interceptor_answers_the_references_status_and_counts_the_refusal() -> None:
    limits, _ = limiter(frontend__rps=1, frontend__namespaceCount=1)
    frontend = _Frontend()
    server = grpc.aio.server(interceptors=[RateLimitInterceptor(limits)])
    add_WorkflowServiceServicer_to_server(frontend, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    counted = REQUESTS_REFUSED.labels("GetSystemInfo", "", "RPS_LIMIT", "SYSTEM")
    before = counted._value.get()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = WorkflowServiceStub(channel)
            # The poll holds the namespace's one slot until it is answered; then the slot is free again.
            poll = PollActivityTaskQueueRequest(namespace="ns")
            holder = asyncio.ensure_future(stub.PollActivityTaskQueue(poll))
            await asyncio.wait_for(frontend.polling.wait(), 5)
            with pytest.raises(grpc.aio.AioRpcError) as busy:
                await stub.PollActivityTaskQueue(poll)
            assert busy.value.details() == "namespace concurrent poller limit exceeded"
            assert (
                _failure(busy.value).cause == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT
            )
            frontend.release.set()
            await holder
            await stub.PollActivityTaskQueue(poll)
            assert limits.active("ns", WORKFLOW_SERVICE + "PollActivityTaskQueue") == 0
            # GetSystemInfo is priority 0 (the polls spent none of its tokens): the operator share of
            # frontend.rps, burst 2.
            await stub.GetSystemInfo(GetSystemInfoRequest())
            await stub.GetSystemInfo(GetSystemInfoRequest())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetSystemInfo(GetSystemInfoRequest())
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert refused.value.details() == "service rate limit exceeded"
            assert _failure(refused.value) == ResourceExhaustedFailure(
                cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT,
                scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_SYSTEM,
            )
            assert counted._value.get() == before + 1
    finally:
        await server.stop(None)


def _failure(error: grpc.aio.AioRpcError) -> ResourceExhaustedFailure:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            [detail] = status_pb2.Status.FromString(value).details
            failure = ResourceExhaustedFailure()
            assert detail.Unpack(failure)
            return failure
    raise AssertionError("no status details")
