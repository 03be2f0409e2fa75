"""The caller's side of a Nexus operation: the state machine a workflow's ScheduleNexusOperation starts.

As on the reference 1.32: the command records NexusOperationScheduled (and, with a schedule-to-close
timeout, a timer) and a transfer task that hands the start request to the endpoint's handler (engine.py
`_nexus_start`, through matching's Nexus queue). The handler's answer is recorded in a second transition:
a synchronous result as NexusOperationCompleted, an error as NexusOperationFailed (or Canceled), an
asynchronous start as NexusOperationStarted; the timeout as NexusOperationTimedOut. Every outcome but
Started wakes the workflow with a new workflow task, and every failure wraps its cause in the reference's
"nexus operation completed unsuccessfully" failure naming the operation.
"""

from __future__ import annotations

import uuid

from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.failure.v1 import Failure, NexusOperationFailureInfo, TimeoutFailureInfo
from temporalio.api.history.v1 import (
    NexusOperationCanceledEventAttributes,
    NexusOperationCancelRequestCompletedEventAttributes,
    NexusOperationCancelRequestedEventAttributes,
    NexusOperationCancelRequestFailedEventAttributes,
    NexusOperationCompletedEventAttributes,
    NexusOperationFailedEventAttributes,
    NexusOperationScheduledEventAttributes,
    NexusOperationStartedEventAttributes,
    NexusOperationTimedOutEventAttributes,
)

from hourglass.cluster.history.mutable_state import NexusOperationInfo
from hourglass.cluster.history.tasks import TimerKind, TransferKind
from hourglass.cluster.history.transition import Transition

UNSUCCESSFUL = "nexus operation completed unsuccessfully"


def schedule(tr: Transition, attrs: NexusOperationScheduledEventAttributes) -> NexusOperationInfo:
    attrs.request_id = str(uuid.uuid4())
    ev = tr.add_event(EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED, attrs, bufferable=False)
    op = NexusOperationInfo(
        scheduled_event_id=ev.event_id,
        scheduled_node_id=tr.events[0].event_id,
        endpoint=attrs.endpoint,
        endpoint_id=attrs.endpoint_id,
        service=attrs.service,
        operation=attrs.operation,
        request_id=attrs.request_id,
        scheduled_time_ms=tr.now,
        schedule_to_close_timeout_ms=attrs.schedule_to_close_timeout.ToMilliseconds()
        if attrs.HasField("schedule_to_close_timeout")
        else 0,
    )
    tr.ms.nexus_operations[op.scheduled_event_id] = op
    tr.transfer(TransferKind.NEXUS_START, scheduled_event_id=op.scheduled_event_id)
    if op.schedule_to_close_timeout_ms > 0:
        tr.timer(
            TimerKind.NEXUS_TIMEOUT,
            tr.now + op.schedule_to_close_timeout_ms,
            scheduled_event_id=op.scheduled_event_id,
        )
    return op


def record_started(
    tr: Transition, op: NexusOperationInfo, operation_token: str, wake: bool = True, links=()
) -> None:
    """`wake`: schedule a workflow task (not when the completion is recorded right after, in one go).
    `links`: the handler's links to what it started (the reference records them on the event)."""
    ev = tr.add_event(
        EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED,
        NexusOperationStartedEventAttributes(
            scheduled_event_id=op.scheduled_event_id,
            operation_id=operation_token,
            request_id=op.request_id,
            operation_token=operation_token,
        ),
    )
    ev.links.extend(links)
    op.started_event_id = ev.event_id
    op.operation_token = operation_token
    op.last_attempt_complete_time_ms = tr.now
    if op.cancel_requested_event_id:
        # The workflow asked to cancel before the operation had started: the request goes out now.
        tr.transfer(TransferKind.NEXUS_CANCEL, scheduled_event_id=op.scheduled_event_id)
    if wake:
        tr.schedule_workflow_task()


def record_completed(tr: Transition, op: NexusOperationInfo, result, links=()) -> None:
    """`links`: a synchronous handler's links (the reference records them on the event)."""
    attrs = NexusOperationCompletedEventAttributes(
        scheduled_event_id=op.scheduled_event_id, request_id=op.request_id
    )
    if result is not None:
        attrs.result.CopyFrom(result)
    _close(tr, op, EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED, attrs).links.extend(links)


def record_failed(tr: Transition, op: NexusOperationInfo, cause: Failure) -> None:
    _close(
        tr,
        op,
        EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED,
        NexusOperationFailedEventAttributes(
            scheduled_event_id=op.scheduled_event_id, failure=wrapped(op, cause), request_id=op.request_id
        ),
    )


def record_canceled(tr: Transition, op: NexusOperationInfo, cause: Failure) -> None:
    _close(
        tr,
        op,
        EventType.EVENT_TYPE_NEXUS_OPERATION_CANCELED,
        NexusOperationCanceledEventAttributes(
            scheduled_event_id=op.scheduled_event_id, failure=wrapped(op, cause), request_id=op.request_id
        ),
    )


def record_timed_out(tr: Transition, op: NexusOperationInfo) -> None:
    cause = Failure(
        message="operation timed out",
        timeout_failure_info=TimeoutFailureInfo(timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE),
    )
    _close(
        tr,
        op,
        EventType.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT,
        NexusOperationTimedOutEventAttributes(
            scheduled_event_id=op.scheduled_event_id, failure=wrapped(op, cause), request_id=op.request_id
        ),
    )


def record_cancel_requested(tr: Transition, op: NexusOperationInfo, completed_event_id: int) -> None:
    ev = tr.add_event(
        EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED,
        NexusOperationCancelRequestedEventAttributes(
            scheduled_event_id=op.scheduled_event_id, workflow_task_completed_event_id=completed_event_id
        ),
        bufferable=False,
    )
    op.cancel_requested_event_id = ev.event_id
    if op.started_event_id:
        tr.transfer(TransferKind.NEXUS_CANCEL, scheduled_event_id=op.scheduled_event_id)


def record_cancel_request_outcome(tr: Transition, op: NexusOperationInfo, failure: Failure | None) -> None:
    """The handler received the cancel request (it may still complete the operation), or refused it. As on
    the reference, the event names the cancel-requested event but not the workflow task that asked."""
    if failure is None:
        tr.add_event(
            EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED,
            NexusOperationCancelRequestCompletedEventAttributes(
                requested_event_id=op.cancel_requested_event_id,
                scheduled_event_id=op.scheduled_event_id,
            ),
        )
    else:
        tr.add_event(
            EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_FAILED,
            NexusOperationCancelRequestFailedEventAttributes(
                requested_event_id=op.cancel_requested_event_id,
                failure=failure,
                scheduled_event_id=op.scheduled_event_id,
            ),
        )
    op.cancel_delivered = True
    tr.schedule_workflow_task()


def wrapped(op: NexusOperationInfo, cause: Failure) -> Failure:
    """The reference's failure of an unsuccessful operation: its cause under a failure naming the operation."""
    return Failure(
        message=UNSUCCESSFUL,
        cause=cause,
        nexus_operation_execution_failure_info=NexusOperationFailureInfo(
            scheduled_event_id=op.scheduled_event_id,
            endpoint=op.endpoint,
            service=op.service,
            operation=op.operation,
            operation_token=op.operation_token,
        ),
    )


def _close(tr: Transition, op: NexusOperationInfo, event_type: int, attrs):
    ev = tr.add_event(event_type, attrs)
    if tr.standalone:
        # A standalone operation's hidden run closes with it (and keeps it for describe).
        from hourglass.cluster.history import standalone_nexus

        standalone_nexus.close_run(tr, event_type, attrs)
        return ev
    del tr.ms.nexus_operations[op.scheduled_event_id]
    tr.schedule_workflow_task()
    return ev
