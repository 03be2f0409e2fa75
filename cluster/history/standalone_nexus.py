"""Standalone Nexus operations (StartNexusOperationExecution, issue 15): the request as a hidden run.

As a standalone activity is (standalone_activity.py), the operation is kept as a hidden run of its own
(standalone_ids.NEXUS_PREFIX): it starts with NexusOperationScheduled in its history and the operation in
its mutable state, so the shard's transfer and timer queues hand the start to the endpoint's handler with
the same attempts, timeouts and `temporal://system` completion callback as a workflow's operation
(nexus_executors.py, nexus_operations.py). The run has no workflow tasks and closes with the operation's
outcome (`close_run`). This module turns the request into that run and the run back into what
DescribeNexusOperationExecution / PollNexusOperationExecution / ListNexusOperationExecutions answer.
"""

from __future__ import annotations

import json
import urllib.parse

from temporalio.api.common.v1 import Link, Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import (
    EventType,
    NexusOperationCancellationState,
    NexusOperationExecutionStatus,
    PendingNexusOperationState,
    RetryState,
    WorkflowExecutionStatus,
)
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure, TerminatedFailureInfo
from temporalio.api.history.v1 import HistoryEvent, NexusOperationScheduledEventAttributes
from temporalio.api.nexus.v1 import (
    NexusOperationExecutionCancellationInfo,
    NexusOperationExecutionInfo,
    NexusOperationExecutionListInfo,
)
from temporalio.api.workflowservice.v1 import (
    StartNexusOperationExecutionRequest,
    StartWorkflowExecutionRequest,
)

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument
from hourglass.cluster.history import codec, standalone_ids
from hourglass.cluster.history.mutable_state import MutableState, NexusOperationInfo
from hourglass.cluster.history.runs import NewRun
from hourglass.cluster.history.timeutil import now_ms, to_duration, to_timestamp
from hourglass.cluster.history.transition import Transition
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility.values import parse_search_attributes

# The reference's limits (nexusoperation.limit.*, limit.maxIDLength).
MAX_ID_LENGTH = 1000
MAX_NAME_LENGTH = 1000
MAX_HEADER_BYTES = 8192
# Headers a caller may not set (the reference's nexusoperation.disallowedHeaders default).
DISALLOWED_HEADERS = frozenset(
    {
        "request-timeout",
        "xdc-redirection-api",
        "xdc-redirection",
        "caller-name",
        "caller-type",
        "call-initiation",
        "principal-type",
        "principal-name",
    }
)
# The search attribute the hidden run keeps the operation's service under, so lists show it and queries
# name it (`Service = "..."`), as the reference's; the run's type is the operation's name and its task queue
# the endpoint's, so `Operation` and `Endpoint` are queried as those columns. Users never see it among
# the operation's search attributes.
SERVICE_ATTRIBUTE = "Service"
NEXUS_OPERATION_LINK_TYPE = "temporal.api.common.v1.Link.NexusOperation"

_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_FAILED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT,
}
_TERMINAL_NAMES = {
    NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED: "Succeeded",
    NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_FAILED: "Failed",
    NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED: "Canceled",
    NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED: "Terminated",
    NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT: "TimedOut",
}
_OUTCOME_EVENTS = {
    EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED,
    EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED,
    EventType.EVENT_TYPE_NEXUS_OPERATION_CANCELED,
    EventType.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT,
}


def check_start(request: StartNexusOperationExecutionRequest) -> None:
    """The request's own checks, in the reference's order and with its INVALID_ARGUMENT messages; headers
    are lower-cased and the policies defaulted (ALLOW_DUPLICATE, FAIL) as the reference normalizes them."""
    if len(request.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"request_id exceeds length limit. Length={len(request.request_id)} Limit={MAX_ID_LENGTH}"
        )
    if not request.operation_id:
        raise InvalidArgument("operation_id is required")
    if len(request.operation_id) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"operation_id exceeds length limit. Length={len(request.operation_id)} Limit={MAX_ID_LENGTH}"
        )
    if len(request.identity) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"identity exceeds length limit. Length={len(request.identity)} Limit={MAX_ID_LENGTH}"
        )
    if not request.endpoint:
        raise InvalidArgument("endpoint is required")
    if not request.service:
        raise InvalidArgument("service is required")
    if len(request.service) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"service exceeds length limit. Length={len(request.service)} Limit={MAX_NAME_LENGTH}"
        )
    if not request.operation:
        raise InvalidArgument("operation is required")
    if len(request.operation) > MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"operation exceeds length limit. Length={len(request.operation)} Limit={MAX_NAME_LENGTH}"
        )
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        d = getattr(request, name)
        if d.seconds < 0 or d.nanos < 0:
            raise InvalidArgument(f"{name} is invalid: negative duration")
    lowered: dict[str, str] = {}
    size = 0
    for key, value in request.nexus_header.items():
        lower = key.lower()
        if lower in DISALLOWED_HEADERS:
            raise InvalidArgument(f'nexus_header contains a disallowed key: "{key}"')
        size += len(lower) + len(value)
        lowered[lower] = value
    if size > MAX_HEADER_BYTES:
        raise InvalidArgument("nexus_header exceeds size limit")
    request.nexus_header.clear()
    request.nexus_header.update(lowered)
    if not request.id_reuse_policy:
        request.id_reuse_policy = 1  # NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE
    if not request.id_conflict_policy:
        request.id_conflict_policy = 1  # NEXUS_OPERATION_ID_CONFLICT_POLICY_FAIL


def start_policies(request: StartNexusOperationExecutionRequest) -> StartWorkflowExecutionRequest:
    """The id reuse and conflict policies as the run start's (the enum numbers coincide)."""
    return StartWorkflowExecutionRequest(
        workflow_id=standalone_ids.nexus_workflow_id(request.operation_id),
        request_id=request.request_id,
        workflow_id_reuse_policy=request.id_reuse_policy,  # type: ignore[arg-type]
        workflow_id_conflict_policy=request.id_conflict_policy,  # type: ignore[arg-type]
    )


def new_run(namespace_id: str, namespace: str, request: StartNexusOperationExecutionRequest) -> NewRun:
    search_attributes = SearchAttributes()
    if request.HasField("search_attributes"):
        search_attributes.CopyFrom(request.search_attributes)
    search_attributes.indexed_fields[SERVICE_ATTRIBUTE].CopyFrom(
        Payload(
            metadata={"encoding": b"json/plain", "type": b"Keyword"},
            data=json.dumps(request.service).encode(),
        )
    )
    extra = {"user_metadata": request.user_metadata} if request.HasField("user_metadata") else {}
    return NewRun(
        namespace_id=namespace_id,
        namespace=namespace,
        workflow_id=standalone_ids.nexus_workflow_id(request.operation_id),
        workflow_type=request.operation,
        task_queue=request.endpoint,
        request_id=request.request_id,
        identity=request.identity,
        input=Payloads(payloads=[request.input]) if request.HasField("input") else None,
        search_attributes=search_attributes,
        extra_started_fields=extra,
        completion_callbacks=list(request.completion_callbacks),
    )


def scheduled_attributes(
    request: StartNexusOperationExecutionRequest, endpoint_id: str
) -> NexusOperationScheduledEventAttributes:
    attrs = NexusOperationScheduledEventAttributes(
        endpoint=request.endpoint,
        endpoint_id=endpoint_id,
        service=request.service,
        operation=request.operation,
        nexus_header=dict(request.nexus_header),
    )
    if request.HasField("input"):
        attrs.input.CopyFrom(request.input)
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if request.HasField(name):
            getattr(attrs, name).CopyFrom(getattr(request, name))
    return attrs


def operation_link(namespace: str, operation_id: str, run_id: str) -> str:
    """The Nexus link a handler gets back to a standalone operation (the SDK's NexusOperation link URL)."""
    q = urllib.parse.quote
    return (
        f"temporal:///namespaces/{q(namespace, safe='')}/nexus-operations/"
        f"{q(operation_id, safe='')}/{q(run_id, safe='')}/details"
    )


def point_links_at_operation(request, ms: MutableState) -> None:
    """A start request (nexus_dispatch.start_request) for a hidden run: its links name the standalone
    operation, not a workflow event, as the reference's do."""
    url = operation_link(ms.info.namespace, standalone_ids.operation_id(ms.info.workflow_id), ms.info.run_id)
    request.header["nexus-link"] = f'<{url}>; type="{NEXUS_OPERATION_LINK_TYPE}"'
    start = request.start_operation
    del start.links[:]
    start.links.add(url=url, type=NEXUS_OPERATION_LINK_TYPE)


def operation_error(cause: Failure) -> Failure:
    """How an asynchronous operation's failure (its backing run's, by the completion callback) reaches a
    standalone operation's caller on the reference: an OperationError naming it unsuccessful, with the
    backing run's failure as its cause."""
    return Failure(
        message="nexus operation completed unsuccessfully",
        cause=cause,
        application_failure_info=ApplicationFailureInfo(type="OperationError", non_retryable=True),
    )


def close_run(tr: Transition, event_type: int, attrs) -> None:
    """The operation's outcome closes its hidden run (the operation stays in the run for describe)."""
    if event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED:
        result = Payloads(payloads=[attrs.result]) if attrs.HasField("result") else None
        tr.complete_workflow(result, 0)
    elif event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_CANCELED:
        tr.cancel_workflow(None, 0)
    elif event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT:
        tr.time_out_workflow(RetryState.RETRY_STATE_TIMEOUT)
    else:
        tr.fail_workflow(attrs.failure.cause, 0, RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE)


def the_operation(ms: MutableState) -> NexusOperationInfo | None:
    return next(iter(ms.nexus_operations.values()), None)


def status(ms: MutableState) -> int:
    return status_of(ms.info.status)


def status_of(workflow_status: int) -> int:
    """The operation's status for its hidden run's."""
    return _STATUS.get(
        workflow_status, NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_UNSPECIFIED
    )


def terminal_state_name(ms: MutableState) -> str:
    return _TERMINAL_NAMES.get(status(ms), "Closed")


def outcome(events: list[HistoryEvent]) -> tuple[Payload | None, Failure | None]:
    """The closed operation's (result, failure), from its history: the handler's failure itself (not the
    "nexus operation completed unsuccessfully" wrapper a workflow sees), as the reference answers a poll."""
    for ev in reversed(events):
        if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            reason = ev.workflow_execution_terminated_event_attributes.reason
            return None, Failure(message=reason, terminated_failure_info=TerminatedFailureInfo())
        if ev.event_type not in _OUTCOME_EVENTS:
            continue
        if ev.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED:
            a = ev.nexus_operation_completed_event_attributes
            return (a.result if a.HasField("result") else Payload()), None
        attrs = getattr(ev, ev.WhichOneof("attributes"))
        return None, attrs.failure.cause if attrs.failure.HasField("cause") else attrs.failure
    return None, None


def started_links(events: list[HistoryEvent]) -> list[Link]:
    for ev in events:
        if ev.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED:
            return list(ev.links)
    return []


def state(ms: MutableState, op: NexusOperationInfo) -> int:
    if not ms.running:
        return PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_UNSPECIFIED
    if op.started_event_id:
        return PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
    if op.last_attempt_failure is not None and op.next_attempt_time_ms > now_ms():
        return PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF
    return PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED


def info(
    ms: MutableState, scheduled: NexusOperationScheduledEventAttributes, events: list[HistoryEvent]
) -> NexusOperationExecutionInfo:
    """DescribeNexusOperationExecution's info: the run's state and its one operation's."""
    op = the_operation(ms)
    out = NexusOperationExecutionInfo(
        operation_id=standalone_ids.operation_id(ms.info.workflow_id),
        run_id=ms.info.run_id,
        endpoint=scheduled.endpoint,
        service=scheduled.service,
        operation=scheduled.operation,
        status=status(ms),  # type: ignore[arg-type]
        schedule_time=to_timestamp(ms.info.start_time_ms),
        request_id=ms.info.create_request_id,
        state_transition_count=ms.state_transition_count,
        nexus_header=dict(scheduled.nexus_header),
        links=started_links(events),
        state_size_bytes=len(codec.dumps(ms)),
    )
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if scheduled.HasField(name):
            getattr(out, name).CopyFrom(getattr(scheduled, name))
    started = events[0] if events else None
    if started is not None:
        out.identity = started.workflow_execution_started_event_attributes.identity
        if started.HasField("user_metadata"):
            out.user_metadata.CopyFrom(started.user_metadata)
    if ms.info.search_attributes is not None:
        out.search_attributes.CopyFrom(users_search_attributes(ms.info.search_attributes))
    if ms.info.close_time_ms:
        out.close_time.CopyFrom(to_timestamp(ms.info.close_time_ms))
        out.execution_duration.CopyFrom(to_duration(ms.info.close_time_ms - ms.info.start_time_ms))
    if op is None:
        return out
    out.state = state(ms, op)  # type: ignore[assignment]
    out.attempt = max(op.attempt, 1)
    out.operation_token = op.operation_token
    if op.schedule_to_close_timeout_ms:
        out.expiration_time.CopyFrom(to_timestamp(op.scheduled_time_ms + op.schedule_to_close_timeout_ms))
    if op.last_attempt_complete_time_ms:
        out.last_attempt_complete_time.CopyFrom(to_timestamp(op.last_attempt_complete_time_ms))
    if op.last_attempt_failure is not None:
        out.last_attempt_failure.CopyFrom(op.last_attempt_failure)
    if ms.running and out.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF:
        out.next_attempt_schedule_time.CopyFrom(to_timestamp(op.next_attempt_time_ms))
    if op.cancel_requested_event_id:
        out.cancellation_info.CopyFrom(cancellation_info(op, events))
    return out


def list_info(record: VisibilityRecord) -> NexusOperationExecutionListInfo:
    """What ListNexusOperationExecutions shows of one operation (its hidden run's visibility record)."""
    search_attributes = parse_search_attributes(record.search_attributes)
    out = NexusOperationExecutionListInfo(
        operation_id=standalone_ids.operation_id(record.workflow_id),
        run_id=record.run_id,
        endpoint=record.task_queue,
        service=service_of(search_attributes),
        operation=record.workflow_type,
        schedule_time=to_timestamp(record.start_time_ms),
        status=status_of(record.status),  # type: ignore[arg-type]
        state_transition_count=record.state_transition_count,
    )
    out.search_attributes.CopyFrom(users_search_attributes(search_attributes))
    if record.close_time_ms:
        out.close_time.CopyFrom(to_timestamp(record.close_time_ms))
        out.execution_duration.CopyFrom(to_duration(record.close_time_ms - record.start_time_ms))
    return out


def service_of(search_attributes: SearchAttributes) -> str:
    payload = search_attributes.indexed_fields.get(SERVICE_ATTRIBUTE)
    if payload is None:
        return ""
    try:
        value = json.loads(payload.data)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def users_search_attributes(search_attributes: SearchAttributes) -> SearchAttributes:
    """The operation's search attributes as its starter gave them (without the service kept among them)."""
    out = SearchAttributes()
    out.CopyFrom(search_attributes)
    if SERVICE_ATTRIBUTE in out.indexed_fields:
        del out.indexed_fields[SERVICE_ATTRIBUTE]
    return out


def request_cancel(tr: Transition, op: NexusOperationInfo, reason: str) -> None:
    """RequestCancelNexusOperationExecution, as the reference's: the handler of a started operation is asked
    to cancel it (its outcome comes later, by its completion callback); one not started yet is asked as soon
    as the handler starts it (nexus_operations.record_started). FAILED_PRECONDITION with the reference's
    words for a closed operation or a second request."""
    from hourglass.cluster.history import nexus_operations

    if not tr.ms.running:
        raise FailedPrecondition("operation already completed")
    if op.cancel_requested_event_id:
        raise FailedPrecondition("cancellation already requested")
    op.cancel_reason = reason
    nexus_operations.record_cancel_requested(tr, op, 0)


def cancellation_info(
    op: NexusOperationInfo, events: list[HistoryEvent]
) -> NexusOperationExecutionCancellationInfo:
    """Describe's cancellation_info: why it was asked, and how far the request to the handler got (its
    outcome events in the run's history)."""
    # (The reference leaves requested_time unset.)
    out = NexusOperationExecutionCancellationInfo(
        reason=op.cancel_reason,
        attempt=op.cancel_attempt,
        state=NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED,  # type: ignore[arg-type]
    )
    for ev in events:
        if ev.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED:
            out.state = NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED  # type: ignore[assignment]
            out.last_attempt_complete_time.CopyFrom(ev.event_time)
        elif ev.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_FAILED:
            out.state = NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_FAILED  # type: ignore[assignment]
            out.last_attempt_complete_time.CopyFrom(ev.event_time)
            out.last_attempt_failure.CopyFrom(
                ev.nexus_operation_cancel_request_failed_event_attributes.failure
            )
    return out


def terminate_closed_message(ms: MutableState) -> str:
    """FAILED_PRECONDITION's message for terminating a closed operation, as the reference words it (it
    also names an earlier terminate's request id, which Hourglass does not keep)."""
    if status(ms) == NexusOperationExecutionStatus.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED:
        return "already terminated"
    return f"invalid transition from {terminal_state_name(ms)}"
