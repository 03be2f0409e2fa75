"""Client mistakes the reference refuses (or caps), each with the reference's status and message (issue 14).

Before, Hourglass accepted these (a retry policy with backoff 0.5 made a workflow retry 1450 times in
10 s), answered INTERNAL (a cron with no firing, 2^62 s timeouts, numbers no store can hold), UNKNOWN
(undecodable requests) or RESOURCE_EXHAUSTED (a 100k-char cron echoed into the error). Run with
HOURGLASS_COMPAT_TARGET=reference to prove each expectation on the reference.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import (
    ActivityType,
    Payload,
    Payloads,
    RetryPolicy,
    SearchAttributes,
    WorkflowExecution,
    WorkflowType,
)
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    IndexedValueType,
    WorkflowIdConflictPolicy,
    WorkflowTaskFailedCause,
)
from temporalio.api.filter.v1 import StartTimeFilter, StatusFilter
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.schedule.v1 import Schedule, ScheduleAction, ScheduleSpec
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    CreateScheduleRequest,
    DescribeNamespaceRequest,
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
    ListWorkflowExecutionsRequest,
    PollWorkflowTaskQueueRequest,
    QueryWorkflowRequest,
    RegisterNamespaceRequest,
    RespondWorkflowTaskCompletedRequest,
    SignalWithStartWorkflowExecutionRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker
from .servers import ServerProcess
from .test_bad_input import NOBODY, raw_start
from .workflows import SignalCollector

BLOB_LIMIT_MESSAGE = "Blob data size exceeds limit."
OVER_BLOB_LIMIT = Payloads(payloads=[Payload(data=b"x" * (2 * 1024 * 1024 + 100 * 1024))])
HUNDRED_YEARS_S = 3_153_600_000  # the reference caps timeouts and start delays here


async def invalid(call) -> str:
    """The message of the INVALID_ARGUMENT `call` must raise."""
    with pytest.raises(RPCError) as info:
        await call
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT, info.value.message
    return info.value.message


# -- retry policies ---------------------------------------------------------------------------------

BAD_RETRY_POLICIES = [
    (
        RetryPolicy(initial_interval=Duration(seconds=-1)),
        "invalid InitialInterval set on retry policy: negative duration",
    ),
    (RetryPolicy(backoff_coefficient=0.5), "BackoffCoefficient cannot be less than 1 on retry policy."),
    (RetryPolicy(maximum_attempts=-1), "MaximumAttempts cannot be negative on retry policy."),
    (
        RetryPolicy(initial_interval=Duration(seconds=10), maximum_interval=Duration(seconds=5)),
        "MaximumInterval cannot be less than InitialInterval on retry policy.",
    ),
    (
        RetryPolicy(maximum_interval=Duration(seconds=-5)),
        "invalid MaximumInterval set on retry policy: negative duration",
    ),
]


@pytest.mark.parametrize("policy, message", BAD_RETRY_POLICIES)
async def test_start_with_a_bad_retry_policy(client: Client, policy: RetryPolicy, message: str) -> None:
    start = client.workflow_service.start_workflow_execution(raw_start(retry_policy=policy))
    assert await invalid(start) == message


@pytest.mark.parametrize(
    "attributes, message",
    [
        (
            {"retry_policy": RetryPolicy(backoff_coefficient=0.5)},
            "BadScheduleActivityAttributes: BackoffCoefficient cannot be less than 1 on retry policy.",
        ),
        (
            {"retry_policy": RetryPolicy(maximum_attempts=-1)},
            "BadScheduleActivityAttributes: MaximumAttempts cannot be negative on retry policy.",
        ),
        (
            {"task_queue": TaskQueue(name="/_sys/activities")},
            "BadScheduleActivityAttributes: task queue name cannot start with reserved prefix /_sys/",
        ),
        (
            {"start_to_close_timeout": None},
            "BadScheduleActivityAttributes: a valid StartToCloseTimeout or ScheduleToCloseTimeout must be "
            "set on the activity. ActivityId=a1 ActivityType=Anything",
        ),
    ],
)
async def test_schedule_activity_command_with_bad_attributes(
    client: Client, attributes: dict[str, object], message: str
) -> None:
    """The worker gets INVALID_ARGUMENT and the workflow task fails with the reference's cause and text."""
    service = client.workflow_service
    task_queue, workflow_id = new_id("tq"), new_id()
    await service.start_workflow_execution(
        raw_start(workflow_id=workflow_id, task_queue=TaskQueue(name=task_queue))
    )
    poll = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(
            namespace="default", task_queue=TaskQueue(name=task_queue), identity="raw"
        ),
        timeout=timedelta(seconds=20),
    )
    fields: dict[str, object] = {
        "activity_id": "a1",
        "activity_type": ActivityType(name="Anything"),
        "task_queue": TaskQueue(name=task_queue),
        "start_to_close_timeout": Duration(seconds=10),
        **attributes,
    }
    command = Command(
        command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
            **{k: v for k, v in fields.items() if v is not None}  # type: ignore[arg-type]
        ),
    )
    respond = service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default", task_token=poll.task_token, commands=[command], identity="raw"
        )
    )
    assert await invalid(respond) == message
    history = await service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    failed = [e for e in history.history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert len(failed) == 1
    attrs = failed[0].workflow_task_failed_event_attributes
    assert attrs.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    assert attrs.failure.message == message
    assert not any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.history.events
    )
    await client.get_workflow_handle(workflow_id).terminate()


# -- start delays, timeouts, task queues, crons -----------------------------------------------------


async def test_negative_start_delay(client: Client) -> None:
    start = client.workflow_service.start_workflow_execution(
        raw_start(workflow_start_delay=Duration(seconds=-1))
    )
    assert await invalid(start) == (
        "An invalid WorkflowStartDelaySeconds is set on request. cause: negative duration"
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"workflow_start_delay": Duration(seconds=300_000_000_000)},
        {"workflow_execution_timeout": Duration(seconds=2**62)},
        {"workflow_run_timeout": Duration(seconds=2**62)},
    ],
)
async def test_huge_delays_and_timeouts_are_capped_and_readable(client: Client, fields: dict) -> None:
    """Accepted and capped at 100 years (task timeouts at 120 s); the run stays describable and listable."""
    service = client.workflow_service
    request = raw_start(**fields)
    await service.start_workflow_execution(request)
    described = await service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=request.workflow_id)
        )
    )
    config = described.execution_config
    assert config.workflow_execution_timeout.seconds in (0, HUNDRED_YEARS_S)
    assert config.workflow_run_timeout.seconds in (0, HUNDRED_YEARS_S)
    assert config.default_workflow_task_timeout.seconds in (10, 120)
    history = await service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=request.workflow_id)
        )
    )
    started = history.history.events[0].workflow_execution_started_event_attributes
    assert started.first_workflow_task_backoff.seconds in (0, HUNDRED_YEARS_S)
    deadline = time.monotonic() + 15
    query = f"WorkflowId = '{request.workflow_id}'"
    while True:  # visibility is eventually consistent on the reference
        listed = await service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", query=query)
        )
        if listed.executions or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [e.execution.workflow_id for e in listed.executions] == [request.workflow_id]
    await client.get_workflow_handle(request.workflow_id).terminate()


@pytest.mark.parametrize("name", ["/_sys/orders", "/_sys/orders/3"])
async def test_reserved_task_queue_prefix(client: Client, name: str) -> None:
    start = client.workflow_service.start_workflow_execution(raw_start(task_queue=TaskQueue(name=name)))
    assert await invalid(start) == "task queue name cannot start with reserved prefix /_sys/"


async def test_cron_that_never_fires(client: Client) -> None:
    start = client.workflow_service.start_workflow_execution(raw_start(cron_schedule="0 0 31 2 *"))
    assert await invalid(start) == "invalid CronSchedule, no time can be found to satisfy the schedule"


async def test_long_invalid_cron_is_not_echoed(client: Client) -> None:
    # Echoed, 100k characters made the status exceed gRPC's metadata limit (RESOURCE_EXHAUSTED).
    start = client.workflow_service.start_workflow_execution(raw_start(cron_schedule="1 " * 50_000))
    assert await invalid(start) == "invalid CronSchedule."


async def test_signal_with_start_refuses_conflict_policy_fail(client: Client) -> None:
    request = SignalWithStartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=new_id(),
        workflow_type=WorkflowType(name="WaitForSignal"),
        task_queue=TaskQueue(name=NOBODY),
        signal_name="go",
        request_id=str(uuid.uuid4()),
        workflow_id_conflict_policy=WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
    )
    assert await invalid(client.workflow_service.signal_with_start_workflow_execution(request)) == (
        "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation."
    )


# -- namespaces -------------------------------------------------------------------------------------


async def test_retention_below_the_minimum(client: Client) -> None:
    # The reference's minimum is an hour; the compat harness lowers Hourglass's to 1 s
    # (system.namespaceMinRetentionLocal), so half a second is refused by both.
    short = Duration(nanos=500_000_000)
    name = new_id("ns")
    register = client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=short)
    )
    assert await invalid(register) == "A valid retention period is not set on request."
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    update = client.workflow_service.update_namespace(
        UpdateNamespaceRequest(namespace=name, config=NamespaceConfig(workflow_execution_retention_ttl=short))
    )
    assert await invalid(update) == "A valid retention period is not set on request."


# -- visibility -------------------------------------------------------------------------------------


async def test_list_closed_with_an_unknown_status(client: Client) -> None:
    listing = client.workflow_service.list_closed_workflow_executions(
        ListClosedWorkflowExecutionsRequest(namespace="default", status_filter=StatusFilter(status=99))  # type: ignore[arg-type]
    )
    assert await invalid(listing) == "invalid query: invalid expression: invalid ExecutionStatus value '99'"


async def test_time_filter_before_year_one_is_an_open_bound(client: Client) -> None:
    before_year_one = StartTimeFilter(earliest_time=Timestamp(seconds=-62_135_596_900))
    await client.workflow_service.list_open_workflow_executions(
        ListOpenWorkflowExecutionsRequest(namespace="default", start_time_filter=before_year_one)
    )
    await client.workflow_service.list_closed_workflow_executions(
        ListClosedWorkflowExecutionsRequest(namespace="default", start_time_filter=before_year_one)
    )


@pytest.mark.parametrize(
    "query", ["HistoryLength > 100000000000000000000000000", "HistoryLength < -100000000000000000000000000"]
)
async def test_numbers_beyond_64_bits_in_a_query(client: Client, query: str) -> None:
    listed = await client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query=query)
    )
    assert list(listed.executions) == []
    counted = await client.workflow_service.count_workflow_executions(
        CountWorkflowExecutionsRequest(namespace="default", query=query)
    )
    assert counted.count == 0


async def test_forged_page_token_with_a_huge_number(client: Client) -> None:
    # Each server has its own token format (the reference ignores this one): neither may fail inside.
    token = b'{"v":1,"after":[99999999999999999999999999999,1,"x","y"]}'
    try:
        await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace="default", next_page_token=token)
        )
    except RPCError as err:
        assert (err.status, err.message) == (RPCStatusCode.INVALID_ARGUMENT, "Invalid NextPageToken.")


async def test_int_search_attribute_beyond_64_bits(client: Client) -> None:
    name = "CompatInt64Limit"
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_INT}
            )
        )
    except RPCError as err:
        assert err.status == RPCStatusCode.ALREADY_EXISTS
    attributes = SearchAttributes(
        indexed_fields={name: Payload(metadata={"encoding": b"json/plain"}, data=b"9223372036854775808")}
    )
    deadline = time.monotonic() + 10
    while True:  # the reference's search attribute cache takes a moment to see a new attribute
        with pytest.raises(RPCError) as info:
            await client.workflow_service.start_workflow_execution(raw_start(search_attributes=attributes))
        if "no mapping defined" not in info.value.message or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert (
        info.value.message == f"invalid value for search attribute {name} of type Int: 9.223372036854776e+18"
    )


# -- schedules and queries --------------------------------------------------------------------------


def _schedule(start: NewWorkflowExecutionInfo) -> Schedule:
    return Schedule(spec=ScheduleSpec(cron_string=["0 * * * *"]), action=ScheduleAction(start_workflow=start))


async def test_schedule_id_too_long(client: Client) -> None:
    # The reference runs a schedule as the workflow "temporal-sys-scheduler:<id>": its id limit applies.
    create = client.workflow_service.create_schedule(
        CreateScheduleRequest(
            namespace="default",
            schedule_id="s" * 2000,
            request_id=str(uuid.uuid4()),
            schedule=_schedule(
                NewWorkflowExecutionInfo(
                    workflow_id="x", workflow_type=WorkflowType(name="T"), task_queue=TaskQueue(name=NOBODY)
                )
            ),
        )
    )
    assert await invalid(create) == "WorkflowId exceeds maximum allowed length (2023/1000)"


async def test_schedule_action_input_over_the_blob_limit(client: Client) -> None:
    create = client.workflow_service.create_schedule(
        CreateScheduleRequest(
            namespace="default",
            schedule_id=new_id("sched"),
            request_id=str(uuid.uuid4()),
            schedule=_schedule(
                NewWorkflowExecutionInfo(
                    workflow_id="x",
                    workflow_type=WorkflowType(name="T"),
                    task_queue=TaskQueue(name=NOBODY),
                    input=OVER_BLOB_LIMIT,
                )
            ),
        )
    )
    assert await invalid(create) == BLOB_LIMIT_MESSAGE


async def test_query_args_over_the_blob_limit(client: Client) -> None:
    handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=NOBODY)
    query = client.workflow_service.query_workflow(
        QueryWorkflowRequest(
            namespace="default",
            execution=WorkflowExecution(workflow_id=handle.id),
            query=WorkflowQuery(query_type="items", query_args=OVER_BLOB_LIMIT),
        )
    )
    assert await invalid(query) == BLOB_LIMIT_MESSAGE
    await handle.terminate()


async def test_query_result_over_the_blob_limit_fails_the_query(client: Client) -> None:
    async with run_worker(client, workflows=[SignalCollector], activities=[]) as task_queue:
        handle = await client.start_workflow(SignalCollector.run, id=new_id(), task_queue=task_queue)
        for _ in range(2):  # each signal fits; the query's answer (both) does not
            await handle.signal(SignalCollector.add, "x" * (1100 * 1024))
        deadline = time.monotonic() + 10
        while True:
            try:
                items = await handle.query(SignalCollector.items)
            except WorkflowQueryFailedError as failed:
                assert str(failed) == BLOB_LIMIT_MESSAGE
                break
            # Answered before the worker saw the second signal: fine, if the answer was within limits.
            assert sum(len(i) for i in items) < 2 * 1024 * 1024
            assert time.monotonic() < deadline, "the worker never saw both signals"
            await asyncio.sleep(0.2)
        await handle.terminate()


# -- requests that cannot be decoded ----------------------------------------------------------------


@pytest.mark.parametrize(
    "method, body, message",
    [
        (
            "DescribeNamespace",
            b"\x0a\x03\xff\xfe\xfd",  # namespace: three bytes that are not UTF-8
            "grpc: error unmarshalling request: string field contains invalid UTF-8",
        ),
        (
            "StartWorkflowExecution",
            b"\x0a\x07default\x12\x02\xff\xfe",  # workflow_id: not UTF-8
            "grpc: error unmarshalling request: string field contains invalid UTF-8",
        ),
        ("DescribeNamespace", b"\xff\xff\xff\xff", None),  # not protobuf at all
    ],
)
async def test_undecodable_request(
    server: ServerProcess, method: str, body: bytes, message: str | None
) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = channel.unary_unary(
            f"/temporal.api.workflowservice.v1.WorkflowService/{method}",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(body, timeout=10)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    details = info.value.details() or ""
    if message is not None:
        assert details == message
    else:  # Go's protobuf writes the space after "proto:" as a space or a no-break space
        assert details.startswith("grpc: error unmarshalling request: proto:")
        assert details.endswith("cannot parse invalid wire-format data")


# -- long values echoed into errors -------------------------------------------------------------------


async def test_namespace_name_too_long(server: ServerProcess) -> None:
    # By raw request: the SDK also sends the namespace in a header, which gRPC limits first.
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(DescribeNamespaceRequest(namespace="n" * 100_000).SerializeToString(), timeout=10)
    assert (info.value.code(), info.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Namespace length exceeds limit.",
    )


@pytest.mark.parametrize(
    "query",
    ["WorkflowId = " + "x" * 100_000, "`" + "é" * 30_000 + "` = 'a'"],  # an unquoted value; a name
    ids=["ascii", "non-ascii"],
)
async def test_an_error_echoing_a_long_query_still_reaches_the_client(client: Client, query: str) -> None:
    # Echoed whole, the message made the status too large for the client's metadata limit.
    listing = client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query=query)
    )
    message = await invalid(listing)
    assert message.startswith("invalid query")
    assert len(message) <= 4000
