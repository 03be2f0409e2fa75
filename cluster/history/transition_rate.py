"""Transitions committed per shard over the last few seconds: what the cluster page and `hourglass cluster
status` show as each shard's rate. Prometheus' `hourglass_transitions_total` is node-wide; an operator
looking for a hot shard needs it per shard, and a recent rate rather than a total since start."""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 10
_BUCKET_S = 1.0


class TransitionRates:
    """Per-shard counts in one-second buckets; a rate is the sum of the last WINDOW_S full seconds plus the
    current one, over the time they cover. Cheap on the commit path: one dict lookup and an add."""

    def __init__(self, window_s: int = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        # shard id -> {bucket number: transitions}
        self._buckets: dict[int, dict[int, int]] = {}

    def add(self, shard_id: int, transitions: int) -> None:
        bucket = int(self._clock() // _BUCKET_S)
        counts = self._buckets.setdefault(shard_id, {})
        counts[bucket] = counts.get(bucket, 0) + transitions
        if len(counts) > self.window_s + 2:
            for old in [b for b in counts if b < bucket - self.window_s]:
                del counts[old]

    def rate(self, shard_id: int) -> float:
        """Transitions per second on the shard over the last window (shorter right after start)."""
        now = self._clock()
        current = int(now // _BUCKET_S)
        first = current - self.window_s
        counts = self._buckets.get(shard_id)
        if not counts:
            return 0.0
        total = sum(n for b, n in counts.items() if b > first)
        span = min(now - (first + 1) * _BUCKET_S, now - self._started)
        return total / max(span, _BUCKET_S)

    def rates(self, shard_ids: list[int]) -> dict[int, float]:
        return {shard_id: self.rate(shard_id) for shard_id in shard_ids}
