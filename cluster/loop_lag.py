"""How late the event loop runs: a small task that asks to wake every interval and records the delay.

The whole node is one event loop, so a handler that computes for 200 ms delays every other request by as
much. The delay of a periodic wake-up is exactly that stall, seen from outside any handler; it is exported
as the Prometheus histogram `hourglass_event_loop_lag_seconds` (see cluster/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from hourglass.cluster.metrics import EVENT_LOOP_LAG_SECONDS

INTERVAL_S = 0.05


class LoopLagMonitor:
    """Started by the node; records one observation per wake-up until stopped."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.worst_s = 0.0  # the largest lag seen, for tests and logs
        self._task: asyncio.Task[None] | None = None

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
            expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, time.perf_counter() - expected)
            self.worst_s = max(self.worst_s, lag)
            EVENT_LOOP_LAG_SECONDS.observe(lag)
