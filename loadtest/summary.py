"""What the terminal shows: a live progress bar with the running rate, then summary tables.

Progress goes to stderr and the tables to stdout, so `--out -`-style piping and logs stay readable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hourglass.loadtest.load import ProgressTick
from hourglass.loadtest.stats import RunResult
from hourglass.loadtest.steps import step_medians

RATE_WINDOW_S = 5.0

# (figure key, label, format): the rows of every summary, in order.
FIGURE_ROWS: list[tuple[str, str, str]] = [
    ("workflows_completed", "workflows completed", "{:.0f}"),
    ("workflows_failed", "workflows failed", "{:.0f}"),
    ("workflows_per_s", "workflows/s", "{:.1f}"),
    ("state_transitions_per_s", "state transitions/s", "{:.1f}"),
    ("state_transitions_per_s_estimated", "state transitions/s (from history)", "{:.1f}"),
    ("transitions_per_workflow", "transitions/workflow", "{:.1f}"),
    ("history_events_per_workflow", "history events/workflow", "{:.1f}"),
    ("activities_per_s", "activities/s", "{:.1f}"),
    ("latency_p50_ms", "latency p50 (ms)", "{:.1f}"),
    ("latency_p90_ms", "latency p90 (ms)", "{:.1f}"),
    ("latency_p99_ms", "latency p99 (ms)", "{:.1f}"),
    ("latency_max_ms", "latency max (ms)", "{:.1f}"),
    ("db_writes_per_s", "db writes/s", "{:.1f}"),
    ("conditional_batches_per_s", "conditional batches/s", "{:.1f}"),
    ("transitions_per_batch", "transitions/batch", "{:.2f}"),
    ("db_writes_per_workflow", "db writes/workflow", "{:.1f}"),
    ("conditional_batch_p50_ms", "conditional batch p50 (ms)", "{:.2f}"),
    ("conditional_batch_p99_ms", "conditional batch p99 (ms)", "{:.2f}"),
    ("history_append_p50_ms", "history append p50 (ms)", "{:.2f}"),
    ("history_append_p99_ms", "history append p99 (ms)", "{:.2f}"),
    ("server_cpu_ms_per_workflow", "server CPU ms/workflow", "{:.2f}"),
    ("server_cpu_utilization", "server CPU (cores busy)", "{:.2f}"),
    ("driver_cpu_ms_per_workflow", "load tool CPU ms/workflow", "{:.2f}"),
    ("elapsed_s", "measured window (s)", "{:.1f}"),
]


def fmt(value: Any, pattern: str = "{:.1f}") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return pattern.format(value)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


class LiveProgress:
    """A rich progress bar fed by the load generator's ticks; the rate is over the last few seconds."""

    def __init__(self, description: str, console: Console | None = None, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>7.1f} wf/s"),
            TextColumn("in flight {task.fields[in_flight]:>4}"),
            TextColumn("errors {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=not enabled,
        )
        self._task = self._progress.add_task(description, total=None, rate=0.0, in_flight=0, failed=0)
        self._window: deque[tuple[float, int]] = deque()

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, tick: ProgressTick) -> None:
        finished = tick.done + tick.failed
        self._window.append((tick.elapsed, finished))
        while len(self._window) > 2 and tick.elapsed - self._window[0][0] > RATE_WINDOW_S:
            self._window.popleft()
        (t0, n0), (t1, n1) = self._window[0], self._window[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
        self._progress.update(
            self._task,
            completed=finished,
            total=tick.expected,
            rate=rate,
            in_flight=tick.in_flight,
            failed=tick.failed,
        )


def run_table(result: RunResult) -> Table:
    figures = result.figures()
    title = f"{result.label or result.address}: {result.scenario}, driver {result.driver}, {result.mode} loop"
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, label, pattern in FIGURE_ROWS:
        table.add_row(label, fmt(figures[key], pattern))
    return table


def errors_table(results: Sequence[RunResult]) -> Table | None:
    names = sorted({name for r in results for name in r.errors})
    if not names:
        return None
    table = Table(title="errors by type", title_justify="left")
    table.add_column("error")
    for r in results:
        table.add_column(r.label or r.address, justify="right")
    for name in names:
        table.add_row(name, *(str(r.errors.get(name, 0)) for r in results))
    return table


def steps_table(results: Sequence[RunResult]) -> Table | None:
    """Median ms of each history step (event to event), one column per run; None if none was sampled."""
    medians = [step_medians(r.steps_ms) for r in results]
    labels = list(dict.fromkeys(label for m in medians for label in m))
    if not labels:
        return None
    table = Table(title="median ms per step, from sampled histories", title_justify="left")
    table.add_column("step")
    for r in results:
        table.add_column(
            f"{r.label or r.address} (n={max(map(len, r.steps_ms.values()), default=0)})", justify="right"
        )
    for label in labels:
        table.add_row(label, *(fmt(m.get(label)) for m in medians))
    return table


def print_run(result: RunResult, console: Console) -> None:
    console.print(run_table(result))
    for extra in (steps_table([result]), errors_table([result])):
        if extra is not None:
            console.print(extra)
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")


def compare_table(reference: RunResult, hourglass: RunResult, ratios: dict[str, float | None]) -> Table:
    title = (
        f"{reference.scenario}, driver {reference.driver}: Hourglass / reference "
        f"({reference.rounds} round(s) each, alternating)"
    )
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("figure")
    table.add_column("reference", justify="right")
    table.add_column("hourglass", justify="right")
    table.add_column("hourglass / reference", justify="right")
    ref, hg = reference.figures(), hourglass.figures()
    for key, label, pattern in FIGURE_ROWS:
        table.add_row(label, fmt(ref[key], pattern), fmt(hg[key], pattern), fmt_ratio(ratios.get(key)))
    return table
