"""A second SDK: Go programs (go.temporal.io/sdk, tests/compat/go) against the server under test and the reference.

Each scenario is one run of the `gocompat` program (built once per session by tools/gocompat/build.sh), which
prints what a Go application sees as JSON: results, errors, the SDK's own warnings (e.g. "premature end of
stream"), history event types, replay errors. The test runs it against the server under test and the reference
(`reference_server`; the same process when HOURGLASS_COMPAT_TARGET=reference) and asserts the outputs equal,
plus what the reference must show too (so that a broken scenario cannot pass by failing alike on both).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tools" / "gocompat" / "build.sh"
BINARY = ROOT / "build" / "gocompat" / "gocompat"
GO_MISSING = 3  # build.sh's exit status when Go is not installed

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def gocompat() -> Path:
    """The Go programs, built (incrementally) once per session; skipped where Go is not installed."""
    proc = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900)
    if proc.returncode == GO_MISSING:
        pytest.skip("Go is not installed: the Go SDK compat programs cannot be built")
    assert proc.returncode == 0, f"building tests/compat/go failed:\n{proc.stderr[-4000:]}"
    return BINARY


async def run_scenario(binary: Path, srv: ServerProcess, scenario: str) -> dict[str, Any]:
    """One run of a scenario against one server: its JSON output (the program's stderr on failure)."""
    proc = await asyncio.create_subprocess_exec(
        str(binary), "-address", srv.address, "-scenario", scenario, "-timeout", "90s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, (
        f"gocompat {scenario} against the {srv.kind} server exited {proc.returncode}:\n"
        f"{stderr.decode(errors='replace')[-4000:]}"
    )
    return json.loads(stdout)


async def both(
    binary: Path, server: ServerProcess, reference_server: ServerProcess, scenario: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario's output on the server under test, then on the reference (one after the other: the
    machine is small, and timings are part of some outputs)."""
    ours = await run_scenario(binary, server, scenario)
    if reference_server is server:
        return ours, ours
    return ours, await run_scenario(binary, reference_server, scenario)


async def test_describe_completed_run_keeps_paused_activity(gocompat, server, reference_server):
    """DescribeWorkflow (the Go client's) works, and a completed run still shows the activity it left paused."""
    ours, ref = await both(gocompat, server, reference_server, "describe")
    assert ref["status"] == "Completed" and ref["result"] == "finished"
    assert ref["pending_activities"] == [
        {"activity_type": "BlockingActivity", "attempt": 1, "paused": True, "state": "PauseRequested"}
    ]
    # Known difference, not this test's subject: the reference also lists the TemporalPauseInfo search
    # attribute of a run with a paused activity, which Hourglass does not set yet (issue 18, visibility).
    for out in (ours, ref):
        out["typed_search_attributes"] = [
            n for n in out["typed_search_attributes"] if n != "TemporalPauseInfo"
        ]
    assert ours == ref


async def test_update_to_delayed_start_starts_the_first_task(gocompat, server, reference_server):
    """An update to a run whose start is delayed an hour starts its first workflow task at once."""
    ours, ref = await both(gocompat, server, reference_server, "update-delayed-start")
    assert ref["update_error"] == "" and ref["update_result"] == 5 and ref["update_within_10s"]
    assert ours == ref


async def test_queries_never_reach_the_worker_without_history(gocompat, server, reference_server):
    """Queries on a sticky worker, after signals and after the run closed: right answers, no slow answer,
    and the SDK never logs a workflow task it could not process (\"premature end of stream\")."""
    ours, ref = await both(gocompat, server, reference_server, "queries")
    assert ref["answers"] == [0] * 3 + [1] * 3 + [3] * 3 + [6] * 3 + [10] * 3
    assert ref["slow_queries"] == 0 and ref["sdk_errors"] == []
    assert ours == ref


async def test_activity_cancelled_in_the_task_that_scheduled_it(gocompat, server, reference_server):
    """Schedule and cancel in one task completion: the history is the reference's event by event and replays."""
    ours, ref = await both(gocompat, server, reference_server, "cancel-same-task")
    assert ref["result"] == "activity cancelled" and ref["replay_error"] == ""
    assert ours == ref


async def test_retrying_activity_cancelled_as_the_run_completes(gocompat, server, reference_server):
    """An activity waiting for its retry, cancelled by the task that completes the run: no extra events."""
    ours, ref = await both(gocompat, server, reference_server, "cancel-retrying")
    assert ref["result"] == "finished" and ref["replay_error"] == ""
    assert ref["events"][-2:] == ["ActivityTaskCancelRequested", "WorkflowExecutionCompleted"]
    assert ours == ref


async def test_update_long_poll_uses_the_whole_deadline(gocompat, server, reference_server):
    """A 5 s PollWorkflowExecutionUpdate on an update that completes later ends at its deadline, not 1 s early."""
    ours, ref = await both(gocompat, server, reference_server, "update-long-poll")
    for out in (ours, ref):
        assert out["poll_elapsed_ms"] >= 4500, out
        assert out["poll_has_outcome"] is False
    assert {k: v for k, v in ours.items() if k != "poll_elapsed_ms"} == {
        k: v for k, v in ref.items() if k != "poll_elapsed_ms"
    }


async def test_reset_all_eligible_reapplies_updates(gocompat, server, reference_server):
    """Reset to the first task with ALL_ELIGIBLE reapplies both updates and the signal (1 + 10 + 100)."""
    ours, ref = await both(gocompat, server, reference_server, "reset-reapply")
    assert ref["updates_reapplied"] == 2 and ref["reset_run_result"] == 111
    assert ours == ref


async def test_schedule_described_as_the_reference(gocompat, server, reference_server):
    """A schedule from a cron string, an interval and a calendar: the spec the Go SDK reads back (cron turned
    into calendars, ranges normalized), and search attributes emptied by an update come back nil."""
    ours, ref = await both(gocompat, server, reference_server, "schedule")
    assert ref["spec"]["CronExpressions"] is None and len(ref["spec"]["Calendars"]) == 2
    assert ref["updated_search_attributes_nil"] is True
    assert ours == ref


async def test_sub_second_timeouts_and_retry_intervals(gocompat, server, reference_server):
    """A 200 ms start-to-close timeout and 1 ns / 100 ns retry intervals are recorded and enforced as asked."""
    ours, ref = await both(gocompat, server, reference_server, "durations")
    assert ref["start_to_close_ns"] == 200_000_000
    assert (ref["retry_initial_interval_ns"], ref["retry_maximum_interval_ns"]) == (1, 100)
    assert ref["result"] == "timed out: StartToClose"
    # The timeout fires after the 200 ms, within the reference's timer granularity (it fires at ~1 s; Hourglass
    # at ~200 ms). The Python SDK's test_sync_activity_cancel_after_return_does_not_kill_thread_pool_worker
    # depends on that lateness: it waits 5 s after the timeout for the SDK's local cancel, which comes 5 s after
    # the 200 ms (sdk-core's local_timeout_buffer_for_activities), so a server on time leaves it ~0.1 s.
    for out in {id(o): o for o in (ours, ref)}.values():  # one dict when the reference is the target
        assert 200 <= out.pop("timed_out_after_ms") < 3000, out
    assert ours == ref


async def test_signal_during_the_completing_task(gocompat, server, reference_server):
    """A signal arrives while the task completing the run is in flight: that completion is refused (the task
    fails with UNHANDLED_COMMAND, nothing acknowledged twice) and the next task completes the run, seeing it."""
    ours, ref = await both(gocompat, server, reference_server, "signal-during-completion")
    assert ref["late_signals_seen"] == 1 and ref["sdk_errors"] == []
    assert "WorkflowTaskFailed" in ref["events"]
    assert ours == ref
