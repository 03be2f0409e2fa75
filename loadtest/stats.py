"""The figures of a run, derived from what it measured.

A RunResult keeps the raw ingredients (counts, the measured window, every latency, counter deltas), so
runs of the same server can be merged (rounds of a compare) before the figures are taken. Every rate is
over the measured window: from the first start request to the last result.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hourglass.loadtest.metrics import Counters, bucket_quantile
from hourglass.loadtest.steps import step_medians


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _rate(count: float | None, seconds: float) -> float | None:
    return None if count is None or seconds <= 0 else count / seconds


def _per(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


@dataclass
class RunResult:
    """One measured run (or several runs of one server merged)."""

    label: str
    scenario: str
    driver: str
    address: str
    namespace: str
    mode: str  # "closed" or "open"
    plan: dict[str, Any]
    worker_processes: int
    started_at: str
    started: int
    completed: int
    errors: dict[str, int]
    skipped: int
    elapsed_s: float
    hit_hard_timeout: bool
    latencies_s: list[float]
    completion_times_s: list[float]
    activities_per_workflow: int
    events_per_workflow: float | None = None
    transitions_per_workflow_estimated: float | None = None
    server: Counters = field(default_factory=Counters)
    server_cpu_s: float | None = None
    driver_cpu_s: float | None = None
    metrics_url: str | None = None
    notes: list[str] = field(default_factory=list)
    rounds: int = 1
    steps_ms: dict[str, list[float]] = field(default_factory=dict)  # history step -> ms per sampled workflow

    # -- figures -------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Every headline number, by name (None: not measured, shown as n/a)."""
        t = self.elapsed_s
        lat = sorted(self.latencies_s)
        estimated = _per_workflow_total(self.transitions_per_workflow_estimated, self.completed)
        from_server = self.server.transitions is not None
        transitions = self.server.transitions if from_server else estimated
        ms = 1000.0

        def lat_ms(q: float) -> float | None:
            v = percentile(lat, q)
            return None if v is None else v * ms

        return {
            "workflows_completed": self.completed,
            "workflows_failed": sum(self.errors.values()),
            "workflows_per_s": _rate(self.completed, t),
            "state_transitions_per_s": _rate(transitions, t),
            "state_transitions_source": ("server" if from_server else "estimated")
            if transitions is not None
            else None,
            "state_transitions_per_s_estimated": _rate(estimated, t),
            "transitions_per_workflow": _per(self.server.transitions, self.completed)
            if from_server
            else self.transitions_per_workflow_estimated,
            "transitions_per_workflow_estimated": self.transitions_per_workflow_estimated,
            "history_events_per_workflow": self.events_per_workflow,
            "activities_per_s": _rate(self.completed * self.activities_per_workflow, t),
            "latency_p50_ms": lat_ms(50),
            "latency_p90_ms": lat_ms(90),
            "latency_p99_ms": lat_ms(99),
            "latency_max_ms": lat[-1] * ms if lat else None,
            "latency_mean_ms": sum(lat) / len(lat) * ms if lat else None,
            "db_writes_per_s": _rate(self.server.writes, t),
            "conditional_batches_per_s": _rate(self.server.conditional_batches, t),
            "transitions_per_batch": _per(self.server.transitions, self.server.conditional_batches),
            "db_writes_per_workflow": _per(self.server.writes, self.completed),
            "conditional_batch_p50_ms": _ms(bucket_quantile(self.server.batch_latency_buckets, 0.5)),
            "conditional_batch_p99_ms": _ms(bucket_quantile(self.server.batch_latency_buckets, 0.99)),
            "history_append_p50_ms": _ms(bucket_quantile(self.server.append_latency_buckets, 0.5)),
            "history_append_p99_ms": _ms(bucket_quantile(self.server.append_latency_buckets, 0.99)),
            "server_cpu_ms_per_workflow": _per(_ms(self.server_cpu_s), self.completed),
            "server_cpu_utilization": _per(self.server_cpu_s, t),
            "driver_cpu_ms_per_workflow": _per(_ms(self.driver_cpu_s), self.completed),
            "internal_calls_per_workflow": _per(self.server.internal_calls, self.completed),
            "elapsed_s": t,
        }

    def timeline(self, bucket_s: float = 1.0) -> list[dict[str, float]]:
        """Completions per bucket over the run: the throughput-over-time series."""
        if not self.completion_times_s:
            return []
        buckets = Counter(int(c // bucket_s) for c in self.completion_times_s)
        last = max(buckets)
        return [
            {"t_s": b * bucket_s, "workflows_per_s": buckets.get(b, 0) / bucket_s} for b in range(last + 1)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything, for --out: figures, errors, counters, the series and every latency."""
        return {
            "label": self.label,
            "scenario": self.scenario,
            "driver": self.driver,
            "address": self.address,
            "namespace": self.namespace,
            "mode": self.mode,
            "plan": self.plan,
            "worker_processes": self.worker_processes,
            "started_at": self.started_at,
            "rounds": self.rounds,
            "workflows_started": self.started,
            "workflows_skipped": self.skipped,
            "hit_hard_timeout": self.hit_hard_timeout,
            "figures": self.figures(),
            "errors": dict(self.errors),
            "server_counters": asdict(self.server),
            "server_cpu_s": self.server_cpu_s,
            "driver_cpu_s": self.driver_cpu_s,
            "metrics_url": self.metrics_url,
            "notes": list(self.notes),
            "timeline": self.timeline(),
            "latencies_ms": [round(v * 1000, 3) for v in self.latencies_s],
            "steps_p50_ms": step_medians(self.steps_ms),
            "steps_ms": {k: [round(v, 3) for v in vs] for k, vs in self.steps_ms.items()},
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _per_workflow_total(per_workflow: float | None, completed: int) -> float | None:
    return None if per_workflow is None else per_workflow * completed


def _weighted(a: float | None, wa: int, b: float | None, wb: int) -> float | None:
    if a is None or b is None or wa + wb == 0:
        return a if b is None else b
    return (a * wa + b * wb) / (wa + wb)


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def merge(results: Sequence[RunResult]) -> RunResult:
    """Rounds of the same server as one run: counts and windows add, latencies pool, series follow on."""
    if not results:
        raise ValueError("nothing to merge")
    merged = replace(results[0], errors=dict(results[0].errors), notes=list(results[0].notes))
    merged.latencies_s = list(results[0].latencies_s)
    merged.completion_times_s = list(results[0].completion_times_s)
    merged.steps_ms = {k: list(v) for k, v in results[0].steps_ms.items()}
    for r in results[1:]:
        offset = merged.elapsed_s
        merged.completion_times_s += [offset + c for c in r.completion_times_s]
        merged.events_per_workflow = _weighted(
            merged.events_per_workflow, merged.completed, r.events_per_workflow, r.completed
        )
        merged.transitions_per_workflow_estimated = _weighted(
            merged.transitions_per_workflow_estimated,
            merged.completed,
            r.transitions_per_workflow_estimated,
            r.completed,
        )
        merged.started += r.started
        merged.completed += r.completed
        merged.skipped += r.skipped
        merged.elapsed_s += r.elapsed_s
        merged.hit_hard_timeout |= r.hit_hard_timeout
        merged.latencies_s += r.latencies_s
        for name, count in r.errors.items():
            merged.errors[name] = merged.errors.get(name, 0) + count
        merged.server = merged.server.plus(r.server)
        merged.server_cpu_s = _add(merged.server_cpu_s, r.server_cpu_s)
        merged.driver_cpu_s = _add(merged.driver_cpu_s, r.driver_cpu_s)
        merged.notes += [n for n in r.notes if n not in merged.notes]
        for label, values in r.steps_ms.items():
            merged.steps_ms.setdefault(label, []).extend(values)
        merged.rounds += r.rounds
    return merged
