"""Building one workflow transition: the events it appends and the tasks it schedules.

Mirrors the reference's mutable-state builder: while a workflow task is running (started), events caused by
the outside world (signals, timer fires, activity results, cancel requests) are buffered and get their ids
only when the workflow task closes, so the worker's view of history never changes under it.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import Payload, Payloads, RetryPolicy, WorkerVersionStamp, WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    ParentClosePolicy,
    RetryState,
    TaskQueueKind,
    TimeoutType,
    WorkflowExecutionStatus,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure, TimeoutFailureInfo
from temporalio.api.history.v1 import (
    ActivityTaskCanceledEventAttributes,
    ActivityTaskCancelRequestedEventAttributes,
    ActivityTaskCompletedEventAttributes,
    ActivityTaskFailedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    ActivityTaskTimedOutEventAttributes,
    HistoryEvent,
    TimerCanceledEventAttributes,
    TimerFiredEventAttributes,
    TimerStartedEventAttributes,
    WorkflowExecutionCanceledEventAttributes,
    WorkflowExecutionCancelRequestedEventAttributes,
    WorkflowExecutionCompletedEventAttributes,
    WorkflowExecutionFailedEventAttributes,
    WorkflowExecutionPausedEventAttributes,
    WorkflowExecutionSignaledEventAttributes,
    WorkflowExecutionTerminatedEventAttributes,
    WorkflowExecutionTimedOutEventAttributes,
    WorkflowExecutionUnpausedEventAttributes,
    WorkflowTaskCompletedEventAttributes,
    WorkflowTaskFailedEventAttributes,
    WorkflowTaskScheduledEventAttributes,
    WorkflowTaskStartedEventAttributes,
    WorkflowTaskTimedOutEventAttributes,
)
from temporalio.api.taskqueue.v1 import TaskQueue

from hourglass.cluster.history import pause_info, standalone_ids, worker_builds, workflow_versioning
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import (
    BUFFERED_EVENT_ID,
    ActivityInfo,
    MutableState,
    TimerInfo,
    WorkflowPause,
    WorkflowTaskInfo,
)
from hourglass.cluster.history.retry import backoff_ms
from hourglass.cluster.history.tasks import NewTask, TimerKind, TransferKind
from hourglass.cluster.history.timeutil import duration_ms, to_duration, to_timestamp
from hourglass.persistence.records import CurrentRunMode, CurrentRunRecord, CurrentRunWrite, RunStatus

# A workflow task that keeps failing or timing out gets more time from its fourth attempt on, as on the
# reference: its start-to-close timeout grows by 5 s, 10 s, 20 s... (jittered, at most
# history.workflowTaskRetryMaxInterval), so a worker that is merely slow (a loaded machine, a local
# activity holding the task) gets through instead of missing the same short timeout forever.
RETRY_EXTENSION_AFTER_ATTEMPT = 3
RETRY_EXTENSION_INITIAL_MS = 5_000


def workflow_task_timeout_ms(default_ms: int, attempt: int) -> int:
    """The start-to-close timeout of a workflow task's `attempt` (the reference's backoff: 80-100 % of
    5 s doubled per attempt past the third, capped; no extension when the cap is below 5 s)."""
    if attempt <= RETRY_EXTENSION_AFTER_ATTEMPT:
        return default_ms
    exponent = min(attempt - RETRY_EXTENSION_AFTER_ATTEMPT - 1, 62)
    interval = min(RETRY_EXTENSION_INITIAL_MS * 2.0**exponent, LIMITS.workflow_task_retry_max_interval_ms)
    if interval < RETRY_EXTENSION_INITIAL_MS:
        return default_ms
    return default_ms + int(interval * (0.8 + 0.2 * random.random()))


# How the reference names timeouts in its failure messages ("activity StartToClose timeout").
_TIMEOUT_NAMES = {
    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE: "StartToClose",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START: "ScheduleToStart",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE: "ScheduleToClose",
    TimeoutType.TIMEOUT_TYPE_HEARTBEAT: "Heartbeat",
}
CHILD_CLOSE_EVENTS = {
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "child_workflow_execution_completed_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "child_workflow_execution_failed_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "child_workflow_execution_canceled_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "child_workflow_execution_timed_out_event_attributes",
    EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "child_workflow_execution_terminated_event_attributes",
}
ACTIVITY_CLOSE_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


def attributes_field(event_type: int) -> str:
    """`EVENT_TYPE_TIMER_FIRED` -> `timer_fired_event_attributes` (the oneof field of HistoryEvent)."""
    return EventType.Name(event_type).removeprefix("EVENT_TYPE_").lower() + "_event_attributes"


def default_retry_policy(policy: RetryPolicy | None) -> RetryPolicy:
    """Fill the server-side defaults of an activity retry policy, as the reference does: only unset (zero)
    intervals take a default, so a sub-millisecond interval the caller asked for is kept as asked."""
    p = RetryPolicy()
    if policy is not None:
        p.CopyFrom(policy)
    if _is_zero(p.initial_interval):
        p.initial_interval.CopyFrom(to_duration(1000))
    if p.backoff_coefficient == 0:
        p.backoff_coefficient = 2.0
    if _is_zero(p.maximum_interval):
        p.maximum_interval.FromNanoseconds(100 * p.initial_interval.ToNanoseconds())
    return p


def _is_zero(d: Duration) -> bool:
    return d.seconds == 0 and d.nanos == 0


class Transition:
    """One transition of a run under construction. The shard commits it (history, then the batch)."""

    def __init__(self, ms: MutableState, now_ms: int, retention_ms: int = 0) -> None:
        self.ms = ms
        self.now = now_ms
        # The namespace's retention: a closed run is deleted this long after it closes (0: kept).
        self.retention_ms = retention_ms
        self.events: list[HistoryEvent] = []
        self.transfer_tasks: list[NewTask] = []
        self.timer_tasks: list[NewTask] = []
        self.current_run: CurrentRunWrite | None = None
        # Set when only mutable state changed (e.g. a heartbeat): still a commit, with no event or task.
        self.dirty = False
        # A run this transition creates in the same batch (continue-as-new replaces the current run).
        self.new_run: Transition | None = None
        # The update messages of the workflow task being completed (see updates.UpdateProtocol).
        self.protocol = None
        # In-memory changes (the update registry) made only once the transition is committed.
        self.effects: list[Callable[[], None]] = []
        # Activities the worker asked to run eagerly: started by start_eager_activities, not dispatched.
        self.eager_activities: list[tuple[ActivityInfo, ActivityTaskScheduledEventAttributes]] = []
        # Nexus endpoint ids by name, for the ScheduleNexusOperation commands of the task being completed.
        self.nexus_endpoints: dict[str, str] = {}
        # While a task's commands are applied (see begin_commands): the events the commands cause besides
        # their own (an unstarted activity's cancellation), written after all the commands' events.
        self._after_commands: list[Callable[[], None]] | None = None

    # ---- events ----------------------------------------------------------------------------------------
    def add_event(self, event_type: int, attributes, *, bufferable: bool = True) -> HistoryEvent:
        ev = HistoryEvent(event_type=event_type, event_time=to_timestamp(self.now))
        getattr(ev, attributes_field(event_type)).CopyFrom(attributes)
        if bufferable and self.ms.has_started_workflow_task:
            ev.event_id = BUFFERED_EVENT_ID
            self.ms.buffered_events.append(ev)
            self.dirty = True  # kept in mutable state: acknowledged, so it must be committed now
        else:
            ev.event_id = self.ms.next_event_id
            self.ms.next_event_id += 1
            self.events.append(ev)
        return ev

    def flush_buffered_events(self) -> None:
        """Give buffered events their ids, fixing the started-event references of activity results."""
        started_ids: dict[int, int] = {}
        child_started_ids: dict[int, int] = {}
        for ev in self.ms.buffered_events:
            ev.event_id = self.ms.next_event_id
            self.ms.next_event_id += 1
            if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started_ids[ev.activity_task_started_event_attributes.scheduled_event_id] = ev.event_id
            elif ev.event_type in ACTIVITY_CLOSE_EVENTS:
                attrs = getattr(ev, ACTIVITY_CLOSE_EVENTS[ev.event_type])
                if attrs.started_event_id == BUFFERED_EVENT_ID:
                    attrs.started_event_id = started_ids.get(attrs.scheduled_event_id, 0)
            elif ev.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                initiated = ev.child_workflow_execution_started_event_attributes.initiated_event_id
                child_started_ids[initiated] = ev.event_id
                if initiated in self.ms.children:
                    self.ms.children[initiated].started_event_id = ev.event_id
            elif ev.event_type in CHILD_CLOSE_EVENTS:
                attrs = getattr(ev, CHILD_CLOSE_EVENTS[ev.event_type])
                if attrs.started_event_id == BUFFERED_EVENT_ID:
                    attrs.started_event_id = child_started_ids.get(attrs.initiated_event_id, 0)
            self.events.append(ev)
        self.ms.buffered_events.clear()

    def transfer(self, kind: str, **data) -> None:
        self.transfer_tasks.append(NewTask(kind, data))

    @property
    def standalone(self) -> bool:
        """The run is a standalone activity or Nexus operation (see standalone_ids): no workflow tasks,
        closed by its activity or operation."""
        return standalone_ids.is_hidden(self.ms.info.workflow_id)

    def timer(self, kind: str, fire_time_ms: int, **data) -> None:
        """A timer task, due at `fire_time_ms`. One due later than now fires no sooner than the reference's
        timer queue would fire it (LIMITS.timer_min_delay_ms from now); one due now (an unpaused or reset
        activity's next attempt) fires at once, as before."""
        if fire_time_ms > self.now:
            fire_time_ms = max(fire_time_ms, self.now + LIMITS.timer_min_delay_ms)
        self.timer_tasks.append(NewTask(kind, data, fire_time_ms))

    @property
    def changed(self) -> bool:
        return bool(self.dirty or self.events or self.transfer_tasks or self.timer_tasks or self.current_run)

    # ---- workflow tasks --------------------------------------------------------------------------------
    def schedule_workflow_task(self, attempt: int = 1) -> None:
        """Schedule a workflow task unless one is pending. Attempts after the first stay out of history."""
        ms = self.ms
        if ms.workflow_task is not None or not ms.running or ms.info.pause is not None or self.standalone:
            return  # a paused run gets its next task when it is unpaused; a standalone activity none
        if ms.buffered_events:
            # Events that came in while the last task ran: the worker must see them, so this task is a normal
            # one (attempt 1, in history) even after failed attempts, as on the reference.
            attempt = 1
            self.flush_buffered_events()
        # A sticky run's task goes to its worker's queue. (Never a retry: a failure clears stickiness.)
        sticky = ms.sticky
        wt = WorkflowTaskInfo(
            scheduled_event_id=ms.next_event_id,
            attempt=attempt,
            task_queue=ms.info.sticky_task_queue if sticky else ms.info.task_queue,
            start_to_close_timeout_ms=workflow_task_timeout_ms(ms.info.workflow_task_timeout_ms, attempt),
            scheduled_time_ms=self.now,
            sticky=sticky,
        )
        if attempt == 1:
            wt.scheduled_event_id = self._add_workflow_task_scheduled_event(wt).event_id
        ms.workflow_task = wt
        self.transfer(TransferKind.WORKFLOW_TASK, scheduled_event_id=wt.scheduled_event_id)
        if sticky:
            # If the sticky worker does not take it in time, it moves to the normal queue (see
            # time_out_sticky_workflow_task).
            self.timer(
                TimerKind.WORKFLOW_TASK_TIMEOUT,
                self.now + ms.info.sticky_schedule_to_start_timeout_ms,
                scheduled_event_id=wt.scheduled_event_id,
                attempt=wt.attempt,
                timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
            )

    def _workflow_task_queue(self, wt: WorkflowTaskInfo) -> TaskQueue:
        """The queue a task was scheduled on, as history shows it (a sticky queue names its normal one)."""
        if wt.sticky:
            return TaskQueue(
                name=wt.task_queue,
                kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY,
                normal_name=self.ms.info.task_queue,
            )
        return TaskQueue(name=wt.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)

    def schedule_speculative_workflow_task(self) -> WorkflowTaskInfo:
        """A workflow task that only ships updates to an idle run: in memory, written to history only if
        the worker's answer (or anything else happening meanwhile) needs it. The caller dispatches it."""
        ms = self.ms
        assert ms.workflow_task is None and ms.running
        # A sticky run's worker has it cached: the task goes to its sticky queue, as any other task would.
        wt = WorkflowTaskInfo(
            scheduled_event_id=ms.next_event_id,
            attempt=1,
            task_queue=ms.info.sticky_task_queue if ms.sticky else ms.info.task_queue,
            start_to_close_timeout_ms=ms.info.workflow_task_timeout_ms,
            scheduled_time_ms=self.now,
            speculative=True,
            sticky=ms.sticky,
        )
        ms.workflow_task = wt
        return wt

    def materialize_speculative_workflow_task(self) -> None:
        """Turn a speculative workflow task into a normal one: its events go to history now (with the
        times the worker saw) and it gets the persisted tasks a normal one has."""
        ms = self.ms
        spec = ms.workflow_task
        if spec is None or not spec.speculative:
            return
        # A copy: the speculative original stays intact for the shard to restore if this transition fails.
        wt = ms.workflow_task = dataclasses.replace(spec, speculative=False)
        scheduled = self._add_workflow_task_scheduled_event(wt)
        scheduled.event_time.CopyFrom(to_timestamp(wt.scheduled_time_ms))
        wt.scheduled_event_id = scheduled.event_id
        if wt.started:
            started = self._add_workflow_task_started_event(wt)
            started.event_time.CopyFrom(to_timestamp(wt.started_time_ms))
            wt.started_event_id = started.event_id
            self.timer(
                TimerKind.WORKFLOW_TASK_TIMEOUT,
                wt.started_time_ms + wt.start_to_close_timeout_ms,
                scheduled_event_id=wt.scheduled_event_id,
                attempt=wt.attempt,
            )
        else:
            self.transfer(TransferKind.WORKFLOW_TASK, scheduled_event_id=wt.scheduled_event_id)

    def _add_workflow_task_scheduled_event(self, wt: WorkflowTaskInfo) -> HistoryEvent:
        return self.add_event(
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            WorkflowTaskScheduledEventAttributes(
                task_queue=self._workflow_task_queue(wt),
                start_to_close_timeout=to_duration(wt.start_to_close_timeout_ms),
                attempt=wt.attempt,
            ),
            bufferable=False,
        )

    def _add_workflow_task_started_event(self, wt: WorkflowTaskInfo) -> HistoryEvent:
        return self.add_event(
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            self._workflow_task_started_attributes(wt),
            bufferable=False,
        )

    def _workflow_task_started_attributes(self, wt: WorkflowTaskInfo) -> WorkflowTaskStartedEventAttributes:
        """The worker learns the history's size here, and whether to continue as new (limits.py)."""
        ms = self.ms
        return WorkflowTaskStartedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            identity=wt.identity,
            request_id=wt.request_id,
            history_size_bytes=ms.history_size_bytes,
            suggest_continue_as_new=LIMITS.suggest_continue_as_new(ms.history_length, ms.history_size_bytes),
            worker_version=WorkerVersionStamp(build_id=wt.build_id) if wt.build_id else None,
            target_worker_deployment_version_changed=wt.target_version_changed,
        )

    def start_workflow_task(
        self, request_id: str, identity: str, build_id: str = "", target_version_changed: bool = False
    ) -> WorkflowTaskInfo:
        ms = self.ms
        wt = ms.workflow_task
        assert wt is not None and not wt.started
        wt.build_id = build_id
        wt.target_version_changed = target_version_changed
        if wt.transient and wt.scheduled_event_id != ms.next_event_id:
            # New events arrived after a transient attempt was scheduled: it becomes a normal task again.
            wt.attempt = 1
            wt.scheduled_event_id = self._add_workflow_task_scheduled_event(wt).event_id
        wt.request_id = request_id
        wt.identity = identity
        wt.started_time_ms = self.now
        if wt.speculative:
            # Nothing is written: its timeout is an in-memory timer the engine arms.
            wt.started_event_id = wt.scheduled_event_id + 1
            return wt
        if wt.transient:
            wt.started_event_id = wt.scheduled_event_id + 1
        else:
            wt.started_event_id = self._add_workflow_task_started_event(wt).event_id
        self.timer(
            TimerKind.WORKFLOW_TASK_TIMEOUT,
            self.now + wt.start_to_close_timeout_ms,
            scheduled_event_id=wt.scheduled_event_id,
            attempt=wt.attempt,
        )
        return wt

    def start_workflow_task_eagerly(self, request_id: str, identity: str) -> WorkflowTaskInfo | None:
        """Eager workflow start: the run's first task is started in the transition that schedules it, for
        the starter's own worker, and never goes through matching. None when there is no task to start
        (a start delay, a cron or retry backoff), as the reference then declines eager execution."""
        wt = self.ms.workflow_task
        if wt is None or wt.started or wt.speculative or wt.sticky or wt.attempt != 1:
            return None
        return self._start_without_matching(wt, request_id, identity)

    def start_new_workflow_task_in_response(
        self, identity: str, build_id: str = ""
    ) -> WorkflowTaskInfo | None:
        """RespondWorkflowTaskCompleted with return_new_workflow_task: the task the completion scheduled
        is started at once and goes back in the response (no poll, no matching), as on the reference,
        which names its request "request-from-RespondWorkflowTaskCompleted". None when none was scheduled."""
        wt = self.ms.workflow_task
        if wt is None or wt.started or wt.speculative:
            return None
        return self._start_without_matching(
            wt, "request-from-RespondWorkflowTaskCompleted", identity, build_id
        )

    def _start_without_matching(
        self, wt: WorkflowTaskInfo, request_id: str, identity: str, build_id: str = ""
    ) -> WorkflowTaskInfo:
        self.transfer_tasks = [
            t
            for t in self.transfer_tasks
            if not (
                t.kind == TransferKind.WORKFLOW_TASK
                and t.data.get("scheduled_event_id") == wt.scheduled_event_id
            )
        ]
        return self.start_workflow_task(request_id, identity, build_id)

    def transient_workflow_task_events(self) -> list[HistoryEvent]:
        """The events a worker sees for a transient (retried) or speculative workflow task that history has
        not written."""
        wt = self.ms.workflow_task
        if wt is None or not (wt.transient or wt.speculative) or not wt.started:
            return []
        scheduled = HistoryEvent(
            event_id=wt.scheduled_event_id,
            event_time=to_timestamp(wt.scheduled_time_ms),
            event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            workflow_task_scheduled_event_attributes=WorkflowTaskScheduledEventAttributes(
                task_queue=self._workflow_task_queue(wt),
                start_to_close_timeout=to_duration(wt.start_to_close_timeout_ms),
                attempt=wt.attempt,
            ),
        )
        started = HistoryEvent(
            event_id=wt.started_event_id,
            event_time=to_timestamp(wt.started_time_ms),
            event_type=EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes=self._workflow_task_started_attributes(wt),
        )
        return [scheduled, started]

    def _write_transient_events(self, wt: WorkflowTaskInfo) -> None:
        """A transient attempt that closes for good is written to history after all."""
        if wt.transient:
            scheduled = self._add_workflow_task_scheduled_event(wt)
            scheduled.event_time.CopyFrom(to_timestamp(wt.scheduled_time_ms))
            started = self._add_workflow_task_started_event(wt)
            started.event_time.CopyFrom(to_timestamp(wt.started_time_ms))

    def complete_workflow_task(
        self,
        identity: str,
        binary_checksum: str = "",
        sdk_metadata=None,
        build_id: str = "",
        metering_metadata=None,
        request=None,
    ) -> int:
        """Record WorkflowTaskCompleted; returns its event id (commands reference it). `request` (the
        RespondWorkflowTaskCompleted) carries the worker's deployment version and versioning behavior."""
        ms = self.ms
        wt = ms.workflow_task
        assert wt is not None and wt.started
        self._write_transient_events(wt)
        attrs = WorkflowTaskCompletedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            identity=identity,
            binary_checksum=binary_checksum,
        )
        if sdk_metadata is not None:
            attrs.sdk_metadata.CopyFrom(sdk_metadata)
        # The reference always writes it (empty on its dev server), as the worker sent it when it did.
        attrs.metering_metadata.SetInParent()
        if metering_metadata is not None:
            attrs.metering_metadata.CopyFrom(metering_metadata)
        if build_id:
            attrs.worker_version.build_id = build_id
        if request is not None:
            workflow_versioning.record_completion(ms, request, attrs)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, attrs, bufferable=False)
        ms.last_completed_workflow_task_started_event_id = wt.started_event_id
        ms.workflow_task = None
        pinned = workflow_versioning.pinned_version(ms)
        changed = worker_builds.record_completed_task(ms, build_id, ev.event_id, self.now, pinned)
        if workflow_versioning.index(ms) or changed:
            self.transfer(TransferKind.VISIBILITY)
        return ev.event_id

    def fail_workflow_task(
        self, cause: int, failure: Failure | None, identity: str, *, schedule_next: bool = True
    ) -> None:
        """A started workflow task failed. Attempt 1 is written to history; later attempts stay transient."""
        ms = self.ms
        wt = ms.workflow_task
        assert wt is not None and wt.started
        if not wt.transient:
            attrs = WorkflowTaskFailedEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                started_event_id=wt.started_event_id,
                cause=cause,
                identity=identity,
            )
            if failure is not None:
                attrs.failure.CopyFrom(failure)
            self.add_event(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, attrs, bufferable=False)
        ms.workflow_task = None
        next_attempt = self._next_attempt_after_failure(wt)
        if schedule_next:
            self.schedule_workflow_task(attempt=next_attempt)

    def timeout_workflow_task(self) -> None:
        ms = self.ms
        wt = ms.workflow_task
        assert wt is not None and wt.started
        if not wt.transient:
            self.add_event(
                EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                WorkflowTaskTimedOutEventAttributes(
                    scheduled_event_id=wt.scheduled_event_id,
                    started_event_id=wt.started_event_id,
                    timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
                ),
                bufferable=False,
            )
        ms.workflow_task = None
        self.schedule_workflow_task(attempt=self._next_attempt_after_failure(wt))

    def time_out_sticky_workflow_task(self) -> None:
        """No sticky poller took the task in time: record it (timeout type SCHEDULE_TO_START), forget the
        sticky queue and schedule the task again, as attempt 1 on the normal queue (as the reference does)."""
        ms = self.ms
        wt = ms.workflow_task
        assert wt is not None and not wt.started
        if not wt.transient:
            self.add_event(
                EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
                WorkflowTaskTimedOutEventAttributes(
                    scheduled_event_id=wt.scheduled_event_id,
                    timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
                ),
                bufferable=False,
            )
        ms.workflow_task = None
        ms.clear_sticky()
        self.schedule_workflow_task(attempt=1)

    def _next_attempt_after_failure(self, wt: WorkflowTaskInfo) -> int:
        """A task that fails on a sticky run is retried first as a fresh task (attempt 1, in history) on the
        normal queue, where a worker replays the whole history; only then do attempts count (reference)."""
        if self.ms.sticky:
            self.ms.clear_sticky()
            return 1
        return wt.attempt + 1

    def force_close_workflow_task(self, identity: str) -> None:
        """Before the server closes a run (terminate, timeout) a running workflow task is failed."""
        if self.ms.has_started_workflow_task:
            self.fail_workflow_task(
                WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND,
                None,
                identity,
                schedule_next=False,
            )
        if self.ms.buffered_events:
            self.flush_buffered_events()

    def rearm_pending_work(self) -> None:
        """A rebuilt run (reset) gets tasks for what was pending: activities, timers, timeouts, requests."""
        ms = self.ms
        for ai in ms.activities.values():
            self.dispatch_activity(ai)
            if ai.schedule_to_close_timeout_ms > 0:
                self.arm_activity_timeout(
                    ai, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, self.now + ai.schedule_to_close_timeout_ms
                )
        for ti in ms.timers.values():
            self.timer(
                TimerKind.USER_TIMER,
                max(ti.expiry_time_ms, self.now),
                timer_id=ti.timer_id,
                started_event_id=ti.started_event_id,
            )
        for child in ms.children.values():
            if not child.started_event_id:
                self.transfer(TransferKind.START_CHILD, initiated_event_id=child.initiated_event_id)
        for initiated in ms.signals_requested:
            self.transfer(TransferKind.SIGNAL_EXTERNAL, initiated_event_id=initiated)
        for initiated in ms.cancels_requested:
            self.transfer(TransferKind.CANCEL_EXTERNAL, initiated_event_id=initiated)
        for op in ms.nexus_operations.values():
            if not op.started_event_id:
                self.transfer(TransferKind.NEXUS_START, scheduled_event_id=op.scheduled_event_id)
            elif op.cancel_requested_event_id and not op.cancel_delivered:
                self.transfer(TransferKind.NEXUS_CANCEL, scheduled_event_id=op.scheduled_event_id)
            if op.schedule_to_close_timeout_ms > 0:
                self.timer(
                    TimerKind.NEXUS_TIMEOUT,
                    max(op.scheduled_time_ms + op.schedule_to_close_timeout_ms, self.now),
                    scheduled_event_id=op.scheduled_event_id,
                )
        if ms.info.run_expiration_ms:
            self.timer(TimerKind.WORKFLOW_TIMEOUT, ms.info.run_expiration_ms)
        self.transfer(TransferKind.VISIBILITY)

    # ---- closing the run -------------------------------------------------------------------------------
    def close_run(self, status: int, close_event: HistoryEvent, continued: bool = False) -> None:
        """Close the run. `continued`: a new run of the execution (retry, cron, continue-as-new) follows."""
        ms = self.ms
        info = ms.info
        info.status = status
        info.close_time_ms = self.now
        info.close_event_id = close_event.event_id
        ms.workflow_task = None
        # Pending activities stay listed: a closed run's describe still shows them (paused ones included),
        # as on the reference; nothing starts, times out or completes them any more (every path checks
        # that the run is running).
        ms.timers.clear()
        self._apply_parent_close_policies()
        if info.parent is not None and not continued:
            self.transfer(TransferKind.RECORD_CHILD_COMPLETION)
        if not continued:
            for index in range(len(info.completion_callbacks)):
                self.transfer(TransferKind.COMPLETION_CALLBACK, index=index)
        # Children stay listed: a closed parent's describe still shows them pending, as on the reference
        # (the parent close policy acts on them; the parent never hears of their close).
        ms.signals_requested.clear()
        ms.cancels_requested.clear()
        # A closed run's Nexus operations are abandoned: nothing records their outcome any more. (A
        # standalone operation's run keeps its one operation: describe shows it.)
        if not self.standalone:
            ms.nexus_operations.clear()
        if self.retention_ms > 0:
            self.timer(TimerKind.DELETE_HISTORY, self.now + self.retention_ms)
        if self.retention_ms > 0:
            self.timer(TimerKind.DELETE_HISTORY, self.now + self.retention_ms)
        self.current_run = CurrentRunWrite(
            mode=CurrentRunMode.UPDATE,
            record=CurrentRunRecord(
                namespace_id=info.namespace_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                status=RunStatus.CLOSED,
                execution_status=status,
                create_request_id=info.create_request_id,
                start_time_ms=info.start_time_ms,
                close_time_ms=self.now,
            ),
        )
        self.transfer(TransferKind.VISIBILITY)

    def _apply_parent_close_policies(self) -> None:
        """Pending children are terminated or asked to cancel when their parent closes (not abandoned)."""
        for child in self.ms.children.values():
            policy = child.parent_close_policy or ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE
            if policy != ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON and child.run_id:
                self.transfer(
                    TransferKind.PARENT_CLOSE_POLICY,
                    namespace=child.namespace,
                    workflow_id=child.workflow_id,
                    run_id=child.run_id,
                    policy=policy,
                )

    def _hand_over(self, close_event_attrs, new_run: Transition | None) -> None:
        """A new run (built by runs.start_run) takes the workflow id over in the same batch."""
        if new_run is None:
            return
        close_event_attrs.new_execution_run_id = new_run.ms.info.run_id
        self.current_run = None  # the new run's REPLACE moves the pointer
        new_run.current_run.mode = CurrentRunMode.REPLACE
        new_run.current_run.previous_run_id = self.ms.info.run_id
        self.new_run = new_run

    def continue_as_new(self, attrs, new_run: Transition) -> None:
        self._hand_over(attrs, new_run)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW, attrs, bufferable=False)
        self.close_run(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, ev, continued=True)
        self.current_run = None

    def complete_workflow(
        self, result: Payloads | None, wt_completed_event_id: int, new_run: Transition | None = None
    ) -> None:
        attrs = WorkflowExecutionCompletedEventAttributes(
            workflow_task_completed_event_id=wt_completed_event_id
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._hand_over(attrs, new_run)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, attrs, bufferable=False)
        self._close_continued(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED, ev, new_run)

    def fail_workflow(
        self,
        failure: Failure,
        wt_completed_event_id: int,
        retry_state: int,
        new_run: Transition | None = None,
    ) -> None:
        attrs = WorkflowExecutionFailedEventAttributes(
            failure=failure, retry_state=retry_state, workflow_task_completed_event_id=wt_completed_event_id
        )
        self._hand_over(attrs, new_run)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, attrs, bufferable=False)
        self._close_continued(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED, ev, new_run)

    def time_out_workflow(self, retry_state: int, new_run: Transition | None = None) -> None:
        attrs = WorkflowExecutionTimedOutEventAttributes(retry_state=retry_state)
        self._hand_over(attrs, new_run)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, attrs, bufferable=False)
        self._close_continued(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, ev, new_run)

    def _close_continued(self, status: int, ev: HistoryEvent, new_run: Transition | None) -> None:
        self.close_run(status, ev, continued=new_run is not None)
        if new_run is not None:
            self.current_run = None

    def cancel_workflow(self, details: Payloads | None, wt_completed_event_id: int) -> None:
        attrs = WorkflowExecutionCanceledEventAttributes(
            workflow_task_completed_event_id=wt_completed_event_id
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, attrs, bufferable=False)
        self.close_run(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED, ev)

    def terminate_workflow(self, reason: str, details: Payloads | None, identity: str) -> None:
        self.force_close_workflow_task(identity)
        attrs = WorkflowExecutionTerminatedEventAttributes(reason=reason, identity=identity)
        if details is not None:
            attrs.details.CopyFrom(details)
        ev = self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED, attrs, bufferable=False)
        self.close_run(WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED, ev)

    # ---- signals and cancellation ------------------------------------------------------------------------
    # ---- pause ------------------------------------------------------------------------------------------
    def pause_workflow(self, identity: str, reason: str, request_id: str) -> None:
        """PauseWorkflowExecution, as the reference: a workflow task scheduled but not started is failed
        (cause WORKFLOW_PAUSE_REQUESTED_BEFORE_TASK_STARTED), then the paused event (buffered behind a
        started task, whose completion is still accepted). Activity attempts not started stay unstarted."""
        ms = self.ms
        wt = ms.workflow_task
        if wt is not None and not wt.started and not wt.speculative:
            if not wt.transient:
                self.add_event(
                    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
                    WorkflowTaskFailedEventAttributes(
                        scheduled_event_id=wt.scheduled_event_id,
                        cause=WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_PAUSE_REQUESTED_BEFORE_TASK_STARTED,
                        identity="history-service",
                    ),
                    bufferable=False,
                )
            ms.workflow_task = None
        ev = self.add_event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_PAUSED,
            WorkflowExecutionPausedEventAttributes(identity=identity, reason=reason, request_id=request_id),
        )
        ev.worker_may_ignore = True  # SDKs that predate pause skip both events when they replay
        ms.info.pause = WorkflowPause(self.now, identity, reason, request_id)
        self.dirty = True
        self.transfer(TransferKind.VISIBILITY)  # lists show it PAUSED
        pause_info.refresh(ms, self)

    def unpause_workflow(self, identity: str, reason: str, request_id: str) -> None:
        """UnpauseWorkflowExecution: the unpaused event, activity attempts waiting for a worker handed to
        matching again, and a workflow task (always, as the reference)."""
        ms = self.ms
        ev = self.add_event(
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UNPAUSED,
            WorkflowExecutionUnpausedEventAttributes(identity=identity, reason=reason, request_id=request_id),
        )
        ev.worker_may_ignore = True  # SDKs that predate pause skip both events when they replay
        ms.info.pause = None
        self.dirty = True
        self.transfer(TransferKind.VISIBILITY)
        pause_info.refresh(ms, self)
        for ai in ms.activities.values():
            if not ai.started and not ai.waiting_retry and not ai.paused:
                self.dispatch_activity(ai)
        self.schedule_workflow_task()

    def signal(self, name: str, payloads: Payloads | None, identity: str, header=None, links=()) -> None:
        """`links`: the sender's (a Nexus handler's link to its caller), kept on the event as on the
        reference."""
        attrs = WorkflowExecutionSignaledEventAttributes(signal_name=name, identity=identity)
        if payloads is not None:
            attrs.input.CopyFrom(payloads)
        if header is not None:
            attrs.header.CopyFrom(header)
        self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, attrs).links.extend(links)
        self.ms.info.signal_count += 1
        self.schedule_workflow_task()

    def request_cancel(
        self, cause: str, identity: str, external: tuple[int, WorkflowExecution] | None = None
    ) -> None:
        self.ms.info.cancel_requested = True
        attrs = WorkflowExecutionCancelRequestedEventAttributes(cause=cause, identity=identity)
        if external is not None:
            attrs.external_initiated_event_id = external[0]
            attrs.external_workflow_execution.CopyFrom(external[1])
        self.add_event(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED, attrs)
        self.schedule_workflow_task()

    # ---- timers ----------------------------------------------------------------------------------------
    def start_timer(self, timer_id: str, duration_ms: int, wt_completed_event_id: int) -> None:
        ev = self.add_event(
            EventType.EVENT_TYPE_TIMER_STARTED,
            TimerStartedEventAttributes(
                timer_id=timer_id,
                start_to_fire_timeout=to_duration(duration_ms),
                workflow_task_completed_event_id=wt_completed_event_id,
            ),
            bufferable=False,
        )
        expiry = self.now + duration_ms
        self.ms.timers[timer_id] = TimerInfo(timer_id, ev.event_id, expiry)
        self.timer(TimerKind.USER_TIMER, expiry, timer_id=timer_id, started_event_id=ev.event_id)

    def cancel_timer(self, timer_id: str, wt_completed_event_id: int, identity: str) -> None:
        ti = self.ms.timers.pop(timer_id)
        self.add_event(
            EventType.EVENT_TYPE_TIMER_CANCELED,
            TimerCanceledEventAttributes(
                timer_id=timer_id,
                started_event_id=ti.started_event_id,
                workflow_task_completed_event_id=wt_completed_event_id,
                identity=identity,
            ),
            bufferable=False,
        )

    def fire_timer(self, timer_id: str) -> None:
        ti = self.ms.timers.pop(timer_id)
        self.add_event(
            EventType.EVENT_TYPE_TIMER_FIRED,
            TimerFiredEventAttributes(timer_id=timer_id, started_event_id=ti.started_event_id),
        )
        self.schedule_workflow_task()

    # ---- activities ------------------------------------------------------------------------------------
    def schedule_activity(
        self, attrs: ActivityTaskScheduledEventAttributes, eager: bool = False
    ) -> ActivityInfo:
        """Schedule an activity: handed to matching, or kept for the completing worker when `eager`."""
        ev = self.add_event(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, attrs, bufferable=False)
        ai = ActivityInfo(
            scheduled_event_id=ev.event_id,
            activity_id=attrs.activity_id,
            activity_type=attrs.activity_type.name,
            task_queue=attrs.task_queue.name,
            first_scheduled_time_ms=self.now,
            scheduled_time_ms=self.now,
            schedule_to_start_timeout_ms=duration_ms(attrs.schedule_to_start_timeout),
            schedule_to_close_timeout_ms=duration_ms(attrs.schedule_to_close_timeout),
            start_to_close_timeout_ms=duration_ms(attrs.start_to_close_timeout),
            heartbeat_timeout_ms=duration_ms(attrs.heartbeat_timeout),
            retry_policy=attrs.retry_policy,
            scheduled_node_id=self.events[0].event_id,
            priority=attrs.priority if attrs.HasField("priority") else None,
        )
        self.ms.activities[ai.scheduled_event_id] = ai
        if eager:
            self.eager_activities.append((ai, attrs))
        else:
            self.dispatch_activity(ai)
        if ai.schedule_to_close_timeout_ms > 0:
            self.arm_activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, self.now + ai.schedule_to_close_timeout_ms
            )
        return ai

    def dispatch_activity(self, ai: ActivityInfo) -> None:
        """Hand the current attempt to matching and arm its schedule-to-start timeout."""
        ai.scheduled_time_ms = self.now
        ai.waiting_retry = False
        self.transfer(
            TransferKind.ACTIVITY_TASK, scheduled_event_id=ai.scheduled_event_id, attempt=ai.attempt
        )
        if ai.schedule_to_start_timeout_ms > 0:
            self.arm_activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, self.now + ai.schedule_to_start_timeout_ms
            )

    def arm_activity_timeout(self, ai: ActivityInfo, timeout_type: int, fire_ms: int) -> None:
        self.timer(
            TimerKind.ACTIVITY_TIMEOUT,
            fire_ms,
            scheduled_event_id=ai.scheduled_event_id,
            attempt=ai.attempt,
            timeout_type=timeout_type,
        )

    def start_eager_activities(
        self, identity: str, build_id: str = ""
    ) -> list[tuple[ActivityInfo, ActivityTaskScheduledEventAttributes]]:
        """Start, for the completing worker (of `build_id`), the eager activities still pending once all
        commands ran (the workflow may have closed, or cancelled one in the same task), as the reference
        does."""
        started = [
            (ai, attrs)
            for ai, attrs in self.eager_activities
            if self.ms.running and ai.scheduled_event_id in self.ms.activities
        ]
        for ai, _ in started:
            self.start_activity(ai, str(uuid.uuid4()), identity, build_id)
        return started

    def start_activity(self, ai: ActivityInfo, request_id: str, identity: str, build_id: str = "") -> None:
        ai.started_time_ms = self.now
        ai.last_started_time_ms = self.now
        ai.worker_build_id = build_id
        ai.request_id = request_id
        ai.identity = identity
        ai.last_heartbeat_time_ms = 0
        if ai.start_to_close_timeout_ms > 0:
            self.arm_activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, self.now + ai.start_to_close_timeout_ms
            )
        if ai.heartbeat_timeout_ms > 0:
            self.arm_activity_timeout(
                ai, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, self.now + ai.heartbeat_timeout_ms
            )

    def _add_activity_started_event(self, ai: ActivityInfo) -> HistoryEvent:
        attrs = ActivityTaskStartedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            identity=ai.identity,
            request_id=ai.request_id,
            attempt=ai.attempt,
        )
        if ai.last_failure is not None and ai.attempt > 1:
            attrs.last_failure.CopyFrom(ai.last_failure)
        if ai.worker_build_id:  # the poller's build id, as the reference records it
            attrs.worker_version.build_id = ai.worker_build_id
        event = self.add_event(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, attrs)
        # Written when the attempt closes, it carries the time the attempt started (as on the reference).
        event.event_time.CopyFrom(to_timestamp(ai.started_time_ms))
        return event

    def _close_activity(self, ai: ActivityInfo, event_type: int, attrs) -> None:
        """Write the attempt's started event (if it started) and the activity's close event."""
        started = self._add_activity_started_event(ai) if ai.started else None
        attrs.scheduled_event_id = ai.scheduled_event_id
        if hasattr(attrs, "started_event_id"):
            attrs.started_event_id = started.event_id if started is not None else 0
        if self.standalone:
            # The activity's outcome is the run's: it closes with it, and describe keeps showing the activity.
            if hasattr(attrs, "failure"):
                ai.last_failure = (
                    attrs.failure
                )  # describe's last failure is the final one, as on the reference
            self.add_event(event_type, attrs)
            self._close_standalone(event_type, attrs)
            return
        del self.ms.activities[ai.scheduled_event_id]
        self.add_event(event_type, attrs)
        self.schedule_workflow_task()

    def _close_standalone(self, event_type: int, attrs) -> None:
        if event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            self.complete_workflow(attrs.result if attrs.HasField("result") else None, 0)
        elif event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            self.fail_workflow(attrs.failure, 0, attrs.retry_state)
        elif event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            self.time_out_workflow(attrs.retry_state)
        else:
            self.cancel_workflow(attrs.details if attrs.HasField("details") else None, 0)

    def complete_activity(self, ai: ActivityInfo, result: Payloads | None, identity: str) -> None:
        attrs = ActivityTaskCompletedEventAttributes(identity=identity)
        if result is not None:
            attrs.result.CopyFrom(result)
        self._close_activity(ai, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, attrs)

    def cancel_activity_confirmed(self, ai: ActivityInfo, details: Payloads | None, identity: str) -> None:
        attrs = ActivityTaskCanceledEventAttributes(
            latest_cancel_requested_event_id=ai.cancel_requested_event_id, identity=identity
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._close_activity(ai, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED, attrs)

    def fail_activity(self, ai: ActivityInfo, failure: Failure, identity: str) -> None:
        """An attempt failed: retry it per its policy, or record the activity's failure."""
        retry_state, delay_ms = self._retry_decision(ai, failure)
        ai.last_worker_identity = identity
        if retry_state == RetryState.RETRY_STATE_IN_PROGRESS:
            self._retry_activity(ai, failure, delay_ms)
            return
        attrs = ActivityTaskFailedEventAttributes(failure=failure, identity=identity, retry_state=retry_state)
        self._close_activity(ai, EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED, attrs)

    def time_out_activity(self, ai: ActivityInfo, timeout_type: int) -> None:
        failure = Failure(
            message=f"activity {_TIMEOUT_NAMES[timeout_type]} timeout",
            source="Server",
            timeout_failure_info=TimeoutFailureInfo(timeout_type=timeout_type),
        )
        if timeout_type in (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT):
            retry_state, delay_ms = self._retry_decision(ai, failure)
        else:
            # Schedule-to-start and schedule-to-close timeouts end the activity (the reference says TIMEOUT).
            retry_state, delay_ms = RetryState.RETRY_STATE_TIMEOUT, 0
        if retry_state == RetryState.RETRY_STATE_IN_PROGRESS:
            self._retry_activity(ai, failure, delay_ms)
            return
        if ai.last_failure is not None and timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
            failure.cause.CopyFrom(ai.last_failure)
        if ai.heartbeat_details is not None:
            # Only the final timeout carries them (the worker's next attempt gets them another way).
            failure.timeout_failure_info.last_heartbeat_details.CopyFrom(ai.heartbeat_details)
        attrs = ActivityTaskTimedOutEventAttributes(failure=failure, retry_state=retry_state)
        self._close_activity(ai, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT, attrs)

    def _retry_decision(self, ai: ActivityInfo, failure: Failure) -> tuple[int, int]:
        """(RETRY_STATE_IN_PROGRESS, backoff ms) if another attempt is due, else (why not, 0)."""
        policy = default_retry_policy(ai.retry_policy)
        if ai.cancel_requested:
            return RetryState.RETRY_STATE_CANCEL_REQUESTED, 0
        app = failure.application_failure_info if failure.HasField("application_failure_info") else None
        if app is not None and (app.non_retryable or app.type in policy.non_retryable_error_types):
            return RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE, 0
        if ai.paused:
            # A paused activity's failed attempt is not the last one: the next waits for the unpause.
            return RetryState.RETRY_STATE_IN_PROGRESS, 0
        if policy.maximum_attempts > 0 and ai.attempt >= policy.maximum_attempts:
            return RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED, 0
        if app is not None and app.HasField("next_retry_delay") and duration_ms(app.next_retry_delay) > 0:
            delay = duration_ms(app.next_retry_delay)
        else:
            delay = backoff_ms(policy, ai.attempt)
        if ai.schedule_to_close_timeout_ms > 0:
            if self.now + delay >= ai.first_scheduled_time_ms + ai.schedule_to_close_timeout_ms:
                return RetryState.RETRY_STATE_TIMEOUT, 0
        run_deadline = self.ms.info.run_expiration_ms
        if run_deadline and self.now + delay >= run_deadline:
            return RetryState.RETRY_STATE_TIMEOUT, 0
        return RetryState.RETRY_STATE_IN_PROGRESS, delay

    def _retry_activity(self, ai: ActivityInfo, failure: Failure, delay_ms: int) -> None:
        ai.last_failure = failure
        ai.attempt += 1
        ai.started_time_ms = 0
        ai.request_id = ""
        ai.waiting_retry = True
        if ai.paused:
            return  # no retry timer: unpausing schedules the next attempt
        self.schedule_activity_attempt(ai, self.now + delay_ms, failure)

    def schedule_activity_attempt(
        self, ai: ActivityInfo, when_ms: int, failure: Failure | None = None
    ) -> None:
        """The activity's current attempt (not running) is dispatched at `when_ms` by a retry timer.

        Also how the operator APIs (unpause, reset, new options) reschedule it: as on the reference, that
        forgets the last failure, and a reset's flags apply to this attempt."""
        ai.last_failure = failure
        ai.waiting_retry = True
        ai.next_attempt_time_ms = when_ms
        ai.scheduled_time_ms = when_ms
        if ai.reset_heartbeats:
            ai.heartbeat_details = None
            ai.last_heartbeat_time_ms = 0
        ai.reset = False
        ai.reset_heartbeats = False
        self.timer(
            TimerKind.ACTIVITY_RETRY, when_ms, scheduled_event_id=ai.scheduled_event_id, attempt=ai.attempt
        )

    def rearm_activity_timeouts(self, ai: ActivityInfo) -> None:
        """Timeout timers for the activity's current deadlines (after new timeouts, a new attempt number
        on a running attempt, or an unpause: timers that fired while it was paused were dropped)."""
        if ai.paused:
            return
        if ai.schedule_to_close_timeout_ms > 0:
            self.arm_activity_timeout(
                ai,
                TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE,
                ai.first_scheduled_time_ms + ai.schedule_to_close_timeout_ms,
            )
        if ai.started:
            if ai.start_to_close_timeout_ms > 0:
                self.arm_activity_timeout(
                    ai,
                    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
                    ai.started_time_ms + ai.start_to_close_timeout_ms,
                )
            if ai.heartbeat_timeout_ms > 0:
                last = max(ai.last_heartbeat_time_ms, ai.started_time_ms)
                self.arm_activity_timeout(
                    ai, TimeoutType.TIMEOUT_TYPE_HEARTBEAT, last + ai.heartbeat_timeout_ms
                )
        elif not ai.waiting_retry and ai.schedule_to_start_timeout_ms > 0:
            self.arm_activity_timeout(
                ai,
                TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
                ai.scheduled_time_ms + ai.schedule_to_start_timeout_ms,
            )

    def begin_commands(self) -> None:
        """From here to end_commands, events a command causes beyond its own wait for the task's last
        command, as the reference's buffered events do (its history builder flushes them last)."""
        self._after_commands = []

    def end_commands(self) -> None:
        """Write the deferred events after the commands' events; a run the commands closed gets none (the
        reference drops its buffer when the run finishes): its unstarted activities just end."""
        deferred, self._after_commands = self._after_commands or [], None
        for write in deferred:
            write()

    def request_cancel_activity(
        self,
        ai: ActivityInfo,
        wt_completed_event_id: int,
        identity: str,
        unstarted_details: Payloads = None,  # type: ignore[assignment]
    ) -> None:
        ev = self.add_event(
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
            ActivityTaskCancelRequestedEventAttributes(
                scheduled_event_id=ai.scheduled_event_id,
                workflow_task_completed_event_id=wt_completed_event_id,
            ),
            bufferable=False,
        )
        ai.cancel_requested = True
        ai.cancel_requested_event_id = ev.event_id
        if not ai.started:
            # Nothing runs it yet: the cancellation is immediate, and says why, as on the reference.
            if self._after_commands is None:
                self.cancel_activity_confirmed(ai, unstarted_details or _ACTIVITY_NOT_STARTED, identity)
            else:
                self._after_commands.append(lambda: self._cancel_unstarted_after_commands(ai, identity))

    def _cancel_unstarted_after_commands(self, ai: ActivityInfo, identity: str) -> None:
        if self.ms.activities.get(ai.scheduled_event_id) is not ai:
            return  # already gone
        if self.ms.running:
            self.cancel_activity_confirmed(ai, _ACTIVITY_NOT_STARTED, identity)
        else:
            del self.ms.activities[ai.scheduled_event_id]


_ACTIVITY_NOT_STARTED = Payloads(
    payloads=[Payload(metadata={"encoding": b"json/plain"}, data=b'"ACTIVITY_ID_NOT_STARTED"')]
)


def workflow_execution(ms: MutableState) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
