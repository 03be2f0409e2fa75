"""The figures the cluster page and `hourglass cluster status` show: per-shard transition rates over the
last seconds, the event loop's recent lag, and the CLI's rendering of both (text and JSON)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from hourglass.cluster.history.transition_rate import TransitionRates
from hourglass.cluster.loop_lag import LoopLagMonitor
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.status import render, status_json
from hourglass.loadtest.servers import ManagedServer, hourglass_server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_shard_rate_is_its_recent_transitions_per_second() -> None:
    clock = Clock()
    rates = TransitionRates(window_s=10, clock=clock)
    clock.now += 20  # long after start
    for _ in range(10):
        rates.add(3, 50)  # 50 transitions a second on shard 3 for 10 s
        rates.add(5, 1)
        clock.now += 1
    assert 45 <= rates.rate(3) <= 56
    assert 0.9 <= rates.rate(5) <= 1.2
    assert rates.rate(0) == 0.0  # a shard with nothing committed
    clock.now += 11  # quiet since: the rate falls back to zero
    assert rates.rates([3, 5]) == {3: 0.0, 5: 0.0}


def test_right_after_start_the_rate_is_over_the_time_elapsed() -> None:
    clock = Clock()
    rates = TransitionRates(window_s=10, clock=clock)
    clock.now += 2
    rates.add(1, 20)
    assert 9 <= rates.rate(1) <= 11  # 20 over 2 s, not over the full 10 s window


async def test_recent_loop_lag_shows_a_stall_then_forgets_it() -> None:
    monitor = LoopLagMonitor(interval_s=0.01)
    monitor.start()
    try:
        await asyncio.sleep(0.1)
        time.sleep(0.3)  # noqa: ASYNC251 - a handler computing on the loop
        await asyncio.sleep(0.1)
        worst, p99 = monitor.recent()
        assert worst >= 0.25
        assert p99 <= worst
        await asyncio.sleep(0.3)
        assert monitor.recent(window_s=0.2)[0] < 0.25  # the stall is out of a short window
    finally:
        await monitor.stop()


def _status() -> pb.ClusterStatusResponse:
    resp = pb.ClusterStatusResponse(answered_by="a:1", history_shard_count=2, quorum=True)
    resp.members.add(id="a:1", state="alive", roles=["history"], shard_count=1, partition_count=1,
                     loop_lag_max_seconds=0.12, loop_lag_p99_seconds=0.004)  # fmt: skip
    resp.members.add(id="b:1", state="dead", shard_count=-1, partition_count=-1,
                     loop_lag_max_seconds=-1, loop_lag_p99_seconds=-1)  # fmt: skip
    resp.shards.add(shard_id=0, member_id="a:1", transitions_per_second=12.5)
    resp.shards.add(shard_id=1, member_id="")
    resp.partitions.add(namespace="default", task_queue="orders", task_type=1, member_id="a:1", backlog=7)
    return resp


def test_cluster_status_text_shows_lag_rates_and_partitions() -> None:
    text = render(_status())
    lines = text.splitlines()
    assert lines[1].split()[-5:] == ["TRANSITIONS/S", "LAG", "MAX", "LAG", "P99"]
    a = next(line for line in lines if line.startswith("a:1"))
    assert a.split()[-3:] == ["12.5", "120ms", "4ms"]
    b = next(line for line in lines if line.startswith("b:1"))
    assert b.split()[-3:] == ["0.0", "?", "?"]
    assert any(line.split() == ["1", "(none)", "0.0"] for line in lines)
    assert any(line.split() == ["default", "orders", "workflow", "0", "a:1", "7"] for line in lines)


def test_cluster_status_json_is_the_page_data() -> None:
    data = json.loads(status_json(_status()))
    assert data["members"][0]["loop_lag_max_seconds"] == 0.12
    assert data["shards"][1] == {"shard_id": 1, "member_id": "", "transitions_per_second": 0.0}
    assert data["partitions"][0]["task_queue"] == "orders"


@pytest.fixture
async def start_dev(tmp_path: Path) -> AsyncIterator[ManagedServer]:
    server = hourglass_server(tmp_path)
    assert server.metrics_url is not None
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(120)
async def test_cluster_status_and_the_page_read_the_same_answer_on_start_dev(
    start_dev: ManagedServer,
) -> None:
    """One member (start-dev itself) owning every shard, the workflows just started counted on their
    shards, and their task queue's partitions listed: the same in `hourglass cluster status -o json` and the page's
    JSON."""
    client = await Client.connect(start_dev.address)
    for i in range(5):
        await client.start_workflow("Figures", id=f"figures-{i}", task_queue="figures-q")
    exe = str(Path(sys.executable).with_name("hourglass"))
    out = await asyncio.to_thread(
        subprocess.run,
        [exe, "cluster", "status", "--address", start_dev.address, "--shards", "--partitions", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    api_url = start_dev.metrics_url.removesuffix("/metrics") + "/api/v1/cluster"
    page = json.loads(await asyncio.to_thread(lambda: urllib.request.urlopen(api_url, timeout=10).read()))
    for data in (cli, page):
        assert [(m["id"], m["state"]) for m in data["members"]] == [(start_dev.address, "alive")]
        assert {s["member_id"] for s in data["shards"]} == {start_dev.address}
        assert sum(s["transitions_per_second"] for s in data["shards"]) > 0
        # The queue's 4 partitions (the reference's default) share the 5 tasks: each lists its own part.
        assert {(p["namespace"], p["task_queue"]) for p in data["partitions"]} == {("default", "figures-q")}
        assert {p["partition"] for p in data["partitions"]} <= {0, 1, 2, 3}
        assert sum(p["backlog"] for p in data["partitions"]) == 5
    text = await asyncio.to_thread(
        subprocess.run,
        [exe, "cluster", "status", "--address", start_dev.address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert text.stdout.splitlines()[2].startswith(f"{start_dev.address}  alive"), text.stdout
