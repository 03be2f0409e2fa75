"""Tiny runs against a real Hourglass start-dev: the run completes and leaves sane figures behind.

Nothing here asserts on speed: only that every figure is there and consistent with the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.loadtest.cli import loadtest
from hourglass.loadtest.load import LoadPlan
from hourglass.loadtest.report import HISTOGRAM_PNG, INDEX_HTML, THROUGHPUT_PNG
from hourglass.loadtest.runner import RunConfig, run_load_test
from hourglass.loadtest.scenarios import ScenarioRef
from hourglass.loadtest.servers import ManagedServer
from hourglass.loadtest.summary import FIGURE_ROWS

HERE = Path(__file__).parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_tiny_sdk_run_writes_every_figure_and_the_report(hourglass: ManagedServer, tmp_path: Path) -> None:
    out, report = tmp_path / "results.json", tmp_path / "report"
    args = ["run", "--address", hourglass.address, "--workflows", "5", "--concurrency", "2", "--quiet"]
    args += ["--out", str(out), "--report", str(report)]
    if hourglass.metrics_url:
        args += ["--metrics-url", hourglass.metrics_url]
    result = CliRunner().invoke(loadtest, args)
    assert result.exit_code == 0, result.output
    assert "workflows/s" in result.output and "latency p99 (ms)" in result.output

    data = json.loads(out.read_text())
    figures = data["figures"]
    assert {key for key, _, _ in FIGURE_ROWS} <= figures.keys()
    assert data["scenario"] == "one-activity" and data["driver"] == "sdk" and data["mode"] == "closed"
    assert data["workflows_started"] == 5 and data["errors"] == {} and not data["hit_hard_timeout"]
    assert figures["workflows_completed"] == 5 and figures["workflows_failed"] == 0
    assert figures["workflows_per_s"] > 0
    assert figures["activities_per_s"] == pytest.approx(figures["workflows_per_s"])  # one per workflow
    assert 0 < figures["latency_p50_ms"] <= figures["latency_p90_ms"] <= figures["latency_p99_ms"]
    assert figures["latency_p99_ms"] <= figures["latency_max_ms"]
    assert figures["latency_max_ms"] <= figures["elapsed_s"] * 1000
    # started, 3 workflow-task events twice, 3 activity events, completed
    assert figures["history_events_per_workflow"] == 11
    assert figures["transitions_per_workflow_estimated"] == 7
    assert figures["state_transitions_per_s_estimated"] > figures["workflows_per_s"]
    assert len(data["latencies_ms"]) == 5
    # Every step of the one-activity history, in order, then the client's own share of the latency.
    steps = data["steps_p50_ms"]
    assert list(steps)[0] == "2. workflow started → WFT scheduled" and len(steps) == 11, steps
    assert "9. WFT scheduled (sticky) → WFT started" in steps  # the SDK worker's sticky queue
    assert all(v >= 0 for v in steps.values()) and "median ms per step" in result.output
    assert all(len(v) == 5 for v in data["steps_ms"].values())
    assert sum(p["workflows_per_s"] for p in data["timeline"]) == 5
    if hourglass.metrics_url:  # an Hourglass build with /metrics
        assert figures["state_transitions_source"] == "server"
        assert figures["transitions_per_workflow"] > 0
        assert figures["db_writes_per_s"] > 0 and figures["conditional_batches_per_s"] > 0
        assert figures["transitions_per_batch"] >= 1
    else:
        assert figures["db_writes_per_s"] is None and "n/a" in result.output

    assert (report / HISTOGRAM_PNG).read_bytes().startswith(PNG_MAGIC)
    assert (report / THROUGHPUT_PNG).read_bytes().startswith(PNG_MAGIC)
    page = (report / INDEX_HTML).read_text()
    assert HISTOGRAM_PNG in page and THROUGHPUT_PNG in page and "workflows/s" in page


async def test_the_raw_driver_completes_an_open_loop_run(hourglass: ManagedServer) -> None:
    config = RunConfig(
        address=hourglass.address,
        scenario=ScenarioRef(name="five-activities"),
        plan=LoadPlan(rate=5, duration_s=1.0, workflow_timeout_s=30),
        driver="raw",
        metrics_url=hourglass.metrics_url,
    )
    result = await run_load_test(config)
    figures = result.figures()
    assert result.mode == "open" and result.started == 5
    assert figures["workflows_completed"] == 5, result.errors
    assert figures["activities_per_s"] == pytest.approx(5 * figures["workflows_per_s"])
    assert figures["history_events_per_workflow"] == 35


async def test_a_scenario_file_runs_in_two_worker_processes(hourglass: ManagedServer) -> None:
    config = RunConfig(
        address=hourglass.address,
        scenario=ScenarioRef(file=str(HERE / "user_scenario_example.py")),
        plan=LoadPlan(concurrency=4, workflows=6),
        worker_processes=2,
        warmup=2,
    )
    result = await run_load_test(config)
    assert result.scenario == "two-in-parallel"
    assert result.completed == 6, result.errors
    assert result.figures()["activities_per_s"] == pytest.approx(2 * result.figures()["workflows_per_s"])
    assert result.driver_cpu_s is None or result.driver_cpu_s > 0


async def test_several_addresses_spread_starts_and_worker_processes(hourglass: ManagedServer) -> None:
    """`--address a,b`: one client per address (round robin starts), worker process n on address n mod 2;
    the same server named twice completes every workflow, and its metrics, named twice, are summed."""
    config = RunConfig(
        address=f"{hourglass.address},{hourglass.address}",
        scenario=ScenarioRef(name="one-activity"),
        plan=LoadPlan(concurrency=4, workflows=6),
        driver="raw",
        worker_processes=2,
        metrics_url=f"{hourglass.metrics_url},{hourglass.metrics_url}" if hourglass.metrics_url else None,
    )
    result = await run_load_test(config)
    assert result.completed == 6, result.errors
    if hourglass.metrics_url:
        # One node: no internal calls; its counters counted twice (each URL once).
        assert result.server.internal_calls == 0
        assert result.server.transitions is not None and result.server.transitions >= 2 * 6 * 3
