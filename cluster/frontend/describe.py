"""DescribeWorkflowExecution: a run's mutable state as the reference's describe shows it."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Memo, Payload, Priority, SearchAttributes, WorkflowExecution
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    NexusOperationCancellationState,
    PendingActivityState,
    PendingNexusOperationState,
    PendingWorkflowTaskState,
    WorkflowExecutionStatus,
)
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import (
    CallbackInfo,
    PendingActivityInfo,
    PendingChildExecutionInfo,
    PendingNexusOperationInfo,
    PendingWorkflowTaskInfo,
    RequestIdInfo,
    WorkflowExecutionConfig,
    WorkflowExecutionExtendedInfo,
    WorkflowExecutionInfo,
)
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.history import activity_ops, workflow_versioning
from hourglass.cluster.history.mutable_state import ActivityInfo, MutableState
from hourglass.cluster.history.mutable_state import CallbackState as CallbackStateRecord
from hourglass.cluster.history.timeutil import now_ms, to_duration, to_timestamp
from hourglass.cluster.history.transition import default_retry_policy


def run_status(ms: MutableState) -> int:
    """The status clients see: a running run that is paused is PAUSED (the reference's status too)."""
    if ms.running and ms.info.pause is not None:
        return WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_PAUSED
    return ms.info.status


def describe(ms: MutableState) -> rr.DescribeWorkflowExecutionResponse:
    """A run as the reference describes it: memo and search attributes always present (maybe empty: the
    Go SDK dereferences them), priority only when the run has one, timeouts only when set, pending children, reset points and the
    extended info (expirations, original start time, the request ids the run was started by)."""
    info = ms.info
    execution = WorkflowExecution(workflow_id=info.workflow_id, run_id=info.run_id)
    resp = rr.DescribeWorkflowExecutionResponse(
        execution_config=WorkflowExecutionConfig(
            task_queue=TaskQueue(name=info.task_queue, kind=1),
            default_workflow_task_timeout=to_duration(info.workflow_task_timeout_ms),
        ),
        workflow_execution_info=WorkflowExecutionInfo(
            execution=execution,
            type={"name": info.workflow_type},
            start_time=to_timestamp(info.start_time_ms),
            status=run_status(ms),
            history_length=ms.history_length,
            history_size_bytes=ms.history_size_bytes,
            execution_time=to_timestamp(info.execution_time_ms),
            task_queue=info.task_queue,
            state_transition_count=ms.state_transition_count,
            first_run_id=info.first_run_id,
            memo=info.memo or Memo(),
            search_attributes=info.search_attributes or SearchAttributes(),
        ),
    )
    if info.priority is not None:
        resp.workflow_execution_info.priority.CopyFrom(info.priority)  # the reference omits an unset one
    _versioning(resp.workflow_execution_info, ms)
    # Absent when there is no limit, unless the start request gave 0s (the reference echoes it).
    if info.workflow_execution_timeout_ms or info.execution_timeout_given:
        resp.execution_config.workflow_execution_timeout.CopyFrom(
            to_duration(info.workflow_execution_timeout_ms)
        )
    if info.workflow_run_timeout_ms or info.run_timeout_given:
        resp.execution_config.workflow_run_timeout.CopyFrom(to_duration(info.workflow_run_timeout_ms))
    wei = resp.workflow_execution_info
    wei.auto_reset_points.SetInParent()  # the reference's is there before any task completed too
    if info.auto_reset_points is not None:
        wei.auto_reset_points.CopyFrom(info.auto_reset_points)
    if info.most_recent_worker_version_stamp is not None:
        wei.most_recent_worker_version_stamp.CopyFrom(info.most_recent_worker_version_stamp)
    _extended_info(ms, resp.workflow_extended_info)
    # The run that started the tree of children this one belongs to (itself for a top-level run).
    parent = info.parent
    if parent is not None:
        wei.parent_execution.CopyFrom(WorkflowExecution(workflow_id=parent.workflow_id, run_id=parent.run_id))
        wei.parent_namespace_id = parent.namespace_id
        wei.root_execution.CopyFrom(
            WorkflowExecution(
                workflow_id=parent.root_workflow_id or parent.workflow_id,
                run_id=parent.root_run_id or parent.run_id,
            )
        )
    else:
        wei.root_execution.CopyFrom(execution)
    if info.close_time_ms:
        wei.close_time.CopyFrom(to_timestamp(info.close_time_ms))
        wei.execution_duration.CopyFrom(to_duration(info.close_time_ms - info.execution_time_ms))
    if info.user_metadata is not None:
        resp.execution_config.user_metadata.CopyFrom(info.user_metadata)
    for child in sorted(ms.children.values(), key=lambda c: c.initiated_event_id):
        resp.pending_children.append(
            PendingChildExecutionInfo(
                workflow_id=child.workflow_id,
                run_id=child.run_id,
                workflow_type_name=child.workflow_type,
                initiated_id=child.initiated_event_id,
                parent_close_policy=child.parent_close_policy,  # type: ignore[arg-type]
            )
        )
    now = now_ms()
    for ai in ms.activities.values():
        resp.pending_activities.append(pending_activity(ai, now))
    for op in sorted(ms.nexus_operations.values(), key=lambda o: o.scheduled_event_id):
        resp.pending_nexus_operations.append(pending_nexus_operation(op))
    resp.callbacks.extend(callbacks(ms))
    wt = ms.workflow_task
    if wt is not None:
        pwt = PendingWorkflowTaskInfo(
            state=PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
            if wt.started
            else PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED,
            scheduled_time=to_timestamp(wt.scheduled_time_ms),
            original_scheduled_time=to_timestamp(wt.scheduled_time_ms),
            attempt=wt.attempt,
        )
        if wt.started:
            pwt.started_time.CopyFrom(to_timestamp(wt.started_time_ms))
        resp.pending_workflow_task.CopyFrom(pwt)
    return resp


_CALLBACK_STATES = {
    "scheduled": CallbackState.CALLBACK_STATE_SCHEDULED,
    "backing_off": CallbackState.CALLBACK_STATE_BACKING_OFF,
    "succeeded": CallbackState.CALLBACK_STATE_SUCCEEDED,
    "failed": CallbackState.CALLBACK_STATE_FAILED,
}


def callbacks(ms: MutableState) -> list[CallbackInfo]:
    """The run's Nexus completion callbacks (its start's and those later starts attached) and how their
    delivery goes (the reference's `callbacks`): standby while the run is open, then scheduled, backing off
    between attempts, succeeded or failed."""
    out = []
    states = ms.info.callback_states
    for index, callback in enumerate(ms.info.completion_callbacks):
        if not callback.HasField("nexus"):
            continue
        state = states[index] if index < len(states) else CallbackStateRecord()
        info = CallbackInfo(
            callback=callback,
            trigger=CallbackInfo.Trigger(workflow_closed=CallbackInfo.WorkflowClosed()),
            registration_time=to_timestamp(state.registration_time_ms or ms.info.start_time_ms),
            attempt=state.attempt,
        )
        if ms.running:
            info.state = CallbackState.CALLBACK_STATE_STANDBY
        else:
            info.state = _CALLBACK_STATES.get(state.state, CallbackState.CALLBACK_STATE_SCHEDULED)
        if state.last_attempt_complete_time_ms:
            info.last_attempt_complete_time.CopyFrom(to_timestamp(state.last_attempt_complete_time_ms))
        if state.last_failure:
            info.last_attempt_failure.CopyFrom(
                Failure(message=state.last_failure, application_failure_info=ApplicationFailureInfo())
            )
        if state.state == "backing_off" and state.next_attempt_time_ms:
            info.next_attempt_schedule_time.CopyFrom(to_timestamp(state.next_attempt_time_ms))
        out.append(info)
    return out


# What the reference's Go server sends for "no deadline": the zero time.Time, i.e. 0001-01-01T00:00:00Z.
_GO_ZERO_TIME = Timestamp(seconds=-62135596800)
_KEYWORD_LIST_JSON = {"encoding": b"json/plain", "type": b"KeywordList"}


def _versioning(info: WorkflowExecutionInfo, ms: MutableState) -> None:
    """The run's worker versioning as the reference shows it (workflow_versioning.versioning_info): the
    worker's behavior and version, the override (both spellings), the deployment's name; a run whose
    override was unset shows an empty versioning_info and BuildIds ["unversioned"]."""
    versioning = workflow_versioning.versioning_info(ms)
    if versioning is None:
        return
    info.versioning_info.SetInParent()
    info.versioning_info.CopyFrom(versioning)
    if ms.info.deployment_version is not None:
        info.worker_deployment_name = ms.info.deployment_version.deployment_name
    indexed = info.search_attributes.indexed_fields
    override = ms.info.versioning_override
    if override is not None and not override.ByteSize() and "BuildIds" not in indexed:
        indexed["BuildIds"].CopyFrom(Payload(metadata=_KEYWORD_LIST_JSON, data=b'["unversioned"]'))


def _extended_info(ms: MutableState, ext: WorkflowExecutionExtendedInfo) -> None:
    info = ms.info
    if info.execution_expiration_ms:
        ext.execution_expiration_time.CopyFrom(to_timestamp(info.execution_expiration_ms))
    ext.run_expiration_time.CopyFrom(
        to_timestamp(info.run_expiration_ms) if info.run_expiration_ms else _GO_ZERO_TIME
    )
    ext.original_start_time.CopyFrom(to_timestamp(info.original_start_time_ms or info.start_time_ms))
    ext.cancel_requested = info.cancel_requested
    ext.reset_run_id = info.reset_run_id
    if info.last_reset_time_ms:
        ext.last_reset_time.CopyFrom(to_timestamp(info.last_reset_time_ms))
    if info.pause is not None:
        ext.pause_info.identity = info.pause.identity
        ext.pause_info.reason = info.pause.reason
        ext.pause_info.paused_time.CopyFrom(to_timestamp(info.pause.time_ms))
    request_id = info.start_request_id or info.create_request_id
    if request_id:
        ext.request_id_infos[request_id].CopyFrom(
            RequestIdInfo(event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, event_id=1)
        )
    for attached, event_id in info.attached_request_ids.items():
        ext.request_id_infos[attached].CopyFrom(
            RequestIdInfo(
                event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, event_id=event_id
            )
        )


def pending_activity(ai: ActivityInfo, now: int) -> PendingActivityInfo:
    """An activity as describe shows it: a paused one is PAUSED, or PAUSE_REQUESTED while an attempt it
    was paused during still runs; its next attempt time only while a retry timer will dispatch it."""
    policy = default_retry_policy(ai.retry_policy)
    if ai.cancel_requested:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    elif ai.started:
        state = (
            PendingActivityState.PENDING_ACTIVITY_STATE_PAUSE_REQUESTED
            if ai.paused
            else PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        )
    elif ai.paused:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
    else:
        state = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    pa = PendingActivityInfo(
        activity_id=ai.activity_id,
        activity_type={"name": ai.activity_type},
        state=state,
        attempt=ai.attempt,
        maximum_attempts=policy.maximum_attempts,
        scheduled_time=to_timestamp(ai.scheduled_time_ms),
        last_worker_identity=ai.identity or ai.last_worker_identity,
        paused=ai.paused,
        priority=ai.priority or Priority(),
        activity_options=activity_ops.current_options(ai),
    )
    pa.activity_options.task_queue.normal_name = ai.task_queue
    if ai.started:
        pa.last_started_time.CopyFrom(to_timestamp(ai.started_time_ms))
    if ai.last_attempt_complete_time_ms:
        pa.last_attempt_complete_time.CopyFrom(to_timestamp(ai.last_attempt_complete_time_ms))
    if ai.waiting_retry and not ai.paused and now < ai.next_attempt_time_ms:
        pa.next_attempt_schedule_time.CopyFrom(to_timestamp(ai.next_attempt_time_ms))
        # Measured from the last failed attempt (from the epoch if none failed), as the reference does.
        pa.current_retry_interval.CopyFrom(
            to_duration(ai.next_attempt_time_ms - ai.last_attempt_complete_time_ms)
        )
    if ai.heartbeat_details is not None:
        pa.heartbeat_details.CopyFrom(ai.heartbeat_details)
    if ai.last_heartbeat_time_ms:
        pa.last_heartbeat_time.CopyFrom(to_timestamp(ai.last_heartbeat_time_ms))
    if ai.last_failure is not None:
        pa.last_failure.CopyFrom(ai.last_failure)
    if ai.schedule_to_close_timeout_ms:
        pa.expiration_time.CopyFrom(
            to_timestamp(ai.first_scheduled_time_ms + ai.schedule_to_close_timeout_ms)
        )
    if ai.pause is not None:
        pa.pause_info.pause_time.CopyFrom(to_timestamp(ai.pause.time_ms))
        pa.pause_info.manual.identity = ai.pause.identity
        pa.pause_info.manual.reason = ai.pause.reason
    return pa


def pending_nexus_operation(op) -> PendingNexusOperationInfo:
    """A Nexus operation the run waits for: SCHEDULED until the handler answered its start, then STARTED;
    with the cancellation the workflow asked for, if any."""
    info = PendingNexusOperationInfo(
        endpoint=op.endpoint,
        service=op.service,
        operation=op.operation,
        operation_id=op.operation_token,
        operation_token=op.operation_token,
        scheduled_time=to_timestamp(op.scheduled_time_ms),
        scheduled_event_id=op.scheduled_event_id,
        state=PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
        if op.started_event_id
        else PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED,
        attempt=max(op.attempt, 1),
    )
    if op.last_attempt_complete_time_ms:
        info.last_attempt_complete_time.CopyFrom(to_timestamp(op.last_attempt_complete_time_ms))
    if op.schedule_to_close_timeout_ms:
        info.schedule_to_close_timeout.CopyFrom(to_duration(op.schedule_to_close_timeout_ms))
    if op.cancel_requested_event_id:
        info.cancellation_info.state = (
            NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
            if op.cancel_delivered
            else NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
        )
    return info
