"""Go durations ("1h30m", "300ms", "-1.5h", with "d" for days), as the reference reads them in list queries
and in its dynamic config. Kept free of heavy imports: the `hourglass` command line parses them too.
"""

from __future__ import annotations

import re

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_GO_DURATION = re.compile(r"([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def go_duration_ns(text: str) -> int | None:
    """A Go duration in nanoseconds; None if `text` is not one."""
    match = _GO_DURATION.fullmatch(text.strip())
    if not match:
        return None
    total = sum(float(n) * _UNITS_NS[u] for n, u in _PART.findall(text))
    return int(round(-total if match.group(1) == "-" else total))
