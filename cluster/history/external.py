"""The state machine of work that crosses runs: child workflows, external signals and cancels.

Each follows the reference's two-step shape: the workflow's command records an *initiated* event and a
transfer task; when the task has reached the other run, a second transition records the outcome (started,
signaled, cancel requested, or failed) and wakes the workflow with a new workflow task.
"""

from __future__ import annotations

from temporalio.api.common.v1 import Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    CancelExternalWorkflowExecutionFailedCause,
    EventType,
    SignalExternalWorkflowExecutionFailedCause,
    StartChildWorkflowExecutionFailedCause,
    WorkflowExecutionStatus,
)
from temporalio.api.history.v1 import (
    ChildWorkflowExecutionCanceledEventAttributes,
    ChildWorkflowExecutionCompletedEventAttributes,
    ChildWorkflowExecutionFailedEventAttributes,
    ChildWorkflowExecutionStartedEventAttributes,
    ChildWorkflowExecutionTerminatedEventAttributes,
    ChildWorkflowExecutionTimedOutEventAttributes,
    ExternalWorkflowExecutionCancelRequestedEventAttributes,
    ExternalWorkflowExecutionSignaledEventAttributes,
    HistoryEvent,
    RequestCancelExternalWorkflowExecutionFailedEventAttributes,
    RequestCancelExternalWorkflowExecutionInitiatedEventAttributes,
    SignalExternalWorkflowExecutionFailedEventAttributes,
    SignalExternalWorkflowExecutionInitiatedEventAttributes,
    StartChildWorkflowExecutionFailedEventAttributes,
    StartChildWorkflowExecutionInitiatedEventAttributes,
)

from hourglass.cluster.history.mutable_state import ChildInfo, ExternalRequest
from hourglass.cluster.history.tasks import TransferKind
from hourglass.cluster.history.transition import Transition

S = WorkflowExecutionStatus


# ---- children ------------------------------------------------------------------------------------------
def initiate_child(tr: Transition, attrs: StartChildWorkflowExecutionInitiatedEventAttributes) -> ChildInfo:
    ev = tr.add_event(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, attrs, bufferable=False)
    child = ChildInfo(
        initiated_event_id=ev.event_id,
        initiated_node_id=tr.events[0].event_id,
        namespace=attrs.namespace,
        workflow_id=attrs.workflow_id,
        workflow_type=attrs.workflow_type.name,
        parent_close_policy=attrs.parent_close_policy,
    )
    tr.ms.children[child.initiated_event_id] = child
    tr.transfer(TransferKind.START_CHILD, initiated_event_id=child.initiated_event_id)
    return child


def record_child_started(tr: Transition, child: ChildInfo, run_id: str, namespace_id: str, header) -> None:
    attrs = ChildWorkflowExecutionStartedEventAttributes(
        namespace=child.namespace,
        namespace_id=namespace_id,
        initiated_event_id=child.initiated_event_id,
        workflow_execution=WorkflowExecution(workflow_id=child.workflow_id, run_id=run_id),
        workflow_type=WorkflowType(name=child.workflow_type),
    )
    if header is not None:
        attrs.header.CopyFrom(header)
    ev = tr.add_event(EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, attrs)
    child.run_id = run_id
    child.started_event_id = ev.event_id  # a buffered id is fixed up when the buffer is flushed
    tr.schedule_workflow_task()


def record_child_start_failed(
    tr: Transition, child: ChildInfo, namespace_id: str, control: str, completed_event_id: int
) -> None:
    tr.add_event(
        EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
        StartChildWorkflowExecutionFailedEventAttributes(
            namespace=child.namespace,
            namespace_id=namespace_id,
            workflow_id=child.workflow_id,
            workflow_type=WorkflowType(name=child.workflow_type),
            cause=StartChildWorkflowExecutionFailedCause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS,
            control=control,
            initiated_event_id=child.initiated_event_id,
            workflow_task_completed_event_id=completed_event_id,
        ),
    )
    del tr.ms.children[child.initiated_event_id]
    tr.schedule_workflow_task()


def record_child_closed(
    tr: Transition, child: ChildInfo, namespace_id: str, close_event: HistoryEvent
) -> None:
    """Translate the child's close event into the parent's ChildWorkflowExecution* event."""
    common = dict(
        namespace=child.namespace,
        namespace_id=namespace_id,
        workflow_execution=WorkflowExecution(workflow_id=child.workflow_id, run_id=child.run_id),
        workflow_type=WorkflowType(name=child.workflow_type),
        initiated_event_id=child.initiated_event_id,
        started_event_id=child.started_event_id,
    )
    t = close_event.event_type
    if t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        attrs = ChildWorkflowExecutionCompletedEventAttributes(**common)
        if close_event.workflow_execution_completed_event_attributes.HasField("result"):
            attrs.result.CopyFrom(close_event.workflow_execution_completed_event_attributes.result)
        event_type = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
    elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        src = close_event.workflow_execution_failed_event_attributes
        attrs = ChildWorkflowExecutionFailedEventAttributes(
            failure=src.failure, retry_state=src.retry_state, **common
        )
        event_type = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED
    elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        attrs = ChildWorkflowExecutionCanceledEventAttributes(**common)
        if close_event.workflow_execution_canceled_event_attributes.HasField("details"):
            attrs.details.CopyFrom(close_event.workflow_execution_canceled_event_attributes.details)
        event_type = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED
    elif t == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        attrs = ChildWorkflowExecutionTimedOutEventAttributes(
            retry_state=close_event.workflow_execution_timed_out_event_attributes.retry_state, **common
        )
        event_type = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT
    else:
        attrs = ChildWorkflowExecutionTerminatedEventAttributes(**common)
        event_type = EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED
    tr.add_event(event_type, attrs)
    del tr.ms.children[child.initiated_event_id]
    tr.schedule_workflow_task()


# ---- external signals ----------------------------------------------------------------------------------
def initiate_signal_external(
    tr: Transition, attrs: SignalExternalWorkflowExecutionInitiatedEventAttributes
) -> ExternalRequest:
    return _initiate_external(
        tr,
        EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        attrs,
        tr.ms.signals_requested,
        TransferKind.SIGNAL_EXTERNAL,
    )


def _initiate_external(tr: Transition, event_type: int, attrs, pending: dict, kind: str) -> ExternalRequest:
    """Record the initiated event, remember the request until its outcome, and queue its delivery."""
    ev = tr.add_event(event_type, attrs, bufferable=False)
    req = ExternalRequest(
        ev.event_id,
        tr.events[0].event_id,
        attrs.namespace,
        attrs.workflow_execution.workflow_id,
        attrs.workflow_execution.run_id,
        attrs.control,
    )
    pending[req.initiated_event_id] = req
    tr.transfer(kind, initiated_event_id=req.initiated_event_id)
    return req


def record_external_signaled(
    tr: Transition, req: ExternalRequest, namespace_id: str, ok: bool, cause: int = 0
) -> None:
    """The target got the signal, or it did not (`cause`: why; by default the target was not found)."""
    execution = WorkflowExecution(workflow_id=req.workflow_id, run_id=req.run_id)
    if ok:
        tr.add_event(
            EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
            ExternalWorkflowExecutionSignaledEventAttributes(
                initiated_event_id=req.initiated_event_id,
                namespace=req.namespace,
                namespace_id=namespace_id,
                workflow_execution=execution,
                control=req.control,
            ),
        )
    else:
        tr.add_event(
            EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            SignalExternalWorkflowExecutionFailedEventAttributes(
                cause=cause
                or SignalExternalWorkflowExecutionFailedCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
                namespace=req.namespace,
                namespace_id=namespace_id,
                workflow_execution=execution,
                initiated_event_id=req.initiated_event_id,
                control=req.control,
            ),
        )
    del tr.ms.signals_requested[req.initiated_event_id]
    tr.schedule_workflow_task()


# ---- external cancels ----------------------------------------------------------------------------------
def initiate_cancel_external(
    tr: Transition, attrs: RequestCancelExternalWorkflowExecutionInitiatedEventAttributes
) -> ExternalRequest:
    req = _initiate_external(
        tr,
        EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        attrs,
        tr.ms.cancels_requested,
        TransferKind.CANCEL_EXTERNAL,
    )
    req.reason = attrs.reason  # the target's cancel-requested event carries it as its cause
    return req


def record_external_cancel_requested(
    tr: Transition, req: ExternalRequest, namespace_id: str, ok: bool
) -> None:
    execution = WorkflowExecution(workflow_id=req.workflow_id, run_id=req.run_id)
    if ok:
        tr.add_event(
            EventType.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            ExternalWorkflowExecutionCancelRequestedEventAttributes(
                initiated_event_id=req.initiated_event_id,
                namespace=req.namespace,
                namespace_id=namespace_id,
                workflow_execution=execution,
            ),
        )
    else:
        tr.add_event(
            EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
            RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=CancelExternalWorkflowExecutionFailedCause.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND,
                namespace=req.namespace,
                namespace_id=namespace_id,
                workflow_execution=execution,
                initiated_event_id=req.initiated_event_id,
                control=req.control,
            ),
        )
    del tr.ms.cancels_requested[req.initiated_event_id]
    tr.schedule_workflow_task()


def child_payloads(event: HistoryEvent) -> Payloads | None:
    attrs = event.start_child_workflow_execution_initiated_event_attributes
    return attrs.input if attrs.HasField("input") else None
