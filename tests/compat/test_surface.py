"""The rest of the surface real applications use: parent close policies, local activities, patches,
side effects, workflow retries and cron, task-queue pollers, reverse history, deletion, namespaces."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import activity, workflow
from temporalio.api.command.v1 import Command, StartChildWorkflowExecutionCommandAttributes
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, TaskQueueType, WorkflowTaskFailedCause
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryReverseRequest,
    PollWorkflowTaskQueueRequest,
    RegisterNamespaceRequest,
    RespondWorkflowTaskCompletedRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from .conftest import ServerProcess
from .helpers import new_id, run_worker
from .servers import REFERENCE
from .workflows import SignalCollector


@activity.defn
async def local_double(n: int) -> int:
    return 2 * n


@workflow.defn
class LocalAndPatched:
    @workflow.run
    async def run(self, n: int) -> list:
        doubled = await workflow.execute_local_activity(
            local_double, n, start_to_close_timeout=timedelta(seconds=5)
        )
        patched = workflow.patched("use-new-path")
        token = workflow.uuid4()  # deterministic side effect: replays to the same value
        await workflow.sleep(0.1)
        return [doubled, patched, str(token) == str(workflow.uuid4()) is False]


@workflow.defn
class Forever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class ParentWithPolicies:
    """Starts two children that run forever (one ABANDON, one default TERMINATE), then completes."""

    @workflow.run
    async def run(self) -> str:
        prefix = workflow.info().workflow_id
        await workflow.start_child_workflow(
            Forever.run, id=f"{prefix}-abandoned", parent_close_policy=workflow.ParentClosePolicy.ABANDON
        )
        await workflow.start_child_workflow(Forever.run, id=f"{prefix}-terminated")
        return "parent done"


@workflow.defn
class CancelsItsChild:
    @workflow.run
    async def run(self) -> str:
        child = await workflow.start_child_workflow(Forever.run, id=f"{workflow.info().workflow_id}-child")
        child.cancel()
        try:
            await child
        except Exception as err:  # ChildWorkflowError(CancelledError)
            return type(err.__cause__).__name__
        return "not cancelled"


@workflow.defn
class FailsUntilThirdAttempt:
    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt < 3:
            raise ApplicationError(f"attempt {workflow.info().attempt}")
        return workflow.info().attempt


@workflow.defn
class CronTick:
    @workflow.run
    async def run(self) -> str:
        return "tick"


WORKFLOWS = [LocalAndPatched, Forever, ParentWithPolicies, CancelsItsChild, FailsUntilThirdAttempt, CronTick]


async def _status(client: Client, wf_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(wf_id).describe()).status


async def _eventually_status(client: Client, wf_id: str, status: WorkflowExecutionStatus) -> None:
    for _ in range(100):
        if await _status(client, wf_id) == status:
            return
        await asyncio.sleep(0.1)
    assert await _status(client, wf_id) == status


async def test_local_activity_patch_and_side_effect(client: Client) -> None:
    wf_id = new_id("local")
    async with run_worker(client, workflows=WORKFLOWS, activities=[local_double]) as tq:
        result = await client.execute_workflow(LocalAndPatched.run, 21, id=wf_id, task_queue=tq)
    assert result[:2] == [42, True]
    history = await client.get_workflow_handle(wf_id).fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert "core_local_activity" in markers and "core_patch" in markers


async def test_parent_close_policies(client: Client) -> None:
    wf_id = new_id("policies")
    async with run_worker(client, workflows=WORKFLOWS) as tq:
        assert await client.execute_workflow(ParentWithPolicies.run, id=wf_id, task_queue=tq) == "parent done"
        await _eventually_status(client, f"{wf_id}-terminated", WorkflowExecutionStatus.TERMINATED)
        assert await _status(client, f"{wf_id}-abandoned") == WorkflowExecutionStatus.RUNNING
        await client.get_workflow_handle(f"{wf_id}-abandoned").terminate()


async def test_a_parent_cancels_its_child(client: Client) -> None:
    wf_id = new_id("cancel-child")
    async with run_worker(client, workflows=WORKFLOWS) as tq:
        assert await client.execute_workflow(CancelsItsChild.run, id=wf_id, task_queue=tq) == "CancelledError"
    assert await _status(client, f"{wf_id}-child") == WorkflowExecutionStatus.CANCELED


async def test_workflow_retry_policy(client: Client) -> None:
    wf_id = new_id("wf-retry")
    async with run_worker(client, workflows=WORKFLOWS) as tq:
        handle = await client.start_workflow(
            FailsUntilThirdAttempt.run,
            id=wf_id,
            task_queue=tq,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=5),
        )
        assert await handle.result() == 3  # the handle follows the retries' runs
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                FailsUntilThirdAttempt.run,
                id=new_id("wf-retry-exhausted"),
                task_queue=tq,
                retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
            )
    first = await client.get_workflow_handle(wf_id, run_id=handle.first_execution_run_id).fetch_history()
    failed = first.events[-1].workflow_execution_failed_event_attributes
    assert failed.new_execution_run_id  # the failed attempt names the run that retries it


async def test_cron_schedule_runs_repeatedly(client: Client) -> None:
    wf_id = new_id("cron")
    async with run_worker(client, workflows=WORKFLOWS) as tq:
        handle = await client.start_workflow(CronTick.run, id=wf_id, task_queue=tq, cron_schedule="* * * * *")
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING  # waiting for the next minute
        history = await handle.fetch_history()
        backoff = history.events[0].workflow_execution_started_event_attributes.first_workflow_task_backoff
        assert 0 < backoff.ToTimedelta().total_seconds() <= 60
        await handle.terminate()


async def test_invalid_cron_schedule_is_rejected(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.start_workflow(
            CronTick.run, id=new_id("cron-bad"), task_queue="x", cron_schedule="every day"
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT


async def test_describe_task_queue_shows_pollers(client: Client) -> None:
    async with run_worker(client, workflows=WORKFLOWS, identity="compat-poller") as tq:
        for _ in range(50):
            described = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=tq),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            if described.pollers:
                break
            await asyncio.sleep(0.1)
    assert "compat-poller" in [p.identity for p in described.pollers]


async def test_reverse_history_and_delete(client: Client) -> None:
    wf_id = new_id("reverse")
    handle = await client.start_workflow(SignalCollector.run, id=wf_id, task_queue=new_id("nobody"))
    for i in range(3):
        await handle.signal(SignalCollector.add, str(i))
    forward = [e.event_id for e in (await handle.fetch_history()).events]
    reverse = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=wf_id), maximum_page_size=100
        )
    )
    assert [e.event_id for e in reverse.history.events] == list(reversed(forward))
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace="default", workflow_execution=WorkflowExecution(workflow_id=wf_id)
        )
    )
    for _ in range(100):  # the reference deletes asynchronously
        try:
            await handle.describe()
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the deleted workflow is still there")


async def test_namespace_register_update_describe(client: Client) -> None:
    name = new_id("ns")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400 * 2)
        )
    )
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=name,
            update_info=UpdateNamespaceInfo(description="updated"),
            config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=86400 * 3)),
        )
    )
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
    assert described.namespace_info.description == "updated"
    assert described.config.workflow_execution_retention_ttl.seconds == 86400 * 3
    with pytest.raises(RPCError) as info:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
            )
        )
    assert info.value.status == RPCStatusCode.ALREADY_EXISTS
    with pytest.raises(RPCError) as info:
        await client.workflow_service.register_namespace(RegisterNamespaceRequest(namespace=new_id("ns")))
    assert (info.value.status, info.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "A valid retention period is not set on request.",
    )


async def test_retention_deletes_closed_workflows(server: ServerProcess, client: Client) -> None:
    if server.kind == REFERENCE:
        pytest.skip("the reference requires a retention of at least a day")
    name = new_id("short-retention")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=1))
    )
    short = await Client.connect(server.address, namespace=name)
    wf_id = str(uuid.uuid4())
    handle = await short.start_workflow(SignalCollector.run, id=wf_id, task_queue=new_id("nobody"))
    await handle.terminate()
    for _ in range(60):
        try:
            await handle.describe()
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the closed workflow outlived its namespace's retention")


async def test_a_command_with_an_invalid_parent_close_policy_fails_the_task(
    server: ServerProcess, client: Client
) -> None:
    """A worker speaking the raw protocol sends a child start with an unknown parent close policy: the
    completion is refused with INVALID_ARGUMENT, the workflow task fails, and no child is started."""
    if server.kind == REFERENCE:
        pytest.skip(
            "deliberately stricter than the reference, which accepts the unknown policy and starts the child"
        )
    tq = new_id("raw")
    handle = await client.start_workflow(CronTick.run, id=new_id("bad-policy"), task_queue=tq)
    poll = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), identity="raw"),
        timeout=timedelta(seconds=10),
    )
    command = Command(
        command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
            workflow_id=f"{handle.id}-child",
            workflow_type=WorkflowType(name="CronTick"),
            task_queue=TaskQueue(name=tq),
            parent_close_policy=99,
        ),
    )
    with pytest.raises(RPCError) as info:
        await client.workflow_service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace="default", task_token=poll.task_token, commands=[command], identity="raw"
            )
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    events = (await handle.fetch_history()).events
    failed = (
        events[-2] if events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED else events[-1]
    )
    assert failed.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    assert failed.workflow_task_failed_event_attributes.cause == (
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
    )
    assert not any(
        e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED for e in events
    )
    await handle.terminate()
