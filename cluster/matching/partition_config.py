"""How many partitions a task queue has and how wide its forwarding tree is, from the reference's keys.

`matching.numTaskqueueReadPartitions` / `matching.numTaskqueueWritePartitions` (default 4) and
`matching.forwarderMaxChildrenPerNode` (default 20) and `matching.forwarderMaxOutstandingPolls` (default 1,
used in a cluster only: see MatchingEngine.forwarded_polls_limit) take a plain integer, or the reference's YAML list
`[{value: V, constraints: {namespace: NS, taskQueueName: TQ, taskType: Workflow|Activity}}]`; the
matching entry with the most constraints wins (the first of equals), an entry without constraints is
the default. Writes never go past the read partitions: a task nobody reads would wait forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType

READ_KEY = "matching.numTaskqueueReadPartitions"
WRITE_KEY = "matching.numTaskqueueWritePartitions"
DEGREE_KEY = "matching.forwarderMaxChildrenPerNode"
OUTSTANDING_POLLS_KEY = "matching.forwarderMaxOutstandingPolls"
DEFAULTS = {READ_KEY: 4, WRITE_KEY: 4, DEGREE_KEY: 20, OUTSTANDING_POLLS_KEY: 1}
PARTITION_KEYS = frozenset(DEFAULTS)
# Past this a queue would hold more partitions than any cluster has nodes to spread them on.
MAX_PARTITIONS = 1024
_CONSTRAINTS = {"namespace", "taskQueueName", "taskType"}
_TASK_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


@dataclass(frozen=True)
class _Entry:
    value: int
    namespace: str | None = None
    task_queue: str | None = None
    task_type: int | None = None

    def matches(self, namespace: str | None, name: str, task_type: int) -> bool:
        return (
            (self.namespace is None or self.namespace == namespace)
            and (self.task_queue is None or self.task_queue == name)
            and (self.task_type is None or self.task_type == task_type)
        )

    @property
    def specificity(self) -> int:
        return sum(c is not None for c in (self.namespace, self.task_queue, self.task_type))


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARTITIONS:
        raise ValueError(f"dynamic config {key} must be an integer from 1 to {MAX_PARTITIONS}, not {value!r}")
    return value


def _entries(key: str, value: Any) -> list[_Entry]:
    if not isinstance(value, list):
        return [_Entry(_integer(key, value))]
    entries = []
    for item in value:
        if not isinstance(item, Mapping) or "value" not in item:
            raise ValueError(f"dynamic config {key}: each entry needs a `value`, not {item!r}")
        constraints = item.get("constraints") or {}
        if not isinstance(constraints, Mapping) or set(constraints) - _CONSTRAINTS:
            raise ValueError(
                f"dynamic config {key}: constraints may be namespace, taskQueueName and taskType, "
                f"not {constraints!r}"
            )
        task_type = constraints.get("taskType")
        if task_type is not None:
            if str(task_type).lower() not in _TASK_TYPES:
                raise ValueError(f"dynamic config {key}: taskType is Workflow or Activity, not {task_type!r}")
            task_type = _TASK_TYPES[str(task_type).lower()]
        namespace = constraints.get("namespace")
        queue = constraints.get("taskQueueName")
        entries.append(
            _Entry(
                _integer(key, item["value"]),
                None if namespace is None else str(namespace),
                None if queue is None else str(queue),
                task_type,
            )
        )
    return entries


class PartitionConfig:
    """The partition keys of a node's dynamic config; every node of a cluster must be given the same."""

    def __init__(self, dynamic_config: Mapping[str, Any] | None = None) -> None:
        config = dynamic_config or {}
        self._entries = {key: _entries(key, config[key]) if key in config else [] for key in DEFAULTS}
        # Only namespace-constrained entries need the namespace's name (the engine looks it up then).
        self.by_namespace = any(
            e.namespace is not None for entries in self._entries.values() for e in entries
        )

    def _value(self, key: str, namespace: str | None, name: str, task_type: int) -> int:
        best: _Entry | None = None
        for entry in self._entries[key]:
            if entry.matches(namespace, name, task_type) and (
                best is None or entry.specificity > best.specificity
            ):
                best = entry
        return best.value if best is not None else DEFAULTS[key]

    def read_partitions(self, namespace: str | None, name: str, task_type: int) -> int:
        return self._value(READ_KEY, namespace, name, task_type)

    def write_partitions(self, namespace: str | None, name: str, task_type: int) -> int:
        return min(
            self._value(WRITE_KEY, namespace, name, task_type),
            self.read_partitions(namespace, name, task_type),
        )

    def degree(self, namespace: str | None, name: str, task_type: int) -> int:
        return self._value(DEGREE_KEY, namespace, name, task_type)

    def outstanding_polls(self, namespace: str | None, name: str, task_type: int) -> int:
        """Polls a non-root partition has forwarded to its parent at once, at most (in a cluster)."""
        return self._value(OUTSTANDING_POLLS_KEY, namespace, name, task_type)
