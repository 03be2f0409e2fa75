"""Turn the commands of a completed workflow task into events and tasks, validating each one.

A command that contradicts the run's state or carries bad attributes fails the whole workflow task with the
cause the reference uses (nothing of the task is kept) and the worker retries it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from temporalio.api.command.v1 import Command
from temporalio.api.common.v1 import Link, Memo, SearchAttributes, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    CommandType,
    ContinueAsNewInitiator,
    ContinueAsNewVersioningBehavior,
    EventType,
    ParentClosePolicy,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import (
    ActivityTaskScheduledEventAttributes,
    MarkerRecordedEventAttributes,
    NexusOperationScheduledEventAttributes,
    RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    SignalExternalWorkflowExecutionInitiatedEventAttributes,
    StartChildWorkflowExecutionInitiatedEventAttributes,
    UpsertWorkflowSearchAttributesEventAttributes,
    WorkflowExecutionContinuedAsNewEventAttributes,
    WorkflowPropertiesModifiedEventAttributes,
)
from temporalio.api.taskqueue.v1 import TaskQueue

from hourglass.cluster.errors import InvalidArgument, Unimplemented
from hourglass.cluster.history import continuation, nexus_operations, system_nexus
from hourglass.cluster.history.cron import cron_error
from hourglass.cluster.history.external import (
    initiate_cancel_external,
    initiate_child,
    initiate_signal_external,
)
from hourglass.cluster.history.history_limits import memo_too_large
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.retry import retry_policy_error
from hourglass.cluster.history.runs import DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, NewRun, start_run
from hourglass.cluster.history.tasks import TransferKind
from hourglass.cluster.history.timeutil import duration_ms, to_duration
from hourglass.cluster.history.transition import Transition, default_retry_policy
from hourglass.cluster.history.updates import ProtocolError

Cause = WorkflowTaskFailedCause

_CLOSE_COMMANDS = {
    CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION,
    CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
}
MAX_ID_LENGTH = 1000
# Task queues the server keeps for itself (the reference's partition names live under it).
RESERVED_TASK_QUEUE_PREFIX = "/_sys/"


class CommandError(Exception):
    """Fails the workflow task with `cause`. `silent` ones are answered OK to the worker (as the reference)."""

    def __init__(
        self,
        cause: int,
        message: str,
        silent: bool = False,
        terminate: bool = False,
        server_failure: bool = False,
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.silent = silent
        # The reference's Nexus command handlers fail the task with a server failure (ServerFailureInfo).
        self.server_failure = server_failure
        # The reference terminates the workflow too (a memo over its size limit): retrying cannot help.
        self.terminate = terminate

    @property
    def failure_message(self) -> str:
        """How the reference words it, in the WorkflowTaskFailed event and to the worker: the cause's name
        first ("PendingActivitiesLimitExceeded: the number of pending activities, ...")."""
        name = Cause.Name(self.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        name = "".join(part.capitalize() for part in name.split("_"))
        return f"{name}: {self.message}" if self.message else name


def handle_commands(
    tr: Transition,
    commands: Sequence[Command],
    completed_event_id: int,
    identity: str,
    had_buffered_events: bool,
    max_blob_bytes: int,
) -> None:
    for command in commands:
        if not tr.ms.running:
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                f"invalid command sequence: [{CommandType.Name(command.command_type)}] after the workflow closed",
            )
        if command.command_type in _CLOSE_COMMANDS and had_buffered_events:
            # New events (signals...) arrived while the task ran: the workflow must see them first. The
            # reference's failure says only "UnhandledCommand" (no message of its own).
            raise CommandError(Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND, "", silent=True)
        _check_blob_size(command, max_blob_bytes)
        handler = _HANDLERS.get(command.command_type)
        if handler is None:
            raise CommandError(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                f"command {CommandType.Name(command.command_type)} is not supported by this server yet",
            )
        first_new_event = len(tr.events)
        handler(tr, command, completed_event_id, identity)
        if command.HasField("user_metadata") and len(tr.events) > first_new_event:
            # The summary / details a workflow gives a command show on the event it produced.
            tr.events[first_new_event].user_metadata.CopyFrom(command.user_metadata)


def _check_blob_size(command: Command, max_blob_bytes: int) -> None:
    if command.ByteSize() > max_blob_bytes:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
            if command.command_type == CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK
            else Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
            f"{CommandType.Name(command.command_type)} payload size exceeds the limit of {max_blob_bytes} bytes",
        )


def _check_memo(memo: Memo, cause: int, message: str) -> None:
    """A memo over limit.memoSize.error fails the task and terminates the workflow, as on the reference."""
    if memo_too_large(memo):
        raise CommandError(cause, message, terminate=True)


def _check_pending(pending: int, limit: int, what: str, cause: int) -> None:
    """A command that would add one more of `what` than the run may have pending fails the workflow task
    with `cause` and the reference's message (a limit of 0 means none)."""
    if 0 < limit <= pending:
        raise CommandError(
            cause, f"the number of {what}, {pending}, has reached the per-workflow limit of {limit}"
        )


def _check_retry_policy(attributes, cause: int) -> None:
    """A command's retry policy passes the reference's checks, or the workflow task fails with `cause`."""
    if attributes.HasField("retry_policy"):
        problem = retry_policy_error(attributes.retry_policy)
        if problem is not None:
            raise CommandError(cause, problem)


def _check_cron(spec: str, cause: int) -> None:
    problem = cron_error(spec) if spec else None
    if problem is not None:
        raise CommandError(cause, problem)


def _schedule_activity(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.schedule_activity_task_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    if not a.activity_id:
        raise CommandError(bad, "ActivityId is not set on command.")
    if len(a.activity_id) > MAX_ID_LENGTH:
        raise CommandError(bad, "ActivityID exceeds length limit.")
    if not a.activity_type.name:
        raise CommandError(bad, "ActivityType is not set on command.")
    if a.task_queue.name.startswith(RESERVED_TASK_QUEUE_PREFIX):
        raise CommandError(
            bad, f"task queue name cannot start with reserved prefix {RESERVED_TASK_QUEUE_PREFIX}"
        )
    if tr.ms.activity_by_id(a.activity_id) is not None:
        raise CommandError(bad, f"Activity ID {a.activity_id} is already in use by a pending activity.")
    timeouts = [
        a.schedule_to_close_timeout,
        a.schedule_to_start_timeout,
        a.start_to_close_timeout,
        a.heartbeat_timeout,
    ]
    if any(t.seconds < 0 or t.nanos < 0 for t in timeouts):
        raise CommandError(bad, "An invalid timeout is set on command (timeouts must not be negative).")
    _check_retry_policy(a, bad)
    run_timeout = tr.ms.info.workflow_run_timeout_ms
    schedule_to_close, schedule_to_start, start_to_close, heartbeat = (duration_ms(t) for t in timeouts)
    if run_timeout > 0:
        schedule_to_close = run_timeout if schedule_to_close == 0 else min(schedule_to_close, run_timeout)
        schedule_to_start = min(schedule_to_start, run_timeout)
        start_to_close = min(start_to_close, run_timeout)
        heartbeat = min(heartbeat, run_timeout)
    if schedule_to_close > 0:
        if schedule_to_start == 0 or schedule_to_start > schedule_to_close:
            schedule_to_start = schedule_to_close
        if start_to_close == 0 or start_to_close > schedule_to_close:
            start_to_close = schedule_to_close
    elif start_to_close > 0:
        schedule_to_close = run_timeout
        if schedule_to_start == 0:
            schedule_to_start = run_timeout
    else:
        raise CommandError(
            bad,
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={a.activity_id} ActivityType={a.activity_type.name}",
        )
    heartbeat = min(heartbeat, start_to_close)
    attrs = ActivityTaskScheduledEventAttributes(
        activity_id=a.activity_id,
        activity_type=a.activity_type,
        task_queue=TaskQueue(name=a.task_queue.name or tr.ms.info.task_queue, kind=1),
        header=a.header,
        input=a.input,
        schedule_to_close_timeout=to_duration(schedule_to_close),
        schedule_to_start_timeout=to_duration(schedule_to_start),
        start_to_close_timeout=to_duration(start_to_close),
        heartbeat_timeout=to_duration(heartbeat),
        workflow_task_completed_event_id=completed_event_id,
        retry_policy=default_retry_policy(a.retry_policy if a.HasField("retry_policy") else None),
        # Deprecated, but recorded as the worker sent it, as the reference does.
        use_workflow_build_id=a.use_workflow_build_id,
    )
    if not a.HasField("header"):
        attrs.ClearField("header")
    if not a.HasField("input"):
        attrs.ClearField("input")
    if a.HasField("priority"):
        attrs.priority.CopyFrom(a.priority)
    _check_pending(
        len(tr.ms.activities),
        LIMITS.num_pending_activities_error,
        "pending activities",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
    )
    tr.schedule_activity(attrs, eager=a.request_eager_execution and LIMITS.enable_activity_eager_execution)


def _request_cancel_activity(
    tr: Transition, command: Command, completed_event_id: int, identity: str
) -> None:
    a = command.request_cancel_activity_task_command_attributes
    ai = tr.ms.activities.get(a.scheduled_event_id)
    if ai is None:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
            f"invalid history builder state for action: RequestCancelActivity, ScheduledEventID: "
            f"{a.scheduled_event_id}",
        )
    tr.request_cancel_activity(ai, completed_event_id, identity)


def _start_timer(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.start_timer_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES
    if not a.timer_id:
        raise CommandError(bad, "TimerId is not set on command.")
    if len(a.timer_id) > MAX_ID_LENGTH:
        raise CommandError(bad, "TimerId exceeds length limit.")
    if a.start_to_fire_timeout.seconds < 0 or a.start_to_fire_timeout.nanos < 0:
        raise CommandError(bad, "An invalid StartToFireTimeout is set on command.")
    duration = duration_ms(a.start_to_fire_timeout)  # zero is valid: the timer fires at once
    if a.timer_id in tr.ms.timers:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID,
            f"Timer ID {a.timer_id} is already in use by a pending timer.",
        )
    tr.start_timer(a.timer_id, duration, completed_event_id)


def _cancel_timer(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.cancel_timer_command_attributes
    if a.timer_id not in tr.ms.timers:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
            f"invalid history builder state for action: CancelTimer, TimerID: {a.timer_id}",
        )
    tr.cancel_timer(a.timer_id, completed_event_id, identity)


def _complete(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.complete_workflow_execution_command_attributes
    result = a.result if a.HasField("result") else None
    tr.complete_workflow(result, completed_event_id, continuation.after_completion(tr, result))


def _fail(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.fail_workflow_execution_command_attributes
    retry_state, new_run = continuation.after_failure(tr, a.failure)
    tr.fail_workflow(a.failure, completed_event_id, retry_state, new_run)


def _cancel(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.cancel_workflow_execution_command_attributes
    tr.cancel_workflow(a.details if a.HasField("details") else None, completed_event_id)


_USE_RAMPING_VERSION = ContinueAsNewVersioningBehavior.CONTINUE_AS_NEW_VERSIONING_BEHAVIOR_USE_RAMPING_VERSION


def _continue_as_new(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.continue_as_new_workflow_execution_command_attributes
    info = tr.ms.info
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES
    _check_memo(a.memo, bad, "ContinueAsNewWorkflowExecutionCommandAttributes. Memo exceeds size limit.")
    for d, name in (
        (a.workflow_run_timeout, "WorkflowRunTimeout"),
        (a.workflow_task_timeout, "WorkflowTaskTimeout"),
        (a.backoff_start_interval, "BackoffStartInterval"),
    ):
        if d.seconds < 0 or d.nanos < 0:
            raise CommandError(bad, f"Invalid {name}: it must not be negative.")
    if len(a.workflow_type.name) > MAX_ID_LENGTH or len(a.task_queue.name) > MAX_ID_LENGTH:
        raise CommandError(bad, "WorkflowType or TaskQueue exceeds length limit.")
    _check_retry_policy(a, bad)
    _check_cron(a.cron_schedule, bad)

    def inherited(name: str, current):
        return getattr(a, name) if a.HasField(name) else current

    new = NewRun(
        namespace_id=info.namespace_id,
        namespace=info.namespace,
        workflow_id=info.workflow_id,
        workflow_type=a.workflow_type.name or info.workflow_type,
        task_queue=a.task_queue.name or info.task_queue,
        completion_callbacks=list(info.completion_callbacks),
        request_id=str(uuid.uuid4()),
        identity=identity,
        input=a.input if a.HasField("input") else None,
        header=a.header if a.HasField("header") else None,
        execution_timeout_ms=info.workflow_execution_timeout_ms,
        run_timeout_ms=duration_ms(a.workflow_run_timeout) or info.workflow_run_timeout_ms,
        task_timeout_ms=duration_ms(a.workflow_task_timeout) or info.workflow_task_timeout_ms,
        retry_policy=inherited("retry_policy", info.retry_policy),
        memo=inherited("memo", info.memo),
        search_attributes=inherited("search_attributes", info.search_attributes),
        cron_schedule=a.cron_schedule or info.cron_schedule,
        backoff_ms=duration_ms(a.backoff_start_interval),
        first_run_id=info.first_run_id,
        continued_execution_run_id=info.run_id,
        execution_expiration_ms=info.execution_expiration_ms,
        initiator=a.initiator or ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
        last_completion_result=a.last_completion_result if a.HasField("last_completion_result") else None,
        continued_failure=a.failure if a.HasField("failure") else None,
        parent=info.parent,
    )
    new_run = start_run(new, tr.now)
    event = WorkflowExecutionContinuedAsNewEventAttributes(
        workflow_type=WorkflowType(name=new.workflow_type),
        task_queue=TaskQueue(name=new.task_queue, kind=1),
        workflow_run_timeout=to_duration(new_run.ms.info.workflow_run_timeout_ms),
        workflow_task_timeout=to_duration(new_run.ms.info.workflow_task_timeout_ms),
        workflow_task_completed_event_id=completed_event_id,
        initiator=a.initiator,  # as the command said (UNSPECIFIED when the workflow itself continues)
    )
    for name in (
        "input",
        "header",
        "memo",
        "search_attributes",
        "last_completion_result",
        "failure",
        "backoff_start_interval",
    ):
        if a.HasField(name):
            getattr(event, name).CopyFrom(getattr(a, name))
    if a.initial_versioning_behavior == _USE_RAMPING_VERSION:
        new_run.ms.info.start_on_ramping = True
    tr.continue_as_new(event, new_run)


def _start_child(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.start_child_workflow_execution_command_attributes
    info = tr.ms.info
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
    if not a.workflow_id:
        raise CommandError(bad, "Required field WorkflowId is not set on command.")
    if not a.workflow_type.name:
        raise CommandError(bad, "Required field WorkflowType is not set on command.")
    if len(a.workflow_id) > MAX_ID_LENGTH or len(a.workflow_type.name) > MAX_ID_LENGTH:
        raise CommandError(bad, "WorkflowId or WorkflowType exceeds length limit.")
    for d in (a.workflow_execution_timeout, a.workflow_run_timeout, a.workflow_task_timeout):
        if d.seconds < 0 or d.nanos < 0:
            raise CommandError(bad, "Invalid timeout on command: it must not be negative.")
    if a.parent_close_policy not in ParentClosePolicy.values():
        raise CommandError(bad, f"Invalid ParentClosePolicy {a.parent_close_policy} on command.")
    _check_memo(a.memo, bad, "StartChildWorkflowExecutionCommandAttributes.Memo exceeds size limit.")
    _check_retry_policy(a, bad)
    _check_cron(a.cron_schedule, bad)
    namespace = a.namespace or info.namespace
    attrs = StartChildWorkflowExecutionInitiatedEventAttributes(
        namespace=namespace,
        namespace_id=info.namespace_id if namespace == info.namespace else "",
        workflow_id=a.workflow_id,
        workflow_type=a.workflow_type,
        task_queue=TaskQueue(name=a.task_queue.name or info.task_queue, kind=1),
        # The reference fills the task timeout's default here and leaves unset limits unset.
        workflow_task_timeout=a.workflow_task_timeout
        if a.workflow_task_timeout.ToMilliseconds()
        else to_duration(DEFAULT_WORKFLOW_TASK_TIMEOUT_MS),
        parent_close_policy=a.parent_close_policy,
        control=a.control,
        workflow_task_completed_event_id=completed_event_id,
        workflow_id_reuse_policy=a.workflow_id_reuse_policy,
        cron_schedule=a.cron_schedule,
    )
    for name in ("input", "header", "memo", "search_attributes", "retry_policy", "priority"):
        if a.HasField(name):
            getattr(attrs, name).CopyFrom(getattr(a, name))
    # As the reference writes it: the run timeout always present (0s when unlimited), the execution's not.
    attrs.workflow_run_timeout.CopyFrom(a.workflow_run_timeout)
    if a.workflow_execution_timeout.ToMilliseconds():
        attrs.workflow_execution_timeout.CopyFrom(a.workflow_execution_timeout)
    _check_pending(
        len(tr.ms.children),
        LIMITS.num_pending_child_executions_error,
        "pending child workflow executions",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_CHILD_WORKFLOWS_LIMIT_EXCEEDED,
    )
    initiate_child(tr, attrs)


def _signal_external(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.signal_external_workflow_execution_command_attributes
    info = tr.ms.info
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES
    if not a.execution.workflow_id:
        raise CommandError(bad, "WorkflowId is not set on command.")
    if not a.signal_name:
        raise CommandError(bad, "SignalName is not set on command.")
    _check_pending(
        len(tr.ms.signals_requested),
        LIMITS.num_pending_signals_error,
        "pending signals to external workflows",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_SIGNALS_LIMIT_EXCEEDED,
    )
    namespace = a.namespace or info.namespace
    attrs = SignalExternalWorkflowExecutionInitiatedEventAttributes(
        workflow_task_completed_event_id=completed_event_id,
        namespace=namespace,
        namespace_id=info.namespace_id if namespace == info.namespace else "",
        workflow_execution=a.execution,
        signal_name=a.signal_name,
        control=a.control,
        child_workflow_only=a.child_workflow_only,
    )
    for name in ("input", "header"):
        if a.HasField(name):
            getattr(attrs, name).CopyFrom(getattr(a, name))
    initiate_signal_external(tr, attrs)


def _cancel_external(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.request_cancel_external_workflow_execution_command_attributes
    info = tr.ms.info
    if not a.workflow_id:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES,
            "WorkflowId is not set on command.",
        )
    _check_pending(
        len(tr.ms.cancels_requested),
        LIMITS.num_pending_cancel_requests_error,
        "pending requests to cancel external workflows",
        Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_REQUEST_CANCEL_LIMIT_EXCEEDED,
    )
    namespace = a.namespace or info.namespace
    initiate_cancel_external(
        tr,
        RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
            workflow_task_completed_event_id=completed_event_id,
            namespace=namespace,
            namespace_id=info.namespace_id if namespace == info.namespace else "",
            workflow_execution=WorkflowExecution(workflow_id=a.workflow_id, run_id=a.run_id),
            control=a.control,
            child_workflow_only=a.child_workflow_only,
            reason=a.reason,
        ),
    )


def _record_marker(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.record_marker_command_attributes
    if not a.marker_name:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES, "MarkerName is not set on command."
        )
    attrs = MarkerRecordedEventAttributes(
        marker_name=a.marker_name, workflow_task_completed_event_id=completed_event_id
    )
    for name, payloads in a.details.items():
        attrs.details[name].CopyFrom(payloads)
    if a.HasField("header"):
        attrs.header.CopyFrom(a.header)
    if a.HasField("failure"):
        attrs.failure.CopyFrom(a.failure)
    tr.add_event(EventType.EVENT_TYPE_MARKER_RECORDED, attrs, bufferable=False)


def _upsert_search_attributes(
    tr: Transition, command: Command, completed_event_id: int, identity: str
) -> None:
    a = command.upsert_workflow_search_attributes_command_attributes
    info = tr.ms.info
    if info.search_attributes is None:
        info.search_attributes = SearchAttributes()
    _merge_payloads(info.search_attributes.indexed_fields, a.search_attributes.indexed_fields)
    tr.add_event(
        EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        UpsertWorkflowSearchAttributesEventAttributes(
            workflow_task_completed_event_id=completed_event_id, search_attributes=a.search_attributes
        ),
        bufferable=False,
    )
    tr.transfer(TransferKind.VISIBILITY)


def _merge_payloads(current, upserted) -> None:
    """Upsert semantics of memo and search attributes, as on the reference: a key whose new value is
    nil (no data, JSON null or an empty list) is removed, any other value replaces the old one."""
    for name, payload in upserted.items():
        if payload.data in (b"", b"null", b"[]"):
            if name in current:
                del current[name]
        else:
            current[name].CopyFrom(payload)


def _modify_properties(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    a = command.modify_workflow_properties_command_attributes
    info = tr.ms.info
    merged = Memo()
    if info.memo is not None:
        merged.CopyFrom(info.memo)
    _merge_payloads(merged.fields, a.upserted_memo.fields)
    _check_memo(
        merged,
        Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
        "ModifyWorkflowPropertiesCommandAttributes. Memo exceeds size limit.",
    )
    info.memo = merged
    tr.add_event(
        EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
        WorkflowPropertiesModifiedEventAttributes(
            workflow_task_completed_event_id=completed_event_id, upserted_memo=a.upserted_memo
        ),
        bufferable=False,
    )


def _schedule_nexus_operation(
    tr: Transition, command: Command, completed_event_id: int, identity: str
) -> None:
    a = command.schedule_nexus_operation_command_attributes
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
    # The engine looked the command's endpoints up before the transition (the registry is in the store).
    if a.endpoint == system_nexus.ENDPOINT:
        _check_system_operation(tr, a)
        endpoint_id = ""  # the server's own endpoint: not in the registry
    else:
        endpoint_id = tr.nexus_endpoints.get(a.endpoint)
    if endpoint_id is None:
        raise CommandError(bad, f'endpoint "{a.endpoint}" not found', server_failure=True)
    if not a.service:
        raise CommandError(bad, "service name is empty", server_failure=True)
    if not a.operation:
        raise CommandError(bad, "operation name is empty", server_failure=True)
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if a.HasField(name) and getattr(a, name).ToNanoseconds() < 0:
            raise CommandError(bad, f"{name} must be a non-negative duration", server_failure=True)
    limit = LIMITS.max_concurrent_nexus_operations
    if len(tr.ms.nexus_operations) >= limit:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_NEXUS_OPERATIONS_LIMIT_EXCEEDED,
            f"workflow has reached the pending nexus operation limit of {limit} for this namespace",
            server_failure=True,
        )
    attrs = NexusOperationScheduledEventAttributes(
        endpoint=a.endpoint,
        service=a.service,
        operation=a.operation,
        workflow_task_completed_event_id=completed_event_id,
        endpoint_id=endpoint_id,
    )
    for name in ("input", "schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if a.HasField(name) and (name == "input" or getattr(a, name).ToNanoseconds() > 0):
            getattr(attrs, name).CopyFrom(getattr(a, name))
    for key, value in a.nexus_header.items():
        attrs.nexus_header[key.lower()] = value
    # As the reference: an operation may not outlive the run that waits for it.
    run_timeout_ms = tr.ms.info.workflow_run_timeout_ms
    if run_timeout_ms > 0:
        op_timeout_ms = attrs.schedule_to_close_timeout.ToMilliseconds()
        if op_timeout_ms == 0 or op_timeout_ms > run_timeout_ms:
            attrs.schedule_to_close_timeout.CopyFrom(to_duration(run_timeout_ms))
    nexus_operations.schedule(tr, attrs)


def _check_system_operation(tr: Transition, a) -> None:
    """An operation on the server's own endpoint is checked when scheduled, as on the reference (its
    ProcessInput): no Nexus headers, an operation the server runs, a request it accepts."""
    bad = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
    if a.nexus_header:
        raise CommandError(
            bad,
            "ScheduleNexusOperationCommandAttributes.NexusHeader must be empty when using "
            f"{system_nexus.ENDPOINT} endpoint",
            server_failure=True,
        )
    problem = system_nexus.check_operation(a.service, a.operation)
    if problem:
        raise CommandError(bad, problem, server_failure=True)
    if not LIMITS.enable_signal_with_start_from_workflow:
        # The reference answers the workflow task's completion so (its ProcessInput's error).
        raise Unimplemented("SignalWithStart operation is disabled")
    try:
        request = system_nexus.decode_request(a.input if a.HasField("input") else None)
        system_nexus.prepare(request, tr.ms.info.namespace, "", Link())
    except InvalidArgument as e:
        raise CommandError(bad, e.message, server_failure=True) from None


def _request_cancel_nexus_operation(
    tr: Transition, command: Command, completed_event_id: int, identity: str
) -> None:
    scheduled_event_id = command.request_cancel_nexus_operation_command_attributes.scheduled_event_id
    op = tr.ms.nexus_operations.get(scheduled_event_id)
    if op is None:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_NEXUS_OPERATION_ATTRIBUTES,
            f"requested cancelation for a non-existing or already completed operation with scheduled event ID "
            f"of {scheduled_event_id}",
            server_failure=True,
        )
    if op.cancel_requested_event_id:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_NEXUS_OPERATION_ATTRIBUTES,
            f"cancelation was already requested for an operation with scheduled event ID {scheduled_event_id}",
            server_failure=True,
        )
    nexus_operations.record_cancel_requested(tr, op, completed_event_id)


def _protocol_message(tr: Transition, command: Command, completed_event_id: int, identity: str) -> None:
    """An update's acceptance or response, placed here among the events of the other commands."""
    message_id = command.protocol_message_command_attributes.message_id
    if tr.protocol is None:
        raise CommandError(
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE,
            f"ProtocolMessageCommand referenced absent message ID {message_id}.",
        )
    try:
        tr.protocol.on_command(tr, message_id)
    except ProtocolError as e:
        raise CommandError(e.cause, e.message) from None


_HANDLERS = {
    CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE: _protocol_message,
    CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: _schedule_activity,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: _request_cancel_activity,
    CommandType.COMMAND_TYPE_START_TIMER: _start_timer,
    CommandType.COMMAND_TYPE_CANCEL_TIMER: _cancel_timer,
    CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: _complete,
    CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION: _fail,
    CommandType.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION: _cancel,
    CommandType.COMMAND_TYPE_RECORD_MARKER: _record_marker,
    CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: _continue_as_new,
    CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: _start_child,
    CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: _signal_external,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: _cancel_external,
    CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: _upsert_search_attributes,
    CommandType.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: _modify_properties,
    CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION: _schedule_nexus_operation,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION: _request_cancel_nexus_operation,
}
