"""DescribeWorkflowExecution and GetWorkflowExecutionHistory as a user reads them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.api.enums.v1 import (
    IndexedValueType,
    PendingActivityState,
    PendingWorkflowTaskState,
    TaskQueueKind,
)
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

from . import state
from .helpers import event_type_name, new_id, run_worker
from .workflows import (
    UPSERTED_KEYWORD,
    ActivitySpec,
    GreetSomeone,
    Parent,
    Retry,
    RunActivity,
    Summarized,
    UpsertMemoAndAttributes,
    WaitForSignal,
)


async def test_describe_before_any_worker(client: Client) -> None:
    tq = new_id("tq")
    wf_id = new_id()
    handle = await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=tq)
    desc = await handle.describe()
    assert desc.id == wf_id
    assert desc.run_id == handle.result_run_id
    assert desc.workflow_type == "WaitForSignal"
    assert desc.task_queue == tq
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert desc.history_length == 2  # WorkflowExecutionStarted, WorkflowTaskScheduled
    assert desc.close_time is None
    assert desc.start_time is not None
    assert desc.namespace == "default"
    raw = desc.raw_description
    assert raw.execution_config.task_queue.name == tq
    assert raw.execution_config.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    assert raw.execution_config.default_workflow_task_timeout.ToTimedelta() == timedelta(seconds=10)
    assert raw.pending_workflow_task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
    assert raw.pending_workflow_task.attempt == 1
    assert len(raw.pending_activities) == 0
    assert raw.workflow_execution_info.first_run_id == handle.result_run_id
    await handle.terminate()


async def test_describe_running_activity_then_completed(client: Client) -> None:
    key = new_id("key")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            RunActivity.run, ActivitySpec("gated", [key], start_to_close=10), id=new_id(), task_queue=tq
        )
        await asyncio.wait_for(state.started(key).wait(), 10)
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        # ActivityTaskStarted is written only when the activity closes: 5 events so far.
        assert desc.history_length == 5
        (pending,) = desc.raw_description.pending_activities
        assert pending.activity_id == "1"
        assert pending.activity_type.name == "gated"
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        assert pending.attempt == 1
        assert pending.HasField("last_started_time")
        assert pending.HasField("scheduled_time")
        assert not desc.raw_description.HasField("pending_workflow_task")
        state.gate(key).set()
        assert await handle.result() == "gate opened"
    desc = await handle.describe()
    assert desc.status == WorkflowExecutionStatus.COMPLETED
    assert desc.history_length == 11
    assert desc.close_time is not None and desc.close_time >= desc.start_time
    assert len(desc.raw_description.pending_activities) == 0
    assert not desc.raw_description.HasField("pending_workflow_task")


async def test_describe_activity_waiting_for_retry(client: Client) -> None:
    key = new_id("key")
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            RunActivity.run,
            ActivitySpec("flaky", [key, 1], start_to_close=5, retry=Retry(initial_interval=2)),
            id=new_id(),
            task_queue=tq,
        )
        deadline = time.monotonic() + 10
        while True:
            (pending,) = (await handle.describe()).raw_description.pending_activities or [None]
            if pending is not None and pending.attempt == 2:
                break
            assert time.monotonic() < deadline, "activity never went into retry backoff"
            await asyncio.sleep(0.05)
        # Between attempts: back in SCHEDULED, attempt already 2, last failure kept.
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        assert pending.last_failure.message == "attempt 1 failed"
        assert pending.last_failure.application_failure_info.type == "FlakyError"
        assert pending.HasField("next_attempt_schedule_time")
        assert await handle.result() == "succeeded on attempt 2"


async def test_history_of_a_simple_workflow(client: Client) -> None:
    tq_name = ""
    async with run_worker(client) as tq:
        tq_name = tq
        handle = await client.start_workflow(GreetSomeone.run, "events", id=new_id(), task_queue=tq)
        await handle.result()
    history = await handle.fetch_history()
    events = history.events
    assert [e.event_id for e in events] == list(range(1, 12))
    assert [event_type_name(e) for e in events] == [
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
    started = events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "GreetSomeone"
    assert started.task_queue.name == tq_name
    assert started.attempt == 1
    assert started.workflow_task_timeout.ToTimedelta() == timedelta(seconds=10)
    assert started.input.payloads[0].data == b'"events"'
    assert started.original_execution_run_id == handle.result_run_id
    assert started.first_execution_run_id == handle.result_run_id
    assert events[2].workflow_task_started_event_attributes.scheduled_event_id == 2
    completed_wt = events[3].workflow_task_completed_event_attributes
    assert (completed_wt.scheduled_event_id, completed_wt.started_event_id) == (2, 3)
    scheduled = events[4].activity_task_scheduled_event_attributes
    assert scheduled.activity_id == "1"
    assert scheduled.activity_type.name == "say_hello"
    assert scheduled.workflow_task_completed_event_id == 4
    assert scheduled.start_to_close_timeout.ToTimedelta() == timedelta(seconds=10)
    # The server fills in the default retry policy when the workflow gives none.
    assert scheduled.retry_policy.initial_interval.ToTimedelta() == timedelta(seconds=1)
    assert scheduled.retry_policy.backoff_coefficient == 2.0
    assert scheduled.retry_policy.maximum_interval.ToTimedelta() == timedelta(seconds=100)
    assert scheduled.retry_policy.maximum_attempts == 0
    act_started = events[5].activity_task_started_event_attributes
    assert (act_started.scheduled_event_id, act_started.attempt) == (5, 1)
    act_completed = events[6].activity_task_completed_event_attributes
    assert (act_completed.scheduled_event_id, act_completed.started_event_id) == (5, 6)
    assert act_completed.result.payloads[0].data == b'"Hello, events!"'
    wf_completed = events[10].workflow_execution_completed_event_attributes
    assert wf_completed.workflow_task_completed_event_id == 10
    assert wf_completed.result.payloads[0].data == b'"Hello, events!"'


async def test_history_paging(client: Client) -> None:
    async with run_worker(client) as tq:
        handle = await client.start_workflow(GreetSomeone.run, "pages", id=new_id(), task_queue=tq)
        await handle.result()
    whole = [e.event_id for e in (await handle.fetch_history()).events]
    paged = [e.event_id async for e in handle.fetch_history_events(page_size=3)]
    assert paged == whole == list(range(1, 12))


async def test_summaries_show_in_history_and_describe(client: Client) -> None:
    """A start's static summary / details and a command's summary are kept on their events (the SDK
    sends them as user_metadata); describe shows the start's."""
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            Summarized.run,
            id=new_id(),
            task_queue=tq,
            static_summary="the summary",
            static_details="the details",
        )
        assert await handle.result() == "Hello, metadata!"
    desc = await handle.describe()
    assert await desc.static_summary() == "the summary"
    assert await desc.static_details() == "the details"
    summaries = {
        event_type_name(e): e.user_metadata.summary.data
        for e in (await handle.fetch_history()).events
        if e.HasField("user_metadata")
    }
    assert summaries == {
        "WORKFLOW_EXECUTION_STARTED": b'"the summary"',
        "TIMER_STARTED": b'"a short nap"',
        "ACTIVITY_TASK_SCHEDULED": b'"say hello"',
    }


async def test_upserting_nil_removes_memo_keys_and_search_attributes(client: Client) -> None:
    """Upserts merge, and a key upserted to nothing (None, unset) is removed, as on the reference."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={UPSERTED_KEYWORD.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            UpsertMemoAndAttributes.run,
            id=new_id(),
            task_queue=tq,
            memo={"changed": "old", "removed": "soon", "kept": "as is"},
        )
        await handle.result()
    desc = await handle.describe()
    assert await desc.memo() == {"changed": "new", "added": "here", "kept": "as is"}
    assert UPSERTED_KEYWORD not in desc.typed_search_attributes


async def test_describe_names_parent_and_root(client: Client) -> None:
    """A child's description names its parent and the root of its tree; a top-level run is its own root."""
    async with run_worker(client) as tq:
        parent = await client.start_workflow(Parent.run, id=new_id(), task_queue=tq)
        await parent.result()
    top = await parent.describe()
    assert (top.parent_id, top.parent_run_id) == (None, None)
    assert (top.root_id, top.root_run_id) == (parent.id, top.run_id)
    child = await client.get_workflow_handle(f"{parent.id}-ok").describe()
    assert (child.parent_id, child.parent_run_id) == (parent.id, top.run_id)
    assert (child.root_id, child.root_run_id) == (parent.id, top.run_id)


async def test_signal_with_start_keeps_the_start_delay(client: Client) -> None:
    delay = timedelta(hours=1, minutes=20, seconds=30)
    handle = await client.start_workflow(
        WaitForSignal.run, id=new_id(), task_queue=new_id("tq"), start_delay=delay, start_signal="go"
    )
    first = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
    assert first.first_workflow_task_backoff.ToTimedelta() == delay
    await handle.terminate()
