"""Prometheus metrics of a node: what the load tester reads to report database cost per transition.

Store traffic is counted by wrapping the store (`MeteredStore`), so every backend is measured the same way
and no role has to remember to count.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from hourglass.persistence.errors import (
    ConditionFailedError,
    ShardOwnershipLostError,
    StoreUnavailableError,
)
from hourglass.persistence.records import ExecutionWrite, HistoryNode
from hourglass.persistence.store import Store

TRANSITIONS = Counter("hourglass_transitions", "Workflow state transitions committed.")
CONDITIONAL_BATCHES = Counter(
    "hourglass_persistence_conditional_batches", "Conditional batches (store commits)."
)
WRITES = Counter("hourglass_persistence_writes", "Store write calls (batches, history appends, task writes).")
WORKFLOWS_STARTED = Counter("hourglass_workflows_started", "Runs created.")
# Exposed as hourglass_gossip_datagrams_rejected_total{reason}: malformed, unknown_key, invalid (did not
# authenticate), stale, replayed. A steady rate of anything but a few stale ones means a wrong key or
# someone forging gossip.
GOSSIP_DATAGRAMS_REJECTED = Counter(
    "hourglass_gossip_datagrams_rejected",
    "Gossip datagrams dropped unread: not sealed with a key of the ring, replayed, stale or malformed.",
    ["reason"],
)
# Exposed as hourglass_requests_refused_total{method, namespace, cause, scope}: requests the frontend's rate
# and concurrency limits refused with RESOURCE_EXHAUSTED (cause RPS_LIMIT or CONCURRENT_LIMIT, scope
# NAMESPACE or SYSTEM). `namespace` is "_other_" past the first 1000 names, so it stays bounded.
REQUESTS_REFUSED = Counter(
    "hourglass_requests_refused",
    "Requests refused by the frontend's rate limits or its concurrent long-poll limit.",
    ["method", "namespace", "cause", "scope"],
)

# Fine buckets from 0.5 ms: a transition's two store round trips are a few milliseconds on a local store.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip
CONDITIONAL_BATCH_SECONDS = Histogram(
    "hourglass_persistence_conditional_batch_seconds",
    "Latency of applied conditional batches (one per commit of transitions).",
    buckets=LATENCY_BUCKETS,
)
# Group commit (persistence/group_commit.py): how many transitions each applied conditional batch carried.
# Its mean is also hourglass_transitions_total / hourglass_persistence_conditional_batches_total.
TRANSITIONS_PER_BATCH = Histogram(
    "hourglass_persistence_transitions_per_batch",
    "Transitions (execution writes) per applied conditional batch: how well group commit merges them.",
    buckets=(1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64),
)
HISTORY_APPEND_SECONDS = Histogram(
    "hourglass_persistence_history_append_seconds",
    "Latency of history appends: one per group commit (its transitions' nodes), before its batch.",
    buckets=LATENCY_BUCKETS,
)

# How late the event loop woke a task that asked to sleep (cluster/loop_lag.py): a busy handler stalls
# every request of the node by as much. Buckets from 1 ms to 10 s; the bound is 50-100 ms.
EVENT_LOOP_LAG_SECONDS = Histogram(
    "hourglass_event_loop_lag_seconds",
    "How late the event loop ran a periodic wake-up: the stall every request of the node saw.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Exposed as hourglass_rpc_requests_total{method, namespace, status} and hourglass_rpc_latency_seconds{method}:
# every unary request of the public port, refused ones included (cluster/frontend/rpc_metrics.py). Long
# polls (Poll*, history with wait_new_event) last up to a minute by design, hence the top buckets.
RPC_REQUESTS = Counter(
    "hourglass_rpc_requests",
    "Unary requests of the public gRPC port by method, namespace and gRPC status code.",
    ["method", "namespace", "status"],
)
RPC_LATENCY_SECONDS = Histogram(
    "hourglass_rpc_latency_seconds",
    "Time from the request decoded to the answer, by method (long polls included).",
    ["method"],
    buckets=(
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ),
)  # fmt: skip

# Exposed as hourglass_internal_rpc_calls_total{service, method}: calls this member made to another one
# (an operation routed to its owner, a task or poll forwarded to a parent partition), counted at the
# caller, so the sum over the members is the cluster's internal hops.
INTERNAL_CALLS = Counter(
    "hourglass_internal_rpc_calls",
    "Calls this member made to another member's internal RPC port, by service and method.",
    ["service", "method"],
)

# Exposed as hourglass_shard_movements_total{direction}: a history shard taken (acquired) or given up
# (released, also when the store fenced it out). A steady rate outside deploys means membership flaps.
SHARD_MOVEMENTS = Counter(
    "hourglass_shard_movements", "History shards acquired or released by this node.", ["direction"]
)
for _direction in ("acquired", "released"):
    SHARD_MOVEMENTS.labels(_direction)

# Exposed as hourglass_persistence_errors_total{error}: store calls that raised. `unavailable` is the
# database unreachable or timing out (the RPCs that needed it answered UNAVAILABLE); the others are the
# normal flow of conditional writes and ownership changes, shown for context.
STORE_ERRORS = Counter(
    "hourglass_persistence_errors", "Store calls that raised, by kind of error.", ["error"]
)
STORE_ERROR_KINDS = ("unavailable", "condition_failed", "shard_ownership_lost", "other")
for _kind in STORE_ERROR_KINDS:
    STORE_ERRORS.labels(_kind)
# 1 while the last store call reached the database (whatever it answered), 0 after one that could not.
STORE_AVAILABLE = Gauge(
    "hourglass_persistence_available", "1 if the last store call reached the database, 0 if it could not."
)
STORE_AVAILABLE.set(1)


def _error_kind(error: BaseException) -> str:
    if isinstance(error, StoreUnavailableError):
        return "unavailable"
    if isinstance(error, ConditionFailedError):
        return "condition_failed"
    if isinstance(error, ShardOwnershipLostError):
        return "shard_ownership_lost"
    return "other"


def record_store_outcome(error: BaseException | None) -> None:
    """Count a store call's error (None: it succeeded) and update the availability gauge."""
    if error is None:
        STORE_AVAILABLE.set(1)
        return
    kind = _error_kind(error)
    STORE_ERRORS.labels(kind).inc()
    STORE_AVAILABLE.set(0 if kind == "unavailable" else 1)


_WRITE_METHODS = {
    "update_shard",
    "delete_execution",
    "append_history_node",
    "delete_history",
    "delete_transfer_tasks",
    "delete_timer_tasks",
    "delete_fired_timer_tasks",
    "lease_task_queue",
    "update_task_queue",
    "create_queue_tasks",
    "delete_queue_tasks",
    "create_namespace",
    "delete_namespace",
    "update_namespace",
    "upsert_visibility",
    "delete_visibility",
    "write_task_queue_config",
    "write_nexus_endpoint",
    "delete_nexus_endpoint",
    "write_worker_deployment",
    "delete_worker_deployment",
}


class MeteredStore:
    """Delegates to a store, counting its writes and every call's errors (for the availability gauge)."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    async def commit(self, shard_id: int, range_id: int, writes: Sequence[ExecutionWrite]) -> None:
        started = time.perf_counter()
        try:
            await self._inner.commit(shard_id, range_id, writes)
        except Exception as e:
            record_store_outcome(e)
            raise
        record_store_outcome(None)
        CONDITIONAL_BATCH_SECONDS.observe(time.perf_counter() - started)
        CONDITIONAL_BATCHES.inc()
        WRITES.inc()
        TRANSITIONS.inc(len(writes))
        TRANSITIONS_PER_BATCH.observe(len(writes))
        WORKFLOWS_STARTED.inc(sum(1 for w in writes if w.expected_version is None))

    async def append_history_nodes(self, nodes: Sequence[HistoryNode]) -> int:
        """A group commit's history appends: one latency sample per append round, one write per request."""
        started = time.perf_counter()
        try:
            requests = await self._inner.append_history_nodes(nodes)
        except Exception as e:
            record_store_outcome(e)
            raise
        record_store_outcome(None)
        HISTORY_APPEND_SECONDS.observe(time.perf_counter() - started)
        WRITES.inc(requests)
        return requests

    def __getattr__(self, name: str):
        """Wraps a store call on first use and keeps the wrapper (every request goes through here)."""
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr  # attributes and helpers that are not store calls
        wrapper = self._wrap(name, attr)
        self.__dict__[name] = wrapper
        return wrapper

    @staticmethod
    def _wrap(name: str, attr):
        if name not in _WRITE_METHODS:

            async def watched(*args, **kwargs):
                try:
                    result = await attr(*args, **kwargs)
                except Exception as e:
                    record_store_outcome(e)
                    raise
                record_store_outcome(None)
                return result

            return watched

        async def counted(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = await attr(*args, **kwargs)
            except Exception as e:
                record_store_outcome(e)
                raise
            record_store_outcome(None)
            if name == "append_history_node":
                HISTORY_APPEND_SECONDS.observe(time.perf_counter() - started)
            WRITES.inc()
            return result

        return counted
