"""Builders for the records the conformance tests write (defaults keep each test about one thing)."""

from __future__ import annotations

import dataclasses

from hourglass.persistence.records import (
    CurrentRunMode,
    CurrentRunRecord,
    CurrentRunWrite,
    ExecutionRecord,
    ExecutionWrite,
    RunStatus,
    TimerTask,
    TransferTask,
)
from hourglass.persistence.store import Store

NS = "ns-1"
SHARD = 7
WORKFLOW_RUNNING = 1
WORKFLOW_COMPLETED = 2


def execution(workflow_id: str, run_id: str, version: int = 1, state: bytes | None = None) -> ExecutionRecord:
    return ExecutionRecord(NS, workflow_id, run_id, state or f"{run_id}@{version}".encode(), version)


def current_run(
    workflow_id: str,
    run_id: str,
    status: RunStatus = RunStatus.RUNNING,
    execution_status: int = WORKFLOW_RUNNING,
) -> CurrentRunRecord:
    return CurrentRunRecord(
        NS,
        workflow_id,
        run_id,
        status,
        execution_status,
        create_request_id=f"req-{run_id}",
        start_time_ms=1_000,
        close_time_ms=0 if status is RunStatus.RUNNING else 2_000,
    )


def transfer(
    task_id: int, workflow_id: str = "wf", run_id: str = "run", kind: str = "workflow_task"
) -> TransferTask:
    return TransferTask(task_id, NS, workflow_id, run_id, kind, f"t{task_id}".encode())


def timer(fire_time_ms: int, task_id: int, workflow_id: str = "wf", run_id: str = "run") -> TimerTask:
    return TimerTask(fire_time_ms, task_id, NS, workflow_id, run_id, "user_timer", f"t{task_id}".encode())


def start(
    workflow_id: str,
    run_id: str,
    *,
    replaces: str | None = None,
    transfer_tasks: list[TransferTask] | None = None,
    timer_tasks: list[TimerTask] | None = None,
) -> ExecutionWrite:
    """A new run: row must not exist; pointer CREATE, or REPLACE of `replaces`."""
    mode = CurrentRunMode.CREATE if replaces is None else CurrentRunMode.REPLACE
    return ExecutionWrite(
        execution(workflow_id, run_id, version=1),
        expected_version=None,
        current_run=CurrentRunWrite(mode, current_run(workflow_id, run_id), previous_run_id=replaces),
        transfer_tasks=transfer_tasks or [],
        timer_tasks=timer_tasks or [],
    )


def update(
    workflow_id: str,
    run_id: str,
    expected: int,
    *,
    transfer_tasks: list[TransferTask] | None = None,
    timer_tasks: list[TimerTask] | None = None,
) -> ExecutionWrite:
    """A transition of an existing run that leaves the current-run pointer alone."""
    return ExecutionWrite(
        execution(workflow_id, run_id, version=expected + 1),
        expected_version=expected,
        transfer_tasks=transfer_tasks or [],
        timer_tasks=timer_tasks or [],
    )


def close(workflow_id: str, run_id: str, expected: int) -> ExecutionWrite:
    """The run completes: the pointer must still name it and records the closed status."""
    closed = current_run(workflow_id, run_id, RunStatus.CLOSED, WORKFLOW_COMPLETED)
    return dataclasses.replace(
        update(workflow_id, run_id, expected), current_run=CurrentRunWrite(CurrentRunMode.UPDATE, closed)
    )


async def acquire_shard(store: Store, shard_id: int = SHARD) -> int:
    """Take the shard the way a history node does; returns the new range id."""
    info = await store.get_or_create_shard(shard_id)
    await store.update_shard(
        dataclasses.replace(info, range_id=info.range_id + 1), expected_range_id=info.range_id
    )
    return info.range_id + 1
