"""Millisecond clock and proto Duration/Timestamp conversions used throughout history."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def duration_ms(d: Duration | None) -> int:
    if d is None:
        return 0
    return d.seconds * 1000 + d.nanos // 1_000_000


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
