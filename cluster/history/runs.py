"""Creating a run: from a client's start, a continue-as-new, (later) a retry, cron or child start.

Every way a run comes to life goes through `start_run`, so the started event, the first workflow task
(or its backoff), the timeouts and the current-run pointer are built one way only.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

from temporalio.api.common.v1 import Header, Memo, Payloads, RetryPolicy, SearchAttributes, WorkflowType
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import (
    WorkflowExecutionOptionsUpdatedEventAttributes,
    WorkflowExecutionSignaledEventAttributes,
    WorkflowExecutionStartedEventAttributes,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    SignalWithStartWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)

from hourglass.cluster.history import workflow_versioning
from hourglass.cluster.history.cron import cron_backoff_ms
from hourglass.cluster.history.mutable_state import CallbackState, ExecutionInfo, MutableState, ParentInfo
from hourglass.cluster.history.tasks import TimerKind, TransferKind
from hourglass.cluster.history.timeutil import duration_ms, now_ms, to_duration, to_timestamp
from hourglass.cluster.history.transition import Transition
from hourglass.persistence.records import CurrentRunMode, CurrentRunRecord, CurrentRunWrite, RunStatus


def new_run_id() -> str:
    """A run id as the reference makes them: a UUID version 7 (RFC 9562), time-ordered, so ids of a
    workflow's runs sort by creation (SDKs and tools may check the version). Python 3.11 has no uuid7."""
    value = (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10)) & (
        1 << 80
    ) - 1
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000
MAX_WORKFLOW_TASK_TIMEOUT_MS = 120_000


@dataclass
class NewRun:
    namespace_id: str
    workflow_id: str
    workflow_type: str
    task_queue: str
    request_id: str = ""
    identity: str = ""
    input: Payloads | None = None
    header: Header | None = None
    execution_timeout_ms: int = 0
    run_timeout_ms: int = 0
    task_timeout_ms: int = 0
    # Whether the request set them (to 0s too; see ExecutionInfo.execution_timeout_given).
    execution_timeout_given: bool = False
    run_timeout_given: bool = False
    retry_policy: RetryPolicy | None = None
    memo: Memo | None = None
    search_attributes: SearchAttributes | None = None
    cron_schedule: str = ""
    # Delay before the first workflow task (start delay, continue-as-new backoff, retry or cron backoff).
    backoff_ms: int = 0
    # Continuations of an execution (continue-as-new, retry, cron) keep its first run and deadline.
    first_run_id: str = ""
    continued_execution_run_id: str = ""
    execution_expiration_ms: int = 0
    initiator: int = 0
    attempt: int = 1
    last_completion_result: Payloads | None = None
    continued_failure: Failure | None = None
    parent: ParentInfo | None = None
    namespace: str = ""
    signal: tuple[str, Payloads | None, Header | None] | None = None
    extra_started_fields: dict = field(default_factory=dict)
    # Callbacks to call when the run closes (a Nexus handler's workflow completes its caller's operation).
    completion_callbacks: list = field(default_factory=list)
    # The request's links (a Nexus handler's link to its caller): recorded on the started event, and on
    # the signaled event of a signal-with-start, as the reference does.
    links: list = field(default_factory=list)

    @staticmethod
    def from_start_request(
        namespace_id: str, namespace: str, request: StartWorkflowExecutionRequest
    ) -> NewRun:
        def opt(name: str):
            return getattr(request, name) if request.HasField(name) else None

        extra = {
            name: getattr(request, name) for name in ("priority", "user_metadata") if request.HasField(name)
        }
        if request.HasField("versioning_override") and request.versioning_override.ByteSize():
            # Stored and written without the deprecated spellings, as the reference does.
            extra["versioning_override"] = workflow_versioning.normalized(request.versioning_override)
        return NewRun(
            namespace_id=namespace_id,
            namespace=namespace,
            workflow_id=request.workflow_id,
            workflow_type=request.workflow_type.name,
            task_queue=request.task_queue.name,
            request_id=request.request_id,
            identity=request.identity,
            input=opt("input"),
            header=opt("header"),
            execution_timeout_ms=duration_ms(request.workflow_execution_timeout),
            run_timeout_ms=duration_ms(request.workflow_run_timeout),
            task_timeout_ms=duration_ms(request.workflow_task_timeout),
            execution_timeout_given=request.HasField("workflow_execution_timeout"),
            run_timeout_given=request.HasField("workflow_run_timeout"),
            retry_policy=opt("retry_policy"),
            memo=opt("memo"),
            search_attributes=opt("search_attributes"),
            cron_schedule=request.cron_schedule,
            # A cron workflow's first run waits for the schedule's first firing.
            backoff_ms=duration_ms(request.workflow_start_delay)
            or (cron_backoff_ms(request.cron_schedule, now_ms()) if request.cron_schedule else 0),
            # Set by schedules (the previous scheduled run's result or failure), as on the reference.
            last_completion_result=opt("last_completion_result"),
            continued_failure=opt("continued_failure"),
            extra_started_fields=extra,
            completion_callbacks=list(request.completion_callbacks),
            links=list(request.links),
        )


def start_run(new: NewRun, now: int, run_id: str | None = None) -> Transition:
    """A transition that creates the run: started event, first task or its backoff, timeouts, pointer."""
    run_id = run_id or new_run_id()
    exec_timeout = new.execution_timeout_ms
    run_timeout = new.run_timeout_ms
    if run_timeout == 0 or (exec_timeout and run_timeout > exec_timeout):
        run_timeout = exec_timeout
    task_timeout = min(new.task_timeout_ms or DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, MAX_WORKFLOW_TASK_TIMEOUT_MS)
    if run_timeout:
        task_timeout = min(task_timeout, run_timeout)
    execution_expiration = new.execution_expiration_ms or (now + exec_timeout if exec_timeout else 0)
    run_expiration = now + new.backoff_ms + run_timeout if run_timeout else 0
    if execution_expiration and (not run_expiration or execution_expiration < run_expiration):
        run_expiration = execution_expiration
    info = ExecutionInfo(
        namespace_id=new.namespace_id,
        workflow_id=new.workflow_id,
        run_id=run_id,
        first_run_id=new.first_run_id or run_id,
        workflow_type=new.workflow_type,
        task_queue=new.task_queue,
        create_request_id=new.request_id,
        start_time_ms=now,
        execution_time_ms=now + new.backoff_ms,
        workflow_task_timeout_ms=task_timeout,
        workflow_run_timeout_ms=run_timeout,
        workflow_execution_timeout_ms=exec_timeout,
        execution_timeout_given=new.execution_timeout_given,
        run_timeout_given=new.run_timeout_given,
        run_expiration_ms=run_expiration,
        execution_expiration_ms=execution_expiration,
        retry_policy=new.retry_policy,
        memo=new.memo,
        search_attributes=new.search_attributes,
        attempt=new.attempt,
        cron_schedule=new.cron_schedule,
        parent=new.parent,
        namespace=new.namespace,
        priority=new.extra_started_fields.get("priority"),
        versioning_override=new.extra_started_fields.get("versioning_override"),
    )
    if new.retry_policy is not None or new.cron_schedule:
        info.continuation_input = new.input
        info.continuation_header = new.header
        info.last_completion_result = new.last_completion_result
    tr = Transition(MutableState(info=info), now)
    attrs = WorkflowExecutionStartedEventAttributes(
        workflow_type=WorkflowType(name=new.workflow_type),
        task_queue=TaskQueue(name=new.task_queue, kind=1),
        workflow_task_timeout=to_duration(task_timeout),
        # Always present, zero when there is none: the reference writes it so.
        first_workflow_task_backoff=to_duration(new.backoff_ms),
        continued_execution_run_id=new.continued_execution_run_id,
        initiator=new.initiator,
        original_execution_run_id=run_id,
        identity=new.identity,
        first_execution_run_id=info.first_run_id,
        attempt=new.attempt,
        cron_schedule=new.cron_schedule,
        workflow_id=new.workflow_id,
    )
    for name in ("input", "header", "retry_policy", "memo", "search_attributes", "last_completion_result"):
        value = getattr(new, name)
        if value is not None:
            getattr(attrs, name).CopyFrom(value)
    if new.continued_failure is not None:
        attrs.continued_failure.CopyFrom(new.continued_failure)
    for name, value in new.extra_started_fields.items():
        if name != "user_metadata":  # not an attribute: it goes on the event itself
            getattr(attrs, name).CopyFrom(value)
    if execution_expiration:
        attrs.workflow_execution_expiration_time.CopyFrom(to_timestamp(execution_expiration))
    # Unset (not zero) when there is no limit, as on the reference, unless the request gave 0s.
    if exec_timeout or new.execution_timeout_given:
        attrs.workflow_execution_timeout.CopyFrom(to_duration(exec_timeout))
    if run_timeout or new.run_timeout_given:
        attrs.workflow_run_timeout.CopyFrom(to_duration(run_timeout))
    if new.parent is not None:
        p = new.parent
        attrs.parent_workflow_namespace = p.namespace
        attrs.parent_workflow_namespace_id = p.namespace_id
        attrs.parent_workflow_execution.workflow_id = p.workflow_id
        attrs.parent_workflow_execution.run_id = p.run_id
        attrs.parent_initiated_event_id = p.initiated_event_id
        attrs.root_workflow_execution.workflow_id = p.root_workflow_id or p.workflow_id
        attrs.root_workflow_execution.run_id = p.root_run_id or p.run_id
    attrs.completion_callbacks.extend(new.completion_callbacks)
    info.completion_callbacks = list(new.completion_callbacks)
    info.callback_states = [CallbackState(now) for _ in new.completion_callbacks]
    started = tr.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, attrs, bufferable=False)
    started.links.extend(new.links)
    if "user_metadata" in new.extra_started_fields:
        started.user_metadata.CopyFrom(new.extra_started_fields["user_metadata"])
        info.user_metadata = new.extra_started_fields["user_metadata"]
    if new.signal is not None:
        name, payloads, header = new.signal
        signaled = tr.add_event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            WorkflowExecutionSignaledEventAttributes(
                signal_name=name, identity=new.identity, input=payloads, header=header
            ),
        )
        signaled.links.extend(new.links)
        info.signal_count += 1
    if new.backoff_ms:
        tr.timer(TimerKind.WORKFLOW_BACKOFF, now + new.backoff_ms)
    else:
        tr.schedule_workflow_task()
    if run_expiration:
        tr.timer(TimerKind.WORKFLOW_TIMEOUT, run_expiration)
    if info.versioning_override is not None:
        workflow_versioning.index(tr.ms)
    tr.transfer(TransferKind.VISIBILITY)
    tr.current_run = CurrentRunWrite(
        mode=CurrentRunMode.CREATE,
        record=CurrentRunRecord(
            namespace_id=new.namespace_id,
            workflow_id=new.workflow_id,
            run_id=run_id,
            status=RunStatus.RUNNING,
            execution_status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
            create_request_id=new.request_id,
            start_time_ms=now,
        ),
    )
    return tr


def attaches_on_conflict(request: StartWorkflowExecutionRequest) -> bool:
    """Whether a start that finds its workflow running (USE_EXISTING) attaches something to that run."""
    # As on the reference, options given with nothing to attach still write the (empty) event.
    return request.HasField("on_conflict_options")


def attach_on_conflict(tr: Transition, request: StartWorkflowExecutionRequest) -> None:
    """A start that found the run running attaches to it what its on_conflict_options ask, as the
    reference does (startworkflow handleUseExistingWorkflowOnConflictOptions): one
    WorkflowExecutionOptionsUpdated event with the request id, the completion callbacks (called when the
    run closes, as the start's own: several Nexus operations can so be backed by one run) and the links."""
    options = request.on_conflict_options
    attrs = WorkflowExecutionOptionsUpdatedEventAttributes()
    if options.attach_request_id:
        attrs.attached_request_id = request.request_id
    if options.attach_completion_callbacks:
        attrs.attached_completion_callbacks.extend(request.completion_callbacks)
    ev = tr.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, attrs)
    ev.worker_may_ignore = True
    if options.attach_links:
        ev.links.extend(request.links)
    info = tr.ms.info
    if options.attach_request_id and request.request_id:
        info.attached_request_ids[request.request_id] = ev.event_id
    if options.attach_completion_callbacks:
        info.completion_callbacks.extend(request.completion_callbacks)
        info.callback_states.extend(CallbackState(tr.now) for _ in request.completion_callbacks)


# The start fields a signal-with-start copies only when given: a given 0s timeout is echoed, as on the
# reference.
_SIGNAL_WITH_START_FIELDS = (
    "workflow_execution_timeout",
    "workflow_run_timeout",
    "input",
    "retry_policy",
    "memo",
    "search_attributes",
    "header",
    "workflow_start_delay",
    "user_metadata",
    "priority",
    "versioning_override",
)


def start_of_signal_with_start(
    request: SignalWithStartWorkflowExecutionRequest, request_id: str
) -> StartWorkflowExecutionRequest:
    """The start half of a signal-with-start (a client's, or a workflow's through the system Nexus
    endpoint), with `request_id`."""
    start = StartWorkflowExecutionRequest(
        namespace=request.namespace,
        workflow_id=request.workflow_id,
        workflow_type=request.workflow_type,
        task_queue=request.task_queue,
        workflow_task_timeout=request.workflow_task_timeout,
        identity=request.identity,
        request_id=request_id,
        workflow_id_reuse_policy=request.workflow_id_reuse_policy,
        workflow_id_conflict_policy=request.workflow_id_conflict_policy,
        cron_schedule=request.cron_schedule,
    )
    for name in _SIGNAL_WITH_START_FIELDS:
        if request.HasField(name):
            getattr(start, name).CopyFrom(getattr(request, name))
    start.links.extend(request.links)
    return start
