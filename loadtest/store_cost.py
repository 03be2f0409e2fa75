"""`make bench-cassandra`: what one workflow transition costs on Cassandra, next to the embedded store.

Starts two Hourglass nodes on this machine, one on a fresh keyspace of a running Cassandra (set up with
`hourglass schema setup`, dropped afterwards) and one `start-dev` on in-memory SQLite, drives the same
closed-loop load through each (raw driver: the server's cost, not an SDK worker's), and writes
loadtest/RESULTS-cassandra.md. The per-transition figures come from the nodes' /metrics: conditional
batches (LWT batches on Cassandra) and store writes per transition, and the latency of the two store
round trips of a transition (history append, then the conditional batch) from their histograms.
"""

from __future__ import annotations

import asyncio
import datetime
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from hourglass.loadtest.bench import load_average, machine
from hourglass.loadtest.cli import Duration
from hourglass.loadtest.load import LoadPlan
from hourglass.loadtest.report import write_json
from hourglass.loadtest.runner import RunConfig, run_load_test
from hourglass.loadtest.scenarios import ScenarioRef
from hourglass.loadtest.servers import ManagedServer, hourglass_cassandra_server, hourglass_server
from hourglass.loadtest.stats import RunResult
from hourglass.loadtest.summary import fmt
from hourglass.persistence.cassandra.config import HOSTS_ENV, parse_hosts

HERE = Path(__file__).resolve().parent

ROWS = [
    ("workflows_per_s", "workflows/s", "{:.1f}"),
    ("state_transitions_per_s", "state transitions/s", "{:.1f}"),
    ("batches_per_transition", "conditional batches per transition", "{:.2f}"),
    ("writes_per_transition", "store writes per transition", "{:.2f}"),
    ("history_append_p50_ms", "history append p50 (ms)", "{:.2f}"),
    ("history_append_p99_ms", "history append p99 (ms)", "{:.2f}"),
    ("conditional_batch_p50_ms", "conditional batch p50 (ms)", "{:.2f}"),
    ("conditional_batch_p99_ms", "conditional batch p99 (ms)", "{:.2f}"),
    ("latency_p50_ms", "workflow latency p50 (ms)", "{:.0f}"),
    ("latency_p99_ms", "workflow latency p99 (ms)", "{:.0f}"),
    ("server_cpu_ms_per_workflow", "server CPU ms/workflow", "{:.1f}"),
    ("workflows_failed", "workflows failed", "{:.0f}"),
]


def figures(result: RunResult) -> dict[str, float | None]:
    f = result.figures()
    transitions = result.server.transitions
    per = lambda n: None if n is None or not transitions else n / transitions  # noqa: E731
    return {
        **f,
        "batches_per_transition": per(result.server.conditional_batches),
        "writes_per_transition": per(result.server.writes),
    }


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


async def _measure(server: ManagedServer, config: RunConfig) -> RunResult:
    await server.start()
    try:
        assert server.metrics_url is not None
        run = RunConfig(**{**config.__dict__, "address": server.address, "metrics_url": server.metrics_url,
                           "server_pid": server.pid, "label": server.kind})  # fmt: skip
        return await run_load_test(run)
    finally:
        server.stop()


def render(results: list[RunResult], info: dict[str, str], command: str, started: str, load: str) -> str:
    table = [figures(r) for r in results]
    lines = [
        "# The cost of a workflow transition: Cassandra vs the embedded store",
        "",
        f"Written by `make bench-cassandra` ({command}) on {started}. Two Hourglass nodes on this machine, one "
        "on a fresh keyspace of the local Cassandra 5 (one node, RF 1, LOCAL_QUORUM writes and LOCAL_SERIAL "
        f"conditions) and one `start-dev` on in-memory SQLite, each under the same load: {load}.",
        "",
        "A transition is two store round trips: the history node append (not conditional), then ONE "
        "conditional batch in the shard's partition (on Cassandra an LWT batch: shard `range_id` condition, "
        "execution version condition, current-run row, transfer and timer tasks).",
        "",
        "| figure | " + " | ".join(r.label for r in results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for key, label, pattern in ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(f[key], pattern) for f in table) + " |")
    lines += ["", "## Machine", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in info.items()]]
    notes = [f"- note ({r.label}): {n}" for r in results for n in r.notes]
    if notes:
        lines += ["", *notes]
    lines += [
        "",
        "Latency percentiles of the store round trips are interpolated in the nodes' Prometheus histogram "
        "buckets (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50 ms ...), as `histogram_quantile` would.",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option(
    "--duration", type=Duration(), default="20s", show_default=True, help="Closed loop length per node."
)
@click.option("--concurrency", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=20, show_default=True)
@click.option("--scenario", default="one-activity", show_default=True)
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
def main(
    duration: float,
    concurrency: int,
    warmup: int,
    scenario: str,
    hosts: str,
    output: str,
    json_out: str | None,
) -> None:
    """Measure one transition's cost on Cassandra and on SQLite; write RESULTS-cassandra.md."""
    command = "python -m hourglass.loadtest.store_cost " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    contact_points, port = parse_hosts(hosts)
    info = machine()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    plan = LoadPlan(concurrency=concurrency, duration_s=duration, hard_timeout_s=duration + 300)
    config = RunConfig(
        address="", scenario=ScenarioRef(name=scenario), plan=plan, driver="raw", warmup=warmup
    )
    keyspace = f"bench_{int(time.time())}"
    _schema("setup", "--hosts", ",".join(contact_points), "--port", str(port), "--keyspace", keyspace,
            "--replication-factor", "1")  # fmt: skip
    results: list[RunResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="hourglass-store-cost-") as tmp:
            workdir = Path(tmp)
            for server in (
                hourglass_server(workdir),
                hourglass_cassandra_server(workdir, contact_points, port, keyspace),
            ):
                click.echo(f"== {server.kind}", err=True)
                results.append(asyncio.run(_measure(server, config)))
                f = figures(results[-1])
                click.echo(
                    f"{server.kind}: {fmt(f['workflows_per_s'])} wf/s, batch p50 {fmt(f['conditional_batch_p50_ms'], '{:.2f}')} ms",
                    err=True,
                )
    finally:
        _drop_keyspace(contact_points, port, keyspace)
    results[0].label = "sqlite (start-dev)"
    results[1].label = "cassandra"
    load = f"scenario {scenario}, raw driver, closed loop, concurrency {concurrency}, {duration:g} s after {warmup} warm-up workflows"
    info["load average at end (1/5/15 min)"] = load_average()
    text = render(results, info, command.strip(), started, load)
    Path(output).write_text(text)
    if json_out:
        write_json(json_out, {"machine": info, "runs": [r.to_dict() for r in results]})
    click.echo(text)


if __name__ == "__main__":
    main()
