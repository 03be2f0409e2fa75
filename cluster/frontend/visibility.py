"""WorkflowService visibility RPCs: list, scan and count workflows by query; the old open/closed lists.

Each handler takes the request and the frontend's collaborators and returns the response proto, so the
servicer only delegates. Queries are parsed and typed against the namespace's search attributes
(INVALID_ARGUMENT with the position of the problem), then answered by the store.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Memo, Payload, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry, system_attribute_types
from hourglass.cluster.history import standalone_ids
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.store import Store
from hourglass.persistence.visibility import attributes as names
from hourglass.persistence.visibility import model
from hourglass.persistence.visibility.attributes import Attribute, Kind, ValueType, search_attribute_types
from hourglass.persistence.visibility.paging import PageTokenError
from hourglass.persistence.visibility.query import INT64_MAX, INT64_MIN
from hourglass.persistence.visibility.values import NS_PER_MS, parse_search_attributes, status_name

# The reference's frontend.visibilityMaxPageSize default: larger (or unset) page sizes are capped to it.
MAX_PAGE_SIZE = 1000

RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
UNSPECIFIED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED

# What a standalone activity's or Nexus operation's ExecutionStatus is named in a query (the reference
# keeps their API status names, a Keyword), and the status of the hidden run behind each.
ARCHETYPE_STATUSES = {
    "Running": RUNNING,
    "Completed": WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    "Failed": WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
    "Canceled": WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
    "Terminated": WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    "TimedOut": WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


async def list_workflow_executions(
    request: rr.ListWorkflowExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ListWorkflowExecutionsResponse:
    """ListWorkflowExecutions. GROUP BY is accepted and ignored, as the reference does."""
    ns = await namespaces.get(request.namespace)
    query = await search_attributes.parse_query(ns.id, request.query)
    executions, token = await _page(
        store,
        ns.id,
        query,
        request.page_size,
        request.next_page_token,
        await _types(search_attributes, ns.id),
    )
    return rr.ListWorkflowExecutionsResponse(executions=executions, next_page_token=token)


async def scan_workflow_executions(
    request: rr.ScanWorkflowExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ScanWorkflowExecutionsResponse:
    """ScanWorkflowExecutions: deprecated on the reference, which answers it as ListWorkflowExecutions."""
    ns = await namespaces.get(request.namespace)
    query = await search_attributes.parse_query(ns.id, request.query)
    executions, token = await _page(
        store,
        ns.id,
        query,
        request.page_size,
        request.next_page_token,
        await _types(search_attributes, ns.id),
    )
    return rr.ScanWorkflowExecutionsResponse(executions=executions, next_page_token=token)


async def count_workflow_executions(
    request: rr.CountWorkflowExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.CountWorkflowExecutionsResponse:
    """CountWorkflowExecutions, with `GROUP BY ExecutionStatus` answered as groups (and their total)."""
    ns = await namespaces.get(request.namespace)
    query = workflows_only(await search_attributes.parse_query(ns.id, request.query))
    return await count(store, ns.id, query, rr.CountWorkflowExecutionsResponse)


_Count = TypeVar("_Count", bound=Message)


async def count(
    store: Store, namespace_id: str, query: model.VisibilityQuery, response_type: type[_Count]
) -> _Count:
    """A Count*Executions response (workflows, standalone activities or Nexus operations: `response_type`,
    whose AggregationGroup holds group_values and count): the count, and with GROUP BY the groups."""
    if not query.group_by:
        return response_type(count=await store.count_visibility(namespace_id, query))
    groups = await store.count_visibility_groups(namespace_id, query)
    response = response_type(count=sum(n for _, n in groups))
    for values, n in groups:
        response.groups.append(  # type: ignore[attr-defined]
            response_type.AggregationGroup(  # type: ignore[attr-defined]
                group_values=[_group_payload(a, v) for a, v in zip(query.group_by, values, strict=True)],
                count=n,
            )
        )
    return response


async def list_open_workflow_executions(
    request: rr.ListOpenWorkflowExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ListOpenWorkflowExecutionsResponse:
    """The pre-query API: running workflows, optionally by start time range and workflow id or type."""
    ns = await namespaces.get(request.namespace)
    conditions: list[model.Filter] = [model.Compare(_system(names.EXECUTION_STATUS), "=", RUNNING)]
    conditions += _time_range(request, names.START_TIME)
    conditions += _id_or_type_filter(request)
    query = model.VisibilityQuery(model.And(tuple(conditions)))
    executions, token = await _page(
        store,
        ns.id,
        query,
        request.maximum_page_size,
        request.next_page_token,
        await _types(search_attributes, ns.id),
    )
    return rr.ListOpenWorkflowExecutionsResponse(executions=executions, next_page_token=token)


async def list_closed_workflow_executions(
    request: rr.ListClosedWorkflowExecutionsRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.ListClosedWorkflowExecutionsResponse:
    """The pre-query API: closed workflows; its StartTimeFilter bounds the close time, as on the reference."""
    ns = await namespaces.get(request.namespace)
    status = _system(names.EXECUTION_STATUS)
    conditions: list[model.Filter] = [model.Compare(status, "!=", RUNNING)]
    conditions += _time_range(request, names.CLOSE_TIME)
    if request.WhichOneof("filters") == "status_filter":
        wanted = request.status_filter.status
        if wanted in (UNSPECIFIED, RUNNING):
            raise InvalidArgument("StatusFilter must be specified and must be not Running.")
        if wanted not in WorkflowExecutionStatus.values():
            raise InvalidArgument(
                f"invalid query: invalid expression: invalid ExecutionStatus value '{wanted}'"
            )
        conditions.append(model.Compare(status, "=", wanted))
    else:
        conditions += _id_or_type_filter(request)
    query = model.VisibilityQuery(model.And(tuple(conditions)))
    executions, token = await _page(
        store,
        ns.id,
        query,
        request.maximum_page_size,
        request.next_page_token,
        await _types(search_attributes, ns.id),
    )
    return rr.ListClosedWorkflowExecutionsResponse(executions=executions, next_page_token=token)


async def get_search_attributes(
    request: rr.GetSearchAttributesRequest,
    namespaces: NamespaceRegistry,
    store: Store,
    search_attributes: SearchAttributeRegistry,
) -> rr.GetSearchAttributesResponse:
    """GetSearchAttributes names no namespace: system and predefined attributes, plus the custom ones of
    every namespace (a name registered with different types in two namespaces shows one of them)."""
    keys = system_attribute_types()
    for ns in await namespaces.list():
        for name, value_type in (await search_attributes.custom(ns.id)).items():
            keys.setdefault(name, value_type)
    return rr.GetSearchAttributesResponse(keys=keys)


# ---- shared ----------------------------------------------------------------------------------------------
async def _types(search_attributes: SearchAttributeRegistry, namespace_id: str) -> Mapping[str, ValueType]:
    return search_attribute_types(await search_attributes.custom(namespace_id))


async def _page(
    store: Store,
    namespace_id: str,
    query: model.VisibilityQuery,
    page_size: int,
    token: bytes,
    types: Mapping[str, ValueType] | None = None,
) -> tuple[list[WorkflowExecutionInfo], bytes]:
    if page_size <= 0 or page_size > MAX_PAGE_SIZE:
        page_size = MAX_PAGE_SIZE
    query = workflows_only(query)
    try:
        records, next_token = await store.query_visibility(namespace_id, query, page_size, token)
    except PageTokenError:
        raise InvalidArgument("Invalid NextPageToken.") from None
    return [execution_info(record, types) for record in records], next_token


def scoped_to_prefix(query: model.VisibilityQuery, prefix: str) -> model.VisibilityQuery:
    """The query narrowed to the hidden runs under `prefix` (standalone activities or Nexus operations)."""
    scope = model.StartsWith(_system(names.WORKFLOW_ID), prefix)
    combined = scope if query.filter is None else model.And((scope, query.filter))
    return dataclasses.replace(query, filter=combined)


def workflows_only(query: model.VisibilityQuery) -> model.VisibilityQuery:
    """The query narrowed to workflows: never the hidden runs of standalone activities or Nexus operations
    (history/standalone_ids.py), which have lists of their own, as on the reference."""
    scope: model.Filter = model.And(
        tuple(
            model.StartsWith(_system(names.WORKFLOW_ID), prefix, True)
            for prefix in standalone_ids.RESERVED_PREFIXES
        )
    )
    combined = scope if query.filter is None else model.And((scope, query.filter))
    return dataclasses.replace(query, filter=combined)


def execution_info(
    record: VisibilityRecord, types: Mapping[str, ValueType] | None = None
) -> WorkflowExecutionInfo:
    """What a list shows of a run, as the reference does: memo and search attributes always present
    (maybe empty); ExecutionTime falls back to StartTime; close time and duration
    only for closed runs; the parent of a child, and the root of every run's tree (itself when
    top-level). Each search attribute payload names its type (`types`: the namespace's), as the
    reference's do, whatever the client that set it sent."""
    execution_time_ms = record.execution_time_ms or record.start_time_ms
    info = WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id=record.workflow_id, run_id=record.run_id),
        type=WorkflowType(name=record.workflow_type),
        start_time=_timestamp(record.start_time_ms),
        execution_time=_timestamp(execution_time_ms),
        status=record.status,  # type: ignore[arg-type]
        history_length=record.history_length,
        history_size_bytes=record.history_size_bytes,
        state_transition_count=record.state_transition_count,
        task_queue=record.task_queue,
        memo=_memo(record.memo),
    )
    search_attributes = parse_search_attributes(record.search_attributes)
    for name, payload in search_attributes.indexed_fields.items():
        value_type = (types or {}).get(name)
        if value_type is not None and "type" not in payload.metadata:
            payload.metadata["type"] = value_type.display_name.encode()
    info.search_attributes.CopyFrom(search_attributes)
    if record.parent_workflow_id:
        info.parent_execution.CopyFrom(
            WorkflowExecution(workflow_id=record.parent_workflow_id, run_id=record.parent_run_id)
        )
    # Rows written before schema version 5 know no root: a top-level run is its own.
    if record.root_workflow_id or not record.parent_workflow_id:
        info.root_execution.CopyFrom(
            WorkflowExecution(
                workflow_id=record.root_workflow_id or record.workflow_id,
                run_id=record.root_run_id or record.run_id,
            )
        )
    if record.close_time_ms:
        info.close_time.CopyFrom(_timestamp(record.close_time_ms))
        duration = Duration()
        duration.FromNanoseconds((record.close_time_ms - execution_time_ms) * NS_PER_MS)
        info.execution_duration.CopyFrom(duration)
    return info


def _timestamp(ms: int) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromMilliseconds(ms)
    return timestamp


def _memo(data: bytes) -> Memo:
    memo = Memo()
    try:
        memo.ParseFromString(data)
    except DecodeError:
        return Memo()
    return memo


def _system(name: str) -> Attribute:
    return Attribute(name, names.SYSTEM[name], Kind.SYSTEM)


def _time_range(request: Any, attribute_name: str) -> list[model.Filter]:
    """The old APIs' StartTimeFilter: unset or zero bounds are open, as the reference reads them."""
    if not request.HasField("start_time_filter"):
        return []
    time_filter = request.start_time_filter
    earliest = _timestamp_ns(time_filter.earliest_time) if time_filter.HasField("earliest_time") else 0
    latest = _timestamp_ns(time_filter.latest_time) if time_filter.HasField("latest_time") else 0
    if earliest and latest and earliest > latest:
        raise InvalidArgument("EarliestTime in StartTimeFilter should not be larger than LatestTime.")
    attribute = _system(attribute_name)
    conditions: list[model.Filter] = []
    if earliest:
        conditions.append(model.Compare(attribute, ">=", earliest))
    if latest:
        conditions.append(model.Compare(attribute, "<=", latest))
    return conditions


def _timestamp_ns(t: Timestamp) -> int:
    """Nanoseconds since the epoch, clamped to what the stores keep (a signed 64-bit count: years
    1677-2262), so a bound before year 1 or after 9999 is an open bound, as on the reference."""
    return max(INT64_MIN, min(t.seconds * 1_000_000_000 + t.nanos, INT64_MAX))


def _id_or_type_filter(request: Any) -> Sequence[model.Filter]:
    which = request.WhichOneof("filters")
    if which == "execution_filter":
        return [model.Compare(_system(names.WORKFLOW_ID), "=", request.execution_filter.workflow_id)]
    if which == "type_filter":
        return [model.Compare(_system(names.WORKFLOW_TYPE), "=", request.type_filter.name)]
    return []


def _group_payload(attribute: Attribute, value: Any) -> Payload:
    """A group's value as the reference encodes it: a JSON payload with its type in the metadata
    (ExecutionStatus as its name, e.g. "Running")."""
    if attribute.name == names.EXECUTION_STATUS and isinstance(value, int):
        value = status_name(value)
    return Payload(
        metadata={"encoding": b"json/plain", "type": attribute.type.display_name.encode()},
        data=json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(),
    )
