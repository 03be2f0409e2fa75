"""Per-run limits and the updates of a failed workflow task, on mutable state and the update registry
(no server, no store). tests/compat/test_run_limits.py proves the same against the reference."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import (
    Command,
    RequestCancelExternalWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
    SignalExternalWorkflowExecutionCommandAttributes,
    StartChildWorkflowExecutionCommandAttributes,
)
from temporalio.api.common.v1 import ActivityType, Memo, Payload, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Meta, Request

from hourglass.cluster.errors import InvalidArgument, SignalsLimitExceeded, WorkflowNotReady
from hourglass.cluster.history import history_limits
from hourglass.cluster.history.commands import CommandError, handle_commands
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.transition import Transition
from hourglass.cluster.history.updates import (
    FAILING_TASK_ATTEMPT,
    WORKFLOW_TASK_FAILED_MESSAGE,
    UpdateRegistry,
)

from .states import minimal_state


@pytest.fixture
def limits():
    """LIMITS, restored after the test."""
    saved = LIMITS.__dict__.copy()
    yield LIMITS
    LIMITS.__dict__.update(saved)


def test_history_count_counts_the_transitions_events_and_size_what_was_committed(limits) -> None:
    limits.history_count_error = 10
    limits.history_size_error_bytes = 1000
    ms = minimal_state()
    ms.next_event_id = 11  # 10 events, none past the limit
    assert history_limits.exceeded(ms, 1) is None
    ms.next_event_id = 12
    assert history_limits.exceeded(ms, 1) == "Workflow history count exceeds limit."
    ms.next_event_id = 5
    ms.history_size_bytes = 1001
    assert history_limits.exceeded(ms, 1) == "Workflow history size exceeds limit."
    ms.info.status = 2  # closed: nothing to terminate
    assert history_limits.exceeded(ms, 1) is None


def test_signals_are_counted_and_bounded(limits) -> None:
    limits.maximum_signals_per_execution = 2
    ms = minimal_state()
    for _ in range(2):
        history_limits.check_signal_allowed(ms)
        Transition(ms, 1).signal("s", None, "me")
    assert ms.info.signal_count == 2
    with pytest.raises(SignalsLimitExceeded, match="exceeded workflow execution limit"):
        history_limits.check_signal_allowed(ms)
    limits.maximum_signals_per_execution = 0  # no limit
    history_limits.check_signal_allowed(ms)


def test_a_memo_is_checked_against_the_error_limit_only_past_the_warn_limit(limits) -> None:
    memo = Memo(fields={"k": Payload(data=b"x" * 100)})
    limits.memo_size_error_bytes = 50
    limits.memo_size_warn_bytes = 200
    assert not history_limits.memo_too_large(memo)  # as the reference: under warn, never an error
    limits.memo_size_warn_bytes = 20
    assert history_limits.memo_too_large(memo)
    with pytest.raises(InvalidArgument, match="Memo size exceeds limit."):
        history_limits.check_start_memo(memo)


async def test_updates_of_a_failed_task_get_the_error_and_are_not_shipped_again() -> None:
    ms = minimal_state()
    Transition(ms, 1).schedule_workflow_task()
    wt = Transition(ms, 2).start_workflow_task("r", "worker")
    registry = UpdateRegistry()
    entry = registry.admit(Request(meta=Meta(update_id="u1")))
    assert registry.ship(wt) == [entry]
    abort = registry.abort_sent_with(wt)
    assert entry.error is None  # only once the task's failure is committed
    waiter = asyncio.ensure_future(entry.changed.wait())
    abort()
    await asyncio.wait_for(waiter, 1)
    assert isinstance(entry.error, WorkflowNotReady)
    assert entry.error.message == WORKFLOW_TASK_FAILED_MESSAGE
    # The next attempt does not carry it; a retry of the same update id finds the same answer.
    Transition(ms, 3).fail_workflow_task(1, None, "worker")
    next_wt = Transition(ms, 4).start_workflow_task("r2", "worker")
    assert registry.undelivered(next_wt) == []
    assert registry.ship(next_wt) == []
    assert registry.admit(Request(meta=Meta(update_id="u1"))).error is entry.error


async def test_updates_of_a_failed_task_are_carried_again_until_the_failing_attempt() -> None:
    """As the reference, the next attempt carries the updates of a task the worker failed; from attempt
    FAILING_TASK_ATTEMPT on, Hourglass gives up on them (the reference would refuse their calls anyway)."""
    ms = minimal_state()
    Transition(ms, 1).schedule_workflow_task()
    wt = Transition(ms, 2).start_workflow_task("r", "worker")
    registry = UpdateRegistry()
    entry = registry.admit(Request(meta=Meta(update_id="u1")))
    for attempt in range(1, FAILING_TASK_ATTEMPT):
        assert wt.attempt == attempt
        assert registry.ship(wt) == [entry]
        registry.on_task_failed(wt)()
        assert entry.error is None
        Transition(ms, 3).fail_workflow_task(1, None, "worker")
        wt = Transition(ms, 4).start_workflow_task(f"r{attempt}", "worker")
    assert wt.attempt == FAILING_TASK_ATTEMPT
    assert registry.ship(wt) == [entry]
    registry.on_task_failed(wt)()
    assert isinstance(entry.error, WorkflowNotReady)
    assert entry.error.message == WORKFLOW_TASK_FAILED_MESSAGE
    Transition(ms, 5).fail_workflow_task(1, None, "worker")
    assert registry.ship(Transition(ms, 6).start_workflow_task("last", "worker")) == []


def test_limit_errors_cross_members_with_their_class() -> None:
    """Between cluster members an error travels by class name: the engine tells a target that has all
    its signals from one terminated for its size (external signals record the right cause)."""
    from hourglass.cluster.errors import HistoryLimitExceeded
    from hourglass.cluster.rpc import codec

    for error in (SignalsLimitExceeded(), HistoryLimitExceeded("Workflow history count exceeds limit.")):
        decoded = codec.decode_error(codec.encode_error(error))
        assert type(decoded) is type(error)
        assert (decoded.code, decoded.message) == (error.code, error.message)


_PENDING_CASES = [
    (
        "activities",
        "num_pending_activities_error",
        Command(
            command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
            schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                activity_id="a",
                activity_type=ActivityType(name="act"),
                task_queue=TaskQueue(name="q"),
                start_to_close_timeout=Duration(seconds=5),
            ),
        ),
        "PendingActivitiesLimitExceeded: the number of pending activities, 2, has reached the per-workflow "
        "limit of 2",
    ),
    (
        "children",
        "num_pending_child_executions_error",
        Command(
            command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
            start_child_workflow_execution_command_attributes=StartChildWorkflowExecutionCommandAttributes(
                workflow_id="child", workflow_type=WorkflowType(name="T")
            ),
        ),
        "PendingChildWorkflowsLimitExceeded: the number of pending child workflow executions, 2, has reached "
        "the per-workflow limit of 2",
    ),
    (
        "signals_requested",
        "num_pending_signals_error",
        Command(
            command_type=CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
            signal_external_workflow_execution_command_attributes=SignalExternalWorkflowExecutionCommandAttributes(
                execution=WorkflowExecution(workflow_id="other"), signal_name="s"
            ),
        ),
        "PendingSignalsLimitExceeded: the number of pending signals to external workflows, 2, has reached the "
        "per-workflow limit of 2",
    ),
    (
        "cancels_requested",
        "num_pending_cancel_requests_error",
        Command(
            command_type=CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
            request_cancel_external_workflow_execution_command_attributes=(
                RequestCancelExternalWorkflowExecutionCommandAttributes(workflow_id="other")
            ),
        ),
        "PendingRequestCancelLimitExceeded: the number of pending requests to cancel external workflows, 2, "
        "has reached the per-workflow limit of 2",
    ),
]


@pytest.mark.parametrize(
    ("pending", "limit", "command", "message"), _PENDING_CASES, ids=lambda v: str(v)[:20]
)
def test_a_command_past_a_pending_limit_fails_the_task(limits, pending, limit, command, message) -> None:
    setattr(limits, limit, 2)
    ms = minimal_state()
    ms.info.namespace = "default"
    # Two pending already (only their number matters to the check).
    getattr(ms, pending).update({i: SimpleNamespace(activity_id=f"p{i}") for i in (1, 2)})
    with pytest.raises(CommandError) as refused:
        handle_commands(Transition(ms, 1), [command], 5, "worker", False, 2 * 1024 * 1024)
    assert refused.value.failure_message == message
