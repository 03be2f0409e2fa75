"""The fields a start, signal-with-start and signal answer carry beyond the run id, on both servers in one
run: status, first_execution_run_id and the link to the event the request wrote (a new start, a retried
one, USE_EXISTING, a retried start of a closed run, signal-with-start of a running and of a new workflow,
a signal with a request id). Nexus callers and the Web UI follow these links."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.client import Client

from .helpers import new_id

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _named(answer: Any, names: dict[str, str]) -> Any:
    """`answer` as JSON with each uuid (run ids, the test's workflow ids) replaced by a stable name."""
    text = repr(MessageToDict(answer))
    return _ID.sub(lambda m: names.setdefault(m.group(0), f"<id{len(names)}>"), text)


async def _answers(client: Client) -> list[Any]:
    ws, names = client.workflow_service, {}
    workflow_id = new_id("links")
    base = {
        "namespace": "default",
        "workflow_id": workflow_id,
        "workflow_type": {"name": "NoWorker"},
        "task_queue": {"name": new_id("tq")},
    }
    use_existing = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
    running = WorkflowExecution(workflow_id=workflow_id)
    calls = [
        ws.start_workflow_execution(rr.StartWorkflowExecutionRequest(**base, request_id="r1")),
        ws.start_workflow_execution(rr.StartWorkflowExecutionRequest(**base, request_id="r1")),
        ws.start_workflow_execution(
            rr.StartWorkflowExecutionRequest(
                **base, request_id="r2", workflow_id_conflict_policy=use_existing
            )
        ),
        ws.signal_with_start_workflow_execution(
            rr.SignalWithStartWorkflowExecutionRequest(**base, request_id="r3", signal_name="s")
        ),
        ws.signal_with_start_workflow_execution(
            rr.SignalWithStartWorkflowExecutionRequest(
                **{**base, "workflow_id": new_id("links")}, request_id="r4", signal_name="s"
            )
        ),
        ws.signal_workflow_execution(
            rr.SignalWorkflowExecutionRequest(
                namespace="default", workflow_execution=running, signal_name="s", request_id="r5"
            )
        ),
        ws.terminate_workflow_execution(
            rr.TerminateWorkflowExecutionRequest(namespace="default", workflow_execution=running)
        ),
        ws.start_workflow_execution(rr.StartWorkflowExecutionRequest(**base, request_id="r1")),
    ]
    return [_named(await call, names) for call in calls]


async def test_same_answers_as_the_reference(client: Client, reference_client: Client) -> None:
    mine, reference = await _answers(client), await _answers(reference_client)
    assert mine == reference
    assert "'status': 'WORKFLOW_EXECUTION_STATUS_TERMINATED'" in mine[-1]  # the retried start of a closed run
    assert "'signalLink'" in mine[3] and "'requestId': 'r5'" in mine[5]
