"""The differential scenario catalogue: each runs one workflow to completion with a deterministic history.

A scenario is `async (client, task_queue) -> workflow id`. It starts its own worker on `task_queue`
when it wants one, and orders everything that could race (signals, cancels, queries) after the history
event it depends on, so that two runs on the same server give the same normalized history.

`expected` is the event-type sequence the reference produces, pinned here as the contract.

Dump the normalized histories a server produces (from the tests directory):
    python -m compat.scenarios 127.0.0.1:7233 [scenario ...]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    RequestCancelActivityTaskCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    IndexedValueType,
    TaskQueueKind,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    ResetStickyTaskQueueRequest,
    ResetWorkflowExecutionRequest,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskCompletedResponse,
    RespondWorkflowTaskFailedRequest,
)
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy

from .helpers import new_id, run_worker, wait_for_event
from .state import started
from .workflows import (
    UPSERTED_KEYWORD,
    ActivitySpec,
    CancelActivity,
    CancelWithCleanup,
    ContinueLoop,
    Counter,
    ExternalSender,
    FailAfterSignal,
    FailFirstTask,
    FailSpec,
    FailWorkflow,
    GreetSomeone,
    Parent,
    Retry,
    RunActivity,
    SignalCollector,
    SignalOrTimeout,
    Sleeper,
    UpsertSearchAttribute,
    WaitForSignal,
    ZeroTimer,
)

# Returns the workflow id whose current run is compared, or (workflow id, run id) for a specific run.
ScenarioFn = Callable[[Client, str], Awaitable[str | tuple[str, str]]]

WT = ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED", "WORKFLOW_TASK_COMPLETED"]


@dataclass(frozen=True)
class Scenario:
    name: str
    run: ScenarioFn
    expected: list[str]


async def _expect_failure(coro: Awaitable[object]) -> None:
    try:
        await coro
    except WorkflowFailureError:
        return
    raise AssertionError("the workflow was expected to fail")


async def one_activity(client: Client, tq: str) -> str:
    wf_id = new_id("one-activity")
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(GreetSomeone.run, "World", id=wf_id, task_queue=tq)
    return wf_id


async def activity_retry_then_success(client: Client, tq: str) -> str:
    wf_id = new_id("activity-retry")
    spec = ActivitySpec(
        "flaky", [wf_id, 1], start_to_close=5, retry=Retry(initial_interval=0.5, maximum_attempts=3)
    )
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq)
    return wf_id


async def activity_failure(client: Client, tq: str) -> str:
    wf_id = new_id("activity-failure")
    spec = ActivitySpec(
        "flaky",
        [wf_id, 99, "Broken"],
        start_to_close=5,
        retry=Retry(initial_interval=0.5, maximum_attempts=2),
    )
    async with run_worker(client, task_queue=tq):
        await _expect_failure(client.execute_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq))
    return wf_id


async def activity_start_to_close_timeout(client: Client, tq: str) -> str:
    wf_id = new_id("activity-timeout")
    spec = ActivitySpec("slow", [wf_id, 3, 1], start_to_close=1, retry=Retry(initial_interval=0.5))
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq)
    return wf_id


async def activity_heartbeat_timeout(client: Client, tq: str) -> str:
    wf_id = new_id("heartbeat-timeout")
    spec = ActivitySpec(
        "heartbeat_then_stall",
        [wf_id, 5],
        start_to_close=10,
        heartbeat=1,
        retry=Retry(initial_interval=0.5, maximum_attempts=2),
    )
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq)
    return wf_id


async def activity_schedule_to_start_timeout(client: Client, tq: str) -> str:
    wf_id = new_id("schedule-to-start")
    spec = ActivitySpec(
        "say_hello", ["nobody"], schedule_to_start=1, start_to_close=5, task_queue=f"{tq}-nobody"
    )
    async with run_worker(client, task_queue=tq):
        await _expect_failure(client.execute_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq))
    return wf_id


async def timer(client: Client, tq: str) -> str:
    wf_id = new_id("timer")
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(Sleeper.run, 1.0, id=wf_id, task_queue=tq)
    return wf_id


async def cancelled_timer(client: Client, tq: str) -> str:
    wf_id = new_id("cancelled-timer")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(SignalOrTimeout.run, 30.0, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "TIMER_STARTED")
        await handle.signal(SignalOrTimeout.poke)
        await handle.result()
    return wf_id


async def signals(client: Client, tq: str) -> str:
    wf_id = new_id("signals")
    handle = await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=tq)
    # Two signals before any worker: both land before the first workflow task starts.
    await handle.signal(SignalCollector.add, "a")
    await handle.signal(SignalCollector.add, "b")
    async with run_worker(client, task_queue=tq):
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.signal(SignalCollector.add, "c")
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2)
        await handle.signal(SignalCollector.done)
        await handle.result()
    return wf_id


async def query(client: Client, tq: str) -> str:
    wf_id = new_id("query")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        assert await handle.query(SignalCollector.items) == []
        await handle.signal(SignalCollector.add, "q")
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2)
        assert await handle.query(SignalCollector.items) == ["q"]
        await handle.signal(SignalCollector.done)
        await handle.result()
        assert await handle.query(SignalCollector.items) == ["q"]
    return wf_id


async def signal_with_start(client: Client, tq: str) -> str:
    wf_id = new_id("signal-with-start")
    handle = await client.start_workflow(
        SignalCollector.run, id=wf_id, task_queue=tq, start_signal="add", start_signal_args=["first"]
    )
    await handle.signal(SignalCollector.done)
    async with run_worker(client, task_queue=tq):
        assert await handle.result() == ["first"]
    return wf_id


async def cancel(client: Client, tq: str) -> str:
    wf_id = new_id("cancel")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(CancelWithCleanup.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.cancel()
        await _expect_failure(handle.result())
    return wf_id


async def cancel_running_activity(client: Client, tq: str) -> str:
    wf_id = new_id("cancel-activity")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(CancelActivity.run, wf_id, id=wf_id, task_queue=tq)
        await asyncio.wait_for(started(wf_id).wait(), 10)  # the activity is running (and heartbeating)
        await handle.cancel()
        await handle.result()
    return wf_id


async def terminate(client: Client, tq: str) -> str:
    wf_id = new_id("terminate")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.terminate("detail", reason="scenario")
        await _expect_failure(handle.result())
    return wf_id


async def workflow_failure(client: Client, tq: str) -> str:
    wf_id = new_id("workflow-failure")
    spec = FailSpec("boom", type="MyError", non_retryable=True, details=[{"k": 1}])
    async with run_worker(client, task_queue=tq):
        await _expect_failure(client.execute_workflow(FailWorkflow.run, spec, id=wf_id, task_queue=tq))
    return wf_id


async def workflow_task_failure(client: Client, tq: str) -> str:
    wf_id = new_id("workflow-task-failure")
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(FailFirstTask.run, id=wf_id, task_queue=tq)
    return wf_id


async def workflow_task_timeout(client: Client, tq: str) -> str:
    wf_id = new_id("workflow-task-timeout")
    # 2 s: the live worker must finish the retried task within it, even on a loaded machine (with 1 s the
    # reference sometimes timed that one out too, and wrote attempt 3).
    handle = await client.start_workflow(
        GreetSomeone.run, "late", id=wf_id, task_queue=tq, task_timeout=timedelta(seconds=2)
    )
    # A worker that takes the task and dies: poll by hand, never answer.
    await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="dies"),
        timeout=timedelta(seconds=10),
    )
    async with run_worker(client, task_queue=tq):
        await handle.result()
    return wf_id


async def workflow_execution_timeout(client: Client, tq: str) -> str:
    wf_id = new_id("workflow-timeout")
    async with run_worker(client, task_queue=tq):
        # Long enough that even a loaded machine completes the first workflow task before it fires.
        handle = await client.start_workflow(
            WaitForSignal.run, id=wf_id, task_queue=tq, execution_timeout=timedelta(seconds=3)
        )
        await _expect_failure(handle.result())
    return wf_id


async def child_workflows(client: Client, tq: str) -> str:
    wf_id = new_id("parent")
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(Parent.run, id=wf_id, task_queue=tq)
    return wf_id


async def continue_as_new(client: Client, tq: str) -> tuple[str, str]:
    """Compares the first run, the one that records WORKFLOW_EXECUTION_CONTINUED_AS_NEW."""
    wf_id = new_id("continue")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(ContinueLoop.run, args=[0, 2], id=wf_id, task_queue=tq)
        assert await handle.result() == 2
    return wf_id, handle.first_execution_run_id or ""


async def external_signal_and_cancel(client: Client, tq: str) -> str:
    wf_id = new_id("external")
    async with run_worker(client, task_queue=tq):
        collector = await client.start_workflow(SignalCollector.run, id=f"{wf_id}-collector", task_queue=tq)
        waiter = await client.start_workflow(CancelWithCleanup.run, id=f"{wf_id}-waiter", task_queue=tq)
        await client.execute_workflow(
            ExternalSender.run, args=[collector.id, waiter.id], id=wf_id, task_queue=tq
        )
        await _expect_failure(waiter.result())
        assert await collector.query(SignalCollector.items) == ["from a workflow"]
        await collector.terminate()
    return wf_id


async def reset_to_first_task(client: Client, tq: str) -> tuple[str, str]:
    """Runs a workflow that got a signal mid-way, resets it to its first workflow task, compares the new run."""
    wf_id = new_id("reset")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.signal(SignalCollector.add, "before reset")
        await handle.signal(SignalCollector.done)
        await handle.result()
        response = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=WorkflowExecution(workflow_id=wf_id, run_id=handle.result_run_id or ""),
                reason="compat reset",
                workflow_task_finish_event_id=4,
                request_id=new_id("reset-request"),
            )
        )
        reset = client.get_workflow_handle(wf_id, run_id=response.run_id)
        assert await reset.result() == ["before reset"]
    return wf_id, response.run_id


async def upsert_search_attributes(client: Client, tq: str) -> str:
    wf_id = new_id("upsert")
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={UPSERTED_KEYWORD.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    async with run_worker(client, task_queue=tq):
        await client.execute_workflow(UpsertSearchAttribute.run, id=wf_id, task_queue=tq)
    return wf_id


async def sticky_schedule_to_start_timeout(client: Client, tq: str) -> str:
    """A sticky worker that vanishes without a word: its run's next task waits on the sticky queue for
    the sticky schedule-to-start timeout, then moves to the normal queue where a new worker takes it."""
    wf_id = new_id("sticky-timeout")
    svc = client.workflow_service
    sticky = TaskQueue(name=f"{tq}-sticky", kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY, normal_name=tq)
    handle = await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=tq)
    task = await svc.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="vanishes"),
        timeout=timedelta(seconds=10),
    )
    await svc.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default",
            task_token=task.task_token,
            identity="vanishes",
            sticky_attributes=StickyExecutionAttributes(
                worker_task_queue=sticky, schedule_to_start_timeout=Duration(seconds=1)
            ),
        )
    )
    # The sticky worker polls once (empty) and is gone: matching saw it lately, so the task goes there.
    await svc.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=sticky, identity="vanishes"),
        timeout=timedelta(seconds=3),
    )
    await handle.signal(WaitForSignal.finish, "moved")
    await wait_for_event(handle, "WORKFLOW_TASK_TIMED_OUT")
    async with run_worker(client, task_queue=tq):
        await handle.result()
    return wf_id


async def sticky_worker_shutdown(client: Client, tq: str) -> str:
    """A worker that shuts down says so (ShutdownWorker): its runs' next tasks go to the normal queue at
    once (the scheduled event still names the sticky queue)."""
    wf_id = new_id("sticky-shutdown")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
    await handle.signal(WaitForSignal.finish, "after shutdown")
    async with run_worker(client, task_queue=tq):
        await handle.result()
    return wf_id


async def reset_sticky_task_queue(client: Client, tq: str) -> str:
    wf_id = new_id("reset-sticky")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await client.workflow_service.reset_sticky_task_queue(
            ResetStickyTaskQueueRequest(namespace="default", execution=WorkflowExecution(workflow_id=wf_id))
        )
        await handle.signal(WaitForSignal.finish, "normal queue")
        await handle.result()
    return wf_id


async def sticky_workflow_task_failure(client: Client, tq: str) -> str:
    """A task failing on the sticky queue is retried as a new attempt-1 task on the normal queue."""
    wf_id = new_id("sticky-task-failure")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(FailAfterSignal.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        await handle.signal(FailAfterSignal.finish, "recovered")
        await handle.result()
    return wf_id


async def update_accepted_and_completed(client: Client, tq: str) -> str:
    wf_id = new_id("update")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(Counter.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        assert await handle.execute_update(Counter.add, 5, id="add-5") == 5
        assert await handle.execute_update(Counter.finish, id="finish") == 5
        assert await handle.result() == 5
    return wf_id


async def update_rejected(client: Client, tq: str) -> str:
    """A validator rejects the first update: its speculative workflow task leaves no events."""
    wf_id = new_id("update-rejected")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(Counter.run, id=wf_id, task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        try:
            await handle.execute_update(Counter.add, -1, id="rejected")
        except WorkflowUpdateFailedError:
            pass
        else:
            raise AssertionError("the validator was expected to reject the update")
        assert await handle.execute_update(Counter.add, 2, id="add-2") == 2
        await handle.signal(Counter.stop)
        assert await handle.result() == 2
    return wf_id


async def update_with_start(client: Client, tq: str) -> str:
    wf_id = new_id("update-with-start")
    async with run_worker(client, task_queue=tq):
        start = WithStartWorkflowOperation(
            Counter.run, id=wf_id, task_queue=tq, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
        )
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 3, id="add-3", start_workflow_operation=start
            )
            == 3
        )
        handle = await start.workflow_handle()
        await handle.signal(Counter.stop)
        assert await handle.result() == 3
    return wf_id


async def zero_timer(client: Client, tq: str) -> str:
    wf_id = new_id("zero-timer")
    async with run_worker(client, task_queue=tq):
        assert await client.execute_workflow(ZeroTimer.run, id=wf_id, task_queue=tq) == "woke"
    return wf_id


async def eager_workflow_start(client: Client, tq: str) -> str:
    """The starter's own worker gets the first workflow task in the start response (no poll)."""
    wf_id = new_id("eager-start")
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(
            GreetSomeone.run, "World", id=wf_id, task_queue=tq, request_eager_start=True
        )
        assert getattr(handle, "__temporal_eagerly_started"), "the start response carried no eager task"
        assert await handle.result() == "Hello, World!"
    return wf_id


async def _poll_raw(client: Client, tq: str) -> PollWorkflowTaskQueueResponse:
    """The run's next workflow task on `tq`, polled as a bare worker."""
    return await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw"),
        timeout=timedelta(seconds=10),
    )


async def _raw_workflow_task(
    client: Client, tq: str, commands: list[Command]
) -> RespondWorkflowTaskCompletedResponse:
    """Poll the run's next workflow task on `tq` as a bare worker and answer it with `commands`."""
    task = await _poll_raw(client, tq)
    return await client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="raw", commands=commands
        )
    )


def _eager_activity(activity_id: str, tq: str) -> Command:
    return Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            activity_id=activity_id,
            activity_type=ActivityType(name="raw-activity"),
            task_queue=TaskQueue(name=tq),
            input=Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'"in"')]),
            start_to_close_timeout=Duration(seconds=30),
            request_eager_execution=True,
        ),
    )


_COMPLETE = Command(
    command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
    complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
)


async def eager_activity(client: Client, tq: str) -> str:
    """A worker asking to run its activity eagerly gets it, started, in the reply to its workflow task: no
    activity poll. It completes it with the task's token."""
    wf_id = new_id("eager-activity")
    handle = await client.start_workflow("RawEager", id=wf_id, task_queue=tq)
    reply = await _raw_workflow_task(client, tq, [_eager_activity("a1", tq)])
    assert [t.activity_id for t in reply.activity_tasks] == ["a1"], reply
    task = reply.activity_tasks[0]
    assert task.attempt == 1 and task.workflow_execution.workflow_id == wf_id
    assert task.input.payloads[0].data == b'"in"' and task.workflow_type.name == "RawEager"
    await client.workflow_service.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(
            namespace="default", task_token=task.task_token, identity="raw", result=task.input
        )
    )
    await _raw_workflow_task(client, tq, [_COMPLETE])
    await handle.result()
    return wf_id


async def eager_activity_cancelled_at_once(client: Client, tq: str) -> str:
    """An eager activity cancelled by the same workflow task is never started: the reply carries none."""
    wf_id = new_id("eager-cancelled")
    handle = await client.start_workflow("RawEager", id=wf_id, task_queue=tq)
    cancel = Command(
        command_type=CommandType.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK,
        request_cancel_activity_task_command_attributes=RequestCancelActivityTaskCommandAttributes(
            scheduled_event_id=5
        ),
    )
    reply = await _raw_workflow_task(client, tq, [_eager_activity("a1", tq), cancel])
    assert not reply.activity_tasks, reply
    await _raw_workflow_task(client, tq, [_COMPLETE])
    await handle.result()
    return wf_id


async def _fail_raw(client: Client, task: PollWorkflowTaskQueueResponse) -> None:
    await client.workflow_service.respond_workflow_task_failed(
        RespondWorkflowTaskFailedRequest(
            namespace="default",
            task_token=task.task_token,
            identity="raw",
            cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
            failure=Failure(message="raw failure"),
        )
    )


async def signal_during_failing_workflow_task(client: Client, tq: str) -> str:
    """A signal that arrives while a retried (transient) workflow task runs and fails again makes the next
    task a normal one: attempt 1, its scheduled event in history before the worker sees it."""
    wf_id = new_id("signal-during-failing-task")
    handle = await client.start_workflow("RawFails", id=wf_id, task_queue=tq)
    await _fail_raw(client, await _poll_raw(client, tq))
    retried = await _poll_raw(client, tq)
    assert retried.attempt == 2, retried
    await handle.signal("poke", "in")  # buffered: a workflow task is running
    await _fail_raw(client, retried)
    after_signal = await _poll_raw(client, tq)
    assert after_signal.attempt == 1, after_signal
    assert [e.event_type for e in after_signal.history.events][-3:] == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ]
    await client.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=after_signal.task_token, identity="raw", commands=[_COMPLETE]
        )
    )
    await handle.result()
    return wf_id


ACTIVITY = ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED"]
UPDATE = ["WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_UPDATE_COMPLETED"]
CHILD = ["START_CHILD_WORKFLOW_EXECUTION_INITIATED", "CHILD_WORKFLOW_EXECUTION_STARTED"]

SCENARIOS: list[Scenario] = [
    Scenario(
        "one-activity",
        one_activity,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "activity-retry-then-success",
        activity_retry_then_success,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "activity-failure",
        activity_failure,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_FAILED",
            *WT,
            "WORKFLOW_EXECUTION_FAILED",
        ],
    ),
    Scenario(
        "activity-start-to-close-timeout",
        activity_start_to_close_timeout,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "activity-heartbeat-timeout",
        activity_heartbeat_timeout,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "activity-schedule-to-start-timeout",
        activity_schedule_to_start_timeout,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "ACTIVITY_TASK_SCHEDULED",
            "ACTIVITY_TASK_TIMED_OUT",
            *WT,
            "WORKFLOW_EXECUTION_FAILED",
        ],
    ),
    Scenario(
        "timer",
        timer,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "TIMER_STARTED",
            "TIMER_FIRED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "cancelled-timer",
        cancelled_timer,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "TIMER_STARTED",
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "TIMER_CANCELED",
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "signals",
        signals,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_COMPLETED",
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "query",
        query,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "signal-with-start",
        signal_with_start,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_COMPLETED",
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "cancel",
        cancel,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_CANCELED",
        ],
    ),
    Scenario(
        "cancel-running-activity",
        cancel_running_activity,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "ACTIVITY_TASK_SCHEDULED",
            "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            *WT,
            "ACTIVITY_TASK_CANCEL_REQUESTED",
            "ACTIVITY_TASK_STARTED",
            "ACTIVITY_TASK_CANCELED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "terminate",
        terminate,
        ["WORKFLOW_EXECUTION_STARTED", *WT, "WORKFLOW_EXECUTION_TERMINATED"],
    ),
    Scenario(
        "workflow-failure",
        workflow_failure,
        ["WORKFLOW_EXECUTION_STARTED", *WT, "WORKFLOW_EXECUTION_FAILED"],
    ),
    Scenario(
        "workflow-task-failure",
        workflow_task_failure,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "workflow-task-timeout",
        workflow_task_timeout,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_TIMED_OUT",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "workflow-execution-timeout",
        workflow_execution_timeout,
        ["WORKFLOW_EXECUTION_STARTED", *WT, "WORKFLOW_EXECUTION_TIMED_OUT"],
    ),
]

SCENARIOS += [
    Scenario(
        "child-workflows",
        child_workflows,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *CHILD,
            *WT,
            "CHILD_WORKFLOW_EXECUTION_COMPLETED",
            *WT,
            *CHILD,
            *WT,
            "CHILD_WORKFLOW_EXECUTION_FAILED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "continue-as-new",
        continue_as_new,
        ["WORKFLOW_EXECUTION_STARTED", *WT, "WORKFLOW_EXECUTION_CONTINUED_AS_NEW"],
    ),
    Scenario(
        "external-signal-and-cancel",
        external_signal_and_cancel,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
            *WT,
            "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
            "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "upsert-search-attributes",
        upsert_search_attributes,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
            "TIMER_STARTED",
            "TIMER_FIRED",
            *WT,
            "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "reset",
        reset_to_first_task,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "sticky-schedule-to-start-timeout",
        sticky_schedule_to_start_timeout,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_TIMED_OUT",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "sticky-worker-shutdown",
        sticky_worker_shutdown,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "reset-sticky-task-queue",
        reset_sticky_task_queue,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "sticky-workflow-task-failure",
        sticky_workflow_task_failure,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
]

SCENARIOS += [
    Scenario(
        "update-accepted-and-completed",
        update_accepted_and_completed,
        ["WORKFLOW_EXECUTION_STARTED", *WT, *WT, *UPDATE, *WT, *UPDATE, "WORKFLOW_EXECUTION_COMPLETED"],
    ),
    Scenario(
        "update-rejected",
        update_rejected,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *WT,
            *UPDATE,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "update-with-start",
        update_with_start,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *UPDATE,
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
]

SCENARIOS += [
    Scenario(
        "zero-timer",
        zero_timer,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "TIMER_STARTED",
            "TIMER_FIRED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "eager-workflow-start",
        eager_workflow_start,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
]

SCENARIOS += [
    Scenario(
        "eager-activity",
        eager_activity,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            *ACTIVITY,
            "ACTIVITY_TASK_COMPLETED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
    Scenario(
        "eager-activity-cancelled-at-once",
        eager_activity_cancelled_at_once,
        [
            "WORKFLOW_EXECUTION_STARTED",
            *WT,
            "ACTIVITY_TASK_SCHEDULED",
            "ACTIVITY_TASK_CANCEL_REQUESTED",
            "ACTIVITY_TASK_CANCELED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
]

SCENARIOS += [
    Scenario(
        "signal-during-failing-workflow-task",
        signal_during_failing_workflow_task,
        [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            "WORKFLOW_EXECUTION_SIGNALED",
            *WT,
            "WORKFLOW_EXECUTION_COMPLETED",
        ],
    ),
]

BY_NAME = {s.name: s for s in SCENARIOS}


async def run_scenario(client: Client, scenario: Scenario) -> tuple[list[dict], dict[str, str]]:
    """Runs the scenario on a fresh task queue; returns (normalized history, redactions used)."""
    from .history_diff import normalize

    tq = new_id(f"tq-{scenario.name}")
    ran = await scenario.run(client, tq)
    wf_id, run_id = ran if isinstance(ran, tuple) else (ran, None)
    history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
    redactions = {wf_id: "<workflow-id>", tq: "<task-queue>"}
    return normalize(history, redactions), redactions


async def _main(address: str, names: list[str]) -> None:
    from .history_diff import render

    client = await Client.connect(address)
    for scenario in [BY_NAME[n] for n in names] if names else SCENARIOS:
        normalized, _ = await run_scenario(client, scenario)
        print(f"== {scenario.name}")
        print("\n".join(render(normalized)))


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2:]))
