"""Sticky execution: a worker that has a run cached gets its next workflow tasks on its own queue with only
the new events, and the run survives that worker going away.

The histories these produce are compared with the reference in the differential scenarios
(`sticky-*`, `reset-sticky-task-queue`); here: what a poller receives, and recovery from a killed worker.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType, QueryResultType, TaskQueueKind, TimeoutType
from temporalio.api.query.v1 import WorkflowQueryResult
from temporalio.api.taskqueue.v1 import StickyExecutionAttributes, TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    ResetStickyTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker, wait_for_event
from .servers import ServerProcess
from .workflows import SignalCollector, WaitForSignal

TESTS_DIR = Path(__file__).resolve().parent.parent
STICKY = TaskQueueKind.TASK_QUEUE_KIND_STICKY
NORMAL = TaskQueueKind.TASK_QUEUE_KIND_NORMAL


async def poll(client: Client, queue: TaskQueue, seconds: float = 10) -> PollWorkflowTaskQueueResponse:
    return await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=queue, identity="raw-worker"),
        timeout=timedelta(seconds=seconds),
    )


async def complete(client: Client, task: PollWorkflowTaskQueueResponse, sticky: TaskQueue | None) -> None:
    request = RespondWorkflowTaskCompletedRequest(
        namespace="default", task_token=task.task_token, identity="raw-worker"
    )
    if sticky is not None:
        request.sticky_attributes.CopyFrom(
            StickyExecutionAttributes(
                worker_task_queue=sticky, schedule_to_start_timeout=Duration(seconds=10)
            )
        )
    await client.workflow_service.respond_workflow_task_completed(request)


def scheduled_queue_kinds(handle_events) -> list[int]:
    return [
        e.workflow_task_scheduled_event_attributes.task_queue.kind
        for e in handle_events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    ]


async def test_sticky_task_carries_only_the_events_after_the_previous_task(client: Client) -> None:
    tq = new_id("tq")
    sticky = TaskQueue(name=f"{tq}-sticky", kind=STICKY, normal_name=tq)
    handle = await client.start_workflow(WaitForSignal.run, id=new_id("sticky-partial"), task_queue=tq)
    try:
        first = await poll(client, TaskQueue(name=tq))
        assert [e.event_id for e in first.history.events] == [1, 2, 3]
        await complete(client, first, sticky)
        # An (empty) poll first: the sticky worker is known to be there, so the next task waits for it.
        assert not (await poll(client, sticky, seconds=3)).task_token
        sticky_poll = asyncio.create_task(poll(client, sticky))
        await handle.signal(WaitForSignal.finish, "x")
        task = await sticky_poll

        assert task.previous_started_event_id == 3
        events = list(task.history.events)
        assert [e.event_id for e in events] == list(range(4, task.started_event_id + 1))
        assert [e.event_type for e in events] == [
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        ]
        scheduled = events[2].workflow_task_scheduled_event_attributes.task_queue
        assert (scheduled.name, scheduled.kind, scheduled.normal_name) == (sticky.name, STICKY, tq)
        assert task.workflow_execution_task_queue.name == tq

        # Completed without sticky attributes: the run is no longer sticky, its next task is whole.
        await complete(client, task, None)
        await handle.signal(WaitForSignal.finish, "y")
        again = await poll(client, TaskQueue(name=tq))
        assert again.history.events[0].event_id == 1
        assert again.history.events[-1].event_id == again.started_event_id
        assert scheduled_queue_kinds(again.history.events) == [NORMAL, STICKY, NORMAL]
    finally:
        await handle.terminate("test over")


async def _start_worker_process(server: ServerProcess, tq: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "compat.sticky_worker",
        server.address,
        tq,
        cwd=TESTS_DIR,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready"
    return proc


async def _run_then_kill_worker(client: Client, server: ServerProcess, workflow, tq: str) -> WorkflowHandle:
    """Start the workflow on a worker in another process, let it finish its first task, kill -9 it."""
    proc = await _start_worker_process(server, tq)
    try:
        handle = await client.start_workflow(workflow, id=new_id("sticky-killed"), task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
    finally:
        proc.kill()
        await proc.wait()
    return handle


@pytest.mark.timeout(90)
@pytest.mark.parametrize("sticky_worker", [True, False], ids=["sticky", "not-sticky"])
async def test_a_completion_hands_back_the_next_task_when_asked(client: Client, sticky_worker: bool) -> None:
    """RespondWorkflowTaskCompleted with return_new_workflow_task (the SDK always sets it): a completion
    that schedules a new task (here force_create_new_workflow_task, as a local activity's heartbeat does)
    gets it back already started, with the events since the previous task (sticky worker or not) and the
    query that waited for it; no poll is involved. The reference names its start
    "request-from-RespondWorkflowTaskCompleted"."""
    tq = new_id("tq")
    sticky = TaskQueue(name=f"{tq}-sticky", kind=STICKY, normal_name=tq)
    attributes = StickyExecutionAttributes(
        worker_task_queue=sticky, schedule_to_start_timeout=Duration(seconds=10)
    )
    handle = await client.start_workflow(WaitForSignal.run, id=new_id("return-new"), task_queue=tq)
    try:
        first = await poll(client, TaskQueue(name=tq))
        query = asyncio.create_task(handle.query("where", result_type=str))
        await asyncio.sleep(1)
        assert not query.done()  # it waits for the task in flight
        request = RespondWorkflowTaskCompletedRequest(
            namespace="default",
            task_token=first.task_token,
            identity="raw-worker",
            force_create_new_workflow_task=True,
            return_new_workflow_task=True,
        )
        if sticky_worker:
            request.sticky_attributes.CopyFrom(attributes)
        response = await client.workflow_service.respond_workflow_task_completed(request)
        task = response.workflow_task
        assert task.task_token
        assert (task.attempt, task.previous_started_event_id, task.started_event_id) == (1, 3, 6)
        assert [e.event_id for e in task.history.events] == [4, 5, 6]
        assert [q.query_type for q in task.queries.values()] == ["where"]

        # The worker answers the query with that task; nothing new to do, so nothing comes back.
        request = RespondWorkflowTaskCompletedRequest(
            namespace="default",
            task_token=task.task_token,
            identity="raw-worker",
            return_new_workflow_task=True,
        )
        if sticky_worker:
            request.sticky_attributes.CopyFrom(attributes)
        answer = Payload(metadata={"encoding": b"json/plain"}, data=b'"here"')
        request.query_results[next(iter(task.queries))].CopyFrom(
            WorkflowQueryResult(
                result_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED, answer=Payloads(payloads=[answer])
            )
        )
        response = await client.workflow_service.respond_workflow_task_completed(request)
        assert not response.HasField("workflow_task")
        assert await asyncio.wait_for(query, 10) == "here"

        events = (await handle.fetch_history()).events
        assert [e.event_type for e in events] == [
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ]
        assert events[4].workflow_task_scheduled_event_attributes.task_queue.kind == (
            STICKY if sticky_worker else NORMAL
        )
        started = events[5].workflow_task_started_event_attributes
        assert (started.request_id, started.identity) == (
            "request-from-RespondWorkflowTaskCompleted",
            "raw-worker",
        )
    finally:
        await handle.terminate()


async def test_workflow_survives_its_sticky_worker_being_killed(
    client: Client, server: ServerProcess
) -> None:
    tq = new_id("tq")
    handle = await _run_then_kill_worker(client, server, WaitForSignal.run, tq)
    await handle.signal(WaitForSignal.finish, "survived")
    # A new worker (another process, another client) gets the task once the sticky timeout moves it.
    async with run_worker(client, task_queue=tq):
        assert await handle.result() == "survived"
    events = list((await handle.fetch_history()).events)
    timed_out = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
    assert len(timed_out) == 1
    attrs = timed_out[0].workflow_task_timed_out_event_attributes
    assert attrs.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    assert attrs.started_event_id == 0
    assert scheduled_queue_kinds(events) == [NORMAL, STICKY, NORMAL]


@pytest.mark.timeout(90)
async def test_query_reaches_a_new_worker_after_the_sticky_worker_is_killed(
    client: Client, server: ServerProcess
) -> None:
    tq = new_id("tq")
    handle = await _run_then_kill_worker(client, server, SignalCollector.run, tq)
    async with run_worker(client, task_queue=tq):
        # Asked on the dead worker's sticky queue first; after its timeout, on the normal queue.
        assert await handle.query(SignalCollector.items) == []
        await handle.signal(SignalCollector.add, "a")
        await handle.signal(SignalCollector.done)
        assert await handle.result() == ["a"]


async def test_reset_sticky_task_queue_bad_requests(client: Client) -> None:
    svc = client.workflow_service
    async with run_worker(client, workflows=[WaitForSignal]) as tq:
        handle = await client.start_workflow(WaitForSignal.run, id=new_id("reset-sticky"), task_queue=tq)
        await handle.signal(WaitForSignal.finish, "x")
        await handle.result()
    cases = [
        (
            WorkflowExecution(workflow_id=handle.id),
            RPCStatusCode.NOT_FOUND,
            "workflow execution already completed",
        ),
        (
            WorkflowExecution(workflow_id="nope-" + handle.id),
            RPCStatusCode.NOT_FOUND,
            f"workflow not found for ID: nope-{handle.id}",
        ),
        (None, RPCStatusCode.INVALID_ARGUMENT, "Execution is not set on request."),
        (WorkflowExecution(), RPCStatusCode.INVALID_ARGUMENT, "WorkflowId is not set on request."),
        (WorkflowExecution(workflow_id="x", run_id="zz"), RPCStatusCode.INVALID_ARGUMENT, "Invalid RunId."),
    ]
    for execution, status, message in cases:
        request = ResetStickyTaskQueueRequest(namespace="default")
        if execution is not None:
            request.execution.CopyFrom(execution)
        with pytest.raises(RPCError) as info:
            await svc.reset_sticky_task_queue(request)
        assert (info.value.status, info.value.message) == (status, message)
