"""The state machine's rules, checked on mutable state directly (no server, no store)."""

from __future__ import annotations

from temporalio.api.common.v1 import ActivityType, Payload, Payloads, RetryPolicy
from temporalio.api.enums.v1 import EventType, RetryState, TaskQueueKind, TimeoutType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.history.v1 import ActivityTaskScheduledEventAttributes
from temporalio.api.taskqueue.v1 import TaskQueue

from hourglass.cluster.history.mutable_state import ExecutionInfo, MutableState
from hourglass.cluster.history.tasks import TimerKind, TransferKind
from hourglass.cluster.history.timeutil import to_duration
from hourglass.cluster.history.transition import Transition

E = EventType


def new_state() -> MutableState:
    info = ExecutionInfo(
        namespace_id="ns",
        workflow_id="wf",
        run_id="run",
        first_run_id="run",
        workflow_type="Greet",
        task_queue="q",
        create_request_id="req",
        start_time_ms=0,
        execution_time_ms=0,
        workflow_task_timeout_ms=10_000,
    )
    ms = MutableState(info=info)
    ms.next_event_id = 2  # event 1 is WorkflowExecutionStarted
    return ms


def types(tr: Transition) -> list[int]:
    return [ev.event_type for ev in tr.events]


def run_first_workflow_task(ms: MutableState) -> int:
    tr = Transition(ms, 1000)
    tr.schedule_workflow_task()
    Transition(ms, 1001).start_workflow_task("r1", "worker")
    return Transition(ms, 1002).complete_workflow_task("worker")


def schedule_activity(
    ms: MutableState, now: int, policy: RetryPolicy | None = None, schedule_to_close: int = 0
):
    tr = Transition(ms, now)
    attrs = ActivityTaskScheduledEventAttributes(
        activity_id="a1",
        activity_type=ActivityType(name="act"),
        task_queue=TaskQueue(name="q"),
        start_to_close_timeout=to_duration(5000),
        schedule_to_close_timeout=to_duration(schedule_to_close),
    )
    if policy is not None:
        attrs.retry_policy.CopyFrom(policy)
    return tr, tr.schedule_activity(attrs)


def test_events_arriving_during_a_workflow_task_are_buffered_then_flushed_in_order():
    ms = new_state()
    Transition(ms, 1).schedule_workflow_task()
    Transition(ms, 2).start_workflow_task("r", "w")  # events 2, 3
    signal = Transition(ms, 3)
    signal.signal("go", None, "client")
    assert signal.events == []  # buffered: the worker's view of history must not change under it
    assert len(ms.buffered_events) == 1

    tr = Transition(ms, 4)
    completed = tr.complete_workflow_task("w")
    tr.schedule_workflow_task()
    assert completed == 4
    assert types(tr) == [
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    ]
    assert [ev.event_id for ev in tr.events] == [4, 5, 6]
    assert ms.buffered_events == []


def test_buffered_activity_result_references_its_flushed_started_event():
    ms = new_state()
    completed = run_first_workflow_task(ms)
    _, ai = schedule_activity(ms, 2000)
    assert completed == 4 and ai.scheduled_event_id == 5
    Transition(ms, 2001).start_activity(ai, "req", "worker")
    Transition(ms, 2002).schedule_workflow_task()  # e.g. a signal's task, now running
    Transition(ms, 2003).start_workflow_task("r2", "worker")
    done = Transition(ms, 2004)
    done.complete_activity(ai, Payloads(payloads=[Payload(data=b'"ok"')]), "worker")
    assert done.events == []

    tr = Transition(ms, 2005)
    tr.complete_workflow_task("worker")
    tr.schedule_workflow_task()
    started, result = tr.events[1], tr.events[2]
    assert started.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED
    assert result.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    assert result.activity_task_completed_event_attributes.started_event_id == started.event_id


def test_failed_workflow_task_retries_are_transient_until_they_complete():
    ms = new_state()
    Transition(ms, 1).schedule_workflow_task()
    Transition(ms, 2).start_workflow_task("r", "w")
    fail = Transition(ms, 3)
    fail.fail_workflow_task(2, Failure(message="boom"), "w")
    assert types(fail) == [E.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert ms.workflow_task.attempt == 2
    next_id = ms.next_event_id

    # Attempt 2 starts and fails again: nothing is written.
    Transition(ms, 4).start_workflow_task("r2", "w")
    again = Transition(ms, 5)
    again.fail_workflow_task(2, Failure(message="boom"), "w")
    assert again.events == [] and ms.next_event_id == next_id and ms.workflow_task.attempt == 3

    # Attempt 3 completes: its scheduled and started events are written with it.
    Transition(ms, 6).start_workflow_task("r3", "w")
    ok = Transition(ms, 7)
    ok.complete_workflow_task("w")
    assert types(ok) == [
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ]
    assert ok.events[0].workflow_task_scheduled_event_attributes.attempt == 3
    assert [ev.event_id for ev in ok.events] == [next_id, next_id + 1, next_id + 2]


def test_transient_task_becomes_normal_when_new_events_arrive_before_it_starts():
    ms = new_state()
    Transition(ms, 1).schedule_workflow_task()
    Transition(ms, 2).start_workflow_task("r", "w")
    Transition(ms, 3).timeout_workflow_task()
    assert ms.workflow_task.attempt == 2
    Transition(ms, 4).signal("s", None, "c")  # written directly: no task is running
    start = Transition(ms, 5)
    wt = start.start_workflow_task("r2", "w")
    assert wt.attempt == 1
    assert types(start) == [E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, E.EVENT_TYPE_WORKFLOW_TASK_STARTED]


def test_activity_retry_backoff_and_maximum_attempts():
    ms = new_state()
    run_first_workflow_task(ms)
    policy = RetryPolicy(
        initial_interval=to_duration(1000),
        backoff_coefficient=2.0,
        maximum_interval=to_duration(3000),
        maximum_attempts=4,
    )
    _, ai = schedule_activity(ms, 10_000, policy)
    delays = []
    for attempt in range(1, 5):
        Transition(ms, 20_000).start_activity(ai, f"r{attempt}", "w")
        tr = Transition(ms, 20_000)
        tr.fail_activity(
            ai, Failure(message="nope", application_failure_info=ApplicationFailureInfo(type="X")), "w"
        )
        if attempt < 4:
            assert tr.events == []
            (retry,) = [t for t in tr.timer_tasks if t.kind == TimerKind.ACTIVITY_RETRY]
            delays.append(retry.fire_time_ms - 20_000)
            Transition(ms, retry.fire_time_ms).dispatch_activity(ai)
        else:
            assert tr.events[-1].event_type == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED  # the workflow must react
            failed = tr.events[-2]
            assert failed.event_type == E.EVENT_TYPE_ACTIVITY_TASK_FAILED
            assert failed.activity_task_failed_event_attributes.retry_state == (
                RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
            )
            assert tr.events[-3].activity_task_started_event_attributes.attempt == 4
    assert delays == [1000, 2000, 3000]  # capped by the maximum interval


def test_non_retryable_error_type_fails_at_once():
    ms = new_state()
    run_first_workflow_task(ms)
    _, ai = schedule_activity(ms, 0, RetryPolicy(non_retryable_error_types=["Fatal"]))
    Transition(ms, 1).start_activity(ai, "r", "w")
    tr = Transition(ms, 2)
    tr.fail_activity(
        ai, Failure(message="x", application_failure_info=ApplicationFailureInfo(type="Fatal")), "w"
    )
    assert tr.events[-2].activity_task_failed_event_attributes.retry_state == (
        RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    )


def test_no_retry_past_schedule_to_close():
    ms = new_state()
    run_first_workflow_task(ms)
    _, ai = schedule_activity(ms, 0, RetryPolicy(initial_interval=to_duration(5000)), schedule_to_close=4000)
    Transition(ms, 100).start_activity(ai, "r", "w")
    tr = Transition(ms, 3000)
    tr.time_out_activity(ai, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
    timed_out = tr.events[-2]
    assert timed_out.event_type == E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
    assert timed_out.activity_task_timed_out_event_attributes.retry_state == RetryState.RETRY_STATE_TIMEOUT


def test_closing_the_run_keeps_pending_activities_listed_and_records_visibility():
    """As on the reference, a closed run's describe still lists the activities it left pending."""
    ms = new_state()
    completed = run_first_workflow_task(ms)
    schedule_activity(ms, 0)
    tr = Transition(ms, 5)
    tr.complete_workflow(None, completed)
    assert not ms.running and list(ms.activities) == [completed + 1] and ms.timers == {}
    assert ms.info.close_event_id == tr.events[-1].event_id
    assert [t.kind for t in tr.transfer_tasks] == [TransferKind.VISIBILITY]
    assert tr.current_run is not None


def test_mutable_state_survives_serialization():
    ms = new_state()
    run_first_workflow_task(ms)
    _, ai = schedule_activity(ms, 0, RetryPolicy(maximum_attempts=3))
    ai.heartbeat_details = Payloads(payloads=[Payload(data=b"42")])
    Transition(ms, 1).start_timer("t1", 1000, 4)
    Transition(ms, 2).schedule_workflow_task()
    Transition(ms, 3).start_workflow_task("r", "w")
    Transition(ms, 4).signal("s", None, "c")
    copy = MutableState.deserialize(ms.serialize())
    assert copy == ms


def make_sticky(ms: MutableState, timeout_ms: int = 5000) -> None:
    run_first_workflow_task(ms)
    ms.set_sticky("worker-1-sticky", timeout_ms)


def test_a_sticky_run_schedules_its_task_on_the_sticky_queue_with_a_schedule_to_start_timer():
    ms = new_state()
    make_sticky(ms)
    tr = Transition(ms, 2000)
    tr.signal("s", None, "c")
    queue = tr.events[-1].workflow_task_scheduled_event_attributes.task_queue
    assert (queue.name, queue.kind, queue.normal_name) == (
        "worker-1-sticky",
        TaskQueueKind.TASK_QUEUE_KIND_STICKY,
        "q",
    )
    assert ms.workflow_task.sticky and ms.workflow_task.task_queue == "worker-1-sticky"
    (timer,) = tr.timer_tasks
    assert timer.kind == TimerKind.WORKFLOW_TASK_TIMEOUT and timer.fire_time_ms == 7000
    assert timer.data["timeout_type"] == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START


def test_sticky_schedule_to_start_timeout_moves_the_task_to_the_normal_queue():
    ms = new_state()
    make_sticky(ms)
    Transition(ms, 2000).signal("s", None, "c")
    sticky_scheduled = ms.workflow_task.scheduled_event_id
    tr = Transition(ms, 7000)
    tr.time_out_sticky_workflow_task()
    assert types(tr) == [E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    timed_out = tr.events[0].workflow_task_timed_out_event_attributes
    assert (timed_out.scheduled_event_id, timed_out.started_event_id) == (sticky_scheduled, 0)
    assert timed_out.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    scheduled = tr.events[1].workflow_task_scheduled_event_attributes
    assert (scheduled.task_queue.name, scheduled.task_queue.kind, scheduled.attempt) == ("q", 1, 1)
    assert not ms.sticky and not ms.workflow_task.sticky


def test_a_failed_sticky_task_is_retried_as_attempt_one_on_the_normal_queue():
    ms = new_state()
    make_sticky(ms)
    Transition(ms, 2000).signal("s", None, "c")
    Transition(ms, 2001).start_workflow_task("r", "w")
    fail = Transition(ms, 2002)
    fail.fail_workflow_task(2, Failure(message="boom"), "w")
    assert types(fail) == [E.EVENT_TYPE_WORKFLOW_TASK_FAILED, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    assert not ms.sticky and ms.workflow_task.attempt == 1 and ms.workflow_task.task_queue == "q"
    # Failing again on the normal queue: now attempts count (transient, nothing more written).
    Transition(ms, 2003).start_workflow_task("r2", "w")
    again = Transition(ms, 2004)
    again.timeout_workflow_task()
    assert types(again) == [E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT] and ms.workflow_task.attempt == 2
