"""Cron schedules of workflows: standard cron (croniter), descriptors like @hourly, and `@every 1h30m`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from croniter import croniter

_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)$")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def valid_cron(spec: str) -> bool:
    return bool(_EVERY.match(spec.strip())) or croniter.is_valid(spec.strip())


def cron_backoff_ms(spec: str, now_ms: int) -> int:
    """Time from `now_ms` to the schedule's next firing (standard cron, descriptors, or `@every 1h30m`)."""
    spec = spec.strip()
    every = _EVERY.match(spec)
    if every:
        period = sum(
            float(n) * _UNIT_MS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", every.group(1))
        )
        period = max(int(period), 1000)
        return period - now_ms % period
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    nxt = croniter(spec, now).get_next(datetime)
    return max(int(nxt.timestamp() * 1000) - now_ms, 0)
