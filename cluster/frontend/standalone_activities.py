"""The frontend's standalone-activity RPCs (issue 15): StartActivityExecution and the calls on one.

Each names the activity by id (and optionally run id); history keeps it as a hidden run (see
cluster/history/standalone.py), so these handlers only translate ids, messages and errors.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.activity.v1 import ActivityExecutionListInfo
from temporalio.api.common.v1 import ActivityType, WorkflowExecution
from temporalio.api.enums.v1 import CallbackState
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound, Unimplemented
from hourglass.cluster.frontend import visibility
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.history import standalone_activity as standalone
from hourglass.cluster.history import standalone_ids
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.timeutil import to_duration, to_timestamp
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.paging import PageTokenError
from hourglass.persistence.visibility.resolve import ArchetypeView
from hourglass.persistence.visibility.values import parse_search_attributes

# How ListActivityExecutions / CountActivityExecutions read a query: the reference's activity search
# attributes (ActivityId is the business id, ActivityType, ExecutionStatus as the activity's status names,
# TaskQueue) over the hidden runs' columns.
VIEW = ArchetypeView(
    id_prefix=standalone_ids.PREFIX,
    aliases={"ActivityId": names.WORKFLOW_ID, "ActivityType": names.WORKFLOW_TYPE},
    statuses=visibility.ARCHETYPE_STATUSES,
)


def check_enabled() -> None:
    if not LIMITS.enable_standalone_activities:
        raise Unimplemented("Standalone activity is disabled (dynamic config activity.enableStandalone).")


def execution(request: Any) -> WorkflowExecution:
    """The hidden run a request names: activity_id is required, run_id optional (the latest run)."""
    check_enabled()
    if not request.activity_id:
        raise InvalidArgument("activity ID is required")
    return WorkflowExecution(
        workflow_id=standalone_ids.workflow_id(request.activity_id), run_id=request.run_id
    )


async def mutable_state(history: Any, namespace_id: str, request: Any) -> MutableState:
    try:
        return await history.get_mutable_state(namespace_id, execution(request))
    except NotFound:
        raise NotFound(f"activity not found for ID: {request.activity_id}") from None


def long_poll_token(ms: MutableState) -> bytes:
    """A standalone activity's or Nexus operation's describe long_poll_token: the run and the version of
    its state described."""
    return json.dumps({"run_id": ms.info.run_id, "version": ms.db_record_version}).encode()


def check_long_poll(request: Any) -> tuple[str, int] | None:
    """The run and state version a describe (of a standalone activity or Nexus operation) with a
    long_poll_token waits to see change (None: no token),
    with the reference's INVALID_ARGUMENT messages for a token without a run id or one this server did not
    issue."""
    if not request.long_poll_token:
        return None
    if not request.run_id:
        raise InvalidArgument("run id is required when long poll token is provided")
    try:
        token = json.loads(request.long_poll_token)
        run_id, version = token["run_id"], token["version"]
        if not isinstance(run_id, str) or not isinstance(version, int):
            raise ValueError(token)
    except (ValueError, TypeError, KeyError):
        raise InvalidArgument("invalid long poll token") from None
    return run_id, version


async def describe_long_poll(
    history: Any, ms: MutableState, request: rr.DescribeActivityExecutionRequest, timeout: float
) -> rr.DescribeActivityExecutionResponse:
    """With a long_poll_token: the activity as soon as it changed from the state the token names; an empty
    response when `timeout` passes first (describe again with the same token), as the reference answers."""
    token = check_long_poll(request)
    if token is not None and token[0] != ms.info.run_id:
        raise InvalidArgument("invalid long poll token")
    version = None if token is None else token[1]
    if version is not None and version == ms.db_record_version:
        await history.wait_for_change(ms, timeout)
        ms = await history.get_mutable_state(
            ms.info.namespace_id, WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        )
        if ms.db_record_version == version:
            return rr.DescribeActivityExecutionResponse()
    return await describe(history, ms, request)


async def describe(history: Any, ms: MutableState, request: Any) -> rr.DescribeActivityExecutionResponse:
    events = await history.read_history(ms)
    scheduled = next(
        e.activity_task_scheduled_event_attributes
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    )
    resp = rr.DescribeActivityExecutionResponse(
        run_id=ms.info.run_id, info=standalone.info(ms, scheduled), long_poll_token=long_poll_token(ms)
    )
    if not request.include_heartbeat_details:
        resp.info.ClearField("heartbeat_details")
    if not request.include_last_failure:
        resp.info.ClearField("last_failure")
    if request.include_input and scheduled.HasField("input"):
        resp.input.CopyFrom(scheduled.input)
    if request.include_outcome:
        outcome = standalone.outcome(events)
        if outcome is not None:
            resp.outcome.CopyFrom(outcome)
    # The completion callbacks it was started with (a Nexus handler's backing activity), as the reference
    # lists them: called once the activity closed.
    for callback in ms.info.completion_callbacks:
        info = resp.callbacks.add()
        info.trigger.activity_closed.SetInParent()
        info.info.callback.CopyFrom(callback)
        info.info.registration_time.CopyFrom(to_timestamp(ms.info.start_time_ms))
        info.info.state = (
            CallbackState.CALLBACK_STATE_STANDBY if ms.running else CallbackState.CALLBACK_STATE_SUCCEEDED
        )
        info.info.attempt = 0 if ms.running else 1
    return resp


async def poll(history: Any, ms: MutableState, timeout: float) -> rr.PollActivityExecutionResponse:
    """The outcome once the activity closed; an empty response when `timeout` passes first (poll again)."""
    if ms.running:
        await history.wait_for_change(ms, timeout, until_closed=True)
        ms = await history.get_mutable_state(
            ms.info.namespace_id, WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        )
    # Still running when the wait ends: an empty response, as the reference's (the caller polls again).
    if ms.running:
        return rr.PollActivityExecutionResponse()
    resp = rr.PollActivityExecutionResponse(run_id=ms.info.run_id)
    outcome = standalone.outcome(await history.read_history(ms))
    if outcome is not None:
        resp.outcome.CopyFrom(outcome)
    return resp


async def list_executions(
    request: rr.ListActivityExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ListActivityExecutionsResponse:
    """ListActivityExecutions: the visibility query over standalone activities only."""
    check_enabled()
    ns = await namespaces.get(request.namespace)
    query = await _query(ns.id, request.query, search_attributes)
    page_size = request.page_size
    if page_size <= 0 or page_size > visibility.MAX_PAGE_SIZE:
        page_size = visibility.MAX_PAGE_SIZE
    try:
        records, token = await store.query_visibility(ns.id, query, page_size, request.next_page_token)
    except PageTokenError:
        raise InvalidArgument("Invalid NextPageToken.") from None
    return rr.ListActivityExecutionsResponse(
        executions=[list_info(record) for record in records], next_page_token=token
    )


async def count_executions(
    request: rr.CountActivityExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.CountActivityExecutionsResponse:
    """CountActivityExecutions, with `GROUP BY ExecutionStatus` answered as groups (and their total)."""
    check_enabled()
    ns = await namespaces.get(request.namespace)
    query = await _query(ns.id, request.query, search_attributes)
    return await visibility.count(store, ns.id, query, rr.CountActivityExecutionsResponse)


async def _query(
    namespace_id: str, text: str, search_attributes: SearchAttributeRegistry
) -> model.VisibilityQuery:
    """A list/count query over standalone activities only, in their own attribute names (VIEW)."""
    query = await search_attributes.parse_query(namespace_id, text, VIEW)
    return visibility.scoped_to_prefix(query, standalone_ids.PREFIX)


def list_info(record: VisibilityRecord) -> ActivityExecutionListInfo:
    """What ListActivityExecutions shows of one activity (its hidden run's visibility record)."""
    info = ActivityExecutionListInfo(
        activity_id=standalone_ids.activity_id(record.workflow_id),
        run_id=record.run_id,
        activity_type=ActivityType(name=record.workflow_type),
        schedule_time=to_timestamp(record.start_time_ms),
        execution_time=to_timestamp(record.execution_time_ms or record.start_time_ms),
        status=standalone.status_of(record.status),
        task_queue=record.task_queue,
        state_transition_count=record.state_transition_count,
    )
    info.search_attributes.CopyFrom(parse_search_attributes(record.search_attributes))
    if record.close_time_ms:
        info.close_time.CopyFrom(to_timestamp(record.close_time_ms))
        info.execution_duration.CopyFrom(to_duration(record.close_time_ms - record.start_time_ms))
    return info
