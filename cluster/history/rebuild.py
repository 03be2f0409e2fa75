"""Rebuild a run's mutable state by replaying its history events.

Reset needs the state a run had at an earlier workflow task: which activities, timers and children were
pending then. History is the audit log that makes that possible; this module is its reader.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.common.v1 import SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import VersioningOverride

from hourglass.cluster.history import workflow_versioning
from hourglass.cluster.history.mutable_state import (
    ActivityInfo,
    CallbackState,
    ChildInfo,
    ExecutionInfo,
    ExternalRequest,
    MutableState,
    NexusOperationInfo,
    ParentInfo,
    TimerInfo,
    UpdateInfo,
    WorkflowTaskInfo,
)
from hourglass.cluster.history.timeutil import duration_ms, timestamp_ms
from hourglass.cluster.history.transition import ACTIVITY_CLOSE_EVENTS, CHILD_CLOSE_EVENTS

E = EventType


def rebuild(
    events: Sequence[HistoryEvent],
    namespace_id: str,
    namespace: str,
    workflow_id: str,
    run_id: str,
    node_id: int,
) -> MutableState:
    """The state after `events` (a run's history from event 1), as a run `run_id` whose history holds
    them in one node `node_id` (reads of scheduled/initiated events look there)."""
    first = events[0].workflow_execution_started_event_attributes
    start_ms = timestamp_ms(events[0].event_time)
    info = ExecutionInfo(
        namespace_id=namespace_id,
        namespace=namespace,
        workflow_id=workflow_id,
        run_id=run_id,
        first_run_id=first.first_execution_run_id or run_id,
        workflow_type=first.workflow_type.name,
        task_queue=first.task_queue.name,
        create_request_id="",
        start_time_ms=start_ms,
        execution_time_ms=start_ms + duration_ms(first.first_workflow_task_backoff),
        workflow_task_timeout_ms=duration_ms(first.workflow_task_timeout),
        workflow_run_timeout_ms=duration_ms(first.workflow_run_timeout),
        workflow_execution_timeout_ms=duration_ms(first.workflow_execution_timeout),
        execution_expiration_ms=timestamp_ms(first.workflow_execution_expiration_time)
        if first.HasField("workflow_execution_expiration_time")
        else 0,
        retry_policy=first.retry_policy if first.HasField("retry_policy") else None,
        memo=first.memo if first.HasField("memo") else None,
        search_attributes=first.search_attributes if first.HasField("search_attributes") else None,
        attempt=first.attempt or 1,
        cron_schedule=first.cron_schedule,
    )
    if first.HasField("parent_workflow_execution"):
        info.parent = ParentInfo(
            namespace=first.parent_workflow_namespace,
            namespace_id=first.parent_workflow_namespace_id,
            workflow_id=first.parent_workflow_execution.workflow_id,
            run_id=first.parent_workflow_execution.run_id,
            initiated_event_id=first.parent_initiated_event_id,
            root_workflow_id=first.root_workflow_execution.workflow_id,
            root_run_id=first.root_workflow_execution.run_id,
        )
    if first.HasField("priority"):
        info.priority = first.priority
    if first.HasField("versioning_override"):
        info.versioning_override = first.versioning_override
    # A handler's workflow keeps the callback that completes its Nexus operation.
    info.completion_callbacks = list(first.completion_callbacks)
    info.callback_states = [CallbackState(info.start_time_ms) for _ in first.completion_callbacks]
    # The start's summary and details travel on the event, not in its attributes.
    if events[0].HasField("user_metadata"):
        info.user_metadata = events[0].user_metadata
    ms = MutableState(info=info)
    for ev in events:
        _apply(ms, ev, node_id)
        ms.next_event_id = ev.event_id + 1
    return ms


def _apply(ms: MutableState, ev: HistoryEvent, node_id: int) -> None:
    t = ev.event_type
    at = timestamp_ms(ev.event_time)
    if t == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        a = ev.workflow_task_scheduled_event_attributes
        ms.workflow_task = WorkflowTaskInfo(
            ev.event_id, a.attempt or 1, ms.info.task_queue, duration_ms(a.start_to_close_timeout), at
        )
    elif t == E.EVENT_TYPE_WORKFLOW_TASK_STARTED and ms.workflow_task is not None:
        a = ev.workflow_task_started_event_attributes
        ms.workflow_task.started_event_id = ev.event_id
        ms.workflow_task.started_time_ms = at
        ms.workflow_task.request_id = a.request_id
        ms.workflow_task.identity = a.identity
    elif t == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        ms.last_completed_workflow_task_started_event_id = (
            ev.workflow_task_completed_event_attributes.started_event_id
        )
        ms.workflow_task = None
        workflow_versioning.replay_completion(ms, ev.workflow_task_completed_event_attributes)
    elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED:
        a = ev.workflow_execution_options_updated_event_attributes
        if a.HasField("versioning_override"):
            ms.info.versioning_override = a.versioning_override
        elif a.unset_versioning_override:
            ms.info.versioning_override = VersioningOverride()  # as execution_options keeps it
        # What a start that found the run running attached to it (runs.attach_on_conflict).
        if a.attached_request_id:
            ms.info.attached_request_ids[a.attached_request_id] = ev.event_id
        ms.info.completion_callbacks.extend(a.attached_completion_callbacks)
        ms.info.callback_states.extend(CallbackState(at) for _ in a.attached_completion_callbacks)
    elif t in (E.EVENT_TYPE_WORKFLOW_TASK_FAILED, E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT):
        ms.workflow_task = None
    elif t == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        a = ev.activity_task_scheduled_event_attributes
        ms.activities[ev.event_id] = ActivityInfo(
            scheduled_event_id=ev.event_id,
            activity_id=a.activity_id,
            activity_type=a.activity_type.name,
            task_queue=a.task_queue.name,
            first_scheduled_time_ms=at,
            scheduled_time_ms=at,
            schedule_to_start_timeout_ms=duration_ms(a.schedule_to_start_timeout),
            schedule_to_close_timeout_ms=duration_ms(a.schedule_to_close_timeout),
            start_to_close_timeout_ms=duration_ms(a.start_to_close_timeout),
            heartbeat_timeout_ms=duration_ms(a.heartbeat_timeout),
            retry_policy=a.retry_policy if a.HasField("retry_policy") else None,
            scheduled_node_id=node_id,
            priority=a.priority if a.HasField("priority") else None,
        )
    elif t == E.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
        ai = ms.activities.get(ev.activity_task_cancel_requested_event_attributes.scheduled_event_id)
        if ai is not None:
            ai.cancel_requested = True
            ai.cancel_requested_event_id = ev.event_id
    elif t in ACTIVITY_CLOSE_EVENTS:
        ms.activities.pop(getattr(ev, ACTIVITY_CLOSE_EVENTS[t]).scheduled_event_id, None)
    elif t == E.EVENT_TYPE_TIMER_STARTED:
        a = ev.timer_started_event_attributes
        ms.timers[a.timer_id] = TimerInfo(a.timer_id, ev.event_id, at + duration_ms(a.start_to_fire_timeout))
    elif t == E.EVENT_TYPE_TIMER_FIRED:
        ms.timers.pop(ev.timer_fired_event_attributes.timer_id, None)
    elif t == E.EVENT_TYPE_TIMER_CANCELED:
        ms.timers.pop(ev.timer_canceled_event_attributes.timer_id, None)
    elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        ms.info.cancel_requested = True
    elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        update_id = ev.workflow_execution_update_accepted_event_attributes.protocol_instance_id
        ms.updates[update_id] = UpdateInfo(update_id, ev.event_id)
    elif t == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        update_id = ev.workflow_execution_update_completed_event_attributes.meta.update_id
        if update_id in ms.updates:
            ms.updates[update_id].completed_event_id = ev.event_id
            ms.updates[update_id].completed_node_id = node_id
    elif t == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        fields = ev.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        if ms.info.search_attributes is None:
            ms.info.search_attributes = SearchAttributes()
        for name, payload in fields.items():
            ms.info.search_attributes.indexed_fields[name].CopyFrom(payload)
    elif t == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        a = ev.start_child_workflow_execution_initiated_event_attributes
        ms.children[ev.event_id] = ChildInfo(
            ev.event_id, node_id, a.namespace, a.workflow_id, a.workflow_type.name, a.parent_close_policy
        )
    elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
        a = ev.child_workflow_execution_started_event_attributes
        child = ms.children.get(a.initiated_event_id)
        if child is not None:
            child.run_id = a.workflow_execution.run_id
            child.started_event_id = ev.event_id
    elif t in _CHILD_CLOSED:
        ms.children.pop(getattr(ev, _CHILD_CLOSED[t]).initiated_event_id, None)
    elif t == E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        a = ev.signal_external_workflow_execution_initiated_event_attributes
        ms.signals_requested[ev.event_id] = ExternalRequest(
            ev.event_id,
            node_id,
            a.namespace,
            a.workflow_execution.workflow_id,
            a.workflow_execution.run_id,
            a.control,
        )
    elif t in (
        E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    ):
        attrs = (
            ev.external_workflow_execution_signaled_event_attributes
            if t == E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED
            else ev.signal_external_workflow_execution_failed_event_attributes
        )
        ms.signals_requested.pop(attrs.initiated_event_id, None)
    elif t == E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        a = ev.request_cancel_external_workflow_execution_initiated_event_attributes
        ms.cancels_requested[ev.event_id] = ExternalRequest(
            ev.event_id,
            node_id,
            a.namespace,
            a.workflow_execution.workflow_id,
            a.workflow_execution.run_id,
            a.control,
        )
    elif t in (
        E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        E.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED,
    ):
        attrs = (
            ev.external_workflow_execution_cancel_requested_event_attributes
            if t == E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED
            else ev.request_cancel_external_workflow_execution_failed_event_attributes
        )
        ms.cancels_requested.pop(attrs.initiated_event_id, None)
    elif t == E.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED:
        a = ev.nexus_operation_scheduled_event_attributes
        ms.nexus_operations[ev.event_id] = NexusOperationInfo(
            scheduled_event_id=ev.event_id,
            scheduled_node_id=node_id,
            endpoint=a.endpoint,
            endpoint_id=a.endpoint_id,
            service=a.service,
            operation=a.operation,
            request_id=a.request_id,
            scheduled_time_ms=ev.event_time.ToMilliseconds(),
            schedule_to_close_timeout_ms=a.schedule_to_close_timeout.ToMilliseconds(),
        )
    elif t == E.EVENT_TYPE_NEXUS_OPERATION_STARTED:
        a = ev.nexus_operation_started_event_attributes
        op = ms.nexus_operations.get(a.scheduled_event_id)
        if op is not None:
            op.started_event_id = ev.event_id
            op.operation_token = a.operation_token or a.operation_id
    elif t == E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED:
        op = ms.nexus_operations.get(ev.nexus_operation_cancel_requested_event_attributes.scheduled_event_id)
        if op is not None:
            op.cancel_requested_event_id = ev.event_id
    elif t in _NEXUS_CANCEL_ANSWERED:
        op = ms.nexus_operations.get(getattr(ev, _NEXUS_CANCEL_ANSWERED[t]).scheduled_event_id)
        if op is not None:
            op.cancel_delivered = True
    elif t in _NEXUS_CLOSED:
        ms.nexus_operations.pop(getattr(ev, _NEXUS_CLOSED[t]).scheduled_event_id, None)


_NEXUS_CLOSED = {
    E.EVENT_TYPE_NEXUS_OPERATION_COMPLETED: "nexus_operation_completed_event_attributes",
    E.EVENT_TYPE_NEXUS_OPERATION_FAILED: "nexus_operation_failed_event_attributes",
    E.EVENT_TYPE_NEXUS_OPERATION_CANCELED: "nexus_operation_canceled_event_attributes",
    E.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT: "nexus_operation_timed_out_event_attributes",
}
_NEXUS_CANCEL_ANSWERED = {
    E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED: "nexus_operation_cancel_request_completed_event_attributes",
    E.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_FAILED: "nexus_operation_cancel_request_failed_event_attributes",
}
_CHILD_CLOSED = {
    **CHILD_CLOSE_EVENTS,
    E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "start_child_workflow_execution_failed_event_attributes",
}
