"""What a schedule does, as pure functions of its state: which nominal times become starts, how overlap
policies treat them, pause / remaining actions, the catchup window, patches and future action times.

No I/O here (the engine starts workflows and persists); the rules follow the reference's scheduler
workflow so the same spec and policies take the same actions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import ScheduleOverlapPolicy, WorkflowExecutionStatus
from temporalio.api.schedule.v1 import ScheduleActionResult, SchedulePatch

from hourglass.cluster.history.timeutil import to_timestamp
from hourglass.cluster.scheduler.spec import CompiledSpec
from hourglass.cluster.scheduler.state import Backfill, BufferedStart, ScheduleState

DEFAULT_CATCHUP_WINDOW_MS = 365 * 24 * 3600 * 1000
MIN_CATCHUP_WINDOW_MS = 10_000
RECENT_ACTIONS = 10
FUTURE_ACTIONS = 10
MAX_BUFFER = 1000
BACKFILLS_PER_PASS = 10

SKIP = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP
BUFFER_ONE = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE
BUFFER_ALL = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL
CANCEL_OTHER = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER
TERMINATE_OTHER = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER
ALLOW_ALL = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL


def ensure_defaults(state: ScheduleState) -> None:
    """Resolved policies show in describe output, as the reference sets them eagerly."""
    policies = state.schedule.policies
    policies.overlap_policy = resolve_overlap(state, policies.overlap_policy)
    policies.catchup_window.CopyFrom(Duration(seconds=catchup_window_ms(state) // 1000))
    state.schedule.state.SetInParent()
    state.schedule.spec.SetInParent()
    state.schedule.action.SetInParent()
    start = state.schedule.action.start_workflow
    if (
        state.schedule.action.HasField("start_workflow")
        and start.task_queue.name
        and not start.task_queue.kind
    ):
        start.task_queue.kind = 1  # TASK_QUEUE_KIND_NORMAL, as the reference stores it


def resolve_overlap(state: ScheduleState, policy: int) -> int:
    if policy == 0:
        policy = state.schedule.policies.overlap_policy
    return policy or SKIP


def catchup_window_ms(state: ScheduleState) -> int:
    policies = state.schedule.policies
    if not policies.HasField("catchup_window"):
        return DEFAULT_CATCHUP_WINDOW_MS
    return max(policies.catchup_window.ToMilliseconds(), MIN_CATCHUP_WINDOW_MS)


def can_take_scheduled_action(state: ScheduleState, manual: bool, decrement: bool = False) -> bool:
    if manual:
        return True
    s = state.schedule.state
    if s.paused:
        return False
    if not s.limited_actions:
        return True
    if s.remaining_actions > 0:
        if decrement:
            s.remaining_actions -= 1
            state.conflict_token += 1
        return True
    return False


def add_start(state: ScheduleState, nominal_ms: int, actual_ms: int, overlap: int, manual: bool) -> None:
    if len(state.buffered) >= MAX_BUFFER:
        state.info.buffer_dropped += 1
        return
    if manual:
        state.manual_seq += 1
        request_id = (
            f"sched-{state.schedule_id}-{state.info.create_time.ToMilliseconds()}-manual-{state.manual_seq}"
        )
    else:
        request_id = (
            f"sched-{state.schedule_id}-{state.info.create_time.ToMilliseconds()}-{nominal_ms}-{actual_ms}"
        )
    state.buffered.append(BufferedStart(nominal_ms, actual_ms, overlap, manual, request_id))


def process_time_range(
    state: ScheduleState,
    spec: CompiledSpec | None,
    start_ms: int,
    end_ms: int,
    overlap: int,
    manual: bool,
    limit: int | None = None,
) -> tuple[int | None, int]:
    """Buffer the actions with start < actual time <= end. Returns (next action time after the range,
    time of the last action taken, or `start_ms` if none)."""
    if spec is None:
        return None, end_ms
    if not can_take_scheduled_action(state, manual):
        nxt = spec.next_time(end_ms)
        return (None if nxt is None else nxt.actual_ms), end_ms
    window = catchup_window_ms(state)
    update_ms = state.info.update_time.ToMilliseconds() if state.info.HasField("update_time") else 0
    last_action = start_ms
    nxt = spec.next_time(start_ms)
    while nxt is not None and nxt.actual_ms <= end_ms:
        if not manual and update_ms > nxt.actual_ms:
            pass  # before the last update: discarded
        elif not manual and end_ms - nxt.actual_ms > window:
            state.info.missed_catchup_window += 1
        else:
            add_start(state, nxt.nominal_ms, nxt.actual_ms, overlap, manual)
            last_action = nxt.actual_ms
            if limit is not None:
                limit -= 1
                if limit <= 0:
                    break  # `nxt` is the last action taken: the caller resumes after it
        nxt = spec.next_time(nxt.actual_ms)
    return (None if nxt is None else nxt.actual_ms), last_action


def process_backfills(state: ScheduleState, spec: CompiledSpec | None) -> None:
    limit = BACKFILLS_PER_PASS
    while state.backfills and limit > 0 and len(state.buffered) < MAX_BUFFER // 2:
        bf = state.backfills[0]
        before = len(state.buffered)
        nxt, _ = process_time_range(state, spec, bf.start_ms, bf.end_ms, bf.overlap_policy, True, limit)
        limit -= len(state.buffered) - before
        if nxt is None or nxt > bf.end_ms:
            state.backfills.pop(0)
        else:
            bf.start_ms = nxt  # exclusive: the next pass resumes after the last action taken
            break


def has_more_allow_all_backfills(state: ScheduleState) -> bool:
    return bool(state.backfills) and resolve_overlap(state, state.backfills[0].overlap_policy) == ALLOW_ALL


def apply_patch(state: ScheduleState, patch: SchedulePatch, now_ms: int) -> None:
    if patch.HasField("trigger_immediately"):
        trigger = patch.trigger_immediately
        at = trigger.scheduled_time.ToMilliseconds() if trigger.HasField("scheduled_time") else now_ms
        add_start(state, at, at, trigger.overlap_policy, True)
    for bfr in patch.backfill_request:
        if len(state.backfills) >= MAX_BUFFER:
            state.info.buffer_dropped += 1
            continue
        # The start time is inclusive (the reference's InclusiveBackfillStartTime).
        state.backfills.append(
            Backfill(bfr.start_time.ToMilliseconds() - 1, bfr.end_time.ToMilliseconds(), bfr.overlap_policy)
        )
    if patch.pause:
        state.schedule.state.paused = True
        state.schedule.state.notes = patch.pause
        state.conflict_token += 1
    if patch.unpause:
        state.schedule.state.paused = False
        state.schedule.state.notes = patch.unpause
        state.conflict_token += 1


@dataclass
class BufferDecision:
    """What to do with the buffer now (the reference's processBuffer)."""

    overlapping: list[BufferedStart] = field(default_factory=list)  # ALLOW_ALL: start all now
    non_overlapping: BufferedStart | None = None  # at most one other start now
    new_buffer: list[BufferedStart] = field(default_factory=list)
    need_cancel: bool = False
    need_terminate: bool = False
    overlap_skipped: int = 0


def decide(state: ScheduleState, is_running: bool) -> BufferDecision:
    d = BufferDecision()
    for start in state.buffered:
        policy = resolve_overlap(state, start.overlap_policy)
        if policy == ALLOW_ALL:
            d.overlapping.append(start)
            continue
        if not is_running and d.non_overlapping is None:
            d.non_overlapping = start
            continue
        if policy == SKIP:
            d.overlap_skipped += 1
        elif policy == BUFFER_ONE:
            if not d.new_buffer:
                d.new_buffer.append(start)
            else:
                d.overlap_skipped += 1
        elif policy == BUFFER_ALL:
            d.new_buffer.append(start)
        elif policy in (CANCEL_OTHER, TERMINATE_OTHER):
            if is_running:
                if policy == CANCEL_OTHER:
                    d.need_cancel = True
                else:
                    d.need_terminate = True
                d.new_buffer.append(start)
            else:
                d.non_overlapping = start
    if d.need_cancel or d.need_terminate:
        d.overlapping = []
    return d


def record_action(state: ScheduleState, result: ScheduleActionResult, track_running: bool) -> None:
    state.info.action_count += 1
    state.info.recent_actions.append(result)
    while len(state.info.recent_actions) > RECENT_ACTIONS:
        del state.info.recent_actions[0]
    if track_running:
        state.info.running_workflows.append(result.start_workflow_result)


def record_closed(state: ScheduleState, workflow_id: str, status: int, failure_message: str | None) -> None:
    """A started workflow closed: stop tracking it, note its status, pause on failure if asked."""
    for i, wf in enumerate(state.info.running_workflows):
        if wf.workflow_id == workflow_id:
            del state.info.running_workflows[i]
            break
    for action in state.info.recent_actions:
        if action.start_workflow_result.workflow_id == workflow_id:
            action.start_workflow_status = status
    failed = status in (
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
    )
    s = state.schedule.state
    if state.schedule.policies.pause_on_failure and failed and not s.paused:
        s.paused = True
        if status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED:
            s.notes = f"paused due to workflow failure: {workflow_id}: {failure_message or ''}"
        else:
            s.notes = f"paused due to workflow timeout: {workflow_id}"
        state.conflict_token += 1


def future_action_times(state: ScheduleState, spec: CompiledSpec | None, n: int) -> list:
    if spec is None:
        return []
    s = state.schedule.state
    if s.limited_actions:
        n = min(n, s.remaining_actions)
    update_ms = state.info.update_time.ToMilliseconds() if state.info.HasField("update_time") else 0
    out = []
    t = state.last_processed_ms
    while len(out) < n:
        nxt = spec.next_time(t)
        if nxt is None:
            break
        t = nxt.actual_ms
        if update_ms > t:
            continue
        out.append(to_timestamp(t))
    return out


def scheduled_workflow_id(base: str, nominal_ms: int) -> str:
    """`<workflow id>-<nominal time, RFC 3339, seconds, UTC>`, as the reference names scheduled runs."""
    when = dt.datetime.fromtimestamp(nominal_ms // 1000, dt.UTC)
    return f"{base}-{when.strftime('%Y-%m-%dT%H:%M:%SZ')}"
