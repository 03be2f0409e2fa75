"""How late the event loop runs: a small task that asks to wake every interval and records the delay.

The whole node is one event loop, so a handler that computes for 200 ms delays every other request by as
much. The delay of a periodic wake-up is exactly that stall, seen from outside any handler; it is exported
as the Prometheus histogram `hourglass_event_loop_lag_seconds` (see cluster/metrics.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

from hourglass.cluster.metrics import EVENT_LOOP_LAG_SECONDS

INTERVAL_S = 0.05
# What `recent()` covers: the cluster page's "loop lag now" (the histogram is for trends over time).
RECENT_WINDOW_S = 10.0


class LoopLagMonitor:
    """Started by the node; records one observation per wake-up until stopped."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.worst_s = 0.0  # the largest lag seen, for tests and logs
        self._task: asyncio.Task[None] | None = None
        self._expected: float | None = None
        # (perf_counter time, lag) of the wake-ups of the last RECENT_WINDOW_S.
        self._recent: collections.deque[tuple[float, float]] = collections.deque()

    def recent(self, window_s: float = RECENT_WINDOW_S) -> tuple[float, float]:
        """(max, p99) of the lags seen over the last `window_s` seconds; (0, 0) before any wake-up. A loop
        stalled right now shows too: the wake-up that is late counts as lagging by how late it already is."""
        now = time.perf_counter()
        lags = [lag for at, lag in self._recent if at >= now - window_s]
        if self._task is not None and self._expected is not None:
            lags.append(max(0.0, now - self._expected))
        if not lags:
            return 0.0, 0.0
        lags.sort()
        return lags[-1], lags[min(len(lags) - 1, int(0.99 * len(lags)))]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            expected = self._expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = time.perf_counter()
            lag = max(0.0, now - expected)
            self.worst_s = max(self.worst_s, lag)
            EVENT_LOOP_LAG_SECONDS.observe(lag)
            self._recent.append((now, lag))
            while self._recent and self._recent[0][0] < now - RECENT_WINDOW_S:
                self._recent.popleft()
