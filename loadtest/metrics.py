"""Server metrics: scrape a Prometheus text endpoint before and after a run and take the differences.

Only counters are read, so two samples are enough. A counter the server does not export stays None and
is shown as n/a; an endpoint that does not answer raises MetricsError, which a run records and survives.
"""

from __future__ import annotations

import asyncio
import math
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
}

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)")


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


@dataclass(frozen=True)
class Counters:
    """The server counters a run cares about; None where the server does not export one."""

    transitions: float | None = None
    conditional_batches: float | None = None
    writes: float | None = None
    workflows_started: float | None = None
    workflows_closed: float | None = None
    cpu_seconds: float | None = None

    @classmethod
    def from_text(cls, text: str) -> Counters:
        totals = parse_prometheus(text)
        return cls(**{key: totals.get(name) for key, name in HOURGLASS_COUNTERS.items()})

    def minus(self, before: Counters) -> Counters:
        """Per-counter difference; None unless both samples have the counter."""

        def diff(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a - b

        return Counters(
            **{f.name: diff(getattr(self, f.name), getattr(before, f.name)) for f in fields(self)}
        )

    def plus(self, other: Counters) -> Counters:
        """Sum of two deltas (rounds of the same server); None unless both have the counter."""

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return Counters(**{f.name: add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
        return response.read().decode("utf-8", errors="replace")


class MetricsError(RuntimeError):
    """The metrics endpoint did not answer with Prometheus text."""


async def scrape(url: str) -> Counters:
    """Sample the endpoint (in a thread: urllib blocks)."""
    try:
        return Counters.from_text(await asyncio.to_thread(_get, url))
    except (OSError, ValueError) as err:
        raise MetricsError(f"metrics endpoint {url} did not answer: {err}") from err
