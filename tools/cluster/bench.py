#!/usr/bin/env python3
"""Cluster benchmark (not a test): 3 nodes vs 1 node throughput, and kill -9 -> all shards owned again.

    python tools/cluster/bench.py throughput [--workflows 400 --concurrency 40 --scenario one-activity]
    python tools/cluster/bench.py failover [--runs 5]
    python tools/cluster/bench.py rolling [--rate 10 --duration 90]
    python tools/cluster/bench.py cost [--rounds 3 --workflows 300 --concurrency 20 --before-exe PATH]

Needs a Cassandra on 127.0.0.1:9042 (`make cassandra-up`). Every run uses a fresh keyspace (dropped at
the end) and the nodes of tests/cluster/harness.py (127.0.0.1-3, free ports). `throughput` drives the
single node and then the cluster with `hourglass loadtest run` against ONE node's frontend (the cluster
forwards what other members own). `failover` kill -9's a member, then polls another member's status
every 50 ms until every shard is held by a live member again; the timings are those of
tests/cluster/harness.py unless --default-timings (probe 1 s, suspicion 4 s). `rolling` runs the same
open-loop load twice through a TCP load balancer in front of the three frontends (as production has one;
the SDK takes one address): once steady, once while every node in turn is drained (`hourglass.sdk.admin`),
stopped (SIGTERM), started and waited for until it holds shards again; it prints p99 and failures of both.
`cost` keeps one node and a 3-node cluster up (each on its own keyspace; with --before-exe, a second
pair running another build's `hourglass`) and drives them in alternating rounds with the same closed-loop
load spread over all three frontends (`--address a,b,c`, the single node named three times so the
clients are the same): total server CPU per workflow (every node's process_cpu_seconds_total, summed)
and internal calls per workflow (hourglass_internal_rpc_calls_total), with the load average of the box.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cassandra.cluster import Cluster  # noqa: E402

from hourglass.persistence.cassandra import testing  # noqa: E402
from tests.cluster import harness  # noqa: E402

BIN = Path(sys.executable).parent


def _keyspace(session) -> str:
    name = testing.new_keyspace_name("bench")
    testing.create_test_keyspace(session, name)
    return name


def _loadtest_cmd(address: str, args, out: Path) -> list[str]:
    """`hourglass loadtest run` open loop at --rate for --duration (rolling mode)."""
    return [
        str(BIN / "hourglass"),
        "loadtest",
        "run",
        "--address",
        address,
        "--scenario",
        args.scenario,
        "--rate",
        str(args.rate),
        "--duration",
        f"{args.duration}s",
        "--workflow-timeout",
        "120s",
        "--quiet",
        "--out",
        str(out),
    ]


class Balancer:
    """A TCP load balancer in front of the frontends: each new connection goes to the next backend that
    accepts it (round robin), bytes are copied both ways; a backend that stops closes its connections and
    the client reconnects to another, as behind any L4 balancer."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next % len(self.backends)].rsplit(":", 1)
            self._next += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                break
            except OSError:
                continue
        else:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _loadtest(address: str, args, out: Path) -> dict:
    cmd = [
        str(BIN / "hourglass"),
        "loadtest",
        "run",
        "--address",
        address,
        "--scenario",
        args.scenario,
        "--workflows",
        str(args.workflows),
        "--concurrency",
        str(args.concurrency),
        "--warmup",
        "20",
        "--quiet",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, timeout=1800, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


FIGURES = ("workflows_completed", "workflows_failed", "workflows_per_s", "latency_p50_ms", "latency_p99_ms")


def _find(data, key):
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for v in data.values():
            found = _find(v, key)
            if found is not None:
                return found
    if isinstance(data, list):
        for v in data:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def _figures(result: dict) -> str:
    out = []
    for key in FIGURES:
        v = _find(result, key)
        out.append(f"{key}={v:.1f}" if isinstance(v, float) else f"{key}={v}")
    return ", ".join(out)


async def throughput(args, session) -> None:
    work = Path(tempfile.mkdtemp(prefix="hg-bench-"))
    # One node: the same store, no cluster section (it owns every shard).
    for sub in ("single", "cluster"):
        (work / sub).mkdir()
    ks = _keyspace(session)
    single = harness.LocalCluster.create(work / "single", ["127.0.0.1"], 9042, ks, secure_frontend=False)
    node = single.nodes[0]
    text = node.config.read_text()
    node.config.write_text(text[: text.index("cluster:")])
    node.start()
    try:
        await _wait_frontend(node.address)
        one = _loadtest(node.address, args, work / "single.json")
    finally:
        node.stop()
        testing.drop_keyspace(session, ks)
    ks = _keyspace(session)
    cluster = harness.LocalCluster.create(work / "cluster", ["127.0.0.1"], 9042, ks, secure_frontend=False)
    cluster.start()
    try:
        await cluster.wait_converged(cluster.nodes)
        three = _loadtest(cluster.nodes[0].address, args, work / "cluster.json")
    finally:
        cluster.stop()
        testing.drop_keyspace(session, ks)
    print(f"1 node : {_figures(one)}")
    print(f"3 nodes: {_figures(three)}")
    print(f"raw results: {work}/single.json {work}/cluster.json")


async def _wait_frontend(address: str, timeout: float = 60) -> None:
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            await Client.connect(address)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def failover(args, session) -> None:
    if args.default_timings:
        harness.TIMINGS.update(probe_interval_s=1.0, probe_timeout_s=0.4, suspicion_timeout_s=4.0)
    work = Path(tempfile.mkdtemp(prefix="hg-failover-"))
    ks = _keyspace(session)
    cluster = harness.LocalCluster.create(work, ["127.0.0.1"], 9042, ks, secure_frontend=False)
    cluster.start()
    times = []
    try:
        await cluster.wait_converged(cluster.nodes)
        for run in range(args.runs):
            victim = random.choice(cluster.nodes)
            observer = next(n for n in cluster.nodes if n is not victim)
            survivors = {n.member_id for n in cluster.nodes if n is not victim}
            victim.kill9()
            killed = time.monotonic()
            while True:
                view = await cluster.status(observer)
                owners = {s.shard_id: s.member_id for s in view.shards if s.member_id}
                if len(owners) == harness.SHARDS and set(owners.values()) <= survivors:
                    break
                await asyncio.sleep(0.05)
            times.append(time.monotonic() - killed)
            print(
                f"run {run + 1}: killed {victim.ip}, all {harness.SHARDS} shards owned again after {times[-1]:.2f} s"
            )
            victim.start()
            await cluster.wait_converged(cluster.nodes)
    finally:
        cluster.stop()
        testing.drop_keyspace(session, ks)
    print(
        f"kill -9 -> all shards owned: p50 {statistics.median(times):.2f} s, max {max(times):.2f} s "
        f"over {len(times)} runs (timings: {harness.TIMINGS})"
    )


async def _holds_shards(cluster, node, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            view = await cluster.status(node)
            me = next((m for m in view.members if m.id == node.member_id), None)
            if me is not None and me.state == "alive" and me.shard_count > 0:
                return
        except Exception:  # still starting
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{node.ip} holds no shard {timeout} s after its restart")


async def rolling(args, session) -> None:
    from hourglass.sdk.admin import AdminClient

    work = Path(tempfile.mkdtemp(prefix="hg-rolling-"))
    ks = _keyspace(session)
    cluster = harness.LocalCluster.create(work, ["127.0.0.1"], 9042, ks, secure_frontend=False)
    cluster.start()
    balancer = Balancer([n.address for n in cluster.nodes])
    try:
        await cluster.wait_converged(cluster.nodes)
        address = await balancer.start()
        # Steady state first: the same load, nothing restarted.
        proc = await asyncio.create_subprocess_exec(*_loadtest_cmd(address, args, work / "steady.json"))
        await proc.wait()
        steady = json.loads((work / "steady.json").read_text())
        proc = await asyncio.create_subprocess_exec(*_loadtest_cmd(address, args, work / "rolling.json"))
        await asyncio.sleep(5)
        started = time.monotonic()
        for i, node in enumerate(cluster.nodes):
            other = cluster.nodes[(i + 1) % len(cluster.nodes)]
            t0 = time.monotonic()
            async with await AdminClient.connect(other.address) as admin:
                drained = await admin.drain(node.address, timeout=120)
            t1 = time.monotonic()
            node.stop()
            node.start()
            await _holds_shards(cluster, node)
            print(
                f"{node.ip}: drained {len(drained.released_shards)} shards in {t1 - t0:.1f} s, stopped, started, "
                f"holding shards again after {time.monotonic() - t1:.1f} s",
                flush=True,
            )
        restart_s = time.monotonic() - started
        if proc.returncode is None:
            print(f"rolling restart done in {restart_s:.0f} s; waiting for the load to finish", flush=True)
        await proc.wait()
        during = json.loads((work / "rolling.json").read_text())
    finally:
        balancer.close()
        cluster.stop()
        testing.drop_keyspace(session, ks)
    print(f"steady          : {_figures(steady)}")
    print(f"rolling restart : {_figures(during)}")
    print(f"(open loop {args.rate}/s for {args.duration} s; the restart of 3 nodes took {restart_s:.0f} s)")
    print(f"raw results: {work}/steady.json {work}/rolling.json")


def _cost_cmd(addresses: list[str], metrics: list[str], args, out: Path) -> list[str]:
    return [
        str(BIN / "hourglass"),
        "loadtest",
        "run",
        "--address",
        ",".join(addresses),
        "--metrics-url",
        ",".join(metrics),
        "--scenario",
        args.scenario,
        "--driver",
        args.driver,
        "--workflows",
        str(args.workflows),
        "--concurrency",
        str(args.concurrency),
        "--worker-processes",
        "3",
        "--warmup",
        "20",
        "--quiet",
        "--out",
        str(out),
    ]


async def _start_pair(work: Path, session, exe: Path | None) -> tuple[list, list[str]]:
    """One node and a 3-node cluster of the build `exe`, each on a fresh keyspace, started and ready."""
    for sub in ("single", "cluster"):
        os.makedirs(work / sub)
    keyspaces = [_keyspace(session), _keyspace(session)]
    single = harness.LocalCluster.create(
        work / "single", ["127.0.0.1"], 9042, keyspaces[0], secure_frontend=False, http=True, exe=exe
    )
    node = single.nodes[0]
    text = node.config.read_text()
    node.config.write_text(text[: text.index("cluster:")])
    single.nodes[1:] = []
    three = harness.LocalCluster.create(
        work / "cluster", ["127.0.0.1"], 9042, keyspaces[1], secure_frontend=False, http=True, exe=exe
    )
    node.start()
    three.start()
    await _wait_frontend(node.address)
    await three.wait_converged(three.nodes, timeout=120)
    return [single, three], keyspaces


def _metrics(cluster) -> list[str]:
    return [f"http://{n.ip}:{n.http_port}/metrics" for n in cluster.nodes]


COST_FIGURES = (
    "workflows_per_s",
    "server_cpu_ms_per_workflow",
    "internal_calls_per_workflow",
    "latency_p99_ms",
    "workflows_failed",
)


async def cost(args, session) -> None:
    work = Path(tempfile.mkdtemp(prefix="hg-cost-"))
    builds = {"after": None}
    if args.before_exe:
        builds = {"before": Path(args.before_exe), **builds}
    pairs: dict[str, list] = {}
    keyspaces: list[str] = []
    rows: list[dict] = []
    try:
        for build, exe in builds.items():
            pairs[build], ks = await _start_pair(work / build, session, exe)
            keyspaces += ks
        for r in range(1, args.rounds + 1):
            for build in builds:
                single, three = pairs[build]
                n = single.nodes[0]
                for label, addresses, metrics in (
                    ("1 node", [n.address] * 3, _metrics(single)),
                    ("3 nodes", [m.address for m in three.nodes], _metrics(three)),
                ):
                    out = work / f"r{r}-{build}-{label.replace(' ', '')}.json"
                    load_before = os.getloadavg()[0]
                    proc = await asyncio.create_subprocess_exec(
                        *_cost_cmd(addresses, metrics, args, out), stdout=subprocess.DEVNULL
                    )
                    await asyncio.wait_for(proc.wait(), 1800)
                    figures = json.loads(out.read_text())
                    row = {"round": r, "build": build, "nodes": label, "load": load_before}
                    row.update({k: _find(figures, k) for k in COST_FIGURES})
                    rows.append(row)
                    print(_cost_row(row), flush=True)
        for build in builds:
            print(f"internal calls of the 3 nodes ({build}, all rounds, warm-up included):")
            for method, count in sorted(_internal_calls(pairs[build][1]).items(), key=lambda x: -x[1]):
                print(f"  {count:8.0f}  {method}")
    finally:
        for pair in pairs.values():
            for c in pair:
                c.stop()
        for ks in keyspaces:
            testing.drop_keyspace(session, ks)
    print()
    print("| build | nodes | wf/s | server CPU ms/wf | internal calls/wf | p99 ms | 3 nodes / 1 node CPU |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for build in builds:
        med = {}
        for label in ("1 node", "3 nodes"):
            sel = [x for x in rows if x["build"] == build and x["nodes"] == label]
            med[label] = {k: _median([x[k] for x in sel]) for k in COST_FIGURES}
        ratios = [
            b["server_cpu_ms_per_workflow"] / a["server_cpu_ms_per_workflow"]
            for a, b in zip(
                [x for x in rows if x["build"] == build and x["nodes"] == "1 node"],
                [x for x in rows if x["build"] == build and x["nodes"] == "3 nodes"],
                strict=True,
            )
            if a["server_cpu_ms_per_workflow"] and b["server_cpu_ms_per_workflow"]
        ]
        for label in ("1 node", "3 nodes"):
            m = med[label]
            ratio = (
                f"{_median(ratios):.2f} (rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
                if label == "3 nodes" and ratios
                else ""
            )
            print(
                f"| {build} | {label} | {_fmt(m['workflows_per_s'])} | {_fmt(m['server_cpu_ms_per_workflow'])} "
                f"| {_fmt(m['internal_calls_per_workflow'])} | {_fmt(m['latency_p99_ms'], '{:.0f}')} | {ratio} |"
            )
    print(f"(medians of {args.rounds} alternating rounds; raw results in {work})")


def _internal_calls(cluster) -> dict[str, float]:
    """service.method -> calls made by the cluster's members so far (hourglass_internal_rpc_calls_total)."""
    import re
    import urllib.request

    totals: dict[str, float] = {}
    for url in _metrics(cluster):
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for m in re.finditer(r"^hourglass_internal_rpc_calls_total\{(.*)\} (\S+)", text, re.M):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            key = f"{labels.get('service')}.{labels.get('method')}"
            totals[key] = totals.get(key, 0.0) + float(m.group(2))
    return totals


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(v, pattern: str = "{:.1f}") -> str:
    return "n/a" if v is None else pattern.format(v)


def _cost_row(row: dict) -> str:
    return f"round {row['round']} {row['build']:6} {row['nodes']:7}: load {row['load']:.1f}, " + ", ".join(
        f"{k}={_fmt(row[k])}" for k in COST_FIGURES
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["throughput", "failover", "rolling", "cost"])
    parser.add_argument("--workflows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--scenario", default="one-activity")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--default-timings", action="store_true")
    parser.add_argument("--rate", type=float, default=10.0, help="rolling: workflow starts per second")
    parser.add_argument("--duration", type=int, default=90, help="rolling: seconds of load per run")
    parser.add_argument("--rounds", type=int, default=3, help="cost: alternating rounds")
    parser.add_argument("--driver", default="raw", help="cost: the load tool's driver (raw or sdk)")
    parser.add_argument(
        "--before-exe", help="cost: another build's `hourglass` executable, measured in the same rounds"
    )
    args = parser.parse_args()
    driver = Cluster(["127.0.0.1"], port=9042)
    session = driver.connect()
    try:
        modes = {"throughput": throughput, "failover": failover, "rolling": rolling, "cost": cost}
        asyncio.run(modes[args.what](args, session))
    finally:
        driver.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
