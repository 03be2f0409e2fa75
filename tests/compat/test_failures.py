"""Workflow failures, workflow timeouts and workflow-task failures/timeouts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import RetryState as RawRetryState
from temporalio.api.enums.v1 import TimeoutType as RawTimeoutType
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from . import state
from .helpers import event_types, new_id, run_worker
from .workflows import (
    ActivitySpec,
    FailFirstTask,
    FailSpec,
    FailWorkflow,
    GreetSomeone,
    Retry,
    RunActivity,
    SlowToDecide,
    WaitForSignal,
)


async def test_workflow_application_error(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            FailWorkflow.run,
            FailSpec("boom", type="MyError", non_retryable=True, details=[{"k": 1}, "two"]),
            id=new_id(),
            task_queue=tq,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "boom"
    assert cause.type == "MyError"
    assert cause.non_retryable is True
    assert list(cause.details) == [{"k": 1}, "two"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    history = await handle.fetch_history()
    last = history.events[-1]
    assert last.workflow_execution_failed_event_attributes.failure.message == "boom"
    # No retry policy on the workflow: nothing to retry.
    assert (
        last.workflow_execution_failed_event_attributes.retry_state
        == RawRetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    )
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_FAILED",
    ]


async def test_retryable_application_error_still_fails_without_retry_policy(client: Client) -> None:
    async with run_worker(client) as tq:
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                FailWorkflow.run, FailSpec("soft", type="Soft"), id=new_id(), task_queue=tq
            )
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.message, cause.type, cause.non_retryable) == ("soft", "Soft", False)


async def test_activity_failure_is_activity_error(client: Client) -> None:
    key = new_id("key")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            RunActivity.run,
            ActivitySpec("flaky", [key, 99, "Broken"], start_to_close=5, retry=Retry(maximum_attempts=1)),
            id=new_id(),
            task_queue=tq,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    act_err = info.value.cause
    assert isinstance(act_err, ActivityError)
    assert act_err.activity_type == "flaky"
    assert act_err.activity_id == "1"  # the SDK numbers activities from 1
    assert act_err.scheduled_event_id == 5
    assert act_err.started_event_id == 6
    assert act_err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    cause = act_err.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.message, cause.type) == ("attempt 1 failed", "Broken")
    assert state.ATTEMPTS[key] == [1]
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_FAILED",
    ]


@pytest.mark.parametrize(
    "which, retry_state",
    [
        pytest.param("execution_timeout", RawRetryState.RETRY_STATE_TIMEOUT, id="execution_timeout"),
        # Surprise: a run timeout (no retry policy) is recorded as RETRY_POLICY_NOT_SET, not TIMEOUT.
        pytest.param("run_timeout", RawRetryState.RETRY_STATE_RETRY_POLICY_NOT_SET, id="run_timeout"),
    ],
)
async def test_workflow_timeout(client: Client, which: str, retry_state: int) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            WaitForSignal.run, id=new_id(), task_queue=tq, **{which: timedelta(seconds=1)}
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, TimeoutError)
    # The SDK builds this error itself from WorkflowExecutionTimedOut: always START_TO_CLOSE.
    assert cause.type == TimeoutType.START_TO_CLOSE
    assert (await handle.describe()).status == WorkflowExecutionStatus.TIMED_OUT
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_TIMED_OUT",
    ]
    timed_out = history.events[-1].workflow_execution_timed_out_event_attributes
    assert timed_out.retry_state == retry_state


async def test_workflow_task_failure_is_retried(client: Client) -> None:
    """A non-ApplicationError exception fails the workflow task (not the workflow); the server retries it."""
    wf_id = new_id()
    async with run_worker(client) as tq:
        handle = await client.start_workflow(FailFirstTask.run, id=wf_id, task_queue=tq)
        assert await handle.result() == "recovered"
    assert wf_id in state.FAILED_FIRST_TASK
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    failed = history.events[3].workflow_task_failed_event_attributes
    assert (
        failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
    )
    assert failed.failure.message == "deliberate workflow task failure"
    assert (failed.scheduled_event_id, failed.started_event_id) == (2, 3)
    retried = history.events[4].workflow_task_scheduled_event_attributes
    assert retried.attempt == 2


async def test_workflow_task_timeout_is_retried(client: Client) -> None:
    """A worker takes the first workflow task and dies: the server times the task out and hands it on."""
    tq = new_id("tq")
    handle = await client.start_workflow(
        GreetSomeone.run, "again", id=new_id(), task_queue=tq, task_timeout=timedelta(seconds=1)
    )
    # The "worker that dies": poll the task by hand and never answer it.
    poll = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=tq), identity="dies-mid-task", binary_checksum="x"
        ),
        timeout=timedelta(seconds=10),
    )
    assert poll.task_token
    assert poll.workflow_execution.workflow_id == handle.id
    assert (poll.attempt, poll.started_event_id, poll.previous_started_event_id) == (1, 3, 0)
    assert [e.event_id for e in poll.history.events] == [1, 2, 3]
    async with run_worker(client, task_queue=tq):
        assert await handle.result() == "Hello, again!"
    history = await handle.fetch_history()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_TIMED_OUT",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    timed_out = history.events[3].workflow_task_timed_out_event_attributes
    assert timed_out.timeout_type == RawTimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    assert (timed_out.scheduled_event_id, timed_out.started_event_id) == (2, 3)
    assert history.events[4].workflow_task_scheduled_event_attributes.attempt == 2
    assert history.events[2].workflow_task_started_event_attributes.identity == "dies-mid-task"


async def test_a_slow_worker_gets_more_time_from_the_fourth_attempt(client: Client) -> None:
    """A worker slower than the workflow task timeout: attempts 1-3 time out, the 4th and later get 5 s
    more, doubling, jittered (as on the reference), so the run gets through instead of timing out forever.
    A query sent meanwhile waits for the task in flight and is answered once one gets through."""
    async with run_worker(client, debug_mode=True) as tq:  # debug_mode: no deadlock detection
        handle = await client.start_workflow(
            SlowToDecide.run, 1.5, id=new_id(), task_queue=tq, task_timeout=timedelta(seconds=1)
        )
        assert await handle.query(SlowToDecide.phase, rpc_timeout=timedelta(seconds=40)) == "decided"
        assert await handle.result() == "decided"
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_TIMED_OUT",
        # Attempts 2, 3... timed out too, transient (not in history); the one that got through is written.
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    events = (await handle.fetch_history()).events
    first = events[1].workflow_task_scheduled_event_attributes
    assert (first.attempt, first.start_to_close_timeout.ToTimedelta()) == (1, timedelta(seconds=1))
    last = events[4].workflow_task_scheduled_event_attributes
    assert last.attempt >= 4
    extension = 5.0 * 2 ** (last.attempt - 4)
    assert 1 + 0.8 * extension <= last.start_to_close_timeout.ToTimedelta().total_seconds() <= 1 + extension
    # Written at completion, its events keep the times the worker saw: it held the task 1.5 s.
    held = events[6].event_time.ToDatetime() - events[5].event_time.ToDatetime()
    assert held >= timedelta(seconds=1)
    assert events[4].event_time.ToDatetime() <= events[5].event_time.ToDatetime()
