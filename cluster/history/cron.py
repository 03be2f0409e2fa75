"""Cron schedules of workflows: standard cron (croniter), descriptors like @hourly, and `@every 1h30m`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from croniter import CroniterError, croniter

_EVERY = re.compile(r"^@every\s+((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)$")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


# Longer specs are refused before parsing: the parser's cost grows with them and none is meaningful.
MAX_CRON_LENGTH = 1000
INVALID_CRON = "invalid CronSchedule."
UNSATISFIABLE_CRON = "invalid CronSchedule, no time can be found to satisfy the schedule"


def valid_cron(spec: str) -> bool:
    return cron_error(spec) is None


def cron_error(spec: str) -> str | None:
    """The reference's message for a cron schedule that cannot be used, or None. The spec is never echoed:
    it may be arbitrarily long, and an error message travels in the response's metadata."""
    spec = spec.strip()
    if len(spec) > MAX_CRON_LENGTH:
        return INVALID_CRON
    if _EVERY.match(spec):
        return None
    if not croniter.is_valid(spec):
        return INVALID_CRON
    try:
        croniter(spec, datetime.now(UTC)).get_next(datetime)
    except CroniterError:  # e.g. `0 0 31 2 *`: February never has a 31st
        return UNSATISFIABLE_CRON
    return None


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
