"""`make bench`: compare Hourglass with the reference on one-activity and five-activities, with the sdk and
the raw driver, and write loadtest/RESULTS.md (figures, machine, date, command).

Each comparison is a closed loop bounded by time, so the whole bench takes a predictable few minutes
(about 7 on a 2-core machine with the defaults). The numbers are only as quiet as the machine: its load
average at the start is recorded with them.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from hourglass.loadtest.cli import Duration, run_compare
from hourglass.loadtest.compare import CompareResult
from hourglass.loadtest.load import LoadPlan
from hourglass.loadtest.report import write_json
from hourglass.loadtest.runner import RunConfig
from hourglass.loadtest.scenarios import ScenarioRef
from hourglass.loadtest.summary import fmt, fmt_ratio

HERE = Path(__file__).resolve().parent
SCENARIOS = ("one-activity", "five-activities")
DRIVERS = ("sdk", "raw")
TARGET = ("one-activity", "sdk", 2.0)  # Hourglass at least 2.0x the reference's workflows/s

# The figures RESULTS.md shows per comparison, in order.
ROWS = [
    ("workflows_per_s", "workflows/s", "{:.1f}"),
    ("state_transitions_per_s_estimated", "state transitions/s", "{:.1f}"),
    ("activities_per_s", "activities/s", "{:.1f}"),
    ("latency_p50_ms", "latency p50 (ms)", "{:.0f}"),
    ("latency_p90_ms", "latency p90 (ms)", "{:.0f}"),
    ("latency_p99_ms", "latency p99 (ms)", "{:.0f}"),
    ("latency_max_ms", "latency max (ms)", "{:.0f}"),
    ("workflows_failed", "workflows failed", "{:.0f}"),
    ("db_writes_per_s", "db writes/s", "{:.1f}"),
    ("conditional_batches_per_s", "conditional batches/s", "{:.1f}"),
    ("transitions_per_batch", "transitions/batch", "{:.2f}"),
    ("server_cpu_ms_per_workflow", "server CPU ms/workflow", "{:.1f}"),
    ("server_cpu_utilization", "server CPU (cores busy)", "{:.2f}"),
    ("driver_cpu_ms_per_workflow", "load tool CPU ms/workflow", "{:.1f}"),
]


@dataclass(frozen=True)
class Case:
    scenario: str
    driver: str
    result: CompareResult


def machine() -> dict[str, str]:
    """What the figures were measured on (Linux /proc where available)."""
    cpu = platform.processor() or platform.machine()
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu model": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average at start (1/5/15 min)": load_average(),
        "commit": _commit(),
    }


def load_average() -> str:
    """Other work on the machine moves these figures: the load average says how much there was."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=HERE)
    except OSError:
        return "?"
    return head.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def _case_table(case: Case) -> list[str]:
    ref, hg = case.result.reference.figures(), case.result.hourglass.figures()
    ratios = case.result.ratios()
    lines = ["| figure | reference | hourglass | hourglass / reference |", "|---|---:|---:|---:|"]
    for key, label, pattern in ROWS:
        lines.append(
            f"| {label} | {fmt(ref[key], pattern)} | {fmt(hg[key], pattern)} | {fmt_ratio(ratios.get(key))} |"
        )
    return lines


def render(
    cases: list[Case], info: dict[str, str], command: str, started: str, took_s: float, plan: str
) -> str:
    lines = [
        "# Load test results: Hourglass vs the reference",
        "",
        f"Written by `make bench` ({command}) on {started}, in {took_s / 60:.1f} min. "
        "Each line is one `hourglass loadtest compare`: both servers started with `start-dev` (in-memory store) "
        "on this machine, the same load on each, rounds alternating which server goes first. "
        f"Load: {plan}.",
        "",
        "## Summary: workflows/s",
        "",
        "| scenario | driver | reference | hourglass | hourglass / reference |",
        "|---|---|---:|---:|---:|",
    ]
    for c in cases:
        ref, hg = c.result.reference.figures(), c.result.hourglass.figures()
        lines.append(
            f"| {c.scenario} | {c.driver} | {fmt(ref['workflows_per_s'])} | {fmt(hg['workflows_per_s'])} | "
            f"{fmt_ratio(c.result.ratios()['workflows_per_s'])} |"
        )
    scenario, driver, want = TARGET
    hit = [c for c in cases if c.scenario == scenario and c.driver == driver]
    if hit:
        ratio = hit[0].result.ratios()["workflows_per_s"]
        verdict = "met" if ratio is not None and ratio >= want else "NOT met"
        lines += ["", f"Target: Hourglass >= {want:.1f}x the reference's workflows/s on {scenario}, {driver} driver: "
                  f"**{verdict}** ({fmt_ratio(ratio)})."]  # fmt: skip
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    for c in cases:
        lines += ["", f"## {c.scenario}, {c.driver} driver", "", *_case_table(c)]
        notes = [
            f"- note ({r.label}): {n}" for r in (c.result.reference, c.result.hourglass) for n in r.notes
        ]
        if notes:
            lines += ["", *notes]
    lines += [
        "",
        "## Reading these figures",
        "",
        "- Rates are over the measured window (first start request to last result); latency is start "
        "request to result, per workflow.",
        "- State transitions/s is estimated from sampled histories for both servers (the same yardstick); "
        "Hourglass's own counter agrees with the estimate on these scenarios.",
        "- Database figures come from Hourglass's /metrics; the reference has no matching counters (n/a).",
        "- CPU figures are read from /proc for the server process and for the load tool (starter plus "
        "worker processes). Both share the machine with the server under test.",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--duration", type=Duration(), default="15s", show_default=True, help="Closed loop length per run."
)
@click.option("--concurrency", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 10), default=2, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--scenario", "scenarios", multiple=True, default=SCENARIOS, show_default=True)
@click.option("--driver", "drivers", multiple=True, default=DRIVERS, show_default=True)
@click.option(
    "--output", type=click.Path(dir_okay=False), default=str(HERE / "RESULTS.md"), show_default=True
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every figure as JSON.")
def main(
    duration: float,
    concurrency: int,
    rounds: int,
    warmup: int,
    scenarios: tuple[str, ...],
    drivers: tuple[str, ...],
    output: str,
    json_out: str | None,
) -> None:
    """Run the comparisons and write RESULTS.md."""
    command = "python -m hourglass.loadtest.bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    info = machine()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    plan = LoadPlan(concurrency=concurrency, duration_s=duration, hard_timeout_s=duration + 300)
    cases: list[Case] = []
    for scenario in scenarios:
        for driver in drivers:
            click.echo(f"== {scenario}, {driver} driver", err=True)
            config = RunConfig(
                address="127.0.0.1:0",
                scenario=ScenarioRef(name=scenario),
                plan=plan,
                driver=driver,
                warmup=warmup,
            )
            cases.append(Case(scenario, driver, asyncio.run(run_compare(config, rounds))))
    load = f"closed loop, concurrency {concurrency}, {duration:g} s per run after {warmup} warm-up workflows, {rounds} round(s) per server"
    info["load average at end (1/5/15 min)"] = load_average()
    text = render(cases, info, command.strip(), started, time.monotonic() - t0, load)
    Path(output).write_text(text)
    click.echo(f"wrote {output}", err=True)
    if json_out:
        write_json(
            json_out,
            {
                "machine": info,
                "cases": [{"scenario": c.scenario, "driver": c.driver, **c.result.to_dict()} for c in cases],
            },
        )
    click.echo(text)


if __name__ == "__main__":
    main()
