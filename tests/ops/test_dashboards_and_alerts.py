"""The Grafana dashboard and the alert rules in deploy/, checked on a real Prometheus scraping a start-dev
node under a little real load: every panel's query returns data, promtool accepts the rules, and alerts
provoked for real fire (a queue with a backlog and no worker, a scrape target that is down) while those
about a healthy node stay silent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from hourglass.loadtest.servers import ManagedServer, free_port, hourglass_server

from .prometheus import MISSING, PROMTOOL, Prometheus, start_prometheus

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "hourglass.json"

needs_prometheus = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

# Grafana's $__rate_interval is at least 4 scrape intervals; the test scrapes every second.
RATE_INTERVAL = "10s"
WORK_QUEUE = "ops-work"
BACKLOG_QUEUE = "ops-backlog"  # no worker ever polls it
BACKLOG_WORKFLOWS = 3
# The test copy of the rules: thresholds a healthy node crosses at once, and no waiting (`for: 0s`).
PROVOKED = {
    "HourglassTaskQueueBacklogAge": ("> 300", "> 2"),  # tasks on BACKLOG_QUEUE wait longer than 2 s
    "HourglassEventLoopLag": ("> 0.1", "> 0"),  # every wake-up is a little late
    "HourglassNodeDown": None,  # a scrape target where nothing listens
}
SILENT = {"HourglassShardUnowned", "HourglassStoreUnavailable"}  # the node owns its shards, SQLite answers


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=30))


def load_dashboard_module() -> Any:
    spec = importlib.util.spec_from_file_location("dashboard", REPO / "tools" / "grafana" / "dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboard_is_what_the_generator_writes() -> None:
    assert DASHBOARD.read_text() == load_dashboard_module().render(), (
        "deploy/grafana/hourglass.json is stale: run python tools/grafana/dashboard.py"
    )
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["instance"]["includeAll"] and variables["DS_PROMETHEUS"]["type"] == "datasource"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert all('instance=~"$instance"' in t["expr"] for t in panel["targets"]), panel["title"]


@needs_prometheus
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout + checked.stderr
    for rule in rules:
        assert rule["for"] and rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    # The alerts a single healthy node cannot provoke (shards unowned, store unreachable) on series
    # that describe the situation: promtool's own rule unit tests.
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def provoking_rules(path: Path) -> Path:
    """A copy of deploy/prometheus/alerts.yml whose PROVOKED alerts fire on this test's node at once."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            if name in PROVOKED:
                rule["for"] = "0s"
                if PROVOKED[name] is not None:
                    old, new = PROVOKED[name]
                    assert old in rule["expr"], f"{name}'s threshold is no longer {old!r}: update PROVOKED"
                    rule["expr"] = rule["expr"].replace(old, new)
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[ManagedServer]:
    server = hourglass_server(tmp_path)
    assert server.metrics_port is not None
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus_for(tmp_path: Path):
    started: list[Prometheus] = []

    def start(targets: list[str], rules: Path) -> Prometheus:
        started.append(start_prometheus(tmp_path, targets, [rules]))
        return started[-1]

    yield start
    for p in started:
        p.stop()


async def keep_busy(client: Client, stop: asyncio.Event, done: list[str]) -> None:
    """One-activity workflows one after the other until told to stop."""
    while not stop.is_set():
        result = await client.execute_workflow(
            Greeting.run, f"n{len(done)}", id=f"ops-{uuid.uuid4()}", task_queue=WORK_QUEUE
        )
        done.append(result)
        await asyncio.sleep(0.1)


async def wait_for(what: str, check, deadline_s: float, prometheus: Prometheus) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {deadline_s:.0f}s\n{prometheus.log_tail()}")
        await asyncio.sleep(0.5)


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(hourglass_[a-z_]+|up)\b", expr))


@needs_prometheus
@pytest.mark.timeout(150)
async def test_every_panel_has_data_and_provoked_alerts_fire(
    node: ManagedServer, prometheus_for, tmp_path: Path
):
    instance = f"127.0.0.1:{node.metrics_port}"
    down = f"127.0.0.1:{free_port()}"  # nothing listens there: its `up` is 0
    prometheus = prometheus_for([instance, down], provoking_rules(tmp_path / "rules.yml"))

    client = await Client.connect(node.address)
    for i in range(BACKLOG_WORKFLOWS):
        await client.start_workflow(Greeting.run, f"b{i}", id=f"ops-backlog-{i}", task_queue=BACKLOG_QUEUE)
    # A client's mistake, answered NOT_FOUND: it shows in the errors panel.
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle("ops-no-such-workflow").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    stop, done = asyncio.Event(), []
    async with Worker(
        client,
        task_queue=WORK_QUEUE,
        workflows=[Greeting],
        activities=[greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        busy = asyncio.create_task(keep_busy(client, stop, done))
        try:
            # Rates need two scrapes of the load within the window.
            await wait_for(
                "transitions in Prometheus",
                lambda: prometheus.query(f"sum(rate(hourglass_transitions_total[{RATE_INTERVAL}])) > 0"),
                60,
                prometheus,
            )
            await asyncio.sleep(2)
            empty = []
            results: dict[str, list[dict[str, Any]]] = {}
            for title, expr in dashboard_targets():
                query = expr.replace("$instance", instance).replace("$__rate_interval", RATE_INTERVAL)
                results[query] = prometheus.query(query)
                if not results[query]:
                    empty.append(f"{title}: {query}")
            assert not empty, "panels without data:\n" + "\n".join(empty)
            nodes = prometheus.api("label/instance/values", **{"match[]": "hourglass_transitions_total"})
            assert nodes == [instance]  # the dashboard's `instance` variable lists the node

            def series(expr: str) -> dict[str, float]:
                query = expr.replace("$instance", instance).replace("$__rate_interval", RATE_INTERVAL)
                return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in results[query]}

            by_expr = {expr: series(expr) for _, expr in dashboard_targets()}
            backlog = next(v for e, v in by_expr.items() if e.startswith("sum by (namespace, task_queue"))
            key = json.dumps(
                {"namespace": "default", "task_queue": BACKLOG_QUEUE, "task_type": "workflow"}, sort_keys=True
            )
            assert backlog[key] == BACKLOG_WORKFLOWS
            owned = next(v for e, v in by_expr.items() if e.startswith("sum(hourglass_shards_owned"))
            configured = next(v for e, v in by_expr.items() if e.startswith("max(hourglass_history_shards"))
            assert list(owned.values()) == list(configured.values()) == [4.0]
            errors = next(v for e, v in by_expr.items() if "status!=" in e)
            assert any('"method": "DescribeWorkflowExecution", "status": "NOT_FOUND"' in k for k in errors)
        finally:
            stop.set()
            await asyncio.wait_for(busy, 60)
    assert len(done) >= 3 and all(r.startswith("hello ") for r in done)

    def firing() -> dict[str, list[dict[str, str]]]:
        alerts: dict[str, list[dict[str, str]]] = {}
        for alert in prometheus.api("alerts")["alerts"]:
            if alert["state"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return alerts

    fired = await wait_for(
        "the provoked alerts firing", lambda: PROVOKED.keys() <= firing().keys() and firing(), 40, prometheus
    )
    assert [a["instance"] for a in fired["HourglassNodeDown"]] == [down]
    assert [a["instance"] for a in fired["HourglassEventLoopLag"]] == [instance]
    assert [(a["task_queue"], a["task_type"]) for a in fired["HourglassTaskQueueBacklogAge"]] == [
        (BACKLOG_QUEUE, "workflow")
    ]
    assert all(a["severity"] for alerts in fired.values() for a in alerts)
    # The others stay silent on a healthy node, yet read series that exist (no misspelt metric).
    states = {r["name"]: r for g in prometheus.api("rules")["groups"] for r in g["rules"]}
    assert set(states) == set(PROVOKED) | SILENT
    for name, rule in states.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
    for name in SILENT:
        assert states[name]["state"] == "inactive", states[name]
        for metric in metric_names(states[name]["query"]):
            assert prometheus.api("series", **{"match[]": metric}), (
                f"{name} reads {metric}, which has no series"
            )
