"""The activity operator APIs' rules, checked on mutable state directly (no server, no store)."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy, WorkflowExecution
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.failure.v1 import ApplicationFailureInfo, Failure
from temporalio.api.workflowservice.v1 import (
    PauseActivityRequest,
    ResetActivityRequest,
    UnpauseActivityRequest,
    UpdateActivityOptionsRequest,
)

from hourglass.cluster.errors import FailedPrecondition, InvalidArgument
from hourglass.cluster.history import activity_ops
from hourglass.cluster.history.tasks import TimerKind
from hourglass.cluster.history.timeutil import to_duration
from hourglass.cluster.history.transition import Transition, default_retry_policy

from .test_transition import new_state, run_first_workflow_task, schedule_activity

EX = WorkflowExecution(workflow_id="wf")
FAILURE = Failure(message="nope", application_failure_info=ApplicationFailureInfo(type="X"))


def timers(tr: Transition, kind: str) -> list:
    return [t for t in tr.timer_tasks if t.kind == kind]


def running_activity():
    ms = new_state()
    run_first_workflow_task(ms)
    # As the command handler schedules it: with the server's retry defaults filled in.
    _, ai = schedule_activity(ms, 0, default_retry_policy(RetryPolicy(initial_interval=to_duration(1000))))
    Transition(ms, 100).start_activity(ai, "r1", "w")
    return ms, ai


async def no_scheduled_event(ai):
    raise AssertionError("not read")


def test_mask_paths_are_compared_in_camel_case() -> None:
    assert activity_ops.camel_path("retry_policy.maximum_attempts") == "retryPolicy.maximumAttempts"
    assert activity_ops.camel_path("taskQueue.name") == "taskQueue.name"
    assert activity_ops.camel_path("heartbeat_TIMEOUT") == "heartbeatTimeout"


def test_a_paused_activity_s_failed_attempt_waits_for_the_unpause() -> None:
    ms, ai = running_activity()
    activity_ops.pause(ms, Transition(ms, 200), PauseActivityRequest(execution=EX, id="a1", request_id="p"))
    tr = Transition(ms, 300)
    tr.fail_activity(ai, FAILURE, "w")
    assert (ai.attempt, ai.started, tr.events, timers(tr, TimerKind.ACTIVITY_RETRY)) == (2, False, [], [])
    assert ai.last_failure == FAILURE
    tr = Transition(ms, 5000)
    activity_ops.unpause(ms, tr, UnpauseActivityRequest(execution=EX, id="a1"))
    (retry,) = timers(tr, TimerKind.ACTIVITY_RETRY)
    assert (retry.fire_time_ms, retry.data["attempt"], ai.paused) == (5000, 2, False)
    assert ai.last_failure is None  # rescheduling forgets it, as on the reference


def test_pausing_again_is_a_no_op_only_for_the_same_request() -> None:
    ms, _ = running_activity()
    activity_ops.pause(ms, Transition(ms, 200), PauseActivityRequest(execution=EX, id="a1", request_id="p"))
    activity_ops.pause(ms, Transition(ms, 201), PauseActivityRequest(execution=EX, id="a1", request_id="p"))
    with pytest.raises(FailedPrecondition, match="activity is already paused"):
        activity_ops.pause(
            ms, Transition(ms, 202), PauseActivityRequest(execution=EX, id="a1", request_id="q")
        )


def test_reset_of_a_running_attempt_rearms_its_timeouts_for_attempt_one() -> None:
    ms, ai = running_activity()
    tr = Transition(ms, 200)
    tr.fail_activity(ai, FAILURE, "w")
    Transition(ms, 1200).dispatch_activity(ai)
    Transition(ms, 1300).start_activity(ai, "r2", "w")
    tr = Transition(ms, 1400)
    asyncio.run(activity_ops.reset(ms, tr, ResetActivityRequest(execution=EX, id="a1"), no_scheduled_event))
    assert (ai.attempt, ai.reset, ai.started) == (1, True, True)
    (stc,) = [
        t
        for t in timers(tr, TimerKind.ACTIVITY_TIMEOUT)
        if t.data["timeout_type"] == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    ]
    assert (stc.fire_time_ms, stc.data["attempt"]) == (1300 + 5000, 1)
    tr = Transition(ms, 1500)
    tr.fail_activity(ai, FAILURE, "w")  # the next attempt clears the reset flag
    assert (ai.attempt, ai.reset) == (2, False)


def test_new_options_are_merged_and_normalized_like_a_scheduled_activity_s() -> None:
    ms, ai = running_activity()
    request = UpdateActivityOptionsRequest(
        execution=EX,
        id="a1",
        activity_options=ActivityOptions(
            schedule_to_close_timeout=to_duration(2000), retry_policy=RetryPolicy(maximum_attempts=3)
        ),
        update_mask=FieldMask(paths=["schedule_to_close_timeout", "retry_policy.maximum_attempts"]),
    )
    opts = asyncio.run(activity_ops.update_options(ms, Transition(ms, 200), request, no_scheduled_event))
    assert (
        ai.schedule_to_close_timeout_ms,
        ai.start_to_close_timeout_ms,
        ai.schedule_to_start_timeout_ms,
    ) == (
        2000,
        2000,
        2000,
    )
    assert ai.retry_policy.maximum_attempts == 3 and ai.retry_policy.initial_interval == to_duration(1000)
    assert opts.task_queue.kind == 1  # normalized, as the reference answers
    bad = UpdateActivityOptionsRequest(
        execution=EX,
        id="a1",
        activity_options=ActivityOptions(retry_policy=RetryPolicy(backoff_coefficient=0.5)),
        update_mask=FieldMask(paths=["retry_policy.backoff_coefficient"]),
    )
    with pytest.raises(InvalidArgument, match="BackoffCoefficient cannot be less than 1"):
        asyncio.run(activity_ops.update_options(ms, Transition(ms, 300), bad, no_scheduled_event))
