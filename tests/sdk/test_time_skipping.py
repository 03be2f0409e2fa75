"""hourglass.sdk.testing's time-skipping environment on an embedded Hourglass (the plugin's fixtures).

Week-long workflows finish in seconds with the SDK's own `WorkflowEnvironment` API, and their histories
show the virtual time that passed: a timer started and fired 7 days apart, an activity timed out 3 days
after it was scheduled, a retry dispatched an hour after the failure. Each of these assertions fails when
time does not skip (the test would wait for days and its timeout fails it first).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
    WorkflowFailureError,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.worker import Worker

pytestmark = pytest.mark.timeout(120)
# The bound for the week-long timer. The other tests skip days too; they get a looser bound (any
# of them would take days without skipping) so that a loaded CI machine does not fail them.
WEEK_WALL_LIMIT_S = 10.0
WALL_LIMIT_S = 30.0
DAY_S = 24 * 3600


@workflow.defn
class SleepAWeek:
    @workflow.run
    async def run(self) -> float:
        start = workflow.now()
        await workflow.sleep(timedelta(days=7))
        return (workflow.now() - start).total_seconds()


@workflow.defn
class ActivityNobodyRuns:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                "charge_card",
                task_queue="no-worker-polls-this",
                schedule_to_close_timeout=timedelta(days=3),
            )
        except ActivityError as e:
            assert isinstance(e.cause, TemporalTimeoutError)
            return TimeoutType.Name(e.cause.type)
        return "completed"


@workflow.defn
class WaitForApproval:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    @workflow.run
    async def run(self) -> str:
        start = workflow.now()
        try:
            await workflow.wait_condition(lambda: self.approved, timeout=timedelta(days=7))
        except TimeoutError:
            return "expired"
        return f"approved after {(workflow.now() - start).total_seconds() / DAY_S:.1f} days"


attempts: list[int] = []


@activity.defn
async def flaky() -> str:
    attempts.append(activity.info().attempt)
    if activity.info().attempt == 1:
        raise ApplicationError("the first attempt fails")
    return "done"


@workflow.defn
class RetryAfterAnHour:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            flaky,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(hours=1), maximum_attempts=3),
        )


def _queue() -> str:
    return f"ts-{uuid.uuid4()}"


async def _events(handle) -> list:
    return [e async for e in handle.fetch_history_events()]


def _first(events, event_type):
    return next(e for e in events if e.event_type == event_type)


def _ts(event) -> float:
    return event.event_time.ToMilliseconds() / 1000


async def test_a_seven_day_timer_fires_in_seconds(hourglass_env):
    queue = _queue()
    before = await hourglass_env.get_current_time()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[SleepAWeek]):
        started = time.monotonic()  # from the start request to the result: the workflow's own wall time
        handle = await hourglass_env.client.start_workflow(SleepAWeek.run, id=queue, task_queue=queue)
        elapsed = await handle.result()
        wall = time.monotonic() - started
    after = await hourglass_env.get_current_time()
    assert wall < WEEK_WALL_LIMIT_S
    assert elapsed >= 7 * DAY_S  # workflow.now() moved by the week
    assert 7 * DAY_S <= (after - before).total_seconds() < 7 * DAY_S + 600
    events = await _events(handle)
    fired = _first(events, EventType.EVENT_TYPE_TIMER_FIRED)
    timer_started = _first(events, EventType.EVENT_TYPE_TIMER_STARTED)
    assert 7 * DAY_S <= _ts(fired) - _ts(timer_started) < 7 * DAY_S + 60
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_an_activity_nobody_runs_times_out_after_three_days(hourglass_env):
    queue = _queue()
    started = time.monotonic()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[ActivityNobodyRuns]):
        handle = await hourglass_env.client.start_workflow(ActivityNobodyRuns.run, id=queue, task_queue=queue)
        # Only schedule-to-close is set, so schedule-to-start takes its value; both fall due together and
        # the engine reports the activity's never-started timeout.
        assert await handle.result() == "TIMEOUT_TYPE_SCHEDULE_TO_START"
    assert time.monotonic() - started < WALL_LIMIT_S
    events = await _events(handle)
    scheduled = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    timed_out = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)
    assert 3 * DAY_S <= _ts(timed_out) - _ts(scheduled) < 3 * DAY_S + 60
    assert not any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED for e in events)


async def test_a_signal_cancels_the_timer_after_env_sleep(hourglass_env):
    queue = _queue()
    started = time.monotonic()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[WaitForApproval]):
        handle = await hourglass_env.client.start_workflow(WaitForApproval.run, id=queue, task_queue=queue)
        await hourglass_env.sleep(timedelta(days=2))  # skips 2 of the 7 days, then time is locked again
        await handle.signal(WaitForApproval.approve)
        assert await handle.result() == "approved after 2.0 days"
    assert time.monotonic() - started < WALL_LIMIT_S
    events = await _events(handle)
    types = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_TIMER_CANCELED in types
    assert EventType.EVENT_TYPE_TIMER_FIRED not in types
    signaled = _first(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    assert 2 * DAY_S <= _ts(signaled) - _ts(events[0]) < 2 * DAY_S + 60


async def test_the_timer_fires_when_no_signal_comes(hourglass_env):
    queue = _queue()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[WaitForApproval]):
        result = await hourglass_env.client.execute_workflow(WaitForApproval.run, id=queue, task_queue=queue)
    assert result == "expired"


async def test_an_activity_retry_waits_its_hour_of_virtual_time(hourglass_env):
    queue = _queue()
    attempts.clear()
    started = time.monotonic()
    async with Worker(
        hourglass_env.client, task_queue=queue, workflows=[RetryAfterAnHour], activities=[flaky]
    ):
        handle = await hourglass_env.client.start_workflow(RetryAfterAnHour.run, id=queue, task_queue=queue)
        assert await handle.result() == "done"
    assert time.monotonic() - started < WALL_LIMIT_S
    assert attempts == [1, 2]
    events = await _events(handle)
    scheduled = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    started_event = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)  # the last attempt's
    assert started_event.activity_task_started_event_attributes.attempt == 2
    assert 3600 <= _ts(started_event) - _ts(scheduled) < 3600 + 60


async def test_auto_time_skipping_disabled_keeps_the_wall_clock(hourglass_env):
    queue = _queue()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[SleepAWeek]):
        handle = await hourglass_env.client.start_workflow(SleepAWeek.run, id=queue, task_queue=queue)
        with hourglass_env.auto_time_skipping_disabled():
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(handle.result(), 2)
        await handle.terminate()
    with pytest.raises(WorkflowFailureError):
        await handle.result()


@workflow.defn
class Tick:
    @workflow.run
    async def run(self) -> str:
        return workflow.now().isoformat()


@workflow.defn
class WaitForever:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_a_daily_schedule_fires_once_per_virtual_day(hourglass_env):
    queue = _queue()
    client = hourglass_env.client
    async with Worker(client, task_queue=queue, workflows=[Tick]):
        handle = await client.create_schedule(
            queue,
            Schedule(
                action=ScheduleActionStartWorkflow(Tick.run, id=f"{queue}-run", task_queue=queue),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
            ),
        )
        started = time.monotonic()
        await hourglass_env.sleep(timedelta(days=3, hours=1))
        description = await handle.describe()
        await handle.delete()
    assert time.monotonic() - started < WALL_LIMIT_S
    actions = description.info.recent_actions
    assert len(actions) == 3
    gaps = [(b.scheduled_at - a.scheduled_at).total_seconds() for a, b in itertools.pairwise(actions)]
    assert gaps == [DAY_S, DAY_S]


async def test_a_cron_workflow_runs_on_its_virtual_schedule(hourglass_env):
    queue = _queue()
    client = hourglass_env.client
    t0 = await hourglass_env.get_current_time()
    first_noon = t0.replace(hour=12, minute=0, second=0, microsecond=0)
    if first_noon <= t0:
        first_noon += timedelta(days=1)
    async with Worker(client, task_queue=queue, workflows=[Tick]):
        handle = await client.start_workflow(Tick.run, id=queue, task_queue=queue, cron_schedule="0 12 * * *")
        started = time.monotonic()
        await hourglass_env.sleep(first_noon - t0 + timedelta(days=1, hours=1))
        runs = [r async for r in client.list_workflows(f"WorkflowId = '{queue}'")]
        await handle.terminate()
    assert time.monotonic() - started < WALL_LIMIT_S
    # Runs at the first two noons have closed (a run closed more than the namespace's 24 h retention of
    # virtual time ago is deleted, as on any server); the next one waits for the third noon.
    closed = [r for r in runs if r.close_time is not None]
    assert closed and all((r.close_time.hour, r.close_time.minute) == (12, 0) for r in closed)
    running = [r for r in runs if r.close_time is None]
    assert [r.execution_time for r in running] == [first_noon + timedelta(days=2)]


async def test_a_thirty_day_execution_timeout_is_reached(hourglass_env):
    queue = _queue()
    started = time.monotonic()
    async with Worker(hourglass_env.client, task_queue=queue, workflows=[WaitForever]):
        handle = await hourglass_env.client.start_workflow(
            WaitForever.run, id=queue, task_queue=queue, execution_timeout=timedelta(days=30)
        )
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    assert isinstance(err.value.cause, TemporalTimeoutError)
    assert time.monotonic() - started < WALL_LIMIT_S
    events = await _events(handle)
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT
    assert 30 * DAY_S <= _ts(events[-1]) - _ts(events[0]) < 30 * DAY_S + 60


@activity.defn
async def two_real_seconds() -> str:
    await asyncio.sleep(2)
    return "finished"


@workflow.defn
class SlowActivityThenAWeek:
    @workflow.run
    async def run(self) -> str:
        result = await workflow.execute_activity(
            two_real_seconds,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        await workflow.sleep(timedelta(days=7))
        return result


async def test_a_running_activity_holds_the_clock(hourglass_env):
    # While the activity runs, its start-to-close deadline is the next one: a clock that jumped to it
    # would time the activity out. It must run its 2 real seconds, then the week skips.
    queue = _queue()
    started = time.monotonic()
    async with Worker(
        hourglass_env.client,
        task_queue=queue,
        workflows=[SlowActivityThenAWeek],
        activities=[two_real_seconds],
    ):
        handle = await hourglass_env.client.start_workflow(
            SlowActivityThenAWeek.run, id=queue, task_queue=queue
        )
        assert await handle.result() == "finished"
    assert 2 <= time.monotonic() - started < WALL_LIMIT_S
    events = await _events(handle)
    activity_started = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    completed = _first(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert 2 <= _ts(completed) - _ts(activity_started) < 5
