"""How busy a task-queue partition is, as DescribeTaskQueue reports it (backlog, its age, rates).

Rates are the reference's: tasks per second over the last 30 seconds, or over the partition's lifetime
while it is younger than that (one task added 2 s after load reads 0.5/s). Counts are kept per second,
so memory stays bounded whatever the load.
"""

from __future__ import annotations

import collections
import time

from google.protobuf.duration_pb2 import Duration
from temporalio.api.taskqueue.v1 import TaskQueueStats

WINDOW_S = 30


class RateWindow:
    """Events per whole second over the last WINDOW_S seconds."""

    def __init__(self) -> None:
        self._buckets: collections.deque[list[int]] = collections.deque()  # [second, count]

    def record(self, now: float, count: int = 1) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._prune(now)

    def count(self, now: float) -> int:
        self._prune(now)
        return sum(c for _, c in self._buckets)

    def _prune(self, now: float) -> None:
        horizon = int(now) - WINDOW_S
        while self._buckets and self._buckets[0][0] <= horizon:
            self._buckets.popleft()


class QueueStats:
    """Adds and dispatches of one partition since it was loaded."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._since = clock()
        self.adds = RateWindow()
        self.dispatches = RateWindow()

    def added(self) -> None:
        self.adds.record(self._clock())

    def dispatched(self) -> None:
        self.dispatches.record(self._clock())

    def rates(self) -> tuple[float, float]:
        """(tasks added per second, tasks dispatched per second)."""
        now = self._clock()
        span = max(min(now - self._since, WINDOW_S), 1.0)
        return self.adds.count(now) / span, self.dispatches.count(now) / span


def merge(parts: list[TaskQueueStats]) -> TaskQueueStats:
    """The stats of a queue from those of its partitions: counts and rates add up, the age is the oldest."""
    total = TaskQueueStats(approximate_backlog_age=Duration())
    oldest = 0
    for part in parts:
        total.approximate_backlog_count += part.approximate_backlog_count
        total.tasks_add_rate += part.tasks_add_rate
        total.tasks_dispatch_rate += part.tasks_dispatch_rate
        oldest = max(oldest, part.approximate_backlog_age.ToNanoseconds())
    total.approximate_backlog_age.FromNanoseconds(oldest)
    return total
