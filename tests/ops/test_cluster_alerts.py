"""The shard panels and HourglassShardUnowned on a real 3-node cluster (tests/cluster's harness, over a real
Cassandra) scraped by a real Prometheus: every shard owned once across the nodes, then kill -9 of a node
leaves its shards unowned until the others take them, and the alert fires for that gap (its `for:` set
to 0 s in the test copy, as failover takes seconds) and the others' shard movements show the take-over.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import pytest
import yaml
from cluster.harness import SHARDS, LocalCluster, _free_on_all

from hourglass.persistence.cassandra import testing as cassandra

from .prometheus import MISSING, Prometheus, start_prometheus

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def shard_rules(path: Path) -> Path:
    """alerts.yml with HourglassShardUnowned alone, firing as soon as its expression holds."""
    rules = yaml.safe_load(RULES.read_text())
    group = rules["groups"][0]
    group["rules"] = [
        dict(r, **{"for": "0s"}) for r in group["rules"] if r["alert"] == "HourglassShardUnowned"
    ]
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.fixture
def keyspace():
    if cassandra.skip_requested():
        pytest.skip("HOURGLASS_SKIP_CASSANDRA is set: a cluster needs a real Cassandra")
    with cassandra.fresh_keyspace("ops") as (config, _, name):
        yield config, name


def vector(prometheus: Prometheus, expr: str) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in prometheus.query(expr)}


async def until(what: str, check, timeout: float, prometheus: Prometheus, cluster: LocalCluster):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.3)
    raise AssertionError(f"{what} not seen within {timeout:.0f}s\n{prometheus.log_tail()}\n{cluster.logs()}")


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
@pytest.mark.timeout(240)
async def test_shards_owned_and_the_unowned_alert_through_a_kill9(keyspace, tmp_path: Path) -> None:
    config, name = keyspace
    cluster = LocalCluster.create(tmp_path, config.hosts, config.port, name, secure_frontend=False)
    metrics_port = _free_on_all(socket.SOCK_STREAM)
    for node in cluster.nodes:  # the harness's configs, with /metrics on each node's own address
        text = node.config.read_text()
        with_metrics, found = re.subn(
            r"(node: \{ip: [^,]+, port: \d+)", rf"\1, metrics_port: {metrics_port}", text
        )
        assert found == 1, f"the harness's node line changed: {text}"
        node.config.write_text(with_metrics)
    targets = [f"{node.ip}:{metrics_port}" for node in cluster.nodes]
    cluster.start()
    prometheus = None
    try:
        await cluster.wait_converged(cluster.nodes)
        prometheus = start_prometheus(tmp_path, targets, [shard_rules(tmp_path / "rules.yml")])

        def owned() -> dict[str, float]:
            return vector(prometheus, "hourglass_shards_owned")

        # The "Shards owned per node" panel: every node holds some, the total is the configured count.
        await until("3 nodes owning every shard", lambda: len(owned()) == 3 and sum(owned().values()) == SHARDS, 60, prometheus, cluster)  # fmt: skip
        assert all(v > 0 for v in owned().values())
        assert set(vector(prometheus, "hourglass_history_shards").values()) == {SHARDS}
        acquired_before = vector(prometheus, 'hourglass_shard_movements_total{direction="acquired"}')
        assert sum(acquired_before.values()) >= SHARDS

        victim, survivors = cluster.nodes[2], cluster.nodes[:2]
        victim_owned = owned()[targets[2]]
        victim.kill9()
        await cluster.wait_converged(survivors, timeout=60)
        survivor_targets = [f"{n.ip}:{metrics_port}" for n in survivors]
        await until("the survivors owning every shard", lambda: sum(owned().values()) == SHARDS and set(owned()) == set(survivor_targets), 30, prometheus, cluster)  # fmt: skip

        # The gap showed: the alert fired (Prometheus keeps it as an ALERTS series) and is resolved now.
        fired = prometheus.query(
            'max_over_time(ALERTS{alertname="HourglassShardUnowned", alertstate="firing"}[3m])'
        )
        assert (
            fired
            and fired[0]["metric"]["job"] == "hourglass"
            and fired[0]["metric"]["severity"] == "critical"
        )

        def resolved() -> bool:
            alerts = prometheus.api("alerts")["alerts"]
            return not [a for a in alerts if a["labels"]["alertname"] == "HourglassShardUnowned"]

        await until("the alert resolved", resolved, 15, prometheus, cluster)  # the next evaluations
        # The survivors took the victim's shards: their acquisitions grew by as many.
        acquired_after = vector(prometheus, 'hourglass_shard_movements_total{direction="acquired"}')
        taken = sum(acquired_after[t] - acquired_before[t] for t in survivor_targets)
        assert taken >= victim_owned
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
