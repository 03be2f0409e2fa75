"""Millisecond clock and proto Duration/Timestamp conversions used throughout history."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
