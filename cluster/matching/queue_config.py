"""Task queue configuration (UpdateTaskQueueConfig): the queue's dispatch rate limit and its fairness
settings, validated and merged as the reference does, stored per (namespace, queue, task type), and the
limiter that spaces a queue's dispatches at its rate.

Matching applies the queue rate limit (`requests_per_second`; 0 dispatches nothing). Fairness keys and
weights are stored and reported, but Hourglass dispatches a queue's tasks in order, without fairness.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimitConfig, TaskQueueConfig
from temporalio.api.workflowservice.v1 import UpdateTaskQueueConfigRequest

from hourglass.cluster.errors import InvalidArgument, Unavailable
from hourglass.persistence.errors import ConditionFailedError
from hourglass.persistence.store import Store

# How long a node serves a queue's config from memory before reading it again (an update made through
# another node's frontend reaches the partition's owner directly; this bounds anything else).
CACHE_REFRESH_S = 10.0
UPDATE_ATTEMPTS = 5


def apply_update(
    config: TaskQueueConfig, request: UpdateTaskQueueConfigRequest, now: float
) -> TaskQueueConfig:
    """The config after `request`, with the reference's refusals (InvalidArgument)."""
    workflow = request.task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    updates = (
        ("update_queue_rate_limit", "queue_rate_limit", "UpdateQueueRateLimit", "rate limit"),
        (
            "update_fairness_key_rate_limit_default",
            "fairness_keys_rate_limit_default",
            "UpdateFairnessKeyRateLimitDefault",
            "fairness key rate limit",
        ),
    )
    result = TaskQueueConfig()
    result.CopyFrom(config)
    for field, target, label, what in updates:
        if not request.HasField(field):
            continue
        if workflow:
            raise InvalidArgument(f"Setting {what} on workflow task queues is not allowed.")
        update = getattr(request, field)
        if update.HasField("rate_limit") and update.rate_limit.requests_per_second < 0:
            raise InvalidArgument(f"RequestsPerSecond for {label} rate limit must be non-negative.")
        stamp = Timestamp()
        stamp.FromNanoseconds(int(now * 1000) * 1_000_000)
        limit = RateLimitConfig()
        if update.HasField("rate_limit"):
            limit.rate_limit.CopyFrom(update.rate_limit)
        limit.metadata.reason = update.reason
        limit.metadata.update_identity = request.identity
        limit.metadata.update_time.CopyFrom(stamp)
        getattr(result, target).CopyFrom(limit)
    for key, weight in request.set_fairness_weight_overrides.items():
        if weight <= 0:
            raise InvalidArgument(
                f'invalid fairness weight weight for key "{key}": must be greater than zero'
            )
        result.fairness_weight_overrides[key] = weight
    for key in request.unset_fairness_weight_overrides:
        result.fairness_weight_overrides.pop(key, None)
    return result


def queue_rate(config: TaskQueueConfig) -> float | None:
    """The dispatch rate the config sets (requests per second), None when it sets none."""
    if config.HasField("queue_rate_limit") and config.queue_rate_limit.HasField("rate_limit"):
        return config.queue_rate_limit.rate_limit.requests_per_second
    return None


class DispatchLimiter:
    """Spaces a partition's dispatches 1/rate apart, allowing a burst of one second's worth (at least 1)."""

    def __init__(self) -> None:
        self._next = 0.0

    async def admit(self, rate: float, timeout: float) -> float | None:
        """Wait for the next dispatch slot: the time left of `timeout` once admitted, None when no slot
        comes within it (then nothing is reserved). A rate of 0 admits nobody."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if rate <= 0:
            await asyncio.sleep(timeout)
            return None
        interval = 1.0 / rate
        slot = max(self._next, now - (max(1.0, rate) - 1.0) * interval)
        wait = slot - now
        if wait > timeout:
            await asyncio.sleep(timeout)
            return None
        self._next = slot + interval
        if wait > 0:
            await asyncio.sleep(wait)
        return timeout - max(wait, 0.0)


@dataclass
class _Cached:
    config: TaskQueueConfig
    version: int
    read_at: float


class QueueConfigs:
    """Every queue's config as stored, cached per node for CACHE_REFRESH_S."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, str, int], _Cached] = {}

    async def get(self, namespace_id: str, name: str, task_type: int) -> TaskQueueConfig:
        return (await self._read(namespace_id, name, task_type, fresh=False)).config

    async def _read(self, namespace_id: str, name: str, task_type: int, fresh: bool) -> _Cached:
        key = (namespace_id, name, int(task_type))
        cached = self._cache.get(key)
        if cached is not None and not fresh and time.monotonic() - cached.read_at < CACHE_REFRESH_S:
            return cached
        stored = await self.store.get_task_queue_config(*key)
        config = TaskQueueConfig()
        version = 0
        if stored is not None:
            config.ParseFromString(stored[0])
            version = stored[1]
        cached = self._cache[key] = _Cached(config, version, time.monotonic())
        return cached

    async def update(self, namespace_id: str, request: UpdateTaskQueueConfigRequest) -> TaskQueueConfig:
        """Read, merge, write conditionally on the version read; a concurrent update makes it try again."""
        for _ in range(UPDATE_ATTEMPTS):
            current = await self._read(namespace_id, request.task_queue, request.task_queue_type, fresh=True)
            updated = apply_update(current.config, request, time.time())
            try:
                await self.store.write_task_queue_config(
                    namespace_id,
                    request.task_queue,
                    request.task_queue_type,
                    updated.SerializeToString(),
                    current.version,
                )
            except ConditionFailedError:
                continue
            key = (namespace_id, request.task_queue, int(request.task_queue_type))
            self._cache[key] = _Cached(updated, current.version + 1, time.monotonic())
            return updated
        raise Unavailable("the task queue's config changed concurrently; try again")
