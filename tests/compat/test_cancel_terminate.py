"""Cancellation (seen by the workflow and its activities) and termination."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError, TerminatedError

from . import state
from .helpers import event_types, new_id, run_worker, wait_for_event
from .workflows import (
    CancelActivity,
    CancelChildWithReason,
    CancelExternalWithReason,
    CancelReasonReporter,
    CancelWithCleanup,
    WaitForSignal,
)

WORKFLOW_TASK = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]


async def test_cancel_runs_cleanup_then_cancels(client: Client) -> None:
    wf_id = new_id()
    async with run_worker(client) as tq:
        handle = await client.start_workflow(CancelWithCleanup.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert isinstance(info.value.cause, CancelledError)
    assert wf_id in state.CLEANED_UP
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        *WORKFLOW_TASK,
        "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        *WORKFLOW_TASK,
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        *WORKFLOW_TASK,
        "WORKFLOW_EXECUTION_CANCELED",
    ]


async def test_cancel_before_first_workflow_task(client: Client) -> None:
    """Cancel lands while the first workflow task is still in the queue: the workflow sees both at once."""
    tq = new_id("tq")
    wf_id = new_id()
    handle = await client.start_workflow(CancelWithCleanup.run, id=wf_id, task_queue=tq)
    await handle.cancel()
    async with run_worker(client, task_queue=tq):
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert isinstance(info.value.cause, CancelledError)
    assert wf_id in state.CLEANED_UP
    types = await event_types(handle)
    assert types[:3] == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
    ]
    assert types[-1] == "WORKFLOW_EXECUTION_CANCELED"


async def test_cancel_reaches_running_activity(client: Client) -> None:
    key = new_id("key")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(CancelActivity.run, key, id=new_id(), task_queue=tq)
        await asyncio.wait_for(state.started(key).wait(), 10)
        await handle.cancel()
        # The activity learns about it from a heartbeat response; the workflow waits for it to finish.
        assert await handle.result() == "activity cancelled"
    assert key in state.ACTIVITY_SAW_CANCEL
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        *WORKFLOW_TASK,
        "ACTIVITY_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        *WORKFLOW_TASK,
        "ACTIVITY_TASK_CANCEL_REQUESTED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_CANCELED",
        *WORKFLOW_TASK,
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    cancel_requested = history.events[9].activity_task_cancel_requested_event_attributes
    assert (cancel_requested.scheduled_event_id, cancel_requested.workflow_task_completed_event_id) == (5, 9)
    canceled = history.events[11].activity_task_canceled_event_attributes
    assert (canceled.scheduled_event_id, canceled.started_event_id) == (5, 11)
    assert canceled.latest_cancel_requested_event_id == 10


async def test_terminate(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.terminate("some detail", reason="enough")
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, TerminatedError)
    assert cause.message == "enough"
    assert list(cause.details) == ["some detail"]
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.TERMINATED
    assert desc.close_time is not None
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        *WORKFLOW_TASK,
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    history = await handle.fetch_history()
    assert history.events[-1].workflow_execution_terminated_event_attributes.reason == "enough"


async def test_terminate_while_first_task_pending(client: Client) -> None:
    """No worker ever ran: the pending workflow task is simply dropped."""
    handle = await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq"))
    await handle.terminate()
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    assert isinstance(info.value.cause, TerminatedError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]


async def test_second_cancel_request_is_accepted(client: Client) -> None:
    tq = new_id("tq")
    handle = await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=tq)
    await handle.cancel()
    await handle.cancel()  # not an error, and no second event
    types = await event_types(handle)
    assert types.count("WORKFLOW_EXECUTION_CANCEL_REQUESTED") == 1
    await handle.terminate()


async def test_cancel_reason_reaches_child_and_external_workflows(client: Client) -> None:
    """A workflow's cancel of its child or of another workflow carries its reason to the target's
    cancel-requested event (the SDK adds who asked to an external cancel's reason)."""
    async with run_worker(client) as tq:
        reason = await client.execute_workflow(
            CancelChildWithReason.run, "from-parent", id=new_id(), task_queue=tq
        )
        assert reason == "from-parent"
        target = await client.start_workflow(CancelReasonReporter.run, id=new_id(), task_queue=tq)
        await client.execute_workflow(
            CancelExternalWithReason.run, args=[target.id, "from-elsewhere"], id=new_id(), task_queue=tq
        )
        seen = await target.result()
    assert "from-elsewhere" in seen
    history = await target.fetch_history()
    requested = [
        e.workflow_execution_cancel_requested_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_cancel_requested_event_attributes")
    ]
    assert [r.cause for r in requested] == [seen]
    assert requested[0].identity == "history-service"
