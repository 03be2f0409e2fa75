"""Workflow id uniqueness: conflicts with a running run, reuse after a closed run, request-id idempotency."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy as RawConflictPolicy
from temporalio.api.errordetails.v1 import WorkflowExecutionAlreadyStartedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker
from .workflows import Counter, FailSpec, FailWorkflow, GreetSomeone, WaitForSignal

Reuse = WorkflowIDReusePolicy
Conflict = WorkflowIDConflictPolicy


async def start_waiting(client: Client, wf_id: str, **kwargs: object) -> WorkflowHandle:
    """Starts WaitForSignal on a queue nobody polls: it stays RUNNING until terminated."""
    return await client.start_workflow(
        WaitForSignal.run, id=wf_id, task_queue="compat-nobody-polls", **kwargs
    )


async def run_status(client: Client, wf_id: str, run_id: str | None) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(wf_id, run_id=run_id).describe()).status


async def test_second_start_while_running_is_rejected(client: Client) -> None:
    wf_id = new_id()
    first = await start_waiting(client, wf_id)
    with pytest.raises(WorkflowAlreadyStartedError) as info:
        await start_waiting(client, wf_id)
    err = info.value
    assert err.workflow_id == wf_id
    assert err.run_id == first.result_run_id  # the running run, from WorkflowExecutionAlreadyStartedFailure
    assert err.workflow_type == "WaitForSignal"
    await first.terminate()


@pytest.mark.parametrize(
    "policy",
    [Reuse.ALLOW_DUPLICATE, Reuse.ALLOW_DUPLICATE_FAILED_ONLY, Reuse.REJECT_DUPLICATE],
    ids=lambda p: p.name,
)
async def test_no_reuse_policy_allows_a_second_running_run(
    client: Client, policy: WorkflowIDReusePolicy
) -> None:
    wf_id = new_id()
    first = await start_waiting(client, wf_id)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_waiting(client, wf_id, id_reuse_policy=policy)
    await first.terminate()


async def test_raw_already_started_status_and_details(client: Client) -> None:
    wf_id = new_id()
    first = await start_waiting(client, wf_id)
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=wf_id,
        workflow_type=WorkflowType(name="WaitForSignal"),
        task_queue=TaskQueue(name="compat-nobody-polls"),
        request_id=str(uuid.uuid4()),
    )
    with pytest.raises(RPCError) as info:
        await client.workflow_service.start_workflow_execution(request)
    err = info.value
    assert err.status == RPCStatusCode.ALREADY_EXISTS
    assert err.message == (
        f"Workflow execution is already running. WorkflowId: {wf_id}, RunId: {first.result_run_id}."
    )
    (detail,) = err.grpc_status.details
    failure = WorkflowExecutionAlreadyStartedFailure()
    assert detail.Unpack(failure)
    assert failure.run_id == first.result_run_id
    await first.terminate()


async def test_same_request_id_is_idempotent(client: Client) -> None:
    """A retried StartWorkflowExecution (same request_id) gets the same run back, not an error."""
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=new_id(),
        workflow_type=WorkflowType(name="WaitForSignal"),
        task_queue=TaskQueue(name="compat-nobody-polls"),
        request_id=str(uuid.uuid4()),
    )
    first = await client.workflow_service.start_workflow_execution(request)
    again = await client.workflow_service.start_workflow_execution(request)
    assert again.run_id == first.run_id
    assert first.started and again.started  # the reference answers the retry exactly like the original
    await client.get_workflow_handle(request.workflow_id).terminate()


async def _completed(client: Client, wf_id: str) -> str:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(GreetSomeone.run, "x", id=wf_id, task_queue=tq)
        await handle.result()
    assert handle.result_run_id
    return handle.result_run_id


async def _failed(client: Client, wf_id: str) -> str:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(FailWorkflow.run, FailSpec("no"), id=wf_id, task_queue=tq)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert handle.result_run_id
    return handle.result_run_id


async def _terminated(client: Client, wf_id: str) -> str:
    handle = await start_waiting(client, wf_id)
    await handle.terminate()
    assert handle.result_run_id
    return handle.result_run_id


CLOSERS = {"completed": _completed, "failed": _failed, "terminated": _terminated}


@pytest.mark.parametrize(
    "policy, closed_as, allowed",
    [
        (Reuse.ALLOW_DUPLICATE, "completed", True),
        (Reuse.ALLOW_DUPLICATE, "failed", True),
        (Reuse.ALLOW_DUPLICATE_FAILED_ONLY, "completed", False),
        (Reuse.ALLOW_DUPLICATE_FAILED_ONLY, "failed", True),
        (Reuse.ALLOW_DUPLICATE_FAILED_ONLY, "terminated", True),  # terminated counts as "failed" here
        (Reuse.REJECT_DUPLICATE, "completed", False),
        (Reuse.REJECT_DUPLICATE, "failed", False),
        (Reuse.REJECT_DUPLICATE, "terminated", False),
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
async def test_reuse_policy_after_close(
    client: Client, policy: WorkflowIDReusePolicy, closed_as: str, allowed: bool
) -> None:
    wf_id = new_id()
    old_run = await CLOSERS[closed_as](client, wf_id)
    if allowed:
        new = await start_waiting(client, wf_id, id_reuse_policy=policy)
        assert new.result_run_id and new.result_run_id != old_run
        # The id now resolves to the new run.
        assert (await client.get_workflow_handle(wf_id).describe()).run_id == new.result_run_id
        await new.terminate()
    else:
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            await start_waiting(client, wf_id, id_reuse_policy=policy)
        assert info.value.run_id == old_run  # the closed run that blocks the id


async def _assert_terminated_by_new_run(client: Client, wf_id: str, old_run: str, new_run: str) -> None:
    assert await run_status(client, wf_id, old_run) == WorkflowExecutionStatus.TERMINATED
    assert await run_status(client, wf_id, new_run) == WorkflowExecutionStatus.RUNNING
    history = await client.get_workflow_handle(wf_id, run_id=old_run).fetch_history()
    terminated = history.events[-1].workflow_execution_terminated_event_attributes
    # The same wording for the reuse policy and for the conflict policy.
    assert terminated.reason == "TerminateIfRunning WorkflowIdReusePolicy"
    assert terminated.details.payloads[0].data == f'"terminated by new runID: {new_run}"'.encode()
    assert terminated.identity == "history-service"


async def test_terminate_if_running(client: Client) -> None:
    wf_id = new_id()
    old = await start_waiting(client, wf_id)
    new = await start_waiting(client, wf_id, id_reuse_policy=Reuse.TERMINATE_IF_RUNNING)
    assert new.result_run_id != old.result_run_id
    await _assert_terminated_by_new_run(client, wf_id, old.result_run_id or "", new.result_run_id or "")
    with pytest.raises(WorkflowFailureError):
        await client.get_workflow_handle(wf_id, run_id=old.result_run_id).result()
    await new.terminate()


async def test_terminate_if_running_when_nothing_runs_just_starts(client: Client) -> None:
    wf_id = new_id()
    first = await start_waiting(client, wf_id, id_reuse_policy=Reuse.TERMINATE_IF_RUNNING)
    assert await run_status(client, wf_id, first.result_run_id) == WorkflowExecutionStatus.RUNNING
    await first.terminate()


async def test_conflict_policy_use_existing(client: Client) -> None:
    wf_id = new_id()
    old = await start_waiting(client, wf_id)
    same = await start_waiting(client, wf_id, id_conflict_policy=Conflict.USE_EXISTING)
    assert same.result_run_id == old.result_run_id
    assert await run_status(client, wf_id, old.result_run_id) == WorkflowExecutionStatus.RUNNING
    await old.terminate()


async def test_conflict_policy_use_existing_raw_says_not_started(client: Client) -> None:
    wf_id = new_id()
    old = await start_waiting(client, wf_id)
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=wf_id,
        workflow_type=WorkflowType(name="WaitForSignal"),
        task_queue=TaskQueue(name="compat-nobody-polls"),
        request_id=str(uuid.uuid4()),
        workflow_id_conflict_policy=RawConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
    )
    response = await client.workflow_service.start_workflow_execution(request)
    assert response.run_id == old.result_run_id
    assert response.started is False
    await old.terminate()


async def test_conflict_policy_terminate_existing(client: Client) -> None:
    wf_id = new_id()
    old = await start_waiting(client, wf_id)
    new = await start_waiting(client, wf_id, id_conflict_policy=Conflict.TERMINATE_EXISTING)
    assert new.result_run_id != old.result_run_id
    await _assert_terminated_by_new_run(client, wf_id, old.result_run_id or "", new.result_run_id or "")
    await new.terminate()


async def test_conflict_policy_fail(client: Client) -> None:
    wf_id = new_id()
    old = await start_waiting(client, wf_id)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_waiting(client, wf_id, id_conflict_policy=Conflict.FAIL)
    await old.terminate()


async def test_conflict_policy_does_not_apply_to_closed_runs(client: Client) -> None:
    """USE_EXISTING only concerns a running run; a closed one is governed by the reuse policy."""
    wf_id = new_id()
    old_run = await _terminated(client, wf_id)
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_waiting(
            client, wf_id, id_reuse_policy=Reuse.REJECT_DUPLICATE, id_conflict_policy=Conflict.USE_EXISTING
        )
    new = await start_waiting(client, wf_id, id_conflict_policy=Conflict.USE_EXISTING)
    assert new.result_run_id != old_run
    await new.terminate()


async def test_terminate_if_running_with_a_conflict_policy_is_invalid(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await start_waiting(
            client, new_id(), id_reuse_policy=Reuse.TERMINATE_IF_RUNNING, id_conflict_policy=Conflict.FAIL
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert info.value.message == (
        "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING cannot be used "
        "together with a WorkflowIDConflictPolicy"
    )


async def test_a_start_handle_keeps_to_its_own_chain_of_runs(client: Client) -> None:
    """A handle from start_workflow names the run it started as the first of its chain: once another
    start reuses the id, that handle's cancel, terminate and update find no workflow, as on the
    reference, instead of reaching the new run."""
    wf_id = new_id()
    async with run_worker(client) as tq:
        first = await client.start_workflow(Counter.run, id=wf_id, task_queue=tq)
        await first.terminate()
        second = await client.start_workflow(Counter.run, id=wf_id, task_queue=tq)
        for call in (first.cancel, first.terminate, lambda: first.execute_update(Counter.add, 1)):
            with pytest.raises(RPCError) as info:
                await call()
            assert info.value.status == RPCStatusCode.NOT_FOUND
            assert "workflow execution not found" in str(info.value)
        assert await second.execute_update(Counter.add, 2) == 2
        await second.terminate()
