"""Standalone activities (StartActivityExecution, issue 15): the request as a hidden run.

The run (see standalone_ids) starts with the activity scheduled and no workflow task; matching, the
worker's Respond*/heartbeat calls, timeouts and retries then work on it as on any workflow's activity, and
its close is the activity's outcome. This module turns the request into that run and the run back into
what DescribeActivityExecution / PollActivityExecution answer.
"""

from __future__ import annotations

import json

from temporalio.api.activity.v1 import ActivityExecutionInfo, ActivityExecutionOutcome
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import (
    ActivityExecutionStatus,
    EventType,
    PendingActivityState,
    WorkflowExecutionStatus,
)
from temporalio.api.failure.v1 import Failure, TerminatedFailureInfo
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes, HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartActivityExecutionRequest, StartWorkflowExecutionRequest

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history import codec, standalone_ids
from hourglass.cluster.history.mutable_state import ActivityInfo, MutableState
from hourglass.cluster.history.runs import NewRun
from hourglass.cluster.history.timeutil import duration_ms, to_duration, to_timestamp
from hourglass.cluster.history.transition import default_retry_policy

_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_RUNNING,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_COMPLETED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_FAILED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_CANCELED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_TERMINATED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_TIMED_OUT,
}
_CLOSE_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


_TERMINAL_NAMES = {
    ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_COMPLETED: "Completed",
    ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_FAILED: "Failed",
    ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_CANCELED: "Canceled",
    ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_TERMINATED: "Terminated",
    ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_TIMED_OUT: "TimedOut",
}


def terminal_state_message(ms: MutableState) -> str:
    """FAILED_PRECONDITION's message for an operation on a closed activity, as the reference words it."""
    return f"activity is in terminal state {_TERMINAL_NAMES.get(status(ms), 'Closed')}"


def closed_operation_message(ms: MutableState, request: object) -> str:
    """FAILED_PRECONDITION's message for pausing (the reference's words) or otherwise operating on a closed
    standalone activity."""
    state = _TERMINAL_NAMES.get(status(ms), "Closed")
    kind = type(request).__name__
    if kind == "PauseActivityExecutionRequest":
        return f"activity is in non-pausable state {state}"
    if kind == "ResetActivityExecutionRequest":
        return "activity execution is not running"
    if kind == "UpdateActivityExecutionOptionsRequest":
        return f"Cannot update options for activity in state {state}"
    return f"activity is in terminal state {state}"


def terminate_closed_message(ms: MutableState) -> str:
    """FAILED_PRECONDITION's message for terminating a closed activity (the reference's words; it also
    names the earlier terminate's request id, which Hourglass does not keep)."""
    if status(ms) == ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_TERMINATED:
        return "already terminated"
    return invalid_transition_message(ms)


def invalid_transition_message(ms: MutableState) -> str:
    """FAILED_PRECONDITION's message for a closed activity asked to close again (the reference's words)."""
    return f"invalid transition from {_TERMINAL_NAMES.get(status(ms), 'Closed')}"


def reason_payloads(reason: str) -> Payloads:
    """A cancel reason as the canceled failure's details (a JSON string), as the reference records it."""
    return Payloads(
        payloads=[Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(reason).encode())]
    )


def check_start(request: StartActivityExecutionRequest) -> None:
    """The request's own checks, with the reference's INVALID_ARGUMENT messages."""
    if not request.activity_id:
        raise InvalidArgument("activityId is not set")
    if not request.activity_type.name:
        raise InvalidArgument("activityType is not set")
    if not request.task_queue.name:
        raise InvalidArgument("taskQueue is not set")
    timeouts = (
        request.schedule_to_close_timeout,
        request.schedule_to_start_timeout,
        request.start_to_close_timeout,
        request.heartbeat_timeout,
    )
    if any(t.seconds < 0 or t.nanos < 0 for t in timeouts):
        raise InvalidArgument("An invalid timeout is set on request (timeouts must not be negative).")
    if request.start_delay.seconds < 0 or request.start_delay.nanos < 0:
        raise InvalidArgument("An invalid StartDelay is set on request (it must not be negative).")
    if not duration_ms(request.schedule_to_close_timeout) and not duration_ms(request.start_to_close_timeout):
        raise InvalidArgument(
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={request.activity_id} ActivityType={request.activity_type.name}"
        )


def start_policies(request: StartActivityExecutionRequest) -> StartWorkflowExecutionRequest:
    """The id reuse and conflict policies as the run start's (the enum numbers coincide)."""
    return StartWorkflowExecutionRequest(
        workflow_id=standalone_ids.workflow_id(request.activity_id),
        request_id=request.request_id,
        workflow_id_reuse_policy=request.id_reuse_policy,
        workflow_id_conflict_policy=request.id_conflict_policy,
    )


def new_run(namespace_id: str, namespace: str, request: StartActivityExecutionRequest) -> NewRun:
    return NewRun(
        namespace_id=namespace_id,
        namespace=namespace,
        workflow_id=standalone_ids.workflow_id(request.activity_id),
        workflow_type=request.activity_type.name,
        task_queue=request.task_queue.name,
        request_id=request.request_id,
        identity=request.identity,
        input=request.input if request.HasField("input") else None,
        header=request.header if request.HasField("header") else None,
        search_attributes=request.search_attributes if request.HasField("search_attributes") else None,
        # A Nexus handler's backing activity: its close completes the caller's operation (temporal://system).
        completion_callbacks=list(request.completion_callbacks),
    )


def scheduled_attributes(request: StartActivityExecutionRequest) -> ActivityTaskScheduledEventAttributes:
    """The activity as scheduled: timeouts completed from one another as a workflow's activity's are."""
    schedule_to_close = duration_ms(request.schedule_to_close_timeout)
    schedule_to_start = duration_ms(request.schedule_to_start_timeout)
    start_to_close = duration_ms(request.start_to_close_timeout)
    heartbeat = duration_ms(request.heartbeat_timeout)
    if schedule_to_close > 0:
        if schedule_to_start == 0 or schedule_to_start > schedule_to_close:
            schedule_to_start = schedule_to_close
        if start_to_close == 0 or start_to_close > schedule_to_close:
            start_to_close = schedule_to_close
    heartbeat = min(heartbeat, start_to_close)
    attrs = ActivityTaskScheduledEventAttributes(
        activity_id=request.activity_id,
        activity_type=request.activity_type,
        task_queue=TaskQueue(name=request.task_queue.name, kind=1),
        header=request.header,
        input=request.input,
        schedule_to_close_timeout=to_duration(schedule_to_close),
        schedule_to_start_timeout=to_duration(schedule_to_start),
        start_to_close_timeout=to_duration(start_to_close),
        heartbeat_timeout=to_duration(heartbeat),
        retry_policy=default_retry_policy(request.retry_policy if request.HasField("retry_policy") else None),
    )
    for name in ("header", "input"):
        if not request.HasField(name):
            attrs.ClearField(name)
    if request.HasField("priority"):
        attrs.priority.CopyFrom(request.priority)
    return attrs


def the_activity(ms: MutableState) -> ActivityInfo | None:
    return next(iter(ms.activities.values()), None)


def status(ms: MutableState) -> int:
    return status_of(ms.info.status)


def status_of(workflow_status: int) -> int:
    """The activity's status for its hidden run's."""
    return _STATUS.get(workflow_status, ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_UNSPECIFIED)


def outcome(events: list[HistoryEvent]) -> ActivityExecutionOutcome | None:
    """The closed activity's result or failure, from its close event (None while it runs or if terminated)."""
    for ev in reversed(events):
        if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            reason = ev.workflow_execution_terminated_event_attributes.reason
            failure = Failure(message=reason, terminated_failure_info=TerminatedFailureInfo())
            return ActivityExecutionOutcome(failure=failure)
        if ev.event_type not in _CLOSE_EVENTS:
            continue
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            a = ev.activity_task_completed_event_attributes
            return (
                ActivityExecutionOutcome(result=a.result)
                if a.HasField("result")
                else ActivityExecutionOutcome()
            )
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            a = ev.activity_task_failed_event_attributes
            return ActivityExecutionOutcome(failure=a.failure, retry_state=a.retry_state)
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            a = ev.activity_task_timed_out_event_attributes
            return ActivityExecutionOutcome(failure=a.failure, retry_state=a.retry_state)
        a = ev.activity_task_canceled_event_attributes
        failure = Failure(message="Activity canceled")
        failure.canceled_failure_info.details.CopyFrom(a.details)
        failure.canceled_failure_info.identity = a.identity
        return ActivityExecutionOutcome(failure=failure)
    return None


def info(ms: MutableState, scheduled: ActivityTaskScheduledEventAttributes) -> ActivityExecutionInfo:
    """DescribeActivityExecution's info: the run's state and its one activity's."""
    ai = the_activity(ms)
    out = ActivityExecutionInfo(
        activity_id=standalone_ids.activity_id(ms.info.workflow_id),
        run_id=ms.info.run_id,
        activity_type=scheduled.activity_type,
        status=status(ms),
        task_queue=scheduled.task_queue.name,
        schedule_to_close_timeout=scheduled.schedule_to_close_timeout,
        schedule_to_start_timeout=scheduled.schedule_to_start_timeout,
        start_to_close_timeout=scheduled.start_to_close_timeout,
        heartbeat_timeout=scheduled.heartbeat_timeout,
        retry_policy=scheduled.retry_policy,
        schedule_time=to_timestamp(ms.info.start_time_ms),
        execution_time=to_timestamp(ms.info.execution_time_ms or ms.info.start_time_ms),
        state_transition_count=ms.state_transition_count,
        state_size_bytes=len(codec.dumps(ms)),
    )
    # The header and priority as the request gave them (empty ones too), as the reference echoes them.
    if scheduled.HasField("header"):
        out.header.CopyFrom(scheduled.header)
    if scheduled.HasField("priority"):
        out.priority.CopyFrom(scheduled.priority)
    out.search_attributes.SetInParent()
    if ms.info.search_attributes is not None:
        out.search_attributes.CopyFrom(ms.info.search_attributes)
    if ms.info.close_time_ms:
        out.close_time.CopyFrom(to_timestamp(ms.info.close_time_ms))
        out.execution_duration.CopyFrom(to_duration(ms.info.close_time_ms - ms.info.start_time_ms))
    if ai is None:
        return out
    out.attempt = ai.attempt
    if ai.start_delay_ms is not None:  # as the request gave it (the reference echoes a given 0s too)
        out.start_delay.CopyFrom(to_duration(ai.start_delay_ms))
    if ai.priority is not None:  # as UpdateActivityExecutionOptions left it
        out.priority.CopyFrom(ai.priority)
    out.canceled_reason = ai.cancel_reason
    if ms.running and ai.paused:
        out.status = ActivityExecutionStatus.ACTIVITY_EXECUTION_STATUS_PAUSED
    # The activity's current options (UpdateActivityExecutionOptions may have changed the scheduled ones).
    out.schedule_to_close_timeout.CopyFrom(to_duration(ai.schedule_to_close_timeout_ms))
    out.schedule_to_start_timeout.CopyFrom(to_duration(ai.schedule_to_start_timeout_ms))
    out.start_to_close_timeout.CopyFrom(to_duration(ai.start_to_close_timeout_ms))
    out.heartbeat_timeout.CopyFrom(to_duration(ai.heartbeat_timeout_ms))
    out.task_queue = ai.task_queue
    if ai.retry_policy is not None:
        out.retry_policy.CopyFrom(ai.retry_policy)
    if ms.running:
        if ai.paused:
            out.run_state = PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        elif ai.cancel_requested:
            out.run_state = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
        elif ai.started:
            out.run_state = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        else:
            out.run_state = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    if ai.schedule_to_close_timeout_ms:
        out.expiration_time.CopyFrom(
            to_timestamp(ai.first_scheduled_time_ms + ai.schedule_to_close_timeout_ms)
        )
    if ai.heartbeat_details is not None:
        out.heartbeat_details.CopyFrom(ai.heartbeat_details)
    if ai.last_heartbeat_time_ms:
        out.last_heartbeat_time.CopyFrom(to_timestamp(ai.last_heartbeat_time_ms))
    if ai.last_started_time_ms or ai.started_time_ms:
        out.last_started_time.CopyFrom(to_timestamp(ai.last_started_time_ms or ai.started_time_ms))
    if ai.last_attempt_complete_time_ms:
        out.last_attempt_complete_time.CopyFrom(to_timestamp(ai.last_attempt_complete_time_ms))
    if ai.last_failure is not None:
        out.last_failure.CopyFrom(ai.last_failure)
    out.last_worker_identity = ai.identity or ai.last_worker_identity
    out.sdk_name, out.sdk_version = ai.sdk_name, ai.sdk_version
    if ai.waiting_retry and ai.next_attempt_time_ms:
        out.next_attempt_schedule_time.CopyFrom(to_timestamp(ai.next_attempt_time_ms))
        if ms.running and ai.last_attempt_complete_time_ms:
            # The backoff the retry policy chose after the failed attempt, as the reference shows it.
            out.current_retry_interval.CopyFrom(
                to_duration(ai.next_attempt_time_ms - ai.last_attempt_complete_time_ms)
            )
    return out
