"""A run's mutable state: the single source of truth for what a workflow may do next.

History is the audit log the worker replays; this is what the server decides with. It is persisted as one
blob per run (see codec.py) and cached per shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.api.common.v1 import (
    Callback,
    Header,
    Memo,
    Payloads,
    Priority,
    RetryPolicy,
    SearchAttributes,
    WorkerVersionStamp,
)
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.api.workflow.v1 import ResetPoints, VersioningOverride

from hourglass.cluster.history import codec

# Event id of an event that is buffered while a workflow task runs; real ids are given when it is flushed.
BUFFERED_EVENT_ID = -123

_RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


@dataclass
class ParentInfo:
    """The parent of a child workflow, which hears of the child's start and close."""

    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int
    root_workflow_id: str = ""
    root_run_id: str = ""


@dataclass
class WorkflowPause:
    """Who paused the run (PauseWorkflowExecution), when and why: describe's pause_info. A paused run
    gets no workflow task and no activity attempt until it is unpaused (its events still come in)."""

    time_ms: int
    identity: str = ""
    reason: str = ""
    # A retried PauseWorkflowExecution with the same request id is a no-op, another one is refused.
    request_id: str = ""


@dataclass
class CallbackState:
    """A completion callback's life, as describe's CallbackInfo shows it (same order as the callbacks):
    when it was registered (the start, or a start that attached to the running run) and its delivery, the
    reference's callback state machine: `state` is "" until the run closes, then "scheduled",
    "backing_off" between attempts of an http(s) delivery, "succeeded" or "failed" (refused for good)."""

    registration_time_ms: int = 0
    state: str = ""
    attempt: int = 0
    last_attempt_complete_time_ms: int = 0
    last_failure: str = ""
    next_attempt_time_ms: int = 0


@dataclass
class ExecutionInfo:
    namespace_id: str
    workflow_id: str
    run_id: str
    first_run_id: str
    workflow_type: str
    task_queue: str
    create_request_id: str
    start_time_ms: int
    execution_time_ms: int
    workflow_task_timeout_ms: int
    workflow_run_timeout_ms: int = 0
    workflow_execution_timeout_ms: int = 0
    # The start request gave these timeouts, 0s included: the reference echoes a given 0s (a Go client's,
    # the `temporal` CLI's) in the started event and describe, and leaves an absent one out.
    execution_timeout_given: bool = False
    run_timeout_given: bool = False
    # Absolute deadlines (0 = none): the run's, and the whole execution's (across retries/continue-as-new).
    run_expiration_ms: int = 0
    execution_expiration_ms: int = 0
    retry_policy: RetryPolicy | None = None
    memo: Memo | None = None
    search_attributes: SearchAttributes | None = None
    attempt: int = 1
    cron_schedule: str = ""
    parent: ParentInfo | None = None
    # The namespace's name, for the events that name it (child and external requests).
    namespace: str = ""
    # Kept only for runs that may continue (retry policy or cron): what the next run starts with.
    continuation_input: Payloads | None = None
    continuation_header: Header | None = None
    last_completion_result: Payloads | None = None
    status: int = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    close_time_ms: int = 0
    close_event_id: int = 0
    cancel_requested: bool = False
    cancel_request_ids: list[str] = field(default_factory=list)
    # Signals this run received (history.maximumSignalsPerExecution bounds it).
    signal_count: int = 0
    # Recent signal request ids, so a retried SignalWorkflowExecution is not delivered twice.
    signal_request_ids: list[str] = field(default_factory=list)
    # The start request's summary / details (describe shows them).
    user_metadata: UserMetadata | None = None
    # Sticky execution: the queue of the worker process that has this run cached ("" = none). Its next
    # workflow task goes there with only the new events, and moves to the normal queue if no poller takes
    # it within the schedule-to-start timeout.
    sticky_task_queue: str = ""
    sticky_schedule_to_start_timeout_ms: int = 0
    # In a cluster: the member that serves the sticky queue (the one the worker polls through), so the next
    # task is added straight there ("" = unknown: the task goes to the normal queue). Never shown to clients.
    sticky_member: str = ""
    # The first workflow task each worker build completed (where a reset can go back to), and the build
    # of the last completed task: describe shows both, as the reference's auto reset points.
    auto_reset_points: ResetPoints | None = None
    most_recent_worker_version_stamp: WorkerVersionStamp | None = None
    # The start request's priority (describe shows it, empty when none was asked).
    priority: Priority | None = None
    # A run made by a reset: when (its start time is that), and the start time of the run it replaced
    # (describe's original start time); 0 for any other run.
    last_reset_time_ms: int = 0
    original_start_time_ms: int = 0
    # A reset run's history starts with its base's started event: the request id that started that
    # (describe lists it, not the reset's request id).
    start_request_id: str = ""
    # The run a reset of this one made (set when this run was current and the reset terminated it).
    reset_run_id: str = ""
    # Set while the run is paused (describe and lists show status PAUSED).
    pause: WorkflowPause | None = None
    # The start request's completion callbacks: called when the run closes (Nexus operations it backs).
    completion_callbacks: list[Callback] = field(default_factory=list)
    # How each completion callback fared (same order; describe shows it).
    callback_states: list[CallbackState] = field(default_factory=list)
    # Request ids a start that found this run running attached to it (USE_EXISTING with
    # on_conflict_options.attach_request_id) -> the WorkflowExecutionOptionsUpdated event that recorded it.
    attached_request_ids: dict[str, int] = field(default_factory=dict)
    # UpdateWorkflowExecutionOptions' versioning override (describe's versioning_info shows it).
    versioning_override: VersioningOverride | None = None
    # Worker versioning: what the worker that last completed a workflow task reported (its behavior and
    # deployment version), and every version that completed one (see workflow_versioning.py).
    versioning_behavior: int = 0
    deployment_version: WorkerDeploymentVersion | None = None
    # Continued-as-new with initial_versioning_behavior USE_RAMPING_VERSION: until a worker reports a version,
    # the run's workflow tasks go to its task queue's ramping version (whatever the ramp percentage).
    start_on_ramping: bool = False
    used_deployment_versions: list[str] = field(default_factory=list)


@dataclass
class WorkflowTaskInfo:
    """The one pending workflow task of a run. Attempts after the first are transient (not in history)."""

    scheduled_event_id: int
    attempt: int
    task_queue: str
    start_to_close_timeout_ms: int
    scheduled_time_ms: int
    started_event_id: int = 0
    started_time_ms: int = 0
    request_id: str = ""
    identity: str = ""
    # The build id of the worker that took it (history shows it; the SDK reads its current build id).
    build_id: str = ""
    # Scheduled on the sticky queue `task_queue` (else `task_queue` is the run's normal queue).
    sticky: bool = False
    # A speculative task (delivering updates to an idle run) lives only in memory until something needs it
    # written: if the worker only rejects updates, it leaves no trace in history (as on the reference).
    speculative: bool = False
    # Its WorkflowTaskStarted says target_worker_deployment_version_changed: the run is pinned to a
    # version other than the one its task queue now routes new work to (workflow_versioning.py).
    target_version_changed: bool = False

    @property
    def started(self) -> bool:
        return self.started_event_id != 0

    @property
    def transient(self) -> bool:
        return self.attempt > 1


@dataclass
class ActivityPause:
    """Who paused an activity (PauseActivity), when and why; describe shows it."""

    time_ms: int
    identity: str = ""
    reason: str = ""
    # A retried PauseActivity with the same request id is a no-op, another one is refused.
    request_id: str = ""


@dataclass
class ActivityInfo:
    scheduled_event_id: int
    activity_id: str
    activity_type: str
    task_queue: str
    first_scheduled_time_ms: int
    # When the current attempt was handed to matching (first attempt: the scheduled event's time).
    scheduled_time_ms: int
    schedule_to_start_timeout_ms: int
    schedule_to_close_timeout_ms: int
    start_to_close_timeout_ms: int
    heartbeat_timeout_ms: int
    retry_policy: RetryPolicy | None = None
    # First event id of the history node holding the scheduled event (where input and header are read).
    scheduled_node_id: int = 0
    attempt: int = 1
    started_time_ms: int = 0
    request_id: str = ""
    identity: str = ""
    heartbeat_details: Payloads | None = None
    last_heartbeat_time_ms: int = 0
    last_failure: Failure | None = None
    last_worker_identity: str = ""
    cancel_requested: bool = False
    cancel_requested_event_id: int = 0
    # A standalone activity's RequestCancelActivityExecution reason (describe's canceled_reason).
    cancel_reason: str = ""
    # An attempt waits for its retry backoff timer before it is dispatched again (until next_attempt_time_ms).
    waiting_retry: bool = False
    next_attempt_time_ms: int = 0
    # When the worker last reported an attempt failed (describe's retry interval is measured from it).
    last_attempt_complete_time_ms: int = 0
    priority: Priority | None = None
    # Operator APIs: a paused activity gets no new attempt and no timeout until it is unpaused; its
    # running attempt hears of the pause (and of a reset) in its heartbeat responses.
    pause: ActivityPause | None = None
    reset: bool = False
    # Reset with reset_heartbeat: the next attempt starts without the heartbeat details.
    reset_heartbeats: bool = False
    # When the latest attempt started (kept while the next one waits; a standalone activity's describe).
    last_started_time_ms: int = 0
    # A standalone activity's worker SDK, from its poll's client-name / client-version headers.
    sdk_name: str = ""
    sdk_version: str = ""
    # The build id of the worker running the attempt (its ActivityTaskStarted event's worker_version).
    worker_build_id: str = ""
    # A standalone activity's start delay as its request gave it (None: not given; describe echoes 0s).
    start_delay_ms: int | None = None

    @property
    def started(self) -> bool:
        return self.started_time_ms != 0

    @property
    def paused(self) -> bool:
        return self.pause is not None


@dataclass
class TimerInfo:
    timer_id: str
    started_event_id: int
    expiry_time_ms: int


@dataclass
class ChildInfo:
    """A child workflow this run started (or is starting), keyed by its initiated event id."""

    initiated_event_id: int
    initiated_node_id: int
    namespace: str
    workflow_id: str
    workflow_type: str
    parent_close_policy: int
    run_id: str = ""
    started_event_id: int = 0


@dataclass
class ExternalRequest:
    """A signal or cancel this run sent to another workflow, pending its delivery."""

    initiated_event_id: int
    initiated_node_id: int
    namespace: str
    workflow_id: str
    run_id: str
    control: str = ""
    reason: str = ""  # a cancel's reason


@dataclass
class NexusOperationInfo:
    """A Nexus operation this run scheduled (ScheduleNexusOperation), keyed by its scheduled event id,
    until it completes, fails, is canceled or times out."""

    scheduled_event_id: int
    scheduled_node_id: int
    endpoint: str
    endpoint_id: str
    service: str
    operation: str
    request_id: str
    scheduled_time_ms: int
    # 0: none (the operation may run as long as the workflow).
    schedule_to_close_timeout_ms: int = 0
    # Set once the handler answered that the operation runs asynchronously (NexusOperationStarted).
    started_event_id: int = 0
    operation_token: str = ""
    # Attempts to hand the start request to the handler so far; when the last one was answered.
    attempt: int = 0
    last_attempt_complete_time_ms: int = 0
    cancel_requested_event_id: int = 0
    # Attempts to deliver the cancel request; whether the handler has answered it.
    cancel_attempt: int = 0
    cancel_delivered: bool = False
    # Why the last start attempt got no answer, and when the next one goes out (a standalone operation's
    # describe shows them while it backs off).
    last_attempt_failure: Failure | None = None
    next_attempt_time_ms: int = 0
    # A standalone operation's RequestCancelNexusOperationExecution reason (describe).
    cancel_reason: str = ""


@dataclass
class UpdateInfo:
    """A workflow update the run accepted: where its events are, so its outcome can be read back.

    Updates that were only admitted (not yet accepted) live in the shard's in-memory registry and are
    lost on restart, as on the reference; accepted ones are durable here and in history.
    """

    update_id: str
    accepted_event_id: int
    completed_event_id: int = 0
    # First event id of the history node holding the completed event.
    completed_node_id: int = 0


@dataclass
class MutableState:
    info: ExecutionInfo
    next_event_id: int = 1
    # Started event id of the last completed workflow task: the worker's `previous_started_event_id`.
    last_completed_workflow_task_started_event_id: int = 0
    workflow_task: WorkflowTaskInfo | None = None
    activities: dict[int, ActivityInfo] = field(default_factory=dict)
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    children: dict[int, ChildInfo] = field(default_factory=dict)
    signals_requested: dict[int, ExternalRequest] = field(default_factory=dict)
    cancels_requested: dict[int, ExternalRequest] = field(default_factory=dict)
    nexus_operations: dict[int, NexusOperationInfo] = field(default_factory=dict)
    buffered_events: list[HistoryEvent] = field(default_factory=list)
    updates: dict[str, UpdateInfo] = field(default_factory=dict)
    # Txn id of the last history node a committed transition wrote: readers ignore later (unapplied) nodes.
    last_history_txn_id: int = 0
    db_record_version: int = 0
    state_transition_count: int = 0
    # Bytes of history written so far (workflow task started events tell the worker).
    history_size_bytes: int = 0

    # ---- queries ---------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.info.status == _RUNNING  # a module constant: enum attribute lookups are slow, this is hot

    @property
    def sticky(self) -> bool:
        return bool(self.info.sticky_task_queue)

    def set_sticky(self, task_queue: str, schedule_to_start_timeout_ms: int, member: str = "") -> None:
        self.info.sticky_task_queue = task_queue
        self.info.sticky_schedule_to_start_timeout_ms = schedule_to_start_timeout_ms if task_queue else 0
        self.info.sticky_member = member if task_queue else ""

    def clear_sticky(self) -> None:
        self.set_sticky("", 0)

    @property
    def has_started_workflow_task(self) -> bool:
        return self.workflow_task is not None and self.workflow_task.started

    def activity_by_id(self, activity_id: str) -> ActivityInfo | None:
        for ai in self.activities.values():
            if ai.activity_id == activity_id:
                return ai
        return None

    @property
    def history_length(self) -> int:
        return self.next_event_id - 1

    # ---- persistence -----------------------------------------------------------------------------------
    def serialize(self) -> bytes:
        if self.workflow_task is not None and self.workflow_task.speculative:
            raise AssertionError("a speculative workflow task must be written to history before a commit")
        return codec.dumps(self)

    def clone(self) -> MutableState:
        return codec.deep_copy(self)

    @staticmethod
    def deserialize(data: bytes) -> MutableState:
        return codec.loads(MutableState, data)


def had_or_has_workflow_task(ms: MutableState) -> bool:
    """The run has had a workflow task, or has one now: it is past its start delay (or cron/retry backoff),
    whose timer must then not schedule another first task."""
    return ms.workflow_task is not None or ms.last_completed_workflow_task_started_event_id > 0
