"""The mutable-state codec: what is written reads back the same, and a reader's copy is independent."""

from temporalio.api.common.v1 import Payload, Payloads, RetryPolicy

from hourglass.cluster.history.mutable_state import (
    ActivityInfo,
    ExecutionInfo,
    MutableState,
    TimerInfo,
    WorkflowTaskInfo,
)


def _state() -> MutableState:
    info = ExecutionInfo(
        namespace_id="ns",
        workflow_id="wf",
        run_id="run",
        first_run_id="run",
        workflow_type="T",
        task_queue="tq",
        create_request_id="req",
        start_time_ms=1,
        execution_time_ms=1,
        workflow_task_timeout_ms=10_000,
        retry_policy=RetryPolicy(maximum_attempts=3),
        continuation_input=Payloads(payloads=[Payload(data=b'"in"')]),
        cancel_request_ids=["c1"],
    )
    ms = MutableState(
        info=info,
        next_event_id=6,
        workflow_task=WorkflowTaskInfo(
            scheduled_event_id=5,
            attempt=1,
            task_queue="tq",
            start_to_close_timeout_ms=10_000,
            scheduled_time_ms=1,
        ),
    )
    ms.activities[5] = ActivityInfo(
        scheduled_event_id=5,
        activity_id="1",
        activity_type="a",
        task_queue="tq",
        first_scheduled_time_ms=1,
        scheduled_time_ms=1,
        schedule_to_start_timeout_ms=0,
        schedule_to_close_timeout_ms=0,
        start_to_close_timeout_ms=1000,
        heartbeat_timeout_ms=0,
        heartbeat_details=Payloads(payloads=[Payload(data=b"1")]),
    )
    ms.timers["t"] = TimerInfo(timer_id="t", started_event_id=3, expiry_time_ms=99)
    return ms


def test_serialized_state_reads_back_equal() -> None:
    ms = _state()
    assert MutableState.deserialize(ms.serialize()) == ms


def test_clone_is_equal_and_independent() -> None:
    ms = _state()
    copy = ms.clone()
    assert copy == ms and copy.serialize() == ms.serialize()
    copy.info.continuation_input.payloads[0].data = b"changed"
    copy.info.cancel_request_ids.append("c2")
    copy.activities[5].heartbeat_details.payloads.add(data=b"2")
    copy.activities[5].attempt = 2
    copy.timers.pop("t")
    copy.workflow_task.attempt = 3
    assert ms == _state()
