#!/usr/bin/env python3
"""Cluster benchmark (not a test): 3 nodes vs 1 node throughput, and kill -9 -> all shards owned again.

    python tools/cluster/bench.py throughput [--workflows 400 --concurrency 40 --scenario one-activity]
    python tools/cluster/bench.py failover [--runs 5]

Needs a Cassandra on 127.0.0.1:9042 (`make cassandra-up`). Every run uses a fresh keyspace (dropped at
the end) and the nodes of tests/cluster/harness.py (127.0.0.1-3, free ports). `throughput` drives the
single node and then the cluster with `hourglass loadtest run` against ONE node's frontend (the cluster
forwards what other members own). `failover` kill -9's a member, then polls another member's status
every 50 ms until every shard is held by a live member again; the timings are those of
tests/cluster/harness.py unless --default-timings (probe 1 s, suspicion 4 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["throughput", "failover"])
    parser.add_argument("--workflows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--scenario", default="one-activity")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--default-timings", action="store_true")
    args = parser.parse_args()
    driver = Cluster(["127.0.0.1"], port=9042)
    session = driver.connect()
    try:
        asyncio.run(throughput(args, session) if args.what == "throughput" else failover(args, session))
    finally:
        driver.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
