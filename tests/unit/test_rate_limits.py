"""The frontend's limits as decisions: buckets, priorities, namespaces, concurrent long polls and config.

A fake clock drives every bucket, so the counts are exact: the reference's burst and refill arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, load_config
from hourglass.cluster.frontend import rate_limits
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
