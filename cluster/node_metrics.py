"""Gauges read from a node's state when Prometheus scrapes: history shards configured and owned, and each
task-queue partition's backlog (tasks waiting and the age of the oldest).

They are computed at scrape time from the engines, so nothing has to keep them up to date. The metrics
registry is the process's, and tests run several nodes in one process: the collector sums the nodes it
watches (shards owned) or takes the largest value (configured shards, backlog age), so every series stays
unique.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from temporalio.api.enums.v1 import TaskQueueType

from hourglass.cluster.history.timeutil import now_ms

_TASK_TYPES = {
    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW: "workflow",
    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY: "activity",
}


class NodeStateCollector(Collector):
    """Collects from every node started in this process (weakly held: a stopped node just disappears)."""

    def __init__(self) -> None:
        self._nodes: weakref.WeakSet[Any] = weakref.WeakSet()

    def watch(self, node: Any) -> None:
        self._nodes.add(node)

    def forget(self, node: Any) -> None:
        self._nodes.discard(node)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        nodes = list(self._nodes)
        configured = GaugeMetricFamily(
            "hourglass_history_shards",
            "History shards the cluster is configured with (history_shards); every one must be owned.",
        )
        owned = GaugeMetricFamily("hourglass_shards_owned", "History shards this node owns and may write.")
        if nodes:
            configured.add_metric([], max(n.history.shard_count for n in nodes))
            owned.add_metric([], sum(_owned_shards(n) for n in nodes))
        yield configured
        yield owned
        labels = ["namespace", "task_queue", "task_type", "partition"]
        count = GaugeMetricFamily(
            "hourglass_task_queue_backlog",
            "Tasks persisted in a task-queue partition owned by this node, waiting for a poller.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "hourglass_task_queue_backlog_age_seconds",
            "Age of the oldest task waiting in the partition (0 when it is empty).",
            labels=labels,
        )
        counts: dict[tuple[str, ...], int] = {}
        ages: dict[tuple[str, ...], float] = {}
        now = now_ms()
        for node in nodes:
            for key, size, oldest_ms in node.matching.backlogs():
                series = (
                    node.namespaces.cached_name(key.namespace_id) or key.namespace_id,
                    key.name,
                    _TASK_TYPES.get(key.task_type, str(key.task_type)),
                    str(key.partition),
                )
                counts[series] = counts.get(series, 0) + size
                oldest = max(0.0, (now - oldest_ms) / 1000) if size else 0.0
                ages[series] = max(ages.get(series, 0.0), oldest)
        for series, size in counts.items():
            count.add_metric(list(series), size)
            age.add_metric(list(series), ages[series])
        yield count
        yield age


def _owned_shards(node: Any) -> int:
    return sum(1 for shard in node.history.shards.values() if not shard.released)


_collector: NodeStateCollector | None = None


def node_state_collector(register: Callable[[Collector], None] = REGISTRY.register) -> NodeStateCollector:
    """The process's collector, registered with the default registry on first use."""
    global _collector
    if _collector is None:
        _collector = NodeStateCollector()
        register(_collector)
    return _collector
