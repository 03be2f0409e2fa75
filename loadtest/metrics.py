"""Server metrics: scrape a Prometheus text endpoint before and after a run and take the differences.

Only counters and histogram buckets (cumulative counters too) are read, so two samples are enough. A counter the server does not export stays None and
is shown as n/a; an endpoint that does not answer raises MetricsError, which a run records and survives.
"""

from __future__ import annotations

import asyncio
import math
import operator
import re
import urllib.request
from dataclasses import dataclass, fields

SCRAPE_TIMEOUT_S = 5.0

# Counter names, summed over their labels.
HOURGLASS_COUNTERS = {
    "transitions": "hourglass_transitions_total",
    "conditional_batches": "hourglass_persistence_conditional_batches_total",
    "writes": "hourglass_persistence_writes_total",
    "workflows_started": "hourglass_workflows_started_total",
    "workflows_closed": "hourglass_workflows_closed_total",
    "cpu_seconds": "process_cpu_seconds_total",
    # Calls one cluster member made to another (routing, partition forwarding): the internal hops.
    "internal_calls": "hourglass_internal_rpc_calls_total",
}

# Latency histograms, as their cumulative buckets ((upper bound, count), ...) summed over other labels.
HOURGLASS_HISTOGRAMS = {
    "batch_latency_buckets": "hourglass_persistence_conditional_batch_seconds",
    "append_latency_buckets": "hourglass_persistence_history_append_seconds",
}

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")
_LE = re.compile(r'le="([^"]+)"')

Buckets = tuple[tuple[float, float], ...]


def parse_prometheus(text: str) -> dict[str, float]:
    """Metric name -> sum of its samples over all label sets (comments and unparsable lines skipped)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if math.isnan(value):
            continue
        totals[match.group(1)] = totals.get(match.group(1), 0.0) + value
    return totals


def parse_buckets(text: str, histogram: str) -> Buckets | None:
    """The cumulative buckets of `histogram` ((le, count) ascending, +Inf last), or None if absent."""
    counts: dict[float, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != f"{histogram}_bucket":
            continue
        le = _LE.search(match.group(2) or "")
        if le is None:
            continue
        bound = float(le.group(1))  # "+Inf" parses as inf
        counts[bound] = counts.get(bound, 0.0) + float(match.group(3))
    return tuple(sorted(counts.items())) or None


def bucket_quantile(buckets: Buckets | None, q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation (0 < q < 1)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 1.0)
        lower_bound, lower_count = bound, count
    return None


def _combine(a: object, b: object, op) -> object:
    """Counters combine as numbers, bucket tuples bucket by bucket; None unless both samples have it."""
    if a is None or b is None:
        return None
    if isinstance(a, tuple):
        if [bound for bound, _ in a] != [bound for bound, _ in b]:  # type: ignore[union-attr]
            return None  # the server's buckets changed between samples (a restart): not comparable
        return tuple((bound, op(x, y)) for (bound, x), (_, y) in zip(a, b, strict=True))  # type: ignore[arg-type]
    return op(a, b)


@dataclass(frozen=True)
class Counters:
    """The server counters a run cares about; None where the server does not export one."""

    transitions: float | None = None
    conditional_batches: float | None = None
    writes: float | None = None
    workflows_started: float | None = None
    workflows_closed: float | None = None
    cpu_seconds: float | None = None
    internal_calls: float | None = None
    batch_latency_buckets: Buckets | None = None
    append_latency_buckets: Buckets | None = None

    @classmethod
    def from_text(cls, text: str) -> Counters:
        totals = parse_prometheus(text)
        for name in HOURGLASS_COUNTERS.values():
            # A labelled counter nothing incremented yet is declared with no samples: it is 0, not n/a.
            declared = (f"# TYPE {name} counter", f"# TYPE {name.removesuffix('_total')} counter")
            if name not in totals and any(d in text for d in declared):
                totals[name] = 0.0
        return cls(
            **{key: totals.get(name) for key, name in HOURGLASS_COUNTERS.items()},
            **{key: parse_buckets(text, name) for key, name in HOURGLASS_HISTOGRAMS.items()},
        )

    def minus(self, before: Counters) -> Counters:
        """Per-counter difference; None unless both samples have the counter."""
        return Counters(
            **{
                f.name: _combine(getattr(self, f.name), getattr(before, f.name), operator.sub)
                for f in fields(self)
            }
        )

    def plus(self, other: Counters) -> Counters:
        """Sum of two deltas (rounds of the same server); None unless both have the counter."""
        return Counters(
            **{
                f.name: _combine(getattr(self, f.name), getattr(other, f.name), operator.add)
                for f in fields(self)
            }
        )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        return response.read().decode("utf-8", errors="replace")


class MetricsError(RuntimeError):
    """The metrics endpoint did not answer with Prometheus text."""


async def scrape(url: str) -> Counters:
    """Sample the endpoint (in a thread: urllib blocks). Several URLs, comma-separated (every node of a
    cluster): their counters are summed, so CPU and hops are the whole cluster's."""
    total: Counters | None = None
    for one in (u.strip() for u in url.split(",") if u.strip()):
        try:
            counters = Counters.from_text(await asyncio.to_thread(_get, one))
        except (OSError, ValueError) as err:
            raise MetricsError(f"metrics endpoint {one} did not answer: {err}") from err
        total = counters if total is None else total.plus(counters)
    return total if total is not None else Counters()
