"""Side by side: the same scenario and load on the reference and on Hourglass, in one run, alternating.

Both servers run for the whole comparison (started once, on free ports, stopped at the end whatever
happens). Rounds alternate which server goes first, so a machine that slows down or warms up over time
favours neither. Per server, rounds are merged before the figures are taken.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hourglass.loadtest.load import ProgressTick
from hourglass.loadtest.runner import RunConfig, run_load_test
from hourglass.loadtest.servers import ManagedServer, hourglass_server, reference_server
from hourglass.loadtest.stats import RunResult, merge

# Figures whose ratio means something (a count of errors or a window length does not).
RATIO_FIGURES = (
    "workflows_per_s",
    "state_transitions_per_s_estimated",
    "activities_per_s",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "server_cpu_ms_per_workflow",
    "driver_cpu_ms_per_workflow",
)


@dataclass
class CompareResult:
    rounds: list[RunResult]
    reference: RunResult
    hourglass: RunResult
    servers: dict[str, dict[str, Any]]  # kind -> address, pid, log (the processes are gone by now)

    def ratios(self) -> dict[str, float | None]:
        """Hourglass / reference per figure (above 1 is better for rates, below 1 for latencies and CPU)."""
        ref, hg = self.reference.figures(), self.hourglass.figures()
        out: dict[str, float | None] = {}
        for key in RATIO_FIGURES:
            a, b = hg.get(key), ref.get(key)
            out[key] = None if a is None or not b else a / b
        out["state_transitions_per_s"] = out["state_transitions_per_s_estimated"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_dict(),
            "hourglass": self.hourglass.to_dict(),
            "ratio_hourglass_over_reference": self.ratios(),
            "rounds": [
                {"label": r.label, "started_at": r.started_at, "errors": r.errors, "figures": r.figures()}
                for r in self.rounds
            ],
            "servers": self.servers,
        }


async def compare(
    base: RunConfig,
    rounds: int = 2,
    workdir: Path | None = None,
    on_round: Callable[[str, int], Callable[[ProgressTick], None] | None] | None = None,
    on_result: Callable[[RunResult], None] | None = None,
) -> CompareResult:
    """Start both servers, run `base` (its address ignored) on each, `rounds` times alternating.

    `on_round(label, round)` may return a progress callback for that run; `on_result` sees each run.
    """
    folder = workdir or Path(tempfile.mkdtemp(prefix="hourglass-compare-"))
    servers: list[ManagedServer] = [reference_server(folder), hourglass_server(folder)]
    results: list[RunResult] = []
    try:
        for srv in servers:
            await srv.start()
        for n in range(rounds):
            order = servers if n % 2 == 0 else servers[::-1]
            for srv in order:
                config = replace(
                    base,
                    address=srv.address,
                    # The reference's metrics have no counterpart of Hourglass's store counters.
                    metrics_url=srv.metrics_url if srv.kind == "hourglass" else None,
                    server_pid=srv.pid,
                    label=srv.kind,
                )
                progress = on_round(srv.kind, n + 1) if on_round else None
                result = await run_load_test(config, progress)
                results.append(result)
                if on_result:
                    on_result(result)
    finally:
        for srv in servers:
            srv.stop()
    by_kind = {s.kind: merge([r for r in results if r.label == s.kind]) for s in servers}
    return CompareResult(
        rounds=results,
        reference=by_kind["reference"],
        hourglass=by_kind["hourglass"],
        servers={s.kind: {"address": s.address, "pid": s.pid, "log": str(s.log_path)} for s in servers},
    )
