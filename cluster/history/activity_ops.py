"""The activity operator APIs: PauseActivity, UnpauseActivity, ResetActivity and UpdateActivityOptions.

They change a pending activity's mutable state only (the reference writes no history event for them):
a paused activity gets no new attempt and no timeout until it is unpaused, and its running attempt hears
of the pause (or of a reset) in its next heartbeat response, on which the worker cancels it. Rescheduling
an attempt forgets its last failure, as on the reference. Errors carry the reference's messages.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import Priority, RetryPolicy
from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PauseActivityRequest,
    ResetActivityRequest,
    UnpauseActivityRequest,
    UpdateActivityOptionsRequest,
)

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument, NotFound
from hourglass.cluster.history import pause_info
from hourglass.cluster.history.mutable_state import ActivityInfo, ActivityPause, MutableState
from hourglass.cluster.history.timeutil import duration_ms, to_duration
from hourglass.cluster.history.transition import Transition

ACTIVITY_NOT_FOUND = (
    "Can't find pending activity with such ID. Invalid activityID or activity already completed"
)
WORKFLOW_COMPLETED = "workflow execution already completed"
ACTIVITY_NOT_SET = "Either Activity.Id or Activity.Type should be set on request."

# Reads an activity's scheduled event (its original options).
ReadScheduled = Callable[[ActivityInfo], Awaitable[ActivityTaskScheduledEventAttributes]]


def targets(ms: MutableState, request) -> list[ActivityInfo]:
    """The pending activities a request names: by id, by type, or all (match_all / unpause_all)."""
    which = request.WhichOneof("activity")
    if which == "id":
        ai = ms.activity_by_id(request.id)
        found = [ai] if ai is not None else []
    elif which == "type":
        found = [ai for ai in ms.activities.values() if ai.activity_type == request.type]
    else:
        found = list(ms.activities.values())
    if not found:
        raise NotFound(ACTIVITY_NOT_FOUND)
    return found


def _require_running(ms: MutableState) -> None:
    if not ms.running:
        raise NotFound(WORKFLOW_COMPLETED)


def _jittered(now_ms: int, jitter_ms: int) -> int:
    """When a rescheduled attempt runs: now, or a uniformly random moment within the jitter."""
    return now_ms + (random.randrange(jitter_ms) if jitter_ms > 0 else 0)


# ---- pause / unpause / reset ---------------------------------------------------------------------------
def pause(ms: MutableState, tr: Transition, request: PauseActivityRequest) -> None:
    _require_running(ms)
    for ai in targets(ms, request):
        if ai.pause is not None:
            if ai.pause.request_id == request.request_id:
                continue  # the same request, retried
            raise FailedPrecondition("activity is already paused")
        ai.pause = ActivityPause(tr.now, request.identity, request.reason, request.request_id)
    tr.dirty = True
    pause_info.refresh(ms, tr)  # TemporalPauseInfo names the paused activity types


def unpause(ms: MutableState, tr: Transition, request: UnpauseActivityRequest) -> None:
    _require_running(ms)
    for ai in targets(ms, request):
        if ai.pause is None:
            continue
        ai.pause = None
        if request.reset_attempts:
            ai.attempt = 1
        if request.reset_heartbeat:
            ai.heartbeat_details = None
            ai.last_heartbeat_time_ms = 0
        if not ai.started:
            tr.schedule_activity_attempt(ai, _jittered(tr.now, duration_ms(request.jitter)))
        tr.rearm_activity_timeouts(ai)
    tr.dirty = True
    pause_info.refresh(ms, tr)  # TemporalPauseInfo names the paused activity types


async def reset(
    ms: MutableState, tr: Transition, request: ResetActivityRequest, read_scheduled: ReadScheduled
) -> None:
    """Back to attempt 1: a running attempt is told by its heartbeats (and may finish); one that is not
    running is scheduled again at once (within the jitter), unless it stays paused."""
    _require_running(ms)
    for ai in targets(ms, request):
        original = await read_scheduled(ai) if request.restore_original_options else None
        ai.attempt = 1
        ai.reset = True
        if request.reset_heartbeat:
            ai.reset_heartbeats = True
        if original is not None:
            _apply(ai, _original_options(original))
        if ai.pause is not None and not request.keep_paused:
            ai.pause = None
        if not ai.started and ai.pause is None:
            tr.schedule_activity_attempt(ai, _jittered(tr.now, duration_ms(request.jitter)))
        tr.rearm_activity_timeouts(ai)  # timers of a running attempt go by its (new) attempt number
    tr.dirty = True
    pause_info.refresh(ms, tr)  # TemporalPauseInfo names the paused activity types


# ---- options -------------------------------------------------------------------------------------------
def current_options(ai: ActivityInfo) -> ActivityOptions:
    """The activity's options as the reference shows and merges them."""
    policy = ai.retry_policy or RetryPolicy()
    opts = ActivityOptions(
        task_queue=TaskQueue(name=ai.task_queue),
        schedule_to_close_timeout=to_duration(ai.schedule_to_close_timeout_ms),
        schedule_to_start_timeout=to_duration(ai.schedule_to_start_timeout_ms),
        start_to_close_timeout=to_duration(ai.start_to_close_timeout_ms),
        heartbeat_timeout=to_duration(ai.heartbeat_timeout_ms),
        retry_policy=RetryPolicy(
            backoff_coefficient=policy.backoff_coefficient, maximum_attempts=policy.maximum_attempts
        ),
        priority=ai.priority or Priority(),
    )
    for name in ("initial_interval", "maximum_interval"):
        if policy.HasField(name):
            getattr(opts.retry_policy, name).CopyFrom(getattr(policy, name))
    return opts


def _original_options(a: ActivityTaskScheduledEventAttributes) -> ActivityOptions:
    opts = ActivityOptions(
        task_queue=TaskQueue(name=a.task_queue.name),
        schedule_to_close_timeout=a.schedule_to_close_timeout,
        schedule_to_start_timeout=a.schedule_to_start_timeout,
        start_to_close_timeout=a.start_to_close_timeout,
        heartbeat_timeout=a.heartbeat_timeout,
        priority=a.priority,
    )
    if a.HasField("retry_policy"):
        opts.retry_policy.CopyFrom(a.retry_policy)
    return opts


def _apply(ai: ActivityInfo, opts: ActivityOptions) -> None:
    ai.task_queue = opts.task_queue.name
    ai.schedule_to_close_timeout_ms = duration_ms(opts.schedule_to_close_timeout)
    ai.schedule_to_start_timeout_ms = duration_ms(opts.schedule_to_start_timeout)
    ai.start_to_close_timeout_ms = duration_ms(opts.start_to_close_timeout)
    ai.heartbeat_timeout_ms = duration_ms(opts.heartbeat_timeout)
    ai.priority = opts.priority if opts.HasField("priority") else None
    # The four retry settings are replaced; the non-retryable error types are the activity's own.
    policy = RetryPolicy()
    if ai.retry_policy is not None:
        policy.non_retryable_error_types.extend(ai.retry_policy.non_retryable_error_types)
    new = opts.retry_policy
    policy.backoff_coefficient = new.backoff_coefficient
    policy.maximum_attempts = new.maximum_attempts
    for name in ("initial_interval", "maximum_interval"):
        if new.HasField(name):
            getattr(policy, name).CopyFrom(getattr(new, name))
    ai.retry_policy = policy


def _next_attempt_time(ai: ActivityInfo) -> int:
    """When a not-running attempt runs after its options changed (the reference's GetNextScheduledTime):
    a retry is due its backoff after the last failed attempt, with the new retry settings."""
    when = ai.scheduled_time_ms
    if ai.attempt > 1:
        policy = ai.retry_policy or RetryPolicy()
        interval = int(duration_ms(policy.initial_interval) * policy.backoff_coefficient ** (ai.attempt - 1))
        maximum = duration_ms(policy.maximum_interval)
        if maximum and (interval <= 0 or interval > maximum):
            interval = maximum
        if interval > 0:
            when = ai.last_attempt_complete_time_ms + interval
    return when


def _update_activity(tr: Transition, ai: ActivityInfo, opts: ActivityOptions) -> None:
    """Give the activity new options: a waiting attempt is rescheduled (on its new queue), and the
    timeouts follow the new values."""
    _apply(ai, opts)
    if not ai.started:
        tr.schedule_activity_attempt(ai, _next_attempt_time(ai))
    tr.rearm_activity_timeouts(ai)
    tr.dirty = True


def camel_path(path: str) -> str:
    """A field mask path in the reference's camelCase form (`retry_policy.maximum_attempts` ->
    `retryPolicy.maximumAttempts`): either spelling is accepted."""
    parts = []
    for part in path.split("."):
        words = part.split("_")
        head = words[0][:1].lower() + words[0][1:]
        parts.append(head + "".join(w[:1].upper() + w[1:].lower() for w in words[1:]))
    return ".".join(parts)


def camel_paths(mask: FieldMask) -> set[str]:
    return {camel_path(path) for path in mask.paths}


def _merge(into: ActivityOptions, source: ActivityOptions, fields: set[str]) -> None:
    """Copy the masked fields; unknown paths are ignored, as on the reference."""
    if "taskQueue.name" in fields:
        if not source.HasField("task_queue"):
            raise InvalidArgument("TaskQueue is not provided")
        into.task_queue.name = source.task_queue.name
    for path, name in (
        ("scheduleToCloseTimeout", "schedule_to_close_timeout"),
        ("scheduleToStartTimeout", "schedule_to_start_timeout"),
        ("startToCloseTimeout", "start_to_close_timeout"),
        ("heartbeatTimeout", "heartbeat_timeout"),
    ):
        if path in fields:
            getattr(into, name).CopyFrom(getattr(source, name))
    if "priority" in fields:
        into.priority.CopyFrom(source.priority)
    for path, name in (
        ("priority.priorityKey", "priority_key"),
        ("priority.fairnessKey", "fairness_key"),
        ("priority.fairnessWeight", "fairness_weight"),
    ):
        if path in fields:
            if not source.HasField("priority"):
                raise InvalidArgument("Priority is not provided")
            setattr(into.priority, name, getattr(source.priority, name))
    if "retryPolicy" in fields:
        if not source.HasField("retry_policy"):
            raise InvalidArgument("RetryPolicy is not provided")
        into.retry_policy.CopyFrom(source.retry_policy)
    for path, name in (
        ("retryPolicy.initialInterval", "initial_interval"),
        ("retryPolicy.maximumInterval", "maximum_interval"),
    ):
        if path in fields:
            if not source.HasField("retry_policy"):
                raise InvalidArgument("RetryPolicy is not provided")
            getattr(into.retry_policy, name).CopyFrom(getattr(source.retry_policy, name))
    for path, name in (
        ("retryPolicy.backoffCoefficient", "backoff_coefficient"),
        ("retryPolicy.maximumAttempts", "maximum_attempts"),
    ):
        if path in fields:
            if not source.HasField("retry_policy"):
                raise InvalidArgument("RetryPolicy is not provided")
            setattr(into.retry_policy, name, getattr(source.retry_policy, name))


def _negative(d) -> bool:
    return d.seconds < 0 or d.nanos < 0


def validate_retry_policy(p: RetryPolicy) -> None:
    """The reference's retry policy validation (retrypolicy.Validate), with its messages."""
    if p.maximum_attempts == 1:
        return  # retries are off: the rest does not matter
    if _negative(p.initial_interval):
        raise InvalidArgument("invalid InitialInterval set on retry policy: negative duration")
    if p.backoff_coefficient < 1:
        raise InvalidArgument("BackoffCoefficient cannot be less than 1 on retry policy.")
    if _negative(p.maximum_interval):
        raise InvalidArgument("invalid MaximumInterval set on retry policy: negative duration")
    maximum, initial = duration_ms(p.maximum_interval), duration_ms(p.initial_interval)
    if maximum > 0 and maximum < initial:
        raise InvalidArgument("MaximumInterval cannot be less than InitialInterval on retry policy.")
    if p.maximum_attempts < 0:
        raise InvalidArgument("MaximumAttempts cannot be negative on retry policy.")


def _normalize(opts: ActivityOptions, ai: ActivityInfo) -> None:
    """Validate the merged options and fill the timeouts that follow from others, as the reference does
    for a scheduled activity (the workflow's run timeout is not applied here, as there)."""
    if not opts.task_queue.name:
        raise InvalidArgument("missing task queue name")
    if opts.task_queue.name.startswith("/_sys/"):
        raise InvalidArgument("task queue name cannot start with reserved prefix /_sys/")
    opts.task_queue.kind = opts.task_queue.kind or TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    for name, field in (
        ("ScheduleToCloseTimeout", "schedule_to_close_timeout"),
        ("ScheduleToStartTimeout", "schedule_to_start_timeout"),
        ("StartToCloseTimeout", "start_to_close_timeout"),
        ("HeartbeatTimeout", "heartbeat_timeout"),
    ):
        if _negative(getattr(opts, field)):
            raise InvalidArgument(f"invalid {name}: negative duration")
    s2c = duration_ms(opts.schedule_to_close_timeout)
    s2s = duration_ms(opts.schedule_to_start_timeout)
    stc = duration_ms(opts.start_to_close_timeout)
    if s2c > 0:
        s2s = min(s2s, s2c) if s2s > 0 else s2c
        stc = min(stc, s2c) if stc > 0 else s2c
    elif stc <= 0:
        raise InvalidArgument(
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={ai.activity_id} ActivityType={ai.activity_type}"
        )
    hb = min(duration_ms(opts.heartbeat_timeout), stc)
    opts.schedule_to_start_timeout.CopyFrom(to_duration(s2s))
    opts.start_to_close_timeout.CopyFrom(to_duration(stc))
    opts.heartbeat_timeout.CopyFrom(to_duration(hb))


def check_update_request(request: UpdateActivityOptionsRequest) -> None:
    """What the reference refuses before it looks at the workflow."""
    if request.restore_original and request.HasField("update_mask") and camel_paths(request.update_mask):
        raise InvalidArgument("Both UpdateMask and RestoreOriginal are provided")


async def update_options(
    ms: MutableState, tr: Transition, request: UpdateActivityOptionsRequest, read_scheduled: ReadScheduled
) -> ActivityOptions:
    """Merge the masked options into each named activity (or restore those it was scheduled with);
    answers the options the last one now has."""
    result = ActivityOptions()
    if request.restore_original:
        for ai in targets(ms, request):
            result = _original_options(await read_scheduled(ai))
            _update_activity(tr, ai, result)
        return result
    _require_running(ms)
    if not request.HasField("activity_options"):
        raise InvalidArgument("ActivityOptions are not provided")
    found = targets(ms, request)
    if not request.HasField("update_mask"):
        raise InvalidArgument("UpdateMask is not provided")
    fields = camel_paths(request.update_mask)
    for ai in found:
        result = current_options(ai)
        _merge(result, request.activity_options, fields)
        if any(f.startswith("retryPolicy.") for f in fields):
            validate_retry_policy(result.retry_policy)
        _normalize(result, ai)
        _update_activity(tr, ai, result)
    return result
