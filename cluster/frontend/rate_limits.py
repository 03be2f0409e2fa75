"""The frontend's request limits, as the reference's: token buckets per node and per namespace, split by API
class (execution, visibility, namespace-replication-inducing) and by priority inside a class, and a cap on
concurrent long-running requests (long polls, queries, updates) per namespace and method.

Pure decisions, no gRPC: `RequestLimiter.admit` says which limit, if any, refuses a request; the
interceptor (rate_limit_interceptor.py) turns that into the reference's RESOURCE_EXHAUSTED. Keys, defaults,
burst ratios and priorities are the reference's (common/dynamicconfig/constants.go,
service/frontend/configs/quotas.go), so a dynamic config written for `temporal server start-dev` limits
Hourglass the same way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# A long-polling GetWorkflowExecutionHistory (wait_new_event) is rated as this API, as on the reference.
POLL_WORKFLOW_HISTORY = WORKFLOW_SERVICE + "PollWorkflowExecutionHistory"
# DescribeTaskQueue that asks for reachability is a visibility call.
DESCRIBE_TASK_QUEUE_WITH_REACHABILITY = WORKFLOW_SERVICE + "DescribeTaskQueueWithReachability"

OPERATOR_PRIORITY = 0
CALLER_TYPE_HEADER = "caller-type"
CALLER_TYPE_OPERATOR = "operator"


def _priorities(groups: dict[int, str]) -> dict[str, int]:
    return {WORKFLOW_SERVICE + name: p for p, names in groups.items() for name in names.split()}


# The reference's APIToPriority: 0 system, 1 external events and task progress, 2 state changes, 3 status
# queries and failure reports, 4 polls, 5 history long polls.
EXECUTION_PRIORITIES = _priorities(
    {
        0: "GetClusterInfo GetSystemInfo GetSearchAttributes DescribeNamespace ListNamespaces DeprecateNamespace",
        1: "SignalWorkflowExecution SignalWithStartWorkflowExecution StartWorkflowExecution "
        "UpdateWorkflowExecution ExecuteMultiOperation CreateSchedule StartBatchOperation "
        "StartActivityExecution StartNexusOperationExecution RecordActivityTaskHeartbeat "
        "RecordActivityTaskHeartbeatById RespondActivityTaskCompleted RespondActivityTaskCompletedById "
        "RespondWorkflowTaskCompleted RespondQueryTaskCompleted RespondNexusTaskCompleted",
        2: "RequestCancelWorkflowExecution TerminateWorkflowExecution ResetWorkflowExecution "
        "DeleteWorkflowExecution GetWorkflowExecutionHistory UpdateSchedule PatchSchedule DeleteSchedule "
        "StopBatchOperation UpdateActivityOptions PauseActivity UnpauseActivity ResetActivity "
        "UpdateWorkflowExecutionOptions SetCurrentDeployment SetCurrentDeploymentVersion "
        "CreateWorkerDeployment CreateWorkerDeploymentVersion SetWorkerDeploymentManager "
        "DeleteWorkerDeployment UpdateWorkerDeploymentVersionMetadata CreateWorkflowRule "
        "DescribeWorkflowRule DeleteWorkflowRule ListWorkflowRules TriggerWorkflowRule "
        "PauseWorkflowExecution UnpauseWorkflowExecution",
        3: "DescribeWorkflowExecution DescribeActivityExecution DescribeTaskQueue "
        "GetWorkerBuildIdCompatibility GetWorkerVersioningRules ListTaskQueuePartitions QueryWorkflow "
        "DescribeSchedule ListScheduleMatchingTimes DescribeBatchOperation DescribeDeployment "
        "GetCurrentDeployment DescribeWorkerDeploymentVersion DescribeWorkerDeployment ListWorkers "
        "DescribeWorker CountWorkers RespondActivityTaskCanceled RespondActivityTaskCanceledById "
        "RespondActivityTaskFailed RespondActivityTaskFailedById RespondWorkflowTaskFailed "
        "RespondNexusTaskFailed",
        4: "PollWorkflowTaskQueue PollActivityTaskQueue PollWorkflowExecutionUpdate PollNexusTaskQueue "
        "ResetStickyTaskQueue ShutdownWorker GetWorkflowExecutionHistoryReverse RecordWorkerHeartbeat "
        "FetchWorkerConfig UpdateWorkerConfig",
        5: "PollWorkflowExecutionHistory",
    }
)
EXECUTION_ORDER = (0, 1, 2, 3, 4, 5)

VISIBILITY_PRIORITIES = _priorities(
    {
        1: "CountWorkflowExecutions ScanWorkflowExecutions ListOpenWorkflowExecutions "
        "ListClosedWorkflowExecutions ListWorkflowExecutions ListArchivedWorkflowExecutions "
        "GetWorkerTaskReachability ListSchedules CountSchedules ListBatchOperations "
        "DescribeTaskQueueWithReachability ListDeployments GetDeploymentReachability ListWorkerDeployments",
    }
)
VISIBILITY_ORDER = (0, 1)

# APIs that write the namespace replication queue: few per second, so a flood cannot delay a failover.
NAMESPACE_REPLICATION_PRIORITIES = _priorities(
    {
        1: "RegisterNamespace UpdateNamespace",
        2: "UpdateWorkerBuildIdCompatibility UpdateWorkerVersioningRules SetWorkerDeploymentCurrentVersion "
        "SetWorkerDeploymentRampingVersion DeleteWorkerDeploymentVersion UpdateTaskQueueConfig",
    }
)
NAMESPACE_REPLICATION_ORDER = (0, 1, 2)

# The reference's ExecutionAPICountLimitOverride: the long-running methods, one slot each.
LONG_RUNNING_METHODS = frozenset(
    WORKFLOW_SERVICE + name
    for name in (
        "PollActivityTaskQueue PollWorkflowTaskQueue PollWorkflowExecutionUpdate PollNexusTaskQueue "
        "QueryWorkflow UpdateWorkflowExecution GetWorkflowExecutionHistory ExecuteMultiOperation"
    ).split()
)

# Methods never rate limited (the reference gives them 0 tokens).
UNLIMITED_METHODS = frozenset({HEALTH_CHECK})

# Causes and scopes, as the reference's ResourceExhaustedFailure carries them.
RPS_LIMIT = "RPS_LIMIT"
CONCURRENT_LIMIT = "CONCURRENT_LIMIT"
SCOPE_NAMESPACE = "NAMESPACE"
SCOPE_SYSTEM = "SYSTEM"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the reference's message, cause and scope."""

    message: str
    cause: str
    scope: str


SERVICE_RATE_LIMITED = Refusal("service rate limit exceeded", RPS_LIMIT, SCOPE_SYSTEM)
NAMESPACE_RATE_LIMITED = Refusal("namespace rate limit exceeded", RPS_LIMIT, SCOPE_NAMESPACE)
CONCURRENT_POLLERS_LIMITED = Refusal(
    "namespace concurrent poller limit exceeded", CONCURRENT_LIMIT, SCOPE_NAMESPACE
)


class TokenBucket:
    """A token bucket with Go's rate.Limiter semantics (the reference's): it starts full; `allow` takes
    tokens only if there are enough; `reserve` takes them anyway (the balance may go negative), which is
    how a higher-priority request slows down the lower priorities."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last = now

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
            self.last = now

    def allow(self, now: float, n: int = 1) -> bool:
        self._refill(now)
        if n > self.burst or self.tokens < n:
            return False
        self.tokens -= n
        return True

    def reserve(self, now: float, n: int = 1) -> None:
        self._refill(now)
        if n <= self.burst:
            self.tokens -= n

    def is_full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


class PriorityLimiter:
    """One bucket per priority of an API class: a request is decided by its priority's bucket and, if
    allowed, also spends a token of every lower priority, so lower priorities give way under load. The
    operator priority (0) runs at `operator_ratio` of the rate, as on the reference."""

    def __init__(
        self, rate: float, burst: int, order: tuple[int, ...], operator_ratio: float, now: float
    ) -> None:
        self.order = order
        self.buckets = [
            TokenBucket(rate * operator_ratio if p == OPERATOR_PRIORITY else rate, burst, now) for p in order
        ]

    def set_rate(self, rate: float, burst: int, operator_ratio: float) -> None:
        for p, bucket in zip(self.order, self.buckets, strict=True):
            bucket.rate = rate * operator_ratio if p == OPERATOR_PRIORITY else rate
            bucket.burst = burst

    def allow(self, priority: int, now: float) -> bool:
        index = self.order.index(priority)
        if not self.buckets[index].allow(now):
            return False
        for bucket in self.buckets[index + 1 :]:
            bucket.reserve(now)
        return True

    def is_full(self, now: float) -> bool:
        return all(b.is_full(now) for b in self.buckets)


# A namespace-filtered setting: a plain value, or the reference's YAML list of
# `{value: V, constraints: {namespace: NS}}` (the first entry whose constraints match wins).
Setting = Callable[[str], float]


def _number(key: str, value: Any, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise ValueError(f"dynamic config {key} must be {kind}, not {value!r}")
    if integer and not float(value).is_integer():
        raise ValueError(f"dynamic config {key} must be a non-negative integer, not {value!r}")
    return float(value)


def _setting(key: str, value: Any, integer: bool) -> Setting:
    if not isinstance(value, list):
        number = _number(key, value, integer=integer)
        return lambda _namespace: number
    entries: list[tuple[str | None, float]] = []
    for entry in value:
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise ValueError(f"dynamic config {key}: each entry needs a `value`, not {entry!r}")
        constraints = entry.get("constraints") or {}
        if not isinstance(constraints, Mapping) or set(constraints) - {"namespace"}:
            raise ValueError(
                f"dynamic config {key}: only a `namespace` constraint applies, not {constraints!r}"
            )
        namespace = constraints.get("namespace")
        entries.append(
            (None if namespace is None else str(namespace), _number(key, entry["value"], integer=integer))
        )
    default = _DEFAULTS[key][0]

    def lookup(namespace: str) -> float:
        for ns, number in entries:
            if ns is None or ns == namespace:
                return number
        return default

    return lookup


# key: (reference default, integer?)
_DEFAULTS: dict[str, tuple[float, bool]] = {
    "frontend.rps": (2400, True),
    "frontend.globalRPS": (0, True),
    "frontend.rps.namespaceReplicationInducingAPIs": (20, True),
    "frontend.namespaceRPS": (2400, True),
    "frontend.globalNamespaceRPS": (0, True),
    "frontend.namespaceBurstRatio": (2, False),
    "frontend.namespaceRPS.visibility": (10, True),
    "frontend.globalNamespaceRPS.visibility": (0, True),
    "frontend.namespaceBurstRatio.visibility": (1, False),
    "frontend.namespaceRPS.namespaceReplicationInducingAPIs": (1, True),
    "frontend.globalNamespaceRPS.namespaceReplicationInducingAPIs": (10, True),
    "frontend.namespaceBurstRatio.namespaceReplicationInducingAPIs": (10, False),
    "frontend.namespaceCount": (1200, True),
    "frontend.globalNamespaceCount": (0, True),
    "system.operatorRPSRatio": (0.2, False),
}
RATE_LIMIT_KEYS = frozenset(_DEFAULTS)
_NODE_WIDE = {
    "frontend.rps",
    "frontend.globalRPS",
    "frontend.rps.namespaceReplicationInducingAPIs",
    "system.operatorRPSRatio",
}


class RateLimitConfig:
    """The limit keys of a node's dynamic config, each a function of the namespace (node-wide keys ignore it)."""

    def __init__(self, dynamic_config: Mapping[str, Any] | None = None) -> None:
        config = dynamic_config or {}
        self.settings: dict[str, Setting] = {}
        for key, (default, integer) in _DEFAULTS.items():
            if key in config:
                if key in _NODE_WIDE and isinstance(config[key], list):
                    raise ValueError(f"dynamic config {key} is node-wide: give one value, not a list")
                self.settings[key] = _setting(key, config[key], integer)
            else:
                self.settings[key] = lambda _namespace, d=default: d
        ratio = self.value("system.operatorRPSRatio")
        if not 0 < ratio <= 1:
            raise ValueError(f"dynamic config system.operatorRPSRatio must be in (0, 1], not {ratio!r}")

    def value(self, key: str, namespace: str = "") -> float:
        return self.settings[key](namespace)


def _cluster_quota(per_instance: float, global_quota: float, members: int) -> float:
    """The reference's ClusterAwareQuotaCalculator: a global quota, if set, split evenly between frontends."""
    if global_quota > 0 and members > 0:
        return global_quota / members
    return per_instance


def _incoming_burst(rate: float) -> int:
    """Burst of the node-wide buckets: twice the rate, at least 1 when the rate is positive."""
    burst = int(rate * 2)
    return 1 if burst == 0 and rate > 0 else burst


def _namespace_burst(rate: float, ratio: float) -> int:
    return max(1, math.ceil(rate * ratio))


@dataclass(frozen=True, eq=False)
class _ApiClass:
    priorities: dict[str, int]
    order: tuple[int, ...]
    node_rate_key: str
    namespace_rate_key: str
    global_namespace_rate_key: str
    burst_ratio_key: str


EXECUTION = _ApiClass(
    EXECUTION_PRIORITIES,
    EXECUTION_ORDER,
    "frontend.rps",
    "frontend.namespaceRPS",
    "frontend.globalNamespaceRPS",
    "frontend.namespaceBurstRatio",
)
VISIBILITY = _ApiClass(
    VISIBILITY_PRIORITIES,
    VISIBILITY_ORDER,
    "frontend.rps",
    "frontend.namespaceRPS.visibility",
    "frontend.globalNamespaceRPS.visibility",
    "frontend.namespaceBurstRatio.visibility",
)
NAMESPACE_REPLICATION = _ApiClass(
    NAMESPACE_REPLICATION_PRIORITIES,
    NAMESPACE_REPLICATION_ORDER,
    "frontend.rps.namespaceReplicationInducingAPIs",
    "frontend.namespaceRPS.namespaceReplicationInducingAPIs",
    "frontend.globalNamespaceRPS.namespaceReplicationInducingAPIs",
    "frontend.namespaceBurstRatio.namespaceReplicationInducingAPIs",
)
_CLASSES = (EXECUTION, VISIBILITY, NAMESPACE_REPLICATION)


def api_class(method: str) -> _ApiClass | None:
    """The API class of a rated method; None for methods the reference does not rate (OperatorService...)."""
    for cls in _CLASSES:
        if method in cls.priorities:
            return cls
    return None


# How often the rates are recomputed (a global quota is split between the frontends alive now), as the
# reference's dynamic rate limiters refresh.
REFRESH_S = 10.0

# Past this many namespace buckets, full ones (indistinguishable from new ones) are dropped, so requests
# naming ever new namespaces cannot grow the node's memory.
MAX_IDLE_BUCKETS = 4096


class RequestLimiter:
    """Admits or refuses requests: the concurrent long-running limit, then the namespace's rate, then the
    node's rate (the reference's interceptor order). `admit` returns a release function for an admitted
    long-running request, or the Refusal."""

    def __init__(
        self,
        config: RateLimitConfig,
        member_count: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.member_count = member_count
        self.clock = clock
        now = clock()
        self._ratio = ratio = config.value("system.operatorRPSRatio")
        self._node: dict[_ApiClass, PriorityLimiter] = {}
        for cls in _CLASSES:
            rate = self._node_rate(cls)
            self._node[cls] = PriorityLimiter(rate, _incoming_burst(rate), cls.order, ratio, now)
        self._namespace: dict[tuple[_ApiClass, str], PriorityLimiter] = {}
        self._refreshed = now
        self._active: dict[tuple[str, str], int] = {}
        # Reentrant: a refused long-running request gives its slot back while the decision holds the lock.
        self._lock = threading.RLock()

    def _node_rate(self, cls: _ApiClass) -> float:
        if cls.node_rate_key == "frontend.rps":
            return _cluster_quota(
                self.config.value("frontend.rps"),
                self.config.value("frontend.globalRPS"),
                self.member_count(),
            )
        return self.config.value(cls.node_rate_key)

    def namespace_rate(self, cls: _ApiClass, namespace: str) -> float:
        return _cluster_quota(
            self.config.value(cls.namespace_rate_key, namespace),
            self.config.value(cls.global_namespace_rate_key, namespace),
            self.member_count(),
        )

    def concurrent_quota(self, namespace: str) -> float:
        return _cluster_quota(
            self.config.value("frontend.namespaceCount", namespace),
            self.config.value("frontend.globalNamespaceCount", namespace),
            self.member_count(),
        )

    def admit(
        self,
        method: str,
        namespace: str,
        *,
        long_poll: bool = True,
        reachability: bool = False,
        operator: bool = False,
    ) -> Refusal | Callable[[], None]:
        """Decide for one request. `long_poll`: GetWorkflowExecutionHistory waits for new events (only
        then is it long-running, and the namespace rates it as PollWorkflowExecutionHistory);
        `reachability`: DescribeTaskQueue asks for reachability (the node rates it as a visibility call);
        `operator`: the caller declared itself an operator (caller-type header): top priority, at the
        operator share of the rate. The renames are the reference's, each in the limiter it applies to."""
        with self._lock:
            release = self._take_slot(method, namespace, long_poll)
            if isinstance(release, Refusal) or method in UNLIMITED_METHODS:
                return release
            namespace_method = node_method = method
            if method == WORKFLOW_SERVICE + "GetWorkflowExecutionHistory" and long_poll:
                namespace_method = POLL_WORKFLOW_HISTORY
            if method == WORKFLOW_SERVICE + "DescribeTaskQueue" and reachability:
                node_method = DESCRIBE_TASK_QUEUE_WITH_REACHABILITY
            now = self.clock()
            if now - self._refreshed >= REFRESH_S:
                self._refresh(now)
            cls = api_class(namespace_method)
            if namespace and cls is not None:
                priority = OPERATOR_PRIORITY if operator else cls.priorities[namespace_method]
                if not self._namespace_limiter(cls, namespace, now).allow(priority, now):
                    release()
                    return NAMESPACE_RATE_LIMITED
            cls = api_class(node_method)
            if cls is not None:
                priority = OPERATOR_PRIORITY if operator else cls.priorities[node_method]
                if not self._node[cls].allow(priority, now):
                    release()
                    return SERVICE_RATE_LIMITED
            return release

    def _take_slot(self, method: str, namespace: str, long_poll: bool) -> Refusal | Callable[[], None]:
        if method not in LONG_RUNNING_METHODS:
            return _nothing
        if method == WORKFLOW_SERVICE + "GetWorkflowExecutionHistory" and not long_poll:
            return _nothing
        key = (namespace, method)
        count = self._active.get(key, 0) + 1
        self._active[key] = count
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            with self._lock:
                left = self._active.get(key, 1) - 1
                if left > 0:
                    self._active[key] = left
                else:
                    self._active.pop(key, None)

        if count > self.concurrent_quota(namespace):
            # Released under the caller's lock: decrement directly.
            released = True
            left = self._active[key] - 1
            if left > 0:
                self._active[key] = left
            else:
                self._active.pop(key, None)
            return CONCURRENT_POLLERS_LIMITED
        return release

    def _namespace_rate_burst(self, cls: _ApiClass, namespace: str) -> tuple[float, int]:
        rate = self.namespace_rate(cls, namespace)
        return rate, _namespace_burst(rate, self.config.value(cls.burst_ratio_key, namespace))

    def _namespace_limiter(self, cls: _ApiClass, namespace: str, now: float) -> PriorityLimiter:
        key = (cls, namespace)
        limiter = self._namespace.get(key)
        if limiter is None:
            if len(self._namespace) >= MAX_IDLE_BUCKETS:
                self._namespace = {k: v for k, v in self._namespace.items() if not v.is_full(now)}
            rate, burst = self._namespace_rate_burst(cls, namespace)
            limiter = PriorityLimiter(rate, burst, cls.order, self._ratio, now)
            self._namespace[key] = limiter
        return limiter

    def _refresh(self, now: float) -> None:
        """Recompute every rate (the number of frontends may have changed); balances are kept."""
        self._refreshed = now
        for cls, limiter in self._node.items():
            rate = self._node_rate(cls)
            limiter.set_rate(rate, _incoming_burst(rate), self._ratio)
        for (cls, namespace), limiter in self._namespace.items():
            limiter.set_rate(*self._namespace_rate_burst(cls, namespace), self._ratio)

    def active(self, namespace: str, method: str) -> int:
        """Long-running requests of a method in flight for a namespace (for tests and metrics)."""
        return self._active.get((namespace, method), 0)


def _nothing() -> None:
    return None
