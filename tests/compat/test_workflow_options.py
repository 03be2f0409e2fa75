"""UpdateWorkflowExecutionOptions (`temporal workflow update-options`) on both servers in one run: the same
sequence of calls through the SDK's raw call and the CLI (text and -o json) gets the same answers and
errors, writes the same WORKFLOW_EXECUTION_OPTIONS_UPDATED events (none for a call that changes nothing)
and describe shows the same options."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client
from temporalio.service import RPCError

from . import history_diff
from .helpers import new_id
from .servers import ServerProcess
from .test_cli import cli, cli_json

# (options as JSON, update mask): each call of the sequence, in order.
CALLS: list[tuple[dict[str, Any], list[str]]] = [
    ({"priority": {"priorityKey": 3, "fairnessKey": "a"}}, ["priority"]),
    ({"priority": {"priorityKey": 4}}, ["priority.priority_key"]),  # a sub-field: the key kept
    ({}, []),  # an empty mask: nothing written, the current options answered
    ({}, ["nosuch"]),
    ({"priority": {"priorityKey": -1}}, ["priority"]),
    ({"versioningOverride": {}}, ["versioning_override"]),
    ({"versioningOverride": {"autoUpgrade": True}}, ["versioning_override"]),
    ({"versioningOverride": {"autoUpgrade": True}}, ["versioning_override"]),  # the same again: no event
    ({"versioningOverride": {"behavior": "VERSIONING_BEHAVIOR_AUTO_UPGRADE"}}, ["versioning_override"]),
    (
        {"versioningOverride": {"pinned": {"behavior": "PINNED_OVERRIDE_BEHAVIOR_PINNED"}}},
        ["versioning_override"],
    ),
    (
        {
            "versioningOverride": {
                "pinned": {
                    "behavior": "PINNED_OVERRIDE_BEHAVIOR_PINNED",
                    "version": {"deploymentName": "d", "buildId": "b"},
                }
            }
        },
        ["versioning_override"],
    ),
    ({}, ["versioning_override"]),  # unset
    ({}, ["priority"]),
    ({"priority": {}}, ["priority"]),
]


async def _call(client: Client, execution: WorkflowExecution, options: dict, paths: list[str]) -> Any:
    request = rr.UpdateWorkflowExecutionOptionsRequest(
        namespace="default",
        workflow_execution=execution,
        workflow_execution_options=ParseDict(options, WorkflowExecutionOptions()),
        update_mask=FieldMask(paths=paths),
        identity="options-test",
    )
    try:
        response = await client.workflow_service.update_workflow_execution_options(request)
    except RPCError as e:
        return _without_ids(("error", e.status, e.message))
    return MessageToDict(response)


async def _listed(client: Client, workflow_id: str) -> list[str]:
    """The ids a list by the behavior search attribute finds, once visibility has caught up (or not)."""
    query = f"WorkflowId = '{workflow_id}' AND TemporalWorkflowVersioningBehavior = 'AutoUpgrade'"
    found: list[str] = []
    for _ in range(25):
        found = [w.id async for w in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.2)
    return found


def _described(response: rr.DescribeWorkflowExecutionResponse) -> dict[str, Any]:
    info = MessageToDict(response.workflow_execution_info)
    return {k: info.get(k) for k in ("priority", "versioningInfo", "searchAttributes", "historyLength")}


async def _sequence(client: Client) -> dict[str, Any]:
    """Every call of CALLS on a fresh run, then the errors for missing / closed runs; answers by name."""
    workflow_id = new_id("options")
    handle = await client.start_workflow("NoWorker", id=workflow_id, task_queue=new_id("tq"))
    execution = WorkflowExecution(workflow_id=workflow_id)
    answers: dict[str, Any] = {"calls": [await _call(client, execution, o, p) for o, p in CALLS]}
    described = await client.workflow_service.describe_workflow_execution(
        rr.DescribeWorkflowExecutionRequest(namespace="default", execution=execution)
    )
    answers["describe"] = _described(described)
    history = await handle.fetch_history()
    answers["history"] = history_diff.normalize(history, {workflow_id: "<wf>"})
    answers["options_events"] = [
        MessageToDict(e.workflow_execution_options_updated_event_attributes)
        | {"mayIgnore": e.worker_may_ignore}
        for e in history.events
        if e.HasField("workflow_execution_options_updated_event_attributes")
    ]
    missing = WorkflowExecution(workflow_id=new_id("missing"))
    answers["missing"] = await _call(client, missing, {"priority": {}}, ["priority"])
    answers["bad_run_id"] = await _call(
        client, WorkflowExecution(workflow_id=workflow_id, run_id="x"), {}, []
    )
    no_options = rr.UpdateWorkflowExecutionOptionsRequest(namespace="default", workflow_execution=execution)
    try:
        await client.workflow_service.update_workflow_execution_options(no_options)
    except RPCError as e:
        answers["no_options"] = (e.status, e.message)
    await handle.terminate()
    answers["closed"] = await _call(client, execution, {"priority": {"priorityKey": 1}}, ["priority"])
    return answers


async def test_same_answers_events_and_describe_as_the_reference(
    client: Client, reference_client: Client
) -> None:
    mine, reference = await _sequence(client), await _sequence(reference_client)
    assert mine["calls"] == reference["calls"]
    assert mine["options_events"] == reference["options_events"]
    assert not history_diff.diff(mine["history"], reference["history"], "hourglass", "reference")
    for name in ("describe", "missing", "bad_run_id", "no_options", "closed"):
        assert mine[name] == reference[name], name
    # What the sequence proves, spelled out: seven changes were written, and the unchanged calls were not.
    assert len(mine["options_events"]) == 7
    assert mine["calls"][2] == {
        "workflowExecutionOptions": {"priority": {"priorityKey": 4, "fairnessKey": "a"}}
    }
    assert mine["calls"][3][:2] == ("error", 3) and 'invalid path "nosuch"' in mine["calls"][3][2]
    assert mine["describe"]["versioningInfo"] == {} and mine["describe"]["priority"] == {}  # both unset


def _cli_normalized(text: str) -> str:
    return re.sub(r"(options|tq|missing)-[0-9a-f-]+", r"<\1>", text)


def _without_ids(answer: Any) -> Any:
    """An error's message names the workflow id, unique per run."""
    if isinstance(answer, tuple):
        return tuple(_cli_normalized(a) if isinstance(a, str) else a for a in answer)
    return answer


async def _cli_sequence(srv: ServerProcess, client: Client) -> list[Any]:
    workflow_id = new_id("options")
    await client.start_workflow("NoWorker", id=workflow_id, task_queue=new_id("tq"))
    wf = ["--workflow-id", workflow_id]
    outputs: list[Any] = []
    code, out, err = await cli(
        srv, "workflow", "update-options", *wf, "--versioning-override-behavior", "auto_upgrade"
    )
    outputs.append((code, _cli_normalized(out), _cli_normalized(err)))
    code, out, err = await cli(
        srv,
        "workflow",
        "update-options",
        *wf,
        "--versioning-override-behavior",
        "pinned",
        "--versioning-override-deployment-name",
        "d",
        "--versioning-override-build-id",
        "b",
        check=False,
    )
    outputs.append((code, _cli_normalized(out), _cli_normalized(err)))
    described = await cli_json(srv, "workflow", "describe", *wf)
    outputs.append(described["workflowExecutionInfo"].get("versioningInfo"))
    outputs.append(await _listed(client, workflow_id) == [workflow_id])  # lists see the behavior too
    code, out, err = await cli(
        srv, "workflow", "update-options", *wf, "--versioning-override-behavior", "unspecified"
    )
    outputs.append((code, _cli_normalized(out), _cli_normalized(err)))
    code, out, err = await cli(
        srv, "workflow", "update-options", *wf, "--versioning-override-behavior", "auto_upgrade", "-o", "json"
    )
    outputs.append((code, _cli_normalized(out), _cli_normalized(err)))
    return outputs


async def test_the_cli_in_text_and_json(
    server: ServerProcess, reference_server: ServerProcess, client: Client, reference_client: Client
) -> None:
    mine = await _cli_sequence(server, client)
    reference = await _cli_sequence(reference_server, reference_client)
    assert mine == reference
    assert mine[0][0] == 0 and mine[1][0] != 0 and mine[3] is True
    assert mine[2] == {
        "versioningOverride": {"behavior": "VERSIONING_BEHAVIOR_AUTO_UPGRADE", "autoUpgrade": True}
    }
