"""The frontend's standalone Nexus operation RPCs (issue 15): StartNexusOperationExecution and the calls on one.

Each names the operation by id (and optionally run id); history keeps it as a hidden run (see
cluster/history/standalone_nexus.py), so these handlers translate ids, messages, queries and errors, as
standalone_activities.py does for activities.
"""

from __future__ import annotations

import time
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, NexusOperationWaitStage
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument, NotFound, Unimplemented
from hourglass.cluster.frontend import visibility
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.frontend.standalone_activities import check_long_poll, long_poll_token
from hourglass.cluster.history import standalone_ids, standalone_nexus
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.paging import PageTokenError
from hourglass.persistence.visibility.resolve import ArchetypeView

# How ListNexusOperationExecutions / CountNexusOperationExecutions read a query: the reference's operation
# search attributes (OperationId is the business id, Endpoint, Operation, Service, ExecutionStatus as the
# operation's status names) over the hidden runs' columns and search attributes.
VIEW = ArchetypeView(
    id_prefix=standalone_ids.NEXUS_PREFIX,
    aliases={
        "OperationId": names.WORKFLOW_ID,
        "Endpoint": names.TASK_QUEUE,
        "Operation": names.WORKFLOW_TYPE,
    },
    keywords=(standalone_nexus.SERVICE_ATTRIBUTE,),
    statuses=visibility.ARCHETYPE_STATUSES,
)


def check_enabled() -> None:
    if not LIMITS.enable_standalone_nexus_operations:
        raise Unimplemented("Standalone Nexus operation is disabled")


def execution(request: Any) -> WorkflowExecution:
    """The hidden run a request names: operation_id is required, run_id optional (the latest run)."""
    check_enabled()
    if not request.operation_id:
        raise InvalidArgument("operation_id is required")
    if len(request.operation_id) > standalone_nexus.MAX_ID_LENGTH:
        raise InvalidArgument(
            f"operation_id exceeds length limit. Length={len(request.operation_id)} "
            f"Limit={standalone_nexus.MAX_ID_LENGTH}"
        )
    return WorkflowExecution(
        workflow_id=standalone_ids.nexus_workflow_id(request.operation_id), run_id=request.run_id
    )


async def mutable_state(history: Any, namespace_id: str, request: Any) -> MutableState:
    try:
        return await history.get_mutable_state(namespace_id, execution(request))
    except NotFound:
        raise NotFound(f"operation not found for ID: {request.operation_id}") from None


async def _reload(history: Any, ms: MutableState) -> MutableState:
    return await history.get_mutable_state(
        ms.info.namespace_id, WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
    )


async def describe(
    history: Any, ms: MutableState, request: rr.DescribeNexusOperationExecutionRequest, timeout: float
) -> rr.DescribeNexusOperationExecutionResponse:
    """The operation; with a long_poll_token, as soon as it changed from the state the token names (an
    empty response when `timeout` passes first)."""
    token = check_long_poll(request)
    if token is not None:
        if token[0] != ms.info.run_id:
            raise InvalidArgument("invalid long poll token")
        if token[1] == ms.db_record_version:
            await history.wait_for_change(ms, timeout)
            ms = await _reload(history, ms)
            if ms.db_record_version == token[1]:
                return rr.DescribeNexusOperationExecutionResponse()
    events = await history.read_history(ms)
    scheduled = next(
        e.nexus_operation_scheduled_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED
    )
    resp = rr.DescribeNexusOperationExecutionResponse(
        run_id=ms.info.run_id,
        info=standalone_nexus.info(ms, scheduled, events),
        long_poll_token=long_poll_token(ms),
    )
    if request.include_input and scheduled.HasField("input"):
        resp.input.CopyFrom(scheduled.input)
    if request.include_outcome and not ms.running:
        result, failure = standalone_nexus.outcome(events)
        if result is not None:
            resp.result.CopyFrom(result)
        elif failure is not None:
            resp.failure.CopyFrom(failure)
    return resp


async def poll(
    history: Any, ms: MutableState, request: rr.PollNexusOperationExecutionRequest, timeout: float
) -> rr.PollNexusOperationExecutionResponse:
    """Wait (up to `timeout`) for the stage the request names: STARTED (the handler started it
    asynchronously, or it closed) or CLOSED (the default); the outcome once closed. An empty response
    when the wait ends first (the caller polls again), as the reference's."""
    stage = request.wait_stage or NexusOperationWaitStage.NEXUS_OPERATION_WAIT_STAGE_CLOSED
    want_started = stage == NexusOperationWaitStage.NEXUS_OPERATION_WAIT_STAGE_STARTED

    def reached(state: MutableState) -> bool:
        if not state.running:
            return True
        op = standalone_nexus.the_operation(state)
        return want_started and op is not None and bool(op.started_event_id)

    deadline = time.monotonic() + timeout
    while not reached(ms):
        left = deadline - time.monotonic()
        if left <= 0:
            return rr.PollNexusOperationExecutionResponse()
        await history.wait_for_change(ms, left, until_closed=not want_started)
        ms = await _reload(history, ms)
    resp = rr.PollNexusOperationExecutionResponse(run_id=ms.info.run_id)
    op = standalone_nexus.the_operation(ms)
    if op is not None:
        resp.operation_token = op.operation_token
    if ms.running:
        resp.wait_stage = NexusOperationWaitStage.NEXUS_OPERATION_WAIT_STAGE_STARTED
        return resp
    resp.wait_stage = NexusOperationWaitStage.NEXUS_OPERATION_WAIT_STAGE_CLOSED
    result, failure = standalone_nexus.outcome(await history.read_history(ms))
    if result is not None:
        resp.result.CopyFrom(result)
    elif failure is not None:
        resp.failure.CopyFrom(failure)
    return resp


async def _query(
    namespace_id: str, text: str, search_attributes: SearchAttributeRegistry
) -> model.VisibilityQuery:
    """A list/count query over standalone Nexus operations only, in their own attribute names (VIEW)."""
    query = await search_attributes.parse_query(namespace_id, text, VIEW)
    return visibility.scoped_to_prefix(query, standalone_ids.NEXUS_PREFIX)


async def list_executions(
    request: rr.ListNexusOperationExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ListNexusOperationExecutionsResponse:
    """ListNexusOperationExecutions: the visibility query over standalone Nexus operations only."""
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
    return rr.ListNexusOperationExecutionsResponse(
        operations=[standalone_nexus.list_info(record) for record in records], next_page_token=token
    )


async def count_executions(
    request: rr.CountNexusOperationExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.CountNexusOperationExecutionsResponse:
    check_enabled()
    ns = await namespaces.get(request.namespace)
    query = await _query(ns.id, request.query, search_attributes)
    return await visibility.count(store, ns.id, query, rr.CountNexusOperationExecutionsResponse)
