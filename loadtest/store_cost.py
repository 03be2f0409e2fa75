"""`make bench-cassandra`: what one workflow transition costs on Cassandra, next to the embedded store.

Starts two Hourglass nodes on this machine, one on a fresh keyspace of a running Cassandra (set up with
`hourglass schema setup`, dropped afterwards) and one `start-dev` on in-memory SQLite, drives the same
closed-loop load through each (`--driver raw`, the default: the server's cost, not an SDK worker's;
`--driver sdk`: official SDK workers answer the tasks), and writes loadtest/RESULTS-cassandra.md. The
per-transition figures come from the nodes' /metrics: conditional batches (LWT batches on Cassandra)
and store writes per transition, and the latency of the two store round trips of a transition (history
append, then the conditional batch) from their histograms.

`--baseline REF` also runs the Cassandra node of another commit (exported with `git archive`), alternating
with this one over `--rounds` rounds, each on a fresh keyspace, so before/after figures come from one run
(medians of the rounds). Cassandra's own CPU per workflow is read from /proc when its process is found
(`--cassandra-pid`, else the local process listening on its port).

`--reference` also runs the real Temporal server (`temporal_cassandra.py`: built from the Go module proxy,
its own keyspace on the same Cassandra, the same shard count) in the same alternation, under the same load.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from hourglass.cluster.history.limits import parse_dynamic_config_values
from hourglass.loadtest.bench import load_average, machine
from hourglass.loadtest.cli import Duration
from hourglass.loadtest.load import LoadPlan
from hourglass.loadtest.profile import Profile, Recording, py_spy, render_profiles
from hourglass.loadtest.report import write_json
from hourglass.loadtest.runner import RunConfig, run_load_test
from hourglass.loadtest.scenarios import ScenarioRef
from hourglass.loadtest.servers import ManagedServer, hourglass_cassandra_server, hourglass_server
from hourglass.loadtest.stats import RunResult
from hourglass.loadtest.steps import step_medians
from hourglass.loadtest.summary import fmt
from hourglass.loadtest.temporal_cassandra import VERSION as TEMPORAL_VERSION
from hourglass.loadtest.temporal_cassandra import binaries, setup_keyspace, temporal_cassandra_server
from hourglass.loadtest.workers import cpu_seconds
from hourglass.persistence.cassandra.config import HOSTS_ENV, parse_hosts

HERE = Path(__file__).resolve().parent
REFERENCE = "reference"  # in place of a code directory: the Temporal server, not an Hourglass build
STEP = "step: "  # figures named so are the median ms of one history step (loadtest/steps.py)

ROWS = [
    ("workflows_per_s", "workflows/s", "{:.1f}"),
    ("state_transitions_per_s", "state transitions/s", "{:.1f}"),
    ("transitions_per_batch", "transitions per conditional batch", "{:.2f}"),
    ("batches_per_transition", "conditional batches per transition", "{:.2f}"),
    ("writes_per_transition", "store writes per transition", "{:.2f}"),
    ("history_append_p50_ms", "history append p50 (ms)", "{:.2f}"),
    ("history_append_p99_ms", "history append p99 (ms)", "{:.2f}"),
    ("conditional_batch_p50_ms", "conditional batch p50 (ms)", "{:.2f}"),
    ("conditional_batch_p99_ms", "conditional batch p99 (ms)", "{:.2f}"),
    ("latency_p50_ms", "workflow latency p50 (ms)", "{:.0f}"),
    ("latency_p99_ms", "workflow latency p99 (ms)", "{:.0f}"),
    ("server_cpu_ms_per_workflow", "server CPU ms/workflow", "{:.1f}"),
    ("cassandra_cpu_ms_per_workflow", "Cassandra CPU ms/workflow", "{:.1f}"),
    ("workflows_failed", "workflows failed", "{:.0f}"),
]


def figures(result: RunResult) -> dict[str, float | None]:
    f = result.figures()
    transitions = result.server.transitions
    batches = result.server.conditional_batches
    per = lambda n: None if n is None or not transitions else n / transitions  # noqa: E731
    cassandra_cpu_s = getattr(result, "cassandra_cpu_s", None)
    workflows = getattr(result, "workflows_in_window", None) or result.completed
    return {
        **f,
        "batches_per_transition": per(batches),
        "transitions_per_batch": None if not batches or transitions is None else transitions / batches,
        "writes_per_transition": per(result.server.writes),
        "cassandra_cpu_ms_per_workflow": None
        if cassandra_cpu_s is None or not workflows
        else cassandra_cpu_s * 1000 / workflows,
        **{STEP + label: ms for label, ms in step_medians(result.steps_ms).items()},
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _schema(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "hourglass.cluster.cli", "schema", *args],
        check=True,
        capture_output=True,
        timeout=180,
    )


def _drop_keyspace(hosts: list[str], port: int, keyspace: str) -> None:
    from cassandra.cluster import Cluster

    cluster = Cluster(hosts, port=port)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def _listener_pid(port: int) -> int | None:
    """The local process listening on TCP `port` (Cassandra's native port), from /proc; None if unseen."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def _export(ref: str, into: Path) -> str:
    """`git archive` of `ref` as `into`/hourglass (the package is the repository's root); its short id."""
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", ref],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    package = into / "hourglass"
    package.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", commit], capture_output=True, check=True, timeout=120
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True, timeout=120)
    return commit


async def _measure(
    server: ManagedServer,
    config: RunConfig,
    cassandra_pid: int | None = None,
    profile_to: Path | None = None,
    code_root: str = "",
) -> RunResult:
    """One load run on `server`; with `profile_to`, py-spy records the server meanwhile (result.profile;
    `code_root`: where the build's own files are, to tell them from libraries')."""
    await server.start()
    recording = None
    try:
        assert server.metrics_url is not None
        run = RunConfig(**{**config.__dict__, "address": server.address, "metrics_url": server.metrics_url,
                           "server_pid": server.pid, "label": server.kind})  # fmt: skip
        cpu_before = cpu_seconds(cassandra_pid) if cassandra_pid else None
        if profile_to is not None and server.pid is not None:
            recording = Recording(server.pid, profile_to, root=code_root)
        result = await run_load_test(run)
        if recording is not None:
            result.profile = recording.stop()  # type: ignore[attr-defined]
            recording = None
        cpu_after = cpu_seconds(cassandra_pid) if cassandra_pid else None
        if cpu_before is not None and cpu_after is not None:
            # Over the whole run, warm-up included: divided by every workflow of the run.
            result.cassandra_cpu_s = cpu_after - cpu_before  # type: ignore[attr-defined]
            result.workflows_in_window = result.completed + config.warmup  # type: ignore[attr-defined]
        return result
    finally:
        if recording is not None:
            recording.stop()
        server.stop()


def render_table(columns: list[tuple[str, list[dict[str, float | None]]]]) -> list[str]:
    """One column per label: the median of its rounds' figures."""
    lines = [
        "| figure | " + " | ".join(label for label, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for key, label, pattern in ROWS:
        cells = [fmt(_median([r.get(key) for r in rounds]), pattern) for _, rounds in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_steps(columns: list[tuple[str, list[dict[str, float | None]]]]) -> list[str]:
    """Median ms of each history step per label (the median of its rounds' medians); [] if none sampled."""
    steps = list(dict.fromkeys(k for _, rounds in columns for r in rounds for k in r if k.startswith(STEP)))
    if not steps:
        return []
    lines = [
        "Where a workflow's time goes: median ms of each step, event to event, in the histories of "
        "completed workflows spread over the run (`--step-sample`):",
        "",
        "| step | " + " | ".join(label for label, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for key in steps:
        cells = [fmt(_median([r.get(key) for r in rounds]), "{:.1f}") for _, rounds in columns]
        lines.append(f"| {key.removeprefix(STEP)} | " + " | ".join(cells) + " |")
    return lines


def render(
    tables: list[tuple[int, list[tuple[str, list[dict[str, float | None]]]]]],
    info: dict[str, str],
    command: str,
    started: str,
    load: str,
    rounds: int,
    notes: list[str],
) -> str:
    lines = [
        "# The cost of a workflow transition: Cassandra vs the embedded store",
        "",
        f"Written by `make bench-cassandra` ({command}) on {started}. Hourglass nodes on this machine on "
        "fresh keyspaces of the local Cassandra 5 (one node, RF 1, LOCAL_QUORUM writes and LOCAL_SERIAL "
        "conditions)"
        + (
            ", and one `start-dev` on in-memory SQLite"
            if any(c.startswith("sqlite") for c, _ in tables[0][1])
            else ""
        )
        + (
            f", and the Temporal server {TEMPORAL_VERSION} (built from the Go module proxy, one process, its own "
            "keyspace set up with its schema tool, the same shard count and consistency, visibility in "
            "in-memory SQLite; its database figures are n/a: it exports no hourglass_* counters)"
            if any(c.startswith("Temporal") for c, _ in tables[0][1])
            else ""
        )
        + f", each under the same load: {load}. "
        + (
            f"Nodes of different commits alternate over {rounds} rounds; each figure is the median of its "
            "rounds."
            if rounds > 1
            else ""
        ),
        "",
        "A transition is two store round trips: the history node append (not conditional), then a "
        "conditional batch in the shard's partition (on Cassandra an LWT batch: shard `range_id` condition, "
        "execution version condition, current-run row, transfer and timer tasks). With group commit the "
        "transitions of one shard that are ready together share one batch: transitions per conditional "
        "batch is hourglass_transitions_total / hourglass_persistence_conditional_batches_total.",
    ]
    for concurrency, columns in tables:
        lines += ["", f"## Concurrency {concurrency}", "", *render_table(columns)]
        steps = render_steps(columns)
        if steps:
            lines += ["", *steps]
    lines += ["", "## Machine", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in info.items()]]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        "Latency percentiles of the store round trips are interpolated in the nodes' Prometheus histogram "
        "buckets (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50 ms ...), as `histogram_quantile` would. "
        "Cassandra CPU is its process's user+system time over the whole load run (warm-up included) "
        "divided by every workflow of the run; other clients of the same Cassandra add to it.",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--duration", type=Duration(), default="20s", show_default=True, help="Closed loop length per node."
)
@click.option(
    "--concurrency",
    "concurrencies",
    type=click.IntRange(min=1),
    multiple=True,
    default=[20],
    show_default=True,
    help="Repeat for several loads: --concurrency 20 --concurrency 100.",
)
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--scenario", default="one-activity", show_default=True)
@click.option(
    "--driver",
    type=click.Choice(["raw", "sdk"]),
    default="raw",
    show_default=True,
    help="raw: the server's cost alone; sdk: official temporalio workers answer the tasks (the issue's SDK figure).",
)
@click.option("--shards", type=click.IntRange(min=1), default=4, show_default=True, help="History shards.")
@click.option(
    "--baseline",
    metavar="REF",
    help="Also measure the Cassandra node of this git commit (e.g. main), alternating with this one.",
)
@click.option(
    "--rounds", type=click.IntRange(min=1), default=1, show_default=True, help="Alternating rounds per load."
)
@click.option(
    "--dynamic-config-value",
    "dynamic_config_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Dynamic config of this build's Cassandra node, e.g. hourglass.groupCommit.maxInFlight=1.",
)
@click.option(
    "--reference/--no-reference",
    default=False,
    show_default=True,
    help=f"Also measure the Temporal server {TEMPORAL_VERSION} on the same Cassandra (built with Go if absent).",
)
@click.option(
    "--step-sample",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Completed workflows per run whose histories give the median ms of each step (0: none).",
)
@click.option("--sqlite/--no-sqlite", default=True, show_default=True, help="Measure the start-dev node too.")
@click.option(
    "--cassandra-pid", type=int, help="Cassandra's pid, for its CPU (default: the local process on its port)."
)
@click.option(
    "--hosts",
    envvar=HOSTS_ENV,
    default="127.0.0.1:9042",
    show_default=True,
    help=f"Cassandra contact points (also ${HOSTS_ENV}); `make cassandra-up` starts a local node.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False), default=str(HERE / "RESULTS-cassandra.md"), show_default=True
)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write every figure as JSON.")
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False),
    help="Record each Hourglass Cassandra node with py-spy under load (raw stacks kept in this directory) and "
    "add its top functions to the report.",
)
def main(
    duration: float,
    concurrencies: tuple[int, ...],
    warmup: int,
    scenario: str,
    driver: str,
    shards: int,
    baseline: str | None,
    rounds: int,
    dynamic_config_values: tuple[str, ...],
    reference: bool,
    step_sample: int,
    sqlite: bool,
    cassandra_pid: int | None,
    hosts: str,
    output: str,
    json_out: str | None,
    profile_dir: str | None,
) -> None:
    """Measure one transition's cost on Cassandra and on SQLite; write RESULTS-cassandra.md."""
    command = "python -m hourglass.loadtest.store_cost " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    contact_points, port = parse_hosts(hosts)
    dynamic_config = parse_dynamic_config_values(dynamic_config_values)
    if cassandra_pid is None and set(contact_points) <= {"127.0.0.1", "localhost"}:
        cassandra_pid = _listener_pid(port)
    info = machine()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    current = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
    ).stdout.strip() or "this build"  # fmt: skip
    tables: list[tuple[int, list[tuple[str, list[dict[str, float | None]]]]]] = []
    profiles: dict[str, Profile] = {}
    if profile_dir:
        py_spy()  # fails now, not after the first run, when it is missing
    runs: list[dict] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hourglass-store-cost-") as tmp:
        workdir = Path(tmp)
        base_commit = _export(baseline, workdir / "baseline") if baseline else None
        temporal_server, temporal_tool = binaries() if reference else (None, None)
        for concurrency in concurrencies:
            plan = LoadPlan(concurrency=concurrency, duration_s=duration, hard_timeout_s=duration + 300)
            config = RunConfig(
                address="",
                scenario=ScenarioRef(name=scenario),
                plan=plan,
                driver=driver,
                warmup=warmup,
                step_sample=step_sample,
            )
            columns: dict[str, list[dict[str, float | None]]] = {}
            if sqlite:
                columns["sqlite (start-dev)"] = []
            this = f"cassandra {current}" + "".join(f" {k}={v}" for k, v in dynamic_config.items())
            nodes: list[tuple[str, Path | str | None]] = [(this, None)]
            if base_commit:
                nodes.insert(0, (f"cassandra {base_commit} (baseline)", workdir / "baseline"))
            if reference:
                nodes.append((f"Temporal {TEMPORAL_VERSION} cassandra", REFERENCE))
            for label, _ in nodes:
                columns[label] = []
            for round_no in range(rounds):
                if sqlite:
                    result = asyncio.run(_measure(hourglass_server(workdir), config))
                    columns["sqlite (start-dev)"].append(figures(result))
                    runs.append({"concurrency": concurrency, "round": round_no, **result.to_dict()})
                order = nodes if round_no % 2 == 0 else nodes[::-1]
                for label, code in order:
                    keyspace = f"bench_{int(time.time())}_{round_no}"
                    try:
                        if code == REFERENCE:
                            assert temporal_server is not None and temporal_tool is not None
                            setup_keyspace(temporal_tool, contact_points, port, keyspace)
                            server = temporal_cassandra_server(
                                workdir, temporal_server, contact_points, port, keyspace, shards=shards
                            )
                        else:
                            _schema("setup", "--hosts", ",".join(contact_points), "--port", str(port),
                                    "--keyspace", keyspace, "--replication-factor", "1")  # fmt: skip
                            server = hourglass_cassandra_server(
                                workdir,
                                contact_points,
                                port,
                                keyspace,
                                shards=shards,
                                code=code if isinstance(code, Path) else None,
                                dynamic_config=None if code else dynamic_config,
                            )
                        click.echo(f"== {label}, concurrency {concurrency}, round {round_no + 1}", err=True)
                        profile_to = code_root = None
                        if profile_dir and code != REFERENCE:
                            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
                            profile_to = Path(profile_dir) / f"{slug}-c{concurrency}-r{round_no + 1}.txt"
                            code_root = f"{code}/hourglass/" if isinstance(code, Path) else f"{HERE.parent}/"
                        result = asyncio.run(
                            _measure(server, config, cassandra_pid, profile_to, code_root or "")
                        )
                    finally:
                        _drop_keyspace(contact_points, port, keyspace)
                    f = figures(result)
                    columns[label].append(f)
                    if hasattr(result, "profile"):
                        merged = profiles.setdefault(f"{label}, concurrency {concurrency}", Profile())
                        merged.merge(result.profile)
                    # The column's label last: the run's own is the server kind, the same for a baseline.
                    runs.append({"concurrency": concurrency, "round": round_no, **result.to_dict(),
                                 "label": label, "figures": f})  # fmt: skip
                    notes += [f"- note ({label}, concurrency {concurrency}): {n}" for n in result.notes]
                    click.echo(
                        f"{label}: {fmt(f['workflows_per_s'])} wf/s, {fmt(f['transitions_per_batch'], '{:.2f}')} "
                        f"transitions/batch, batch p50/p99 {fmt(f['conditional_batch_p50_ms'], '{:.2f}')}/"
                        f"{fmt(f['conditional_batch_p99_ms'], '{:.2f}')} ms, Cassandra CPU "
                        f"{fmt(f['cassandra_cpu_ms_per_workflow'], '{:.1f}')} ms/wf",
                        err=True,
                    )
            tables.append((concurrency, list(columns.items())))
    load = (
        f"scenario {scenario}, {driver} driver, closed loop, {shards} history shards, {duration:g} s after "
        f"{warmup} warm-up workflows"
    )
    info["load average at end (1/5/15 min)"] = load_average()
    text = render(tables, info, command.strip(), started, load, rounds, notes)
    if profiles:
        text += "\n".join(
            ["", "## Profile (py-spy, every round of a node summed)", *render_profiles(profiles), ""]
        )
    Path(output).write_text(text)
    if json_out:
        write_json(json_out, {"machine": info, "runs": runs})
    click.echo(text)


if __name__ == "__main__":
    main()
