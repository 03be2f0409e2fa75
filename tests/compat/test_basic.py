"""Start a workflow, run an activity, get the result."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollActivityTaskQueueRequest, PollWorkflowTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus

from .helpers import event_types, new_id, run_worker
from .workflows import ActivitySpec, GreetSomeone, ReportBuildId, RunActivity, Sleeper, say_hello


async def test_readme_example(client: Client) -> None:
    # As in the README: the worker registers just this workflow and its activity.
    async with run_worker(client, workflows=[GreetSomeone], activities=[say_hello]) as tq:
        result = await client.execute_workflow(GreetSomeone.run, "World", id=new_id("greet"), task_queue=tq)
    assert result == "Hello, World!"


async def test_execute_workflow_with_activity_result(client: Client) -> None:
    async with run_worker(client) as tq:
        result = await client.execute_workflow(
            RunActivity.run,
            ActivitySpec("say_hello", ["Temporal"], start_to_close=5),
            id=new_id(),
            task_queue=tq,
        )
    assert result == "Hello, Temporal!"


async def test_start_then_result(client: Client) -> None:
    wf_id = new_id()
    async with run_worker(client) as tq:
        handle = await client.start_workflow(GreetSomeone.run, "handle", id=wf_id, task_queue=tq)
        assert handle.id == wf_id
        assert handle.result_run_id  # the server's run id, returned by StartWorkflowExecution
        assert await handle.result() == "Hello, handle!"
    # A fresh handle by id alone (no run id) reads the same, closed, run.
    again = client.get_workflow_handle(wf_id)
    assert await again.result() == "Hello, handle!"
    desc = await again.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    assert desc.run_id == handle.result_run_id


async def test_run_ids_are_uuid_version_7(client: Client) -> None:
    """As the reference makes them (the SDK's own tests check it): time-ordered UUIDv7 run ids."""
    async with run_worker(client) as tq:
        first = await client.start_workflow(GreetSomeone.run, "a", id=new_id(), task_queue=tq)
        second = await client.start_workflow(GreetSomeone.run, "b", id=new_id(), task_queue=tq)
        assert await first.result() == "Hello, a!"
        assert await second.result() == "Hello, b!"
    first_id, second_id = uuid.UUID(first.result_run_id), uuid.UUID(second.result_run_id)
    assert (first_id.version, second_id.version) == (7, 7)
    assert first_id.bytes[:6] <= second_id.bytes[:6]  # the first 48 bits are the creation time in ms


async def test_result_before_worker_exists(client: Client) -> None:
    """The workflow waits in the task queue until a worker polls."""
    tq = new_id("tq")
    handle = await client.start_workflow(GreetSomeone.run, "later", id=new_id(), task_queue=tq)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    async with run_worker(client, task_queue=tq):
        assert await handle.result() == "Hello, later!"


async def test_workflow_sleeping_three_seconds(client: Client) -> None:
    async with run_worker(client) as tq:
        began = time.monotonic()
        result = await client.execute_workflow(Sleeper.run, 3.0, id=new_id(), task_queue=tq)
        elapsed = time.monotonic() - began
    assert result == "slept 3.0s"
    assert 3.0 <= elapsed < 6.0, elapsed


async def test_readme_history_shape(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(GreetSomeone.run, "history", id=new_id(), task_queue=tq)
        await handle.result()
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
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


async def test_long_polls_answer_empty_before_the_callers_deadline(client: Client) -> None:
    """An idle poll returns an empty task before the deadline the worker set (the SDK waits 70 s; the
    server answers by 60 s): a timeout error would make the worker back off and log errors."""
    queue = TaskQueue(name=new_id("idle"))
    started = time.monotonic()
    workflow_task = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=queue, identity="idle-poller"),
        timeout=timedelta(seconds=3),
    )
    activity_task = await client.workflow_service.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="default", task_queue=queue, identity="idle-poller"),
        timeout=timedelta(seconds=3),
    )
    assert not workflow_task.task_token and not activity_task.task_token
    assert time.monotonic() - started < 6.5


async def test_worker_build_id_is_recorded_on_workflow_tasks(client: Client) -> None:
    """A worker's build id (unversioned) is written on the workflow tasks it starts and completes, where
    the SDK reads workflow.info().get_current_build_id() from."""
    async with run_worker(client, build_id="1.0") as tq:
        handle = await client.start_workflow(ReportBuildId.run, id=new_id(), task_queue=tq)
        assert await handle.result() == "1.0"
    history = await handle.fetch_history()
    started = [e.workflow_task_started_event_attributes for e in history.events if e.event_type == 6]
    completed = [e.workflow_task_completed_event_attributes for e in history.events if e.event_type == 7]
    assert started and completed
    assert {a.worker_version.build_id for a in completed} == {"1.0"}
    assert started[-1].worker_version.build_id == "1.0"
