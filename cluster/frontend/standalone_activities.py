"""The frontend's standalone-activity RPCs (issue 15): StartActivityExecution and the calls on one.

Each names the activity by id (and optionally run id); history keeps it as a hidden run (see
cluster/history/standalone.py), so these handlers only translate ids, messages and errors.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound, Unimplemented
from hourglass.cluster.history import standalone_activity as standalone
from hourglass.cluster.history import standalone_ids
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState


def check_enabled() -> None:
    if not LIMITS.enable_standalone_activities:
        raise Unimplemented("Standalone activity is disabled (dynamic config activity.enableStandalone).")


def execution(request: Any) -> WorkflowExecution:
    """The hidden run a request names: activity_id is required, run_id optional (the latest run)."""
    check_enabled()
    if not request.activity_id:
        raise InvalidArgument("ActivityId is not set on request.")
    return WorkflowExecution(
        workflow_id=standalone_ids.workflow_id(request.activity_id), run_id=request.run_id
    )


async def mutable_state(history: Any, namespace_id: str, request: Any) -> MutableState:
    try:
        return await history.get_mutable_state(namespace_id, execution(request))
    except NotFound:
        raise NotFound(f"activity execution not found: ActivityId: {request.activity_id}") from None


async def describe(history: Any, ms: MutableState, request: Any) -> rr.DescribeActivityExecutionResponse:
    events = await history.read_history(ms)
    scheduled = next(
        e.activity_task_scheduled_event_attributes
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    )
    resp = rr.DescribeActivityExecutionResponse(run_id=ms.info.run_id, info=standalone.info(ms, scheduled))
    if not request.include_heartbeat_details:
        resp.info.ClearField("heartbeat_details")
    if request.include_input and scheduled.HasField("input"):
        resp.input.CopyFrom(scheduled.input)
    if request.include_outcome:
        outcome = standalone.outcome(events)
        if outcome is not None:
            resp.outcome.CopyFrom(outcome)
    return resp


async def poll(history: Any, ms: MutableState, timeout: float) -> rr.PollActivityExecutionResponse:
    """The outcome once the activity closed; an empty response when `timeout` passes first (poll again)."""
    if ms.running:
        await history.wait_for_change(ms, timeout, until_closed=True)
        ms = await history.get_mutable_state(
            ms.info.namespace_id, WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        )
    resp = rr.PollActivityExecutionResponse(run_id=ms.info.run_id)
    if not ms.running:
        outcome = standalone.outcome(await history.read_history(ms))
        if outcome is not None:
            resp.outcome.CopyFrom(outcome)
    return resp
