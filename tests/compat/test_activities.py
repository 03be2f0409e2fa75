"""Activity retry policies and the four activity timeouts, as the workflow (and the client) see them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.api.command.v1 import Command, ScheduleActivityTaskCommandAttributes
from temporalio.api.common.v1 import ActivityType, RetryPolicy, WorkflowType
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RecordActivityTaskHeartbeatRequest,
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)
from temporalio.service import RPCError, RPCStatusCode

from . import state
from .helpers import event_type_name, new_id, run_worker
from .workflows import ActivitySpec, ActivityWithPriority, Retry, RunActivity


async def run_spec(client: Client, spec: ActivitySpec) -> object:
    async with run_worker(client) as tq:
        return await client.execute_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)


async def run_spec_expect_failure(client: Client, spec: ActivitySpec) -> tuple[ActivityError, BaseException]:
    """Runs the spec; returns (the ActivityError the workflow failed with, its cause)."""
    with pytest.raises(WorkflowFailureError) as info:
        await run_spec(client, spec)
    act_err = info.value.cause
    assert isinstance(act_err, ActivityError), repr(act_err)
    assert act_err.cause is not None
    return act_err, act_err.cause


def gaps(key: str) -> list[float]:
    """Seconds between the starts of consecutive attempts."""
    times = state.ATTEMPT_TIMES[key]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# The reference fires timers (and so activity retries) up to ~1 s late: a 0.2 s retry interval is
# observed as ~1 s. Timing assertions are therefore lower bounds, with upper bounds that only separate
# "policy honoured" from "policy ignored".


async def test_retry_until_success_with_backoff(client: Client) -> None:
    key = new_id("key")
    result = await run_spec(
        client,
        ActivitySpec(
            "flaky", [key, 2], start_to_close=5, retry=Retry(initial_interval=1.2, backoff_coefficient=2)
        ),
    )
    assert result == "succeeded on attempt 3"
    assert state.ATTEMPTS[key] == [1, 2, 3]
    first, second = gaps(key)
    assert 1.15 <= first < 2.2, first  # initial_interval (not the 1 s default)
    assert 2.35 <= second < 3.4, second  # initial_interval * backoff_coefficient


async def test_retry_maximum_interval_caps_backoff(client: Client) -> None:
    key = new_id("key")
    result = await run_spec(
        client,
        ActivitySpec(
            "flaky",
            [key, 2],
            start_to_close=5,
            retry=Retry(initial_interval=1, backoff_coefficient=10, maximum_interval=1.5),
        ),
    )
    assert result == "succeeded on attempt 3"
    assert state.ATTEMPTS[key] == [1, 2, 3]
    first, second = gaps(key)
    assert 0.95 <= first < 2.0, first
    assert 1.45 <= second < 2.5, second  # capped at maximum_interval (uncapped: 10 s)


async def test_retry_maximum_attempts_reached(client: Client) -> None:
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "flaky", [key, 99], start_to_close=5, retry=Retry(initial_interval=0.1, maximum_attempts=3)
        ),
    )
    assert state.ATTEMPTS[key] == [1, 2, 3]
    assert act_err.activity_type == "flaky"
    assert act_err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(cause, ApplicationError)
    assert cause.message == "attempt 3 failed"  # the last attempt's failure
    assert cause.type == "FlakyError"
    assert not cause.non_retryable


async def test_non_retryable_error_type(client: Client) -> None:
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "flaky",
            [key, 99, "Fatal"],
            start_to_close=5,
            retry=Retry(initial_interval=0.1, maximum_attempts=5, non_retryable_error_types=["Fatal"]),
        ),
    )
    assert state.ATTEMPTS[key] == [1]
    assert act_err.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert isinstance(cause, ApplicationError)
    assert (cause.message, cause.type) == ("attempt 1 failed", "Fatal")


async def test_non_retryable_application_error(client: Client) -> None:
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "flaky", [key, 99, "Whatever", True], start_to_close=5, retry=Retry(initial_interval=0.1)
        ),
    )
    assert state.ATTEMPTS[key] == [1]
    assert act_err.retry_state == RetryState.NON_RETRYABLE_FAILURE
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert cause.type == "Whatever"


async def test_start_to_close_timeout_retried_then_success(client: Client) -> None:
    key = new_id("key")
    result = await run_spec(
        client,
        ActivitySpec("slow", [key, 5, 1], start_to_close=1, retry=Retry(initial_interval=0.1)),
    )
    assert result == "done on attempt 2"
    assert state.ATTEMPTS[key] == [1, 2]


async def test_start_to_close_timeout_exhausted(client: Client) -> None:
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "slow", [key, 5], start_to_close=1, retry=Retry(initial_interval=0.1, maximum_attempts=2)
        ),
    )
    assert state.ATTEMPTS[key] == [1, 2]
    assert act_err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(cause, TimeoutError)
    assert cause.type == TimeoutType.START_TO_CLOSE


async def test_a_timed_out_attempt_keeps_its_start_time(client: Client) -> None:
    """ActivityTaskStarted is written only when the attempt closes, but with the time it started."""
    key = new_id("key")
    spec = ActivitySpec("slow", [key, 5], start_to_close=1, retry=Retry(maximum_attempts=1))
    async with run_worker(client) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    events = {event_type_name(e): e.event_time.ToDatetime() for e in (await handle.fetch_history()).events}
    assert events["ACTIVITY_TASK_STARTED"] - events["ACTIVITY_TASK_SCHEDULED"] < timedelta(seconds=0.5)
    assert events["ACTIVITY_TASK_TIMED_OUT"] - events["ACTIVITY_TASK_STARTED"] >= timedelta(seconds=1)


async def test_schedule_to_close_timeout(client: Client) -> None:
    key = new_id("key")
    began = time.monotonic()
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "slow", [key, 10], schedule_to_close=1.5, start_to_close=5, retry=Retry(initial_interval=0.1)
        ),
    )
    assert time.monotonic() - began < 5
    assert state.ATTEMPTS[key] == [1]
    assert act_err.retry_state == RetryState.TIMEOUT
    assert isinstance(cause, TimeoutError)
    assert cause.type == TimeoutType.SCHEDULE_TO_CLOSE


async def test_schedule_to_start_timeout(client: Client) -> None:
    """The activity goes to a task queue nobody polls."""
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "say_hello",
            [key],
            schedule_to_start=1,
            start_to_close=5,
            task_queue=new_id("nobody-polls"),
            retry=Retry(initial_interval=0.1),
        ),
    )
    # Surprise: schedule-to-start is not retried, yet the reference reports RETRY_STATE_TIMEOUT.
    assert act_err.retry_state == RetryState.TIMEOUT
    assert isinstance(cause, TimeoutError)
    assert cause.type == TimeoutType.SCHEDULE_TO_START


async def test_heartbeat_timeout(client: Client) -> None:
    key = new_id("key")
    act_err, cause = await run_spec_expect_failure(
        client,
        ActivitySpec(
            "heartbeat_then_stall",
            [key, 10],
            start_to_close=10,
            heartbeat=1,
            retry=Retry(initial_interval=0.1, maximum_attempts=1),
        ),
    )
    assert state.ATTEMPTS[key] == [1]
    assert act_err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(cause, TimeoutError)
    assert cause.type == TimeoutType.HEARTBEAT
    assert list(cause.last_heartbeat_details) == ["progress from attempt 1", 42]


async def test_heartbeat_details_reach_next_attempt(client: Client) -> None:
    key = new_id("key")
    result = await run_spec(
        client,
        ActivitySpec(
            "heartbeat_then_stall",
            [key, 10],
            start_to_close=10,
            heartbeat=1,
            retry=Retry(initial_interval=0.1, maximum_attempts=2),
        ),
    )
    assert state.ATTEMPTS[key] == [1, 2]
    assert state.HEARTBEAT_DETAILS_SEEN[key] == [[], ["progress from attempt 1", 42]]
    assert result == ["progress from attempt 1", 42]


async def test_sub_millisecond_retry_intervals_are_recorded_as_asked(client: Client) -> None:
    """Only unset intervals take the server's defaults (1 s, 100 x initial): 1 us / 100 us were recorded as
    1 s / 100 s on Hourglass."""
    async with run_worker(client) as tq:
        handle = await client.start_workflow(
            RunActivity.run,
            ActivitySpec(
                "say_hello",
                ["x"],
                start_to_close=5,
                retry=Retry(initial_interval=1e-6, maximum_interval=1e-4),
            ),
            id=new_id(),
            task_queue=tq,
        )
        await handle.result()
        unset = await client.start_workflow(
            RunActivity.run,
            ActivitySpec("say_hello", ["x"], start_to_close=5, retry=Retry(initial_interval=2e-6)),
            id=new_id(),
            task_queue=tq,
        )
        await unset.result()
    policies = []
    for h in (handle, unset):
        async for event in h.fetch_history_events():
            if event.HasField("activity_task_scheduled_event_attributes"):
                policies.append(event.activity_task_scheduled_event_attributes.retry_policy)
    asked, defaulted = policies
    assert (asked.initial_interval.ToNanoseconds(), asked.maximum_interval.ToNanoseconds()) == (1000, 100_000)
    assert (defaulted.initial_interval.ToNanoseconds(), defaulted.maximum_interval.ToNanoseconds()) == (
        2000,
        200_000,
    )


async def test_the_activity_task_carries_the_activity_priority(client: Client) -> None:
    async with run_worker(client) as tq:
        seen = await client.execute_workflow(
            ActivityWithPriority.run, args=[3, "tenant-a"], id=new_id(), task_queue=tq
        )
    assert seen == [3, "tenant-a", 2.5]


async def test_complete_by_id_before_any_worker_started_it(client: Client) -> None:
    """RespondActivityTaskCompletedById completes an activity no worker has started (its task queue has
    no poller): the workflow gets the result, its history records a start by the completing identity."""
    wf_id = new_id()
    spec = ActivitySpec(
        "say_hello", ["x"], start_to_close=30, task_queue=new_id("nobody-polls"), activity_id="the-activity"
    )
    async with run_worker(client) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=wf_id, task_queue=tq)
        for _ in range(100):
            events = [event_type_name(e) async for e in handle.fetch_history_events()]
            if "ACTIVITY_TASK_SCHEDULED" in events:
                break
            await asyncio.sleep(0.05)
        await client.get_async_activity_handle(
            workflow_id=wf_id, run_id=None, activity_id="the-activity"
        ).complete("forced")
        assert await handle.result() == "forced"
    events = [e async for e in handle.fetch_history_events()]
    names = [event_type_name(e) for e in events]
    assert names[names.index("ACTIVITY_TASK_SCHEDULED") + 1 : names.index("ACTIVITY_TASK_COMPLETED") + 1] == [
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
    ]


async def test_a_sub_second_start_to_close_timeout_fires_when_the_reference_s_does(client: Client) -> None:
    """A 200 ms start-to-close timeout is recorded as asked but fires about a second after the attempt
    started, as the reference's timer queue fires it (history.timerProcessorMaxTimeShift): until then the
    attempt is alive (a heartbeat is answered), after it a heartbeat is refused. The SDK's worker cancels
    such an activity locally 5 s after its start-to-close timeout, which its tests count on."""
    service, tq, workflow_id = client.workflow_service, new_id("tq"), new_id("wf")
    await service.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Raw"),
            task_queue=TaskQueue(name=tq),
            request_id=new_id("req"),
        )
    )
    task = await service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq)),
        timeout=timedelta(seconds=10),
    )
    schedule = ScheduleActivityTaskCommandAttributes(
        activity_id="a1",
        activity_type=ActivityType(name="Held"),
        task_queue=TaskQueue(name=tq),
        retry_policy=RetryPolicy(maximum_attempts=1),
    )
    schedule.start_to_close_timeout.FromMilliseconds(200)
    await service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace="default",
            task_token=task.task_token,
            commands=[
                Command(
                    command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                    schedule_activity_task_command_attributes=schedule,
                )
            ],
        )
    )
    activity = await service.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq)),
        timeout=timedelta(seconds=10),
    )
    assert activity.start_to_close_timeout.ToMilliseconds() == 200
    heartbeat = RecordActivityTaskHeartbeatRequest(namespace="default", task_token=activity.task_token)
    await asyncio.sleep(0.5)
    assert not (await service.record_activity_task_heartbeat(heartbeat)).cancel_requested
    await asyncio.sleep(1.5)
    with pytest.raises(RPCError) as refused:
        await service.record_activity_task_heartbeat(heartbeat)
    assert refused.value.status == RPCStatusCode.NOT_FOUND
    assert refused.value.message == (
        "invalid activityID or activity already timed out or invoking workflow is completed"
    )
    handle = client.get_workflow_handle(workflow_id)
    events = {event_type_name(e): e async for e in handle.fetch_history_events()}
    timed_out = events["ACTIVITY_TASK_TIMED_OUT"]
    assert timed_out.activity_task_timed_out_event_attributes.failure.timeout_failure_info.timeout_type == (
        TimeoutType.START_TO_CLOSE.value
    )
    fired_after = timed_out.event_time.ToDatetime() - activity.started_time.ToDatetime()
    assert timedelta(seconds=0.8) <= fired_after < timedelta(seconds=1.9), fired_after
    await handle.terminate()
