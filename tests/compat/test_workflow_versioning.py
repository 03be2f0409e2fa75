"""Worker versioning, the workflow's side, on both servers in one run: the Python SDK's versioned workers
(`WorkerDeploymentConfig(use_worker_versioning=True)`, a PINNED workflow) of two builds poll one task
queue, and a workflow started with a pinned versioning override runs only on the pinned build. Its
history (event by event, the versioning fields included), describe's versioning_info, its search
attributes and a visibility list by TemporalWorkerDeploymentVersion are the reference's; a pinned task
no poller of its version takes waits until one comes; `workflow update-options` pins a run as the
reference does."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PostResetOperation, VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client, WorkflowHandle
from temporalio.common import PinnedVersioningOverride, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig

from . import history_diff
from .helpers import new_id, wait_for_event
from .servers import ServerProcess
from .test_cli import cli, cli_json
from .versioned_workflows import VersionedSteps, whoami_activity

# The versioning fields each event type carries on the reference (compared exactly, on every event).
_VERSIONING_FIELDS = {
    "workflow_execution_started_event_attributes": ("versioning_override",),
    "workflow_task_started_event_attributes": ("worker_version",),
    "workflow_task_completed_event_attributes": (
        "worker_version",
        "versioning_behavior",
        "worker_deployment_name",
        "deployment_version",
        "deployment",
        "worker_deployment_version",
    ),
    "activity_task_started_event_attributes": ("worker_version",),
}
# Search attributes of versioning (the rest of a run's are not this test's).
_VERSIONING_ATTRIBUTES = (
    "BuildIds",
    "TemporalWorkflowVersioningBehavior",
    "TemporalWorkerDeploymentVersion",
    "TemporalWorkerDeployment",
    "TemporalUsedWorkerDeploymentVersions",
)
# How long both builds poll before a start names one: the reference learns a version from its polls.
_POLL_SETTLE_S = 2.0
_VERSION_KNOWN_WITHIN_S = 20.0


@contextlib.asynccontextmanager
async def _versioned_workers(
    client: Client, task_queue: str, deployment: str, *builds: str
) -> AsyncIterator[None]:
    """One versioned worker per build of `deployment` on `task_queue` (no eager activities: every
    activity task goes through matching, where pinning applies)."""
    async with contextlib.AsyncExitStack() as stack:
        for build in builds:
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=[VersionedSteps],
                activities=[whoami_activity(build)],
                deployment_config=WorkerDeploymentConfig(
                    version=WorkerDeploymentVersion(deployment, build), use_worker_versioning=True
                ),
                disable_eager_activity_execution=True,
            )
            await stack.enter_async_context(worker)
        yield


def _redact(text: str, deployment: str) -> str:
    return re.sub(r"(pinned|tq)-[0-9a-f-]{36}", r"<\1>", text.replace(deployment, "<deployment>"))


def _versioning_of(event: HistoryEvent, deployment: str) -> dict[str, Any]:
    """An event's type and the versioning fields its attributes carry, as JSON with names redacted."""
    out: dict[str, Any] = {"type": EventType.Name(event.event_type)}
    for attrs_name, fields in _VERSIONING_FIELDS.items():
        if not event.HasField(attrs_name):
            continue
        attrs = getattr(event, attrs_name)
        for name in fields:
            descriptor = attrs.DESCRIPTOR.fields_by_name[name]
            if descriptor.message_type is not None:
                if attrs.HasField(name):
                    out[name] = MessageToDict(getattr(attrs, name))
            elif descriptor.enum_type is not None:
                if getattr(attrs, name):
                    out[name] = descriptor.enum_type.values_by_number[getattr(attrs, name)].name
            elif getattr(attrs, name):
                out[name] = getattr(attrs, name)
    return _redacted_json(out, deployment)


def _redacted_json(value: Any, deployment: str) -> Any:
    if isinstance(value, str):
        return _redact(value, deployment)
    if isinstance(value, dict):
        return {k: _redacted_json(v, deployment) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted_json(v, deployment) for v in value]
    return value


def _attributes(indexed: Any, deployment: str) -> dict[str, str]:
    """The versioning search attributes, decoded (their JSON text) and redacted."""
    return {
        name: _redact(indexed[name].data.decode(), deployment)
        for name in _VERSIONING_ATTRIBUTES
        if name in indexed
    }


async def _listed(client: Client, query: str) -> list[str]:
    """The ids a visibility list finds once it has caught up (lists are eventually consistent)."""
    found: list[str] = []
    for _ in range(50):
        found = [w.id async for w in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    return found


async def _start_pinned(
    client: Client, workflow_id: str, task_queue: str, deployment: str, build: str
) -> WorkflowHandle[Any, Any]:
    """Start VersionedSteps pinned to `build`, once the server knows the version is in the queue (the
    reference learns it from the version's polls a moment after they begin, and refuses the start with
    FAILED_PRECONDITION "... is not present in task queue ..." until then; so does Hourglass)."""
    deadline = time.monotonic() + _VERSION_KNOWN_WITHIN_S
    while True:
        try:
            return await client.start_workflow(
                VersionedSteps.run,
                id=workflow_id,
                task_queue=task_queue,
                versioning_override=PinnedVersioningOverride(WorkerDeploymentVersion(deployment, build)),
            )
        except RPCError as e:
            if e.status != RPCStatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                raise
            assert "is not present in task queue" in e.message, e.message
            await asyncio.sleep(0.5)


async def _pinned_run(client: Client) -> dict[str, Any]:
    """Builds b1 and b2 of one deployment poll a queue; a run pinned to b1 by its start request runs
    an activity, waits for a signal and completes. Everything a user sees of it, redacted."""
    task_queue, deployment, workflow_id = new_id("tq"), new_id("deploy"), new_id("pinned")
    async with _versioned_workers(client, task_queue, deployment, "b1", "b2"):
        await asyncio.sleep(_POLL_SETTLE_S)
        handle = await _start_pinned(client, workflow_id, task_queue, deployment, "b1")
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2, timeout=30)
        running = await client.workflow_service.describe_workflow_execution(
            rr.DescribeWorkflowExecutionRequest(
                namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
            )
        )
        await handle.signal(VersionedSteps.proceed)
        result = await handle.result()
    history = await handle.fetch_history()
    closed = await client.workflow_service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    answers: dict[str, Any] = {"result": result}
    answers["history"] = history_diff.normalize(
        history, {workflow_id: "<wf>", task_queue: "<tq>", deployment: "<deployment>"}
    )
    answers["versioning"] = [_versioning_of(e, deployment) for e in history.events]
    for name, described in (("running", running), ("closed", closed)):
        info = described.workflow_execution_info
        answers[f"{name}_versioning_info"] = _redacted_json(MessageToDict(info.versioning_info), deployment)
        answers[f"{name}_deployment_name"] = _redact(info.worker_deployment_name, deployment)
        answers[f"{name}_attributes"] = _attributes(info.search_attributes.indexed_fields, deployment)
        answers[f"{name}_stamp"] = MessageToDict(info.most_recent_worker_version_stamp)
    answers["listed_by_version"] = await _listed(
        client, f"WorkflowId = '{workflow_id}' AND TemporalWorkerDeploymentVersion = '{deployment}:b1'"
    ) == [workflow_id]
    answers["listed_by_other_version"] = [
        w.id
        async for w in client.list_workflows(
            f"WorkflowId = '{workflow_id}' AND TemporalWorkerDeploymentVersion = '{deployment}:b2'"
        )
    ]
    answers["listed_by_deployment_and_behavior"] = await _listed(
        client,
        f"WorkflowId = '{workflow_id}' AND TemporalWorkerDeployment = '{deployment}' "
        "AND TemporalWorkflowVersioningBehavior = 'Pinned'",
    ) == [workflow_id]
    return answers


async def test_a_pinned_run_history_describe_and_lists_as_the_reference(
    client: Client, reference_client: Client
) -> None:
    mine, reference = await asyncio.gather(_pinned_run(client), _pinned_run(reference_client))
    assert not history_diff.diff(mine["history"], reference["history"], "hourglass", "reference")
    assert mine["versioning"] == reference["versioning"]
    for name in sorted(set(mine) - {"history", "versioning"}):
        assert mine[name] == reference[name], name
    # What the comparison proves, spelled out: only build b1 ran it while b2 polled the same queue.
    assert mine["result"] == ["b1", "b1", "b1"]
    completed = [v for v in mine["versioning"] if v["type"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
    assert len(completed) == 3
    assert all(
        v["deployment_version"] == {"deploymentName": "<deployment>", "buildId": "b1"} for v in completed
    )
    assert mine["closed_versioning_info"]["behavior"] == "VERSIONING_BEHAVIOR_PINNED"
    assert mine["listed_by_version"] and not mine["listed_by_other_version"]


async def _waits_for_its_version(client: Client) -> dict[str, Any]:
    """A run pinned to b1 while only b2 polls: nothing starts its task; once b1 polls, it runs there."""
    task_queue, deployment, workflow_id = new_id("tq"), new_id("deploy"), new_id("pinned")
    # b1 polls first and leaves, so the version is known to the queue (the reference requires that).
    async with _versioned_workers(client, task_queue, deployment, "b1"):
        await asyncio.sleep(_POLL_SETTLE_S)
    async with _versioned_workers(client, task_queue, deployment, "b2"):
        await asyncio.sleep(_POLL_SETTLE_S)
        handle = await _start_pinned(client, workflow_id, task_queue, deployment, "b1")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            history = await handle.fetch_history()
            assert [EventType.Name(e.event_type) for e in history.events] == [
                "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
                "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
            ], "a b2 worker took a task pinned to b1"
            await asyncio.sleep(0.25)
        async with _versioned_workers(client, task_queue, deployment, "b1"):
            await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2, timeout=30)
            await handle.signal(VersionedSteps.proceed)
            result = await handle.result()
    history = await handle.fetch_history()
    return {
        "result": result,
        "history": history_diff.normalize(
            history, {workflow_id: "<wf>", task_queue: "<tq>", deployment: "<deployment>"}
        ),
        "versioning": [_versioning_of(e, deployment) for e in history.events],
    }


async def test_a_pinned_task_waits_for_a_poller_of_its_version(
    client: Client, reference_client: Client
) -> None:
    mine, reference = await asyncio.gather(
        _waits_for_its_version(client), _waits_for_its_version(reference_client)
    )
    assert mine["result"] == reference["result"] == ["b1", "b1", "b1"]
    assert not history_diff.diff(mine["history"], reference["history"], "hourglass", "reference")
    assert mine["versioning"] == reference["versioning"]


async def _update_options_pins(srv: ServerProcess, client: Client) -> list[Any]:
    """A run pinned to b1 by its start is pinned again with `workflow update-options`: to b1 (written as
    an options event), to a version its queue never saw (refused), then to b2, which runs its next task
    (its sticky b1 worker is left); describe shows the pin. (Not
    auto-upgrade: with no current version in the deployment, the reference then gives its tasks to no
    versioned worker, which is the deployments' routing.)"""
    task_queue, deployment, workflow_id = new_id("tq"), new_id("deploy"), new_id("pinned")
    outputs: list[Any] = []
    async with _versioned_workers(client, task_queue, deployment, "b1", "b2"):
        await asyncio.sleep(_POLL_SETTLE_S)
        handle = await _start_pinned(client, workflow_id, task_queue, deployment, "b1")
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2, timeout=30)
        wf = ["--workflow-id", workflow_id]
        for build in ("b1", "nosuch", "b2"):
            code, out, err = await cli(
                srv,
                "workflow",
                "update-options",
                *wf,
                "--versioning-override-behavior",
                "pinned",
                "--versioning-override-deployment-name",
                deployment,
                "--versioning-override-build-id",
                build,
                check=False,
            )
            outputs.append((code, _redact(out, deployment), _redact(err, deployment)))
        described = await cli_json(srv, "workflow", "describe", *wf)
        outputs.append(_redacted_json(described["workflowExecutionInfo"].get("versioningInfo"), deployment))
        await handle.signal(VersionedSteps.proceed)
        outputs.append(await handle.result())
    history = await handle.fetch_history()
    outputs.append(
        [
            _redacted_json(MessageToDict(e.workflow_execution_options_updated_event_attributes), deployment)
            for e in history.events
            if e.HasField("workflow_execution_options_updated_event_attributes")
        ]
    )
    return outputs


async def test_update_options_pins_as_the_reference(
    server: ServerProcess, reference_server: ServerProcess, client: Client, reference_client: Client
) -> None:
    mine, reference = await asyncio.gather(
        _update_options_pins(server, client), _update_options_pins(reference_server, reference_client)
    )
    assert mine == reference
    assert mine[0][0] == 0 and mine[1][0] != 0 and "is not present in task queue" in mine[1][2]
    assert mine[2][0] == 0 and mine[-2] == ["b1", "b1", "b2"]


async def _reset_repins(client: Client) -> dict[str, Any]:
    """A run pinned to b1 completes; a reset to its first workflow task with a post-reset operation that
    pins it to b2 makes a new run that keeps the start's override until the operation's options event,
    then runs on b2."""
    task_queue, deployment, workflow_id = new_id("tq"), new_id("deploy"), new_id("pinned")
    async with _versioned_workers(client, task_queue, deployment, "b1", "b2"):
        await asyncio.sleep(_POLL_SETTLE_S)
        handle = await _start_pinned(client, workflow_id, task_queue, deployment, "b1")
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", count=2, timeout=30)
        await handle.signal(VersionedSteps.proceed)
        await handle.result()
        pin_b2 = WorkflowExecutionOptions()
        pin_b2.versioning_override.pinned.behavior = (
            VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED
        )
        pin_b2.versioning_override.pinned.version.deployment_name = deployment
        pin_b2.versioning_override.pinned.version.build_id = "b2"
        reset = await client.workflow_service.reset_workflow_execution(
            rr.ResetWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                reason="repin",
                workflow_task_finish_event_id=4,
                request_id=new_id("reset"),
                post_reset_operations=[
                    PostResetOperation(
                        update_workflow_options=PostResetOperation.UpdateWorkflowOptions(
                            workflow_execution_options=pin_b2,
                            update_mask=FieldMask(paths=["versioning_override"]),
                        )
                    )
                ],
            )
        )
        # The base run's signal is reapplied: the new run goes on to complete by itself.
        new_run = client.get_workflow_handle(workflow_id, run_id=reset.run_id)
        result = await new_run.result()
    history = await new_run.fetch_history()
    described = await client.workflow_service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id, run_id=reset.run_id)
        )
    )
    info = described.workflow_execution_info
    return {
        "result": result,
        "history": history_diff.normalize(
            history, {workflow_id: "<wf>", task_queue: "<tq>", deployment: "<deployment>"}
        ),
        "versioning": [_versioning_of(e, deployment) for e in history.events],
        "options_events": [
            _redacted_json(MessageToDict(e.workflow_execution_options_updated_event_attributes), deployment)
            for e in history.events
            if e.HasField("workflow_execution_options_updated_event_attributes")
        ],
        "versioning_info": _redacted_json(MessageToDict(info.versioning_info), deployment),
        "attributes": _attributes(info.search_attributes.indexed_fields, deployment),
    }


async def test_reset_with_options_repins_as_the_reference(client: Client, reference_client: Client) -> None:
    mine, reference = await asyncio.gather(_reset_repins(client), _reset_repins(reference_client))
    assert not history_diff.diff(mine["history"], reference["history"], "hourglass", "reference")
    for name in ("versioning", "options_events", "versioning_info", "attributes", "result"):
        assert mine[name] == reference[name], name
    assert mine["versioning_info"]["deploymentVersion"]["buildId"] == "b2"


async def _start_pinned_to_an_unknown_version(client: Client) -> tuple[Any, ...]:
    task_queue, workflow_id = new_id("tq"), new_id("pinned")
    try:
        await client.start_workflow(
            VersionedSteps.run,
            id=workflow_id,
            task_queue=task_queue,
            versioning_override=PinnedVersioningOverride(WorkerDeploymentVersion("nosuch", "b9")),
        )
    except RPCError as e:
        return e.status, _redact(e.message, "nosuch")
    return ("started",)


async def test_a_start_pinned_to_a_version_no_worker_polled_is_refused(
    client: Client, reference_client: Client
) -> None:
    mine = await _start_pinned_to_an_unknown_version(client)
    assert mine == await _start_pinned_to_an_unknown_version(reference_client)
    assert mine[0] == RPCStatusCode.FAILED_PRECONDITION
