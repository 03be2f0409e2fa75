"""The schedule RPCs of WorkflowService: validation with the reference's messages, and the conversion of
schedule state into list responses. The schedules themselves run in cluster/scheduler, on the member that
owns the schedule's shard: `engine` is the ScheduleEngine on a single node, its routing proxy in a cluster
(cluster/routing.py), so any node serves any schedule.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import struct
from typing import Any

from temporalio.api.common.v1 import Memo, Payload, SearchAttributes
from temporalio.api.schedule.v1 import ScheduleListEntry, ScheduleListInfo
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.frontend.namespaces import NamespaceRegistry
from hourglass.cluster.frontend.search_attributes import INLINE_QUERY_CHARS, SearchAttributeRegistry
from hourglass.cluster.frontend.validation import (
    check_blob_size,
    check_retry_policy,
    require_user_task_queue,
    require_workflow_id,
)
from hourglass.cluster.scheduler import policy
from hourglass.cluster.scheduler.engine import compiled
from hourglass.cluster.scheduler.spec import SpecError, compile_spec, described
from hourglass.cluster.scheduler.state import ScheduleState, encode_conflict_token
from hourglass.persistence.records import VisibilityRecord
from hourglass.persistence.visibility import evaluate, model
from hourglass.persistence.visibility import query as syntax
from hourglass.persistence.visibility.attributes import Kind, ValueType, lookup
from hourglass.persistence.visibility.query import QueryError
from hourglass.persistence.visibility.resolve import resolve

# The reference runs each schedule as a workflow with this id prefix: the id length limit applies to it.
SCHEDULER_WORKFLOW_ID_PREFIX = "temporal-sys-scheduler:"
LIST_FUTURE_ACTIONS = 5
LIST_RECENT_ACTIONS = 5
DEFAULT_PAGE_SIZE = 1000


def _token_value(token: bytes) -> int:
    if not token:
        return 0
    if len(token) != 8:
        raise InvalidArgument("invalid conflict token")
    return struct.unpack(">q", token)[0]


def _require_schedule_id(schedule_id: str) -> None:
    if not schedule_id:
        raise InvalidArgument("Can't load workflow execution.  WorkflowId not set.")


def _check_schedule(request, limit: int) -> None:
    """The reference's checks of a schedule and of the workflow its action starts, before the spec's.

    The whole schedule must fit in the blob limit (the reference stores it as its scheduler workflow's
    input); the action's retry policy is checked here too, since its starts bypass the frontend."""
    require_workflow_id(SCHEDULER_WORKFLOW_ID_PREFIX + request.schedule_id)
    check_blob_size(request.schedule, limit)
    if request.schedule.action.HasField("start_workflow"):
        start = request.schedule.action.start_workflow
        require_user_task_queue(start.task_queue.name)
        check_retry_policy(start)


def _check_spec(request, schedule_id: str) -> None:
    try:
        compile_spec(request.schedule.spec, schedule_id)
    except SpecError as e:
        raise InvalidArgument(f"Invalid schedule spec: {e}") from None


class ScheduleHandlers:
    """WorkflowService delegates its schedule RPCs here."""

    def __init__(
        self,
        namespaces: NamespaceRegistry,
        engine: Any,
        search_attributes: SearchAttributeRegistry,
        max_blob_bytes: int = 2 * 1024 * 1024,
    ) -> None:
        self.namespaces = namespaces
        self.max_blob_bytes = max_blob_bytes
        self.engine = engine
        self.search_attributes = search_attributes

    async def create(self, request: rr.CreateScheduleRequest) -> rr.CreateScheduleResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        _check_schedule(request, self.max_blob_bytes)
        _check_spec(request, request.schedule_id)
        if request.HasField("search_attributes"):
            await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        token = await self.engine.create(
            ns.name,
            ns.id,
            request.schedule_id,
            request.schedule,
            request.initial_patch if request.HasField("initial_patch") else None,
            request.memo if request.HasField("memo") else None,
            request.search_attributes if request.HasField("search_attributes") else None,
            request.request_id,
        )
        return rr.CreateScheduleResponse(conflict_token=encode_conflict_token(token))

    async def describe(self, request: rr.DescribeScheduleRequest) -> rr.DescribeScheduleResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        resp = await self.engine.describe(ns.id, request.schedule_id)
        resp.schedule.spec.CopyFrom(described(resp.schedule.spec))
        await self._type_action_search_attributes(ns.id, resp.schedule)
        return resp

    async def _type_action_search_attributes(self, namespace_id: str, schedule) -> None:
        """The search attributes of the workflows a schedule starts carry their registered type, even when
        the client sent them untyped, as the reference describes them (SDKs read them typed)."""
        if not schedule.action.HasField("start_workflow"):
            return
        fields = schedule.action.start_workflow.search_attributes.indexed_fields
        if not fields:
            return
        custom = await self.search_attributes.custom(namespace_id)
        for name, payload in fields.items():
            if "type" not in payload.metadata and name in custom:
                payload.metadata["type"] = ValueType(custom[name]).display_name.encode()

    async def update(self, request: rr.UpdateScheduleRequest) -> rr.UpdateScheduleResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        if not request.schedule.action.HasField("start_workflow"):
            raise InvalidArgument("Only StartWorkflow action is supported for schedules")
        _check_schedule(request, self.max_blob_bytes)
        _check_spec(request, request.schedule_id)
        if request.HasField("search_attributes"):
            await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        await self.engine.update(
            ns.id,
            request.schedule_id,
            request.schedule,
            _token_value(request.conflict_token),
            request.search_attributes if request.HasField("search_attributes") else None,
            request.memo if request.HasField("memo") else None,
        )
        return rr.UpdateScheduleResponse()

    async def patch(self, request: rr.PatchScheduleRequest) -> rr.PatchScheduleResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        await self.engine.patch(ns.id, request.schedule_id, request.patch)
        return rr.PatchScheduleResponse()

    async def delete(self, request: rr.DeleteScheduleRequest) -> rr.DeleteScheduleResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        await self.engine.delete(ns.id, request.schedule_id)
        return rr.DeleteScheduleResponse()

    async def matching_times(
        self, request: rr.ListScheduleMatchingTimesRequest
    ) -> rr.ListScheduleMatchingTimesResponse:
        ns = await self.namespaces.get(request.namespace)
        _require_schedule_id(request.schedule_id)
        return await self.engine.matching_times(ns.id, request)

    async def list(self, request: rr.ListSchedulesRequest) -> rr.ListSchedulesResponse:
        ns = await self.namespaces.get(request.namespace)
        states = await self._matching(ns.id, request.query)
        start = 0
        if request.next_page_token:
            try:
                start = int(json.loads(base64.b64decode(request.next_page_token))["offset"])
            except (ValueError, KeyError, TypeError):
                raise InvalidArgument("Invalid NextPageToken.") from None
        size = request.maximum_page_size or DEFAULT_PAGE_SIZE
        page = states[start : start + size]
        resp = rr.ListSchedulesResponse(schedules=[_list_entry(s) for s in page])
        if start + size < len(states):
            resp.next_page_token = base64.b64encode(json.dumps({"offset": start + size}).encode())
        return resp

    async def count(self, request: rr.CountSchedulesRequest) -> rr.CountSchedulesResponse:
        ns = await self.namespaces.get(request.namespace)
        return rr.CountSchedulesResponse(count=len(await self._matching(ns.id, request.query)))

    async def _matching(self, namespace_id: str, text: str) -> list[ScheduleState]:
        states = await self.engine.list(namespace_id)
        if not text.strip():
            return states
        custom = await self.search_attributes.custom(namespace_id)
        if len(text) <= INLINE_QUERY_CHARS:
            query_filter = _schedule_filter(text, custom)
        else:  # a long query takes seconds to parse: not on the event loop
            query_filter = await asyncio.to_thread(_schedule_filter, text, custom)
        return [s for s in states if evaluate.matches(query_filter, _as_record(s))]


# ---- list queries -----------------------------------------------------------------------------------------
# The reference lets schedule lists filter on the schedule id, whether it is paused, and custom search
# attributes. A schedule is evaluated as a visibility record whose workflow id is the schedule id.
_SCHEDULE_ID = "ScheduleId"
_PAUSED = "TemporalSchedulePaused"


def _schedule_filter(text: str, custom: dict[str, int]) -> model.Filter | None:
    try:
        parsed = syntax.parse(text)
    except QueryError as e:
        raise InvalidArgument(f"invalid query: {e}") from None
    try:
        where = _rename(parsed.where, custom)
        return resolve(dataclasses.replace(parsed, where=where, order_by=(), group_by=()), custom).filter
    except QueryError as e:
        raise InvalidArgument(f"invalid query: {e}") from None


def _rename(root, custom: dict[str, int]):
    """ScheduleId becomes WorkflowId; any attribute but it, TemporalSchedulePaused and custom ones is refused.

    Rebuilt bottom-up with an explicit stack: a query may chain ~1000 ANDs (the reference's depth limit),
    far deeper than Python's recursion limit.
    """
    done: dict[int, object] = {}
    pending: list[tuple[object, bool]] = [(root, False)]
    while pending:
        node, children_done = pending.pop()
        if isinstance(node, syntax.Name):
            done[id(node)] = _renamed(node, custom)
            continue
        if not dataclasses.is_dataclass(node) or isinstance(node, type):
            done[id(node)] = node
            continue
        fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
        children = [
            child
            for value in fields.values()
            for child in (value if isinstance(value, tuple) else (value,))
            if dataclasses.is_dataclass(child)
        ]
        if not children_done:
            pending.append((node, True))
            pending += [(child, False) for child in reversed(children)]  # leftmost first
            continue
        changes = {}
        for name, value in fields.items():
            if isinstance(value, tuple):
                changes[name] = tuple(done.get(id(v), v) for v in value)
            elif dataclasses.is_dataclass(value):
                changes[name] = done[id(value)]
        done[id(node)] = dataclasses.replace(node, **changes)
    return done[id(root)]


def _renamed(node: syntax.Name, custom: dict[str, int]) -> syntax.Name:
    if node.name == _SCHEDULE_ID:
        return dataclasses.replace(node, name="WorkflowId")
    attribute = lookup(node.name, custom)
    if attribute is None or (attribute.kind is not Kind.CUSTOM and attribute.name != _PAUSED):
        raise InvalidArgument(f'invalid query filter for schedules: cannot filter on "{node.name}"')
    return node


def _as_record(state: ScheduleState) -> VisibilityRecord:
    attrs = SearchAttributes()
    if state.search_attributes is not None:
        attrs.CopyFrom(state.search_attributes)
    attrs.indexed_fields[_PAUSED].CopyFrom(
        Payload(
            metadata={"type": b"Bool", "encoding": b"json/plain"},
            data=b"true" if state.schedule.state.paused else b"false",
        )
    )
    return VisibilityRecord(
        namespace_id=state.namespace_id,
        workflow_id=state.schedule_id,
        run_id="",
        workflow_type="",
        task_queue="",
        status=1,
        start_time_ms=state.info.create_time.ToMilliseconds(),
        search_attributes=attrs.SerializeToString(),
    )


def _list_entry(state: ScheduleState) -> ScheduleListEntry:
    spec = described(state.schedule.spec)
    spec.ClearField("timezone_data")
    info = ScheduleListInfo(
        spec=spec,
        notes=state.schedule.state.notes,
        paused=state.schedule.state.paused,
        recent_actions=state.info.recent_actions[-LIST_RECENT_ACTIONS:],
        future_action_times=policy.future_action_times(state, compiled(state), LIST_FUTURE_ACTIONS),
    )
    if state.schedule.action.HasField("start_workflow"):
        info.workflow_type.CopyFrom(state.schedule.action.start_workflow.workflow_type)
    entry = ScheduleListEntry(schedule_id=state.schedule_id, info=info)
    entry.memo.CopyFrom(state.memo or Memo())
    if state.search_attributes is not None:
        entry.search_attributes.CopyFrom(state.search_attributes)
    return entry
