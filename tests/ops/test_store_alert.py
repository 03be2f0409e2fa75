"""HourglassStoreUnavailable for real: a node reaches the shared Cassandra through a TCP proxy of the test's
own; cutting the proxy is a network cut between node and database (the shared node itself is never
touched). Clients get UNAVAILABLE, the availability gauge drops, the alert fires; once the proxy is back
the node reconnects, a workflow starts again and the alert resolves.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError

from hourglass.loadtest.servers import ManagedServer, free_port
from hourglass.persistence.cassandra import testing as cassandra

from .prometheus import MISSING, Prometheus, start_prometheus

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
ALERT = "HourglassStoreUnavailable"
# Statements give up quickly, so the cut turns into UNAVAILABLE well within the client's deadline.
STORE_OPTIONS = {"request_timeout_s": 2, "reconnect_max_delay_s": 1}


class CuttableProxy:
    """Forwards TCP connections from a local port to Cassandra until cut (listener closed, every
    connection dropped), and again once restored on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def is_open(self) -> bool:
        return self._server is not None

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        # Cancelled only when the test's loop ends with a connection still open: nothing left to relay.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


def store_rules(path: Path) -> Path:
    """The alert alone, firing as soon as its expression holds, its error rate over 10 s instead of 2 min
    (so it also resolves within seconds of the store being back)."""
    rules = yaml.safe_load(RULES.read_text())
    group = rules["groups"][0]
    (rule,) = (r for r in group["rules"] if r["alert"] == ALERT)
    assert "[2m]" in rule["expr"], f"{ALERT}'s rate window is no longer 2m: update the test"
    group["rules"] = [dict(rule, expr=rule["expr"].replace("[2m]", "[10s]"), **{"for": "0s"})]
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.fixture
async def node_behind_proxy(tmp_path: Path) -> AsyncIterator[tuple[ManagedServer, CuttableProxy]]:
    if cassandra.skip_requested():
        pytest.skip("HOURGLASS_SKIP_CASSANDRA is set: this test needs a real Cassandra")
    with cassandra.fresh_keyspace("ops") as (config, _, keyspace):
        proxy = CuttableProxy(config.hosts[0], config.port)
        await proxy.open()
        port, metrics_port = free_port(), free_port()
        node_config = tmp_path / "node.yaml"
        options = ", ".join(f"{k}: {v}" for k, v in STORE_OPTIONS.items())
        node_config.write_text(
            "history_shards: 4\nlog_level: warning\n"
            f"node: {{ip: 127.0.0.1, port: {port}, metrics_port: {metrics_port}}}\n"
            f"store: {{kind: cassandra, cassandra: {{hosts: [127.0.0.1], port: {proxy.port}, "
            f"keyspace: {keyspace}, {options}}}}}\n"
        )
        argv = [
            sys.executable,
            "-m",
            "hourglass.cluster.cli",
            "server",
            "start",
            "--config",
            str(node_config),
        ]
        server = ManagedServer("hourglass-cassandra", port, metrics_port, argv, tmp_path / "node.log")
        try:
            await server.start()
            yield server, proxy
        finally:
            server.stop()
            if proxy.is_open:
                await proxy.cut()


def alert_states(prometheus: Prometheus) -> list[str]:
    return [a["state"] for a in prometheus.api("alerts")["alerts"] if a["labels"]["alertname"] == ALERT]


async def until(what: str, check, timeout: float, prometheus: Prometheus, server: ManagedServer):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.3)
    raise AssertionError(
        f"{what} not seen within {timeout:.0f}s\n{prometheus.log_tail()}\n{server.log_tail()}"
    )


async def start_one(client: Client, timeout_s: float) -> None:
    await client.start_workflow(
        "AnyWorkflow",
        id=f"ops-{uuid.uuid4()}",
        task_queue="ops-nobody",
        rpc_timeout=timedelta(seconds=timeout_s),
    )


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
@pytest.mark.timeout(240)
async def test_a_cut_to_the_store_fires_the_alert_and_healing_resolves_it(node_behind_proxy, tmp_path: Path):
    server, proxy = node_behind_proxy
    prometheus = start_prometheus(
        tmp_path, [f"127.0.0.1:{server.metrics_port}"], [store_rules(tmp_path / "r.yml")]
    )
    try:
        client = await Client.connect(server.address)
        await start_one(client, 10)
        await until("a scrape of the healthy node", lambda: prometheus.query("hourglass_persistence_available == 1"), 30, prometheus, server)  # fmt: skip
        assert alert_states(prometheus) == []

        await proxy.cut()
        outcomes = []
        deadline = time.monotonic() + 60
        while not alert_states(prometheus) == ["firing"] and time.monotonic() < deadline:
            try:
                await start_one(client, 8)
                outcomes.append("OK")
            except RPCError as e:
                outcomes.append(e.status.name if e.status is not None else str(e))
        assert alert_states(prometheus) == ["firing"], outcomes
        # Nothing started while the store was cut off; the node answered UNAVAILABLE (which the SDK
        # retries until its deadline, so the client may report DEADLINE_EXCEEDED instead).
        assert outcomes and "OK" not in outcomes
        assert prometheus.query(
            'hourglass_rpc_requests_total{method="StartWorkflowExecution", status="UNAVAILABLE"}'
        )

        await proxy.open()
        deadline = time.monotonic() + 60
        while True:  # the node reconnects within reconnect_max_delay_s of the database being back
            try:
                await start_one(client, 8)
                break
            except RPCError:
                assert time.monotonic() < deadline, server.log_tail()
                await asyncio.sleep(0.5)
        await until("the alert resolved", lambda: alert_states(prometheus) == [], 30, prometheus, server)
    finally:
        prometheus.stop()
