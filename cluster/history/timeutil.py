"""Millisecond clock and proto Duration/Timestamp conversions used throughout history.

`now_ms()` is the wall clock, unless the running event loop has a virtual clock installed (a time-skipping
dev/test server, cluster/history/virtual_clock.py): then every timer, timeout, retry, cron backoff and event
timestamp of that server reads the virtual time. The clock is per event loop, so an embedded time-skipping
server on its own loop never moves the time of another server in the same process.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

if TYPE_CHECKING:
    from hourglass.cluster.history.virtual_clock import VirtualClock

# Event loop -> the virtual clock of the server running on it (empty on a cluster node).
_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VirtualClock] = weakref.WeakKeyDictionary()
# A plain flag for the hot path: a real node reads the wall clock without a dictionary look-up.
_any_clock = False


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def now_ms() -> int:
    """The server's time in milliseconds since the epoch: virtual on a time-skipping server, else wall."""
    if _any_clock:
        clock = active_clock()
        if clock is not None:
            return clock.now_ms()
    return time.time_ns() // 1_000_000


def active_clock() -> VirtualClock | None:
    """The virtual clock of the server on the running event loop, or None (wall time)."""
    if not _any_clock:
        return None
    loop = asyncio._get_running_loop()
    return _clocks.get(loop) if loop is not None else None


def install_clock(loop: asyncio.AbstractEventLoop, clock: VirtualClock) -> None:
    global _any_clock
    if loop in _clocks:
        raise RuntimeError("this event loop already runs a time-skipping server")
    _clocks[loop] = clock
    _any_clock = True


def uninstall_clock(loop: asyncio.AbstractEventLoop) -> None:
    global _any_clock
    _clocks.pop(loop, None)
    _any_clock = bool(_clocks)


# The reference caps timeouts and delays at 100 years; a longer one could not be stored as a deadline
# (milliseconds since the epoch must fit a signed 64-bit column, and a Timestamp ends in year 9999).
MAX_DURATION_MS = 100 * 365 * 24 * 3600 * 1000


def duration_ms(d: Duration | None) -> int:
    """The duration in milliseconds, capped at MAX_DURATION_MS (negative ones are the caller's to refuse)."""
    if d is None:
        return 0
    return min(d.seconds * 1000 + d.nanos // 1_000_000, MAX_DURATION_MS)


def to_duration(ms: int) -> Duration:
    d = Duration()
    d.FromMilliseconds(ms)
    return d


def to_timestamp(ms: int) -> Timestamp:
    t = Timestamp()
    t.FromMilliseconds(ms)
    return t


def timestamp_ms(t: Timestamp) -> int:
    return t.seconds * 1000 + t.nanos // 1_000_000
