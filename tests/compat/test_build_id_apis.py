"""The older build-id versioning APIs (issue 15) as the SDKs call them, against the reference's default.

The reference 1.32's start-dev keeps version sets (v0.1) and assignment rules (v0.2) switched off and
refuses their RPCs with PERMISSION_DENIED once the namespace is found; the SDKs probe exactly that (the
Python SDK's `worker_versioning_enabled` skips its build-id tests on it). Hourglass answers the same, shows a
named build id's task queue as the reference does (empty, unreachable), and advertises build-id based
versioning in GetSystemInfo as the reference does: a worker with a build id runs and history records it.
The same tests run against the reference (HOURGLASS_COMPAT_TARGET=reference).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue, TaskQueueVersionSelection
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkflowExecutionRequest,
    GetSystemInfoRequest,
    GetWorkerBuildIdCompatibilityRequest,
    GetWorkerTaskReachabilityRequest,
    GetWorkerVersioningRulesRequest,
    GetWorkflowExecutionHistoryRequest,
    StartWorkflowExecutionRequest,
    UpdateWorkerBuildIdCompatibilityRequest,
    UpdateWorkerVersioningRulesRequest,
)
from temporalio.client import BuildIdOpAddNewCompatible, BuildIdOpAddNewDefault, Client
from temporalio.service import RPCError, RPCStatusCode

from .helpers import new_id, run_worker
from .workflows import GreetSomeone

VERSION_SETS_OFF = "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
RULES_OFF = "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace."


async def _refused(call: Awaitable[Any]) -> RPCError:
    with pytest.raises(RPCError) as raised:
        await call
    return raised.value


async def test_version_set_apis_refused_as_disabled(client: Client) -> None:
    """What the Python SDK's own build-id helpers get: PERMISSION_DENIED, the reference's words."""
    tq = new_id("tq")
    for call in (
        client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("1.0")),
        client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewCompatible("1.1", "1.0")),
        client.get_worker_build_id_compatibility(tq),
    ):
        error = await _refused(call)
        assert (error.status, error.message) == (RPCStatusCode.PERMISSION_DENIED, VERSION_SETS_OFF)
    error = await _refused(client.get_worker_task_reachability(["1.0"], [tq]))
    assert (error.status, error.message) == (RPCStatusCode.PERMISSION_DENIED, RULES_OFF)


async def test_rule_apis_refused_as_disabled(client: Client) -> None:
    ws, tq = client.workflow_service, new_id("tq")
    insert = UpdateWorkerVersioningRulesRequest.InsertBuildIdAssignmentRule(
        rule_index=0, rule={"target_build_id": "1.0"}
    )
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: ws.get_worker_versioning_rules(
            GetWorkerVersioningRulesRequest(namespace="default", task_queue=tq)
        ),
        lambda: ws.update_worker_versioning_rules(
            UpdateWorkerVersioningRulesRequest(
                namespace="default", task_queue=tq, insert_assignment_rule=insert
            )
        ),
        lambda: ws.get_worker_task_reachability(GetWorkerTaskReachabilityRequest(namespace="default")),
    ]
    for call in calls:
        error = await _refused(call())
        assert (error.status, error.message) == (RPCStatusCode.PERMISSION_DENIED, RULES_OFF)


async def test_namespace_is_checked_first(client: Client) -> None:
    """An unknown namespace is NOT_FOUND and a missing one INVALID_ARGUMENT, before the refusal."""
    ws, ns = client.workflow_service, new_id("no-such-ns")
    requests: list[Callable[[str], Awaitable[Any]]] = [
        lambda n: ws.get_worker_build_id_compatibility(
            GetWorkerBuildIdCompatibilityRequest(namespace=n, task_queue="tq")
        ),
        lambda n: ws.update_worker_build_id_compatibility(
            UpdateWorkerBuildIdCompatibilityRequest(
                namespace=n, task_queue="tq", add_new_build_id_in_new_default_set="1.0"
            )
        ),
        lambda n: ws.get_worker_versioning_rules(
            GetWorkerVersioningRulesRequest(namespace=n, task_queue="tq")
        ),
        lambda n: ws.get_worker_task_reachability(
            GetWorkerTaskReachabilityRequest(namespace=n, build_ids=["1.0"])
        ),
    ]
    for call in requests:
        error = await _refused(call(ns))
        assert (error.status, error.message) == (RPCStatusCode.NOT_FOUND, f"Namespace {ns} is not found.")
    error = await _refused(requests[0](""))
    assert (error.status, error.message) == (RPCStatusCode.INVALID_ARGUMENT, "Namespace is empty.")


async def _describe(client: Client, tq: str, **kwargs: Any) -> dict[str, Any]:
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=tq), api_mode=1, **kwargs)
    )
    return MessageToDict(resp)


async def test_describe_task_queue_reachability_of_build_ids(client: Client) -> None:
    """`temporal task-queue describe --select-build-id ... --report-reachability`: a build id no rule or
    version set targets is unreachable; the unversioned queue is reachable."""
    tq = new_id("tq")
    both = {"1": {}, "2": {}}
    got = await _describe(
        client,
        tq,
        versions=TaskQueueVersionSelection(build_ids=["2.0"], unversioned=True),
        report_task_reachability=True,
    )
    assert got == {
        "versionsInfo": {
            "2.0": {"typesInfo": both, "taskReachability": "BUILD_ID_TASK_REACHABILITY_UNREACHABLE"},
            "": {"typesInfo": both, "taskReachability": "BUILD_ID_TASK_REACHABILITY_REACHABLE"},
        }
    }
    stats = {"stats": {"approximateBacklogAge": "0s"}}
    got = await _describe(
        client,
        tq,
        versions=TaskQueueVersionSelection(build_ids=["2.0", "3.0"]),
        report_task_reachability=True,
        report_stats=True,
        report_pollers=True,
    )
    assert got == {
        "versionsInfo": {
            b: {
                "typesInfo": {"1": stats, "2": stats},
                "taskReachability": "BUILD_ID_TASK_REACHABILITY_UNREACHABLE",
            }
            for b in ("2.0", "3.0")
        }
    }
    # A fresh queue: the reference keeps reporting stats for a build id's queue once they were asked.
    got = await _describe(
        client, new_id("tq"), versions=TaskQueueVersionSelection(build_ids=["2.0"]), task_queue_types=[2]
    )
    assert got == {"versionsInfo": {"2.0": {"typesInfo": {"2": {}}}}}


async def test_system_info_and_a_worker_with_a_build_id(client: Client) -> None:
    """GetSystemInfo says build ids are understood (as the reference's does), so the SDK stamps its
    completions with the worker's build id; the workflow runs and its history names the build."""
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.capabilities.build_id_based_versioning
    async with run_worker(client, build_id="build-7") as tq:
        handle = await client.start_workflow(GreetSomeone.run, "build", id=new_id(), task_queue=tq)
        assert await handle.result() == "Hello, build!"
    completed = [
        e.workflow_task_completed_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    assert completed and all(a.worker_version.build_id == "build-7" for a in completed)
    assert all(a.binary_checksum == "" for a in completed)
    # The activity attempt's started event names the build that ran it (here started eagerly).
    (started,) = [
        e.activity_task_started_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started.worker_version.build_id == "build-7"
    async with run_worker(client, build_id="build-8", disable_eager_activity_execution=True) as tq:
        # Not eager: the activity worker polls for it.
        handle = await client.start_workflow(GreetSomeone.run, "polled", id=new_id(), task_queue=tq)
        assert await handle.result() == "Hello, polled!"
    (started,) = [
        e.activity_task_started_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started.worker_version.build_id == "build-8"


async def test_zero_timeouts_given_are_echoed(client: Client) -> None:
    """A start request that gives 0s execution and run timeouts (as Go clients and the `temporal` CLI do)
    sees them in the started event and describe's execution config; one that gives none sees none."""
    ws = client.workflow_service
    shown = {}
    for label, given in (
        ("given", {"workflow_execution_timeout": {}, "workflow_run_timeout": {}}),
        ("none", {}),
    ):
        wid = new_id()
        await ws.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=wid,
                workflow_type={"name": "Nobody"},
                task_queue={"name": new_id("tq")},
                request_id=new_id("r"),
                **given,
            )
        )
        described = await ws.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace="default", execution={"workflow_id": wid})
        )
        history = await ws.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(namespace="default", execution={"workflow_id": wid})
        )
        attrs = history.history.events[0].workflow_execution_started_event_attributes
        config = MessageToDict(described.execution_config)
        shown[label] = (
            {k: v for k, v in config.items() if k in ("workflowExecutionTimeout", "workflowRunTimeout")},
            {
                k: v
                for k, v in MessageToDict(attrs).items()
                if k in ("workflowExecutionTimeout", "workflowRunTimeout")
            },
        )
    zero = {"workflowExecutionTimeout": "0s", "workflowRunTimeout": "0s"}
    assert shown == {"given": (zero, zero), "none": ({}, {})}
