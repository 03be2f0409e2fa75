"""The reference's per-run limits, and updates that cannot wedge a workflow.

This module starts its own server (of the target's kind) with small limits through the reference's
dynamic-config keys (`--dynamic-config-value`), so each limit is reached in a few events:
- past `limit.historyCount.error` the run is terminated ("Workflow history count exceeds limit.") and the
  request that would have grown it gets INVALID_ARGUMENT with that reason;
- past `history.maximumSignalsPerExecution` a signal is refused (INVALID_ARGUMENT);
- past `limit.historySize.error` likewise ("Workflow history size exceeds limit.");
- past `limit.numPendingActivities.error` the workflow task fails with PENDING_ACTIVITIES_LIMIT_EXCEEDED;
- past `limit.memoSize.error` a start is refused, and a memo upsert fails the task and terminates the run;
- a search attribute value over `frontend.searchAttributesSizeOfValueLimit` is refused;
- a payload over `limit.blobSize.error` (a signal's, a start's input) is refused;
- an update whose handler cannot take its input gets FAILED_PRECONDITION "Unable to perform workflow
  execution update due to Workflow Task in failed state." and the workflow carries on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.api.command.v1 import Command, CompleteWorkflowExecutionCommandAttributes
from temporalio.api.enums.v1 import CommandType, EventType, IndexedValueType, WorkflowTaskFailedCause
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowFailureError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import TerminatedError
from temporalio.service import RPCError, RPCStatusCode

from . import servers
from .helpers import event_types, new_id, run_worker, wait_for_event
from .servers import REFERENCE, ServerProcess, compat_target
from .workflows import (
    UPSERTED_KEYWORD,
    HistoryGrower,
    ParallelActivities,
    Settable,
    UpsertBigMemo,
    WaitForSignal,
)

HISTORY_COUNT_LIMIT = 40
SIGNALS_LIMIT = 5
PENDING_ACTIVITIES_LIMIT = 2
HISTORY_SIZE_LIMIT = 20_000
MEMO_SIZE_LIMIT = 1000
SEARCH_ATTRIBUTE_VALUE_LIMIT = 100
BLOB_SIZE_LIMIT = 64_000  # above the history-size test's 21 kB signal
UPDATE_FAILED = "Unable to perform workflow execution update due to Workflow Task in failed state."


LIMITS = {
    "limit.historyCount.error": HISTORY_COUNT_LIMIT,
    "history.maximumSignalsPerExecution": SIGNALS_LIMIT,
    "limit.numPendingActivities.error": PENDING_ACTIVITIES_LIMIT,
    "limit.historySize.error": HISTORY_SIZE_LIMIT,
    "limit.memoSize.error": MEMO_SIZE_LIMIT,
    # The reference checks the error limit only for a memo over the warn limit (2 KiB by default).
    "limit.memoSize.warn": MEMO_SIZE_LIMIT // 2,
    "frontend.searchAttributesSizeOfValueLimit": SEARCH_ATTRIBUTE_VALUE_LIMIT,
    "limit.blobSize.error": BLOB_SIZE_LIMIT,
    "limit.blobSize.warn": BLOB_SIZE_LIMIT // 2,
}


@pytest.fixture(scope="module")
async def limited_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """A server of the target's kind (the limits live in history, so Cassandra behaves as SQLite)."""
    workdir = tmp_path_factory.mktemp("run-limits")
    release = None
    if compat_target() == servers.HOURGLASS_CASSANDRA:
        from hourglass.persistence.cassandra import testing as cassandra

        cluster = cassandra.acquire()
        release = cassandra.release
        srv = servers.hourglass_cassandra_server(workdir, cluster.hosts, cluster.port, dynamic_config=LIMITS)
    else:
        srv = (
            servers.reference_server(workdir)
            if compat_target() == REFERENCE
            else servers.hourglass_server(workdir)
        )
        for key, value in LIMITS.items():
            srv.argv += ["--dynamic-config-value", f"{key}={value}"]
    try:
        await srv.start()
        yield srv
    finally:
        srv.stop()
        if release is not None:
            release()


@pytest.fixture
async def limited_client(limited_server: ServerProcess) -> Client:
    return await Client.connect(limited_server.address)


async def test_history_count_limit_terminates_the_run(limited_client: Client) -> None:
    async with run_worker(limited_client, workflows=[HistoryGrower]) as tq:
        handle = await limited_client.start_workflow(HistoryGrower.run, id=new_id(), task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        # One workflow task that starts 50 timers would take the history to 58 events: over the limit.
        await handle.signal(HistoryGrower.grow, 50)
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
    assert isinstance(failure.value.cause, TerminatedError)
    history = await handle.fetch_history()
    last = history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert (
        last.workflow_execution_terminated_event_attributes.reason == "Workflow history count exceeds limit."
    )
    assert last.workflow_execution_terminated_event_attributes.identity == "history-service"
    # Nothing of the refused workflow task's completion was written: no timer was started.
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    failed = history.events[-2].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND


async def test_signals_past_the_limit_are_refused(limited_client: Client) -> None:
    # No worker: the signals only append to the history.
    handle = await limited_client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq"))
    for _ in range(SIGNALS_LIMIT):
        await handle.signal(WaitForSignal.finish, "x")
    with pytest.raises(RPCError) as refused:
        await handle.signal(WaitForSignal.finish, "one too many")
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused.value.message == "exceeded workflow execution limit for signal events"
    # Signal-with-start on the running workflow is a signal too.
    with pytest.raises(RPCError) as refused_again:
        await limited_client.start_workflow(
            WaitForSignal.run,
            id=handle.id,
            task_queue=new_id("tq"),
            start_signal="finish",
            start_signal_args=["again"],
        )
    assert refused_again.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused_again.value.message == "exceeded workflow execution limit for signal events"
    assert (await event_types(handle)).count("WORKFLOW_EXECUTION_SIGNALED") == SIGNALS_LIMIT
    await handle.terminate("done")


async def test_history_size_limit_terminates_the_run(limited_client: Client) -> None:
    # No worker. The first big signal is written (the history was small before it); the next request finds
    # the history over the limit and terminates the run instead.
    handle = await limited_client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq"))
    await handle.signal(WaitForSignal.finish, "x" * (HISTORY_SIZE_LIMIT + 1000))
    with pytest.raises(RPCError) as refused:
        await handle.signal(WaitForSignal.finish, "small")
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused.value.message == "Workflow history size exceeds limit."
    assert await event_types(handle) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    last = (await handle.fetch_history()).events[-1].workflow_execution_terminated_event_attributes
    assert (last.reason, last.identity) == ("Workflow history size exceeds limit.", "history-service")


async def test_memo_size_limit(limited_client: Client) -> None:
    with pytest.raises(RPCError) as refused:
        await limited_client.start_workflow(
            WaitForSignal.run, id=new_id(), task_queue=new_id("tq"), memo={"big": "x" * MEMO_SIZE_LIMIT}
        )
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused.value.message == "Memo size exceeds limit."
    async with run_worker(limited_client, workflows=[UpsertBigMemo]) as tq:
        handle = await limited_client.start_workflow(
            UpsertBigMemo.run, MEMO_SIZE_LIMIT, id=new_id(), task_queue=tq
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 30)
    assert isinstance(failure.value.cause, TerminatedError)
    reason = "BadModifyWorkflowPropertiesAttributes: ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit."
    events = (await handle.fetch_history()).events
    assert [EventType.Name(e.event_type) for e in events[-2:]] == [
        "EVENT_TYPE_WORKFLOW_TASK_FAILED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED",
    ]
    failed = events[-2].workflow_task_failed_event_attributes
    assert (
        failed.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES
    )
    assert failed.failure.message == reason
    terminated = events[-1].workflow_execution_terminated_event_attributes
    assert (terminated.reason, terminated.identity) == (reason, "history-service")


async def test_search_attribute_value_size_limit(limited_client: Client) -> None:
    await limited_client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default",
            search_attributes={UPSERTED_KEYWORD.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    value = "k" * SEARCH_ATTRIBUTE_VALUE_LIMIT  # 102 bytes as a JSON string
    with pytest.raises(RPCError) as refused:
        await limited_client.start_workflow(
            WaitForSignal.run,
            id=new_id(),
            task_queue=new_id("tq"),
            search_attributes=TypedSearchAttributes([SearchAttributePair(UPSERTED_KEYWORD, value)]),
        )
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert refused.value.message == (
        f"search attribute {UPSERTED_KEYWORD.name} value size {SEARCH_ATTRIBUTE_VALUE_LIMIT + 2} "
        f"exceeds size limit {SEARCH_ATTRIBUTE_VALUE_LIMIT}"
    )


async def test_pending_activities_limit_fails_the_workflow_task(limited_client: Client) -> None:
    async with run_worker(limited_client, workflows=[ParallelActivities]) as tq:
        handle = await limited_client.start_workflow(
            ParallelActivities.run, PENDING_ACTIVITIES_LIMIT + 1, id=new_id(), task_queue=tq
        )
        await wait_for_event(handle, "WORKFLOW_TASK_FAILED", timeout=20)
        await handle.terminate("done")
    history = await handle.fetch_history()
    failed = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    attrs = failed.workflow_task_failed_event_attributes
    assert attrs.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED
    assert attrs.failure.message == (
        f"PendingActivitiesLimitExceeded: the number of pending activities, {PENDING_ACTIVITIES_LIMIT}, "
        f"has reached the per-workflow limit of {PENDING_ACTIVITIES_LIMIT}"
    )
    assert "ACTIVITY_TASK_SCHEDULED" not in await event_types(handle)


async def _carries_on(handle, completed_tasks: int) -> None:
    """Once the run's next workflow task completes, a good update, a query and the result still work.

    Not on the reference: it sends the failed update again with every later attempt of the workflow
    task, which fails again, so it refuses every later update the same way and the run stays stuck.
    Hourglass, as the reference, sends the update again with the next attempts (one may succeed), but
    gives up on it with the attempt from which the reference refuses every update (issue 14): the next
    attempt no longer carries it, completes, and the run takes updates again."""
    if compat_target() == REFERENCE:
        with pytest.raises(RPCError) as refused:
            await asyncio.wait_for(handle.execute_update(Settable.set_value, 7), 30)
        assert refused.value.message == UPDATE_FAILED
        await handle.terminate("stuck")
        return
    await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=completed_tasks, timeout=20)
    assert await asyncio.wait_for(handle.execute_update(Settable.set_value, 7), 30) == 7
    assert await handle.query(Settable.current) == 7
    await handle.signal(Settable.finish)
    assert await asyncio.wait_for(handle.result(), 30) == 7


async def test_update_with_bad_input_fails_and_the_workflow_carries_on(limited_client: Client) -> None:
    async with run_worker(limited_client, workflows=[Settable]) as tq:
        handle = await limited_client.start_workflow(Settable.run, id=new_id(), task_queue=tq)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED")
        began = time.monotonic()
        with pytest.raises(RPCError) as refused:
            await asyncio.wait_for(handle.execute_update("set_value"), 45)  # no argument
        assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION
        assert refused.value.message == UPDATE_FAILED
        assert time.monotonic() - began < 45
        await _carries_on(handle, completed_tasks=2)


async def test_update_with_start_with_bad_input_fails_and_the_workflow_carries_on(
    limited_client: Client,
) -> None:
    async with run_worker(limited_client, workflows=[Settable]) as tq:
        start = WithStartWorkflowOperation(
            Settable.run,
            id=new_id(),
            task_queue=tq,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        with pytest.raises(RPCError) as refused:
            await asyncio.wait_for(
                limited_client.execute_update_with_start_workflow(
                    "set_value", start_workflow_operation=start
                ),
                45,
            )
        assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION
        assert refused.value.message == UPDATE_FAILED
        await _carries_on(await start.workflow_handle(), completed_tasks=1)


async def test_workflow_task_failure_messages_name_the_cause(limited_client: Client) -> None:
    """A command the server refuses fails the task with the cause's name first, as the reference words it;
    a completion that ignores a signal that arrived meanwhile says only "UnhandledCommand"."""
    tq = new_id("raw")
    handle = await limited_client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=tq)
    task = await limited_client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw"),
        timeout=timedelta(seconds=10),
    )
    await handle.signal(WaitForSignal.finish, "meanwhile")
    complete = Command(
        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
    )
    try:
        await limited_client.workflow_service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace="default", task_token=task.task_token, identity="raw", commands=[complete]
            )
        )
    except RPCError as e:  # the reference answers INVALID_ARGUMENT, Hourglass OK: either way it failed
        assert e.status == RPCStatusCode.INVALID_ARGUMENT
    await wait_for_event(handle, "WORKFLOW_TASK_FAILED")
    failed = next(
        e.workflow_task_failed_event_attributes
        for e in (await handle.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    )
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
    assert failed.failure.message == "UnhandledCommand"
    await handle.terminate("done")


async def test_blob_size_limit_refuses_a_payload_over_it(limited_client: Client) -> None:
    """`limit.blobSize.error` bounds what a request carries: a signal and a start over it are refused, one
    under it is taken (Hourglass read only its own `max_blob_bytes` before)."""
    handle = await limited_client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=new_id("tq"))
    with pytest.raises(RPCError) as refused:
        await handle.signal(WaitForSignal.finish, "x" * (BLOB_SIZE_LIMIT + 1000))
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert "size exceeds limit" in refused.value.message
    with pytest.raises(RPCError) as refused:
        await limited_client.start_workflow(
            WaitForSignal.run, "x" * (BLOB_SIZE_LIMIT + 1000), id=new_id(), task_queue=new_id("tq")
        )
    assert refused.value.status == RPCStatusCode.INVALID_ARGUMENT
    await handle.signal(WaitForSignal.finish, "x" * (BLOB_SIZE_LIMIT - 1000))
    await handle.terminate()
