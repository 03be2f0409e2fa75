"""Workflows and activities the compatibility suite runs (module level, deterministic).

Activities run in the test process, outside the workflow sandbox, and record what they saw in `state`.
The names from `state` are imported passed through the sandbox, so the one workflow that needs
process-wide state (FailFirstTask) shares them with the test too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import Priority, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    # Names, not `from . import state`: that form resolves to the package, which the sandbox has already
    # re-imported, and so would load a private copy of `state` instead of passing the host's through.
    from .state import (
        ACTIVITY_SAW_CANCEL,
        ATTEMPT_TIMES,
        ATTEMPTS,
        CANCELLATION_DETAILS,
        CLEANED_UP,
        FAILED_FIRST_TASK,
        HEARTBEAT_DETAILS_SEEN,
        gate,
        started,
    )


# --------------------------------------------------------------------------------------------------
# Activities
# --------------------------------------------------------------------------------------------------


@activity.defn
async def say_hello(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def flaky(
    key: str, fail_times: int, error_type: str = "FlakyError", non_retryable: bool = False
) -> str:
    """Fails (ApplicationError) on attempts 1..fail_times, then succeeds."""
    attempt = activity.info().attempt
    ATTEMPTS[key].append(attempt)
    ATTEMPT_TIMES[key].append(time.monotonic())
    if attempt <= fail_times:
        raise ApplicationError(f"attempt {attempt} failed", type=error_type, non_retryable=non_retryable)
    return f"succeeded on attempt {attempt}"


@activity.defn
async def slow(key: str, seconds: float, slow_attempts: int = 1_000_000) -> str:
    """Sleeps `seconds` on attempts 1..slow_attempts (never heartbeats), then answers at once."""
    attempt = activity.info().attempt
    ATTEMPTS[key].append(attempt)
    if attempt <= slow_attempts:
        await asyncio.sleep(seconds)
    return f"done on attempt {attempt}"


@activity.defn
async def heartbeat_then_stall(key: str, stall_seconds: float) -> list[Any]:
    """Attempt 1 heartbeats once with details, then stalls (no heartbeats) so the heartbeat times out.

    Later attempts return the heartbeat details they were started with.
    """
    info = activity.info()
    ATTEMPTS[key].append(info.attempt)
    details = list(info.heartbeat_details)
    HEARTBEAT_DETAILS_SEEN[key].append(details)
    if info.attempt == 1:
        activity.heartbeat(f"progress from attempt {info.attempt}", 42)
        await asyncio.sleep(stall_seconds)
    return details


@activity.defn
async def gated(key: str) -> str:
    """Signals that it started, then waits until the test opens the gate."""
    ATTEMPTS[key].append(activity.info().attempt)
    started(key).set()
    await gate(key).wait()
    return "gate opened"


@activity.defn
async def cleanup(key: str) -> str:
    CLEANED_UP.add(key)
    return "cleaned up"


@activity.defn
async def heartbeat_until_cancelled(key: str) -> str:
    """Heartbeats every 100 ms; cancellation arrives as asyncio.CancelledError via a heartbeat response."""
    started(key).set()
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        ACTIVITY_SAW_CANCEL.add(key)
        raise


@activity.defn
async def heartbeat_until_operated(key: str) -> list[Any]:
    """Attempt 1 heartbeats "progress" every 100 ms until an operator pauses or resets it (the heartbeat
    response cancels it; what it was told is kept in CANCELLATION_DETAILS), then fails as the SDK does.
    Later attempts return the heartbeat details they were started with."""
    info = activity.info()
    ATTEMPTS[key].append(info.attempt)
    if info.attempt > 1:
        return list(info.heartbeat_details)
    started(key).set()
    try:
        while True:
            activity.heartbeat("progress")
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        CANCELLATION_DETAILS[key] = activity.cancellation_details()
        raise


@activity.defn
async def report_priority() -> list[Any]:
    """The priority the activity task carried, as the worker sees it."""
    p = activity.info().priority
    return [p.priority_key, p.fairness_key, p.fairness_weight]


ALL_ACTIVITIES = [
    say_hello,
    report_priority,
    flaky,
    slow,
    heartbeat_then_stall,
    gated,
    cleanup,
    heartbeat_until_cancelled,
    heartbeat_until_operated,
]


# --------------------------------------------------------------------------------------------------
# Workflows
# --------------------------------------------------------------------------------------------------


@workflow.defn
class GreetSomeone:
    """The README example."""

    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(say_hello, name, start_to_close_timeout=timedelta(seconds=10))


@dataclass
class Retry:
    initial_interval: float = 0.1
    backoff_coefficient: float = 2.0
    maximum_interval: float | None = None
    maximum_attempts: int = 0
    non_retryable_error_types: list[str] = field(default_factory=list)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            initial_interval=timedelta(seconds=self.initial_interval),
            backoff_coefficient=self.backoff_coefficient,
            maximum_interval=None
            if self.maximum_interval is None
            else timedelta(seconds=self.maximum_interval),
            maximum_attempts=self.maximum_attempts,
            non_retryable_error_types=self.non_retryable_error_types or None,
        )


@dataclass
class ActivitySpec:
    """One activity call: name, arguments and options (seconds; None = not set)."""

    activity: str
    args: list[Any] = field(default_factory=list)
    start_to_close: float | None = None
    schedule_to_close: float | None = None
    schedule_to_start: float | None = None
    heartbeat: float | None = None
    retry: Retry | None = None
    task_queue: str | None = None
    activity_id: str | None = None


def _secs(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


@workflow.defn
class RunActivity:
    """Runs one activity as specified and returns its result (its failure fails the workflow)."""

    @workflow.run
    async def run(self, spec: ActivitySpec) -> Any:
        return await workflow.execute_activity(
            spec.activity,
            args=spec.args,
            task_queue=spec.task_queue,
            start_to_close_timeout=_secs(spec.start_to_close),
            schedule_to_close_timeout=_secs(spec.schedule_to_close),
            schedule_to_start_timeout=_secs(spec.schedule_to_start),
            heartbeat_timeout=_secs(spec.heartbeat),
            retry_policy=spec.retry.policy() if spec.retry else None,
            activity_id=spec.activity_id,
        )


@dataclass
class FailSpec:
    message: str
    type: str | None = None
    non_retryable: bool = False
    details: list[Any] = field(default_factory=list)


@workflow.defn
class FailWorkflow:
    """Fails the workflow with an ApplicationError built from the spec."""

    @workflow.run
    async def run(self, spec: FailSpec) -> None:
        raise ApplicationError(spec.message, *spec.details, type=spec.type, non_retryable=spec.non_retryable)


@workflow.defn
class FailFirstTask:
    """Raises a plain exception in its first workflow task only: that fails the task, not the workflow."""

    @workflow.run
    async def run(self) -> str:
        wf_id = workflow.info().workflow_id
        if wf_id not in FAILED_FIRST_TASK:
            FAILED_FIRST_TASK.add(wf_id)
            raise RuntimeError("deliberate workflow task failure")
        return "recovered"


@workflow.defn
class FailAfterSignal:
    """Waits for `finish`, then fails the workflow task that saw it once (a sticky task: the worker has
    the run cached) before returning the signal's value."""

    def __init__(self) -> None:
        self._value: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._value is not None)
        key = workflow.info().workflow_id + ":after-signal"
        if key not in FAILED_FIRST_TASK:
            FAILED_FIRST_TASK.add(key)
            raise RuntimeError("deliberate failure of a sticky workflow task")
        assert self._value is not None
        return self._value

    @workflow.signal
    def finish(self, value: str) -> None:
        self._value = value


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}s"


@workflow.defn
class SlowToDecide:
    """Holds its worker for `seconds` on each activation: a worker slower than a short task timeout."""

    def __init__(self) -> None:
        self._phase = "started"

    @workflow.run
    async def run(self, seconds: float) -> str:
        with workflow.unsafe.sandbox_unrestricted():
            time.sleep(seconds)  # noqa: ASYNC251 (the point: a worker that does not answer in time)
        self._phase = "decided"
        return self._phase

    @workflow.query
    def phase(self) -> str:
        return self._phase


@workflow.defn
class WaitForSignal:
    """Waits (no timer) for the `finish` signal and returns its argument."""

    def __init__(self) -> None:
        self._value: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._value is not None)
        assert self._value is not None
        return self._value

    @workflow.signal
    def finish(self, value: str) -> None:
        self._value = value


@workflow.defn
class SignalOrTimeout:
    """Races the `poke` signal with a timer (wait_condition with a timeout)."""

    def __init__(self) -> None:
        self._poked = False

    @workflow.run
    async def run(self, timeout_seconds: float) -> str:
        try:
            await workflow.wait_condition(lambda: self._poked, timeout=timedelta(seconds=timeout_seconds))
        except TimeoutError:  # the builtin (asyncio.TimeoutError is an alias of it)
            return "timed out"
        return "poked"

    @workflow.signal
    def poke(self) -> None:
        self._poked = True


@workflow.defn
class SignalCollector:
    """Collects `add` signals in order until `done`; the `items` query answers with what it has."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._done = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self._done)
        return self._items

    @workflow.signal
    def add(self, item: str) -> None:
        self._items.append(item)

    @workflow.signal
    def done(self) -> None:
        self._done = True

    @workflow.query
    def items(self) -> list[str]:
        return list(self._items)


@workflow.defn
class CancelWithCleanup:
    """Waits forever; on cancellation runs the cleanup activity, then reports itself cancelled."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            await workflow.execute_activity(
                cleanup, workflow.info().workflow_id, start_to_close_timeout=timedelta(seconds=10)
            )
            raise
        return "unreachable"


@workflow.defn
class CancelActivity:
    """Runs a heartbeating activity; a workflow cancel is passed on to it and awaited."""

    @workflow.run
    async def run(self, key: str) -> str:
        try:
            await workflow.execute_activity(
                heartbeat_until_cancelled,
                key,
                start_to_close_timeout=timedelta(seconds=30),
                heartbeat_timeout=timedelta(seconds=2),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                return "activity cancelled"
            raise
        return "activity completed"


@workflow.defn
class Child:
    """Doubles its input; a negative input fails it for good."""

    @workflow.run
    async def run(self, n: int) -> int:
        if n < 0:
            raise ApplicationError("negative input", type="BadInput", non_retryable=True)
        return 2 * n


@workflow.defn
class Parent:
    """Runs one child that succeeds and one that fails, and reports both."""

    @workflow.run
    async def run(self) -> list[str]:
        prefix = workflow.info().workflow_id
        doubled = await workflow.execute_child_workflow(Child.run, 21, id=f"{prefix}-ok")
        try:
            await workflow.execute_child_workflow(Child.run, -1, id=f"{prefix}-bad")
            failed = "no error"
        except ChildWorkflowError as err:
            failed = str(err.cause)
        return [str(doubled), failed]


@workflow.defn
class CancelReasonReporter:
    """Waits to be cancelled and returns the reason the cancel request carried."""

    @workflow.run
    async def run(self) -> str:
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            return workflow.cancellation_reason() or ""
        raise RuntimeError("not cancelled")


@workflow.defn
class CancelChildWithReason:
    """Starts a CancelReasonReporter child, cancels it with `reason`, returns what the child saw."""

    @workflow.run
    async def run(self, reason: str) -> str:
        child = await workflow.start_child_workflow(
            CancelReasonReporter.run, id=f"{workflow.info().workflow_id}-child"
        )
        child.cancel(reason)
        return await child


@workflow.defn
class CancelExternalWithReason:
    """Cancels another (not a child) workflow with a reason."""

    @workflow.run
    async def run(self, target_id: str, reason: str) -> None:
        await workflow.get_external_workflow_handle(target_id).cancel(reason=reason)


@workflow.defn
class Summarized:
    """A timer and an activity, each with the summary a UI shows for it."""

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0.1, summary="a short nap")
        return await workflow.execute_activity(
            say_hello, "metadata", start_to_close_timeout=timedelta(seconds=10), summary="say hello"
        )


@dataclass
class HistoryFacts:
    length: int
    size: int
    continue_as_new_suggested: bool


@workflow.defn
class HistoryGrower:
    """Each `grow` signal starts that many day-long timers; `facts` reports what the worker was told."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal
    async def grow(self, timers: int) -> None:
        for _ in range(timers):
            asyncio.create_task(asyncio.sleep(24 * 3600))

    @workflow.query
    def facts(self) -> HistoryFacts:
        info = workflow.info()
        return HistoryFacts(
            info.get_current_history_length(),
            info.get_current_history_size(),
            info.is_continue_as_new_suggested(),
        )


@workflow.defn
class ReportBuildId:
    """Returns the build id the SDK believes is current after a timer (from the task's history)."""

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0.1)
        return workflow.info().get_current_build_id()


@workflow.defn
class ZeroTimer:
    """A zero-length sleep is a timer that fires at once."""

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0, summary="zero")
        return "woke"


@workflow.defn
class ContinueLoop:
    """Continues as new until its counter reaches `until`."""

    @workflow.run
    async def run(self, n: int, until: int) -> int:
        if n < until:
            workflow.continue_as_new(args=[n + 1, until])
        return n


@workflow.defn
class ExternalSender:
    """Signals one workflow, asks another to cancel, and signals one that does not exist."""

    @workflow.run
    async def run(self, signal_target: str, cancel_target: str) -> list[str]:
        outcomes = []
        await workflow.get_external_workflow_handle(signal_target).signal(
            SignalCollector.add, "from a workflow"
        )
        outcomes.append("signalled")
        await workflow.get_external_workflow_handle(cancel_target).cancel()
        outcomes.append("cancel requested")
        try:
            await workflow.get_external_workflow_handle(f"{signal_target}-missing").signal("nothing")
            outcomes.append("missing signalled?")
        except ApplicationError:
            outcomes.append("missing not found")
        return outcomes


UPSERTED_KEYWORD = SearchAttributeKey.for_keyword("CompatUpsertedKeyword")


@workflow.defn
class UpsertSearchAttribute:
    """Sets a registered Keyword search attribute twice, then completes."""

    @workflow.run
    async def run(self) -> str:
        workflow.upsert_search_attributes([UPSERTED_KEYWORD.value_set("first")])
        await workflow.sleep(0.1)
        workflow.upsert_search_attributes([UPSERTED_KEYWORD.value_set("second")])
        return "upserted"


@workflow.defn
class UpsertMemoAndAttributes:
    """Changes, removes (None) and adds memo keys; sets the registered Keyword, then unsets it."""

    @workflow.run
    async def run(self) -> None:
        workflow.upsert_memo({"changed": "new", "removed": None, "added": "here"})
        workflow.upsert_search_attributes([UPSERTED_KEYWORD.value_set("for a while")])
        await workflow.sleep(0.1)
        workflow.upsert_search_attributes([UPSERTED_KEYWORD.value_unset()])


@workflow.defn
class Counter:
    """Updates: `add` (validated: no negatives), `add_when_open` (waits for the `open` signal), `fail`
    (the handler raises), `finish` (ends the run with the total)."""

    def __init__(self) -> None:
        self.total = 0
        self.opened = False
        self.finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return self.total

    @workflow.update
    def add(self, n: int) -> int:
        self.total += n
        return self.total

    @add.validator
    def validate_add(self, n: int) -> None:
        if n < 0:
            raise ApplicationError(f"cannot add {n}", type="Negative")

    @workflow.update
    async def add_when_open(self, n: int) -> int:
        await workflow.wait_condition(lambda: self.opened)
        self.total += n
        return self.total

    @workflow.update
    def fail(self, message: str) -> None:
        raise ApplicationError(message, type="UpdateFailed")

    @workflow.update
    def finish(self) -> int:
        self.finished = True
        return self.total

    @workflow.signal
    def open(self) -> None:
        self.opened = True

    @workflow.signal
    def stop(self) -> None:
        self.finished = True

    @workflow.query
    def value(self) -> int:
        return self.total


@workflow.defn
class Settable:
    """`set_value` needs its argument: called without one, the handler cannot run and the workflow task
    fails. `finish` ends the run with the value."""

    def __init__(self) -> None:
        self.value = 0
        self.finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return self.value

    @workflow.update
    def set_value(self, value: int) -> int:
        self.value = value
        return value

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def current(self) -> int:
        return self.value


@workflow.defn
class UpsertBigMemo:
    """Upserts a memo value of `size` characters, then waits for ever."""

    @workflow.run
    async def run(self, size: int) -> None:
        workflow.upsert_memo({"big": "x" * size})
        await workflow.wait_condition(lambda: False)


@workflow.defn
class ParallelActivities:
    """Runs `n` activities at once (each a short say_hello)."""

    @workflow.run
    async def run(self, n: int) -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    workflow.execute_activity(say_hello, str(i), start_to_close_timeout=timedelta(seconds=10))
                    for i in range(n)
                )
            )
        )


@workflow.defn
class ActivityWithPriority:
    """Runs report_priority with a priority of its own."""

    @workflow.run
    async def run(self, priority_key: int, fairness_key: str) -> list[Any]:
        return await workflow.execute_activity(
            report_priority,
            start_to_close_timeout=timedelta(seconds=10),
            priority=Priority(priority_key=priority_key, fairness_key=fairness_key, fairness_weight=2.5),
        )


ALL_WORKFLOWS = [
    ActivityWithPriority,
    Settable,
    UpsertBigMemo,
    ParallelActivities,
    Counter,
    ZeroTimer,
    ReportBuildId,
    UpsertMemoAndAttributes,
    HistoryGrower,
    Summarized,
    CancelReasonReporter,
    CancelChildWithReason,
    CancelExternalWithReason,
    UpsertSearchAttribute,
    Child,
    Parent,
    ContinueLoop,
    ExternalSender,
    GreetSomeone,
    RunActivity,
    FailWorkflow,
    FailFirstTask,
    FailAfterSignal,
    Sleeper,
    SlowToDecide,
    WaitForSignal,
    SignalOrTimeout,
    SignalCollector,
    CancelWithCleanup,
    CancelActivity,
]
