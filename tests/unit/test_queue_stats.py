"""Task-queue rates as DescribeTaskQueue reports them: per second over the last 30 s (or the queue's life)."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration
from temporalio.api.taskqueue.v1 import TaskQueueStats

from hourglass.cluster.matching.stats import QueueStats, merge


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_young_queue_divides_by_its_age_an_old_one_by_the_window() -> None:
    clock = Clock()
    stats = QueueStats(clock)
    clock.now += 2
    stats.added()
    assert stats.rates() == (0.5, 0.0)
    clock.now += 8
    stats.dispatched()
    assert stats.rates() == (0.1, 0.1)
    clock.now += 25  # 35 s old: the window is 30 s and the add (33 s ago) has left it
    assert stats.rates() == (0.0, 1 / 30)
    clock.now += 30
    assert stats.rates() == (0.0, 0.0)


def test_a_burst_within_the_first_second_is_not_divided_by_zero() -> None:
    clock = Clock()
    stats = QueueStats(clock)
    for _ in range(5):
        stats.added()
    assert stats.rates() == (5.0, 0.0)


def test_memory_stays_bounded_under_load() -> None:
    clock = Clock()
    stats = QueueStats(clock)
    for step in range(100_000):
        clock.now = 1000.0 + step / 1000  # 1000 tasks a second for 100 s
        stats.added()
    assert len(stats.adds._buckets) <= 31
    assert 990 <= stats.rates()[0] <= 1000


def test_partitions_merge_into_sums_and_the_oldest_age() -> None:
    def part(count: int, age_s: int, add: float) -> TaskQueueStats:
        return TaskQueueStats(
            approximate_backlog_count=count,
            approximate_backlog_age=Duration(seconds=age_s),
            tasks_add_rate=add,
        )

    total = merge([part(1, 3, 0.5), part(2, 7, 1.0)])
    assert total.approximate_backlog_count == 3
    assert total.approximate_backlog_age.seconds == 7
    assert total.tasks_add_rate == 1.5
