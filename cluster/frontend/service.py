"""The public WorkflowService: validates requests, resolves namespaces and delegates to history/matching.

RPCs this server does not implement yet answer UNIMPLEMENTED with the RPC's name (see `_fill_unimplemented`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    IndexedValueType,
    QueryRejectCondition,
    QueryResultType,
    ReplicationState,
    ResetReapplyExcludeType,
    ResetReapplyType,
    TaskQueueType,
    WorkflowExecutionStatus,
)
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage as Stage
from temporalio.api.history.v1 import History
from temporalio.api.query.v1 import QueryRejected, WorkflowQuery
from temporalio.api.update.v1 import UpdateRef
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceServicer

from hourglass.cluster.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MultiOperationFailed,
    NotFound,
    PermissionDenied,
    QueryFailed,
    ServiceError,
    Unimplemented,
)
from hourglass.cluster.frontend import (
    activity_operations,
    build_id_versioning,
    standalone_activities,
    standalone_nexus_operations,
    visibility,
    workflow_pause,
)
from hourglass.cluster.frontend import worker_deployments as deployments
from hourglass.cluster.frontend.batches import BatchHandlers
from hourglass.cluster.frontend.cluster_info import (
    SERVER_VERSION,
    VERSION_HEADER,
    ClusterFacts,
    hourglass_version,
)
from hourglass.cluster.frontend.describe import describe, run_status
from hourglass.cluster.frontend.grpc_errors import rpc, unimplemented
from hourglass.cluster.frontend.links import dedup_callback_links, request_id_link, started_event_link
from hourglass.cluster.frontend.namespaces import NamespaceRegistry, check_retention
from hourglass.cluster.frontend.schedules import ScheduleHandlers
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry
from hourglass.cluster.frontend.task_queues import describe_task_queue
from hourglass.cluster.frontend.validation import (
    check_blob_size,
    check_command_types,
    check_signal_with_start_policies,
    check_start_request,
    check_update_request,
    require_execution,
    require_id,
    require_task_queue,
    require_workflow_id,
)
from hourglass.cluster.history import (
    execution_options,
    nexus_dispatch,
    runs,
    standalone_ids,
    standalone_nexus,
    workflow_versioning,
)
from hourglass.cluster.history import standalone_activity as standalone
from hourglass.cluster.history.engine import HistoryEngine, StartResult, UpdateResult
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.paging import (
    INVALID_TOKEN,
    RESPONSE_LIMIT_BYTES,
    HistoryCursor,
    effective_page_size,
    framed_size,
    history_budget,
)
from hourglass.cluster.history.tokens import TOKEN_NAMESPACE_MISMATCH, TaskToken
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.matching.versioning import versioned_queue
from hourglass.cluster.scheduler.engine import ScheduleEngine
from hourglass.cluster.security.task_tokens import TaskTokenCodec
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Long polls answer before the SDK's 70 s deadline.
# Who a termination naming no identity is recorded as (the reference's frontend stamps the same).
FRONTEND_IDENTITY = "frontend-service"
MAX_LONG_POLL_S = 60.0
# The least time a task poll may give the server, and the reference's refusal of less.
MIN_LONG_POLL_S = 2.0
LONG_POLL_TOO_SHORT = "Context timeout is too short."
HISTORY_LONG_POLL_S = 20.0
# The reference's long-poll interval for updates: then it answers the stage reached so far.
UPDATE_LONG_POLL_S = 20.0
# An update call bound by the caller's deadline waits until just before it (as the reference does), so
# that DEADLINE_EXCEEDED reaches the caller before its own deadline does; not the 1 s of other long polls.
UPDATE_DEADLINE_MARGIN_S = 0.05
# Long polls on a draining node: shorter than the 1 s grace a stopping node gives calls in flight.
DRAINING_LONG_POLL_S = 0.5
DEFAULT_QUERY_TIMEOUT_S = 30.0
# Bytes of events in a history page: the page and the rest of the response fit in a client's default limit.
PAGE_BYTES = history_budget(RESPONSE_LIMIT_BYTES, 0)


class WorkflowService(WorkflowServiceServicer):
    def __init__(
        self,
        namespaces: NamespaceRegistry,
        history: HistoryEngine,
        matching: MatchingEngine,
        max_blob_bytes: int = 2 * 1024 * 1024,
        *,
        store: Store,
        search_attributes: SearchAttributeRegistry,
        schedules: ScheduleEngine | None = None,
        task_tokens: TaskTokenCodec,
        batches: object = None,
        cluster: ClusterFacts | None = None,
    ) -> None:
        self.namespaces = namespaces
        self.cluster = cluster or ClusterFacts(name=namespaces.server.cluster_name)
        # Opens the task tokens workers send back: only those this cluster sealed are accepted.
        self.task_tokens = task_tokens
        self.history = history
        self.matching = matching
        self.max_blob_bytes = max_blob_bytes
        self.store = store
        # Whether this node is draining (a cluster member handing everything over before it stops): its
        # long polls are then cut short, so none is still open (and cancelled) when the node stops.
        self.draining: Callable[[], bool] = lambda: False
        self.search_attributes = search_attributes
        self.schedules = (
            None
            if schedules is None
            else ScheduleHandlers(namespaces, schedules, search_attributes, max_blob_bytes)
        )
        # The BatchEngine (or its routing proxy in a cluster): batch operations run in the server.
        self.batches = (
            None if batches is None else BatchHandlers(namespaces, batches, search_attributes, self)
        )

    def _long_poll_timeout(self, context: grpc.aio.ServicerContext, cap: float) -> float:
        """How long a long poll may wait here: DRAINING_LONG_POLL_S at most on a draining node (the caller
        polls again, on this connection until the node stops, then on another node)."""
        return _long_poll_timeout(context, min(cap, DRAINING_LONG_POLL_S) if self.draining() else cap)

    # ---- cluster and namespaces ------------------------------------------------------------------------
    @rpc
    async def GetSystemInfo(self, request, context):
        await _send_version(context)
        resp = rr.GetSystemInfoResponse(server_version=SERVER_VERSION)
        caps = resp.capabilities
        caps.signal_and_query_header = True
        caps.internal_error_differentiation = True
        caps.activity_failure_include_heartbeat = True
        caps.supports_schedules = True
        caps.encoded_failure_attributes = True
        # As the reference: build ids on polls and completions are understood (history records them) and
        # Worker Deployments are served (worker_deployments.py); the older APIs that manage build ids are
        # refused (build_id_versioning.py).
        caps.build_id_based_versioning = True
        caps.upsert_memo = True
        caps.eager_workflow_start = True
        caps.sdk_metadata = True
        caps.count_group_by_execution_status = True
        # Nexus endpoints and operations are served (the Web UI shows its Nexus page from this).
        caps.nexus = True
        return resp

    @rpc
    async def GetClusterInfo(self, request, context):
        await _send_version(context)
        return self.cluster.cluster_info()

    async def _described(self, ns) -> rr.DescribeNamespaceResponse:
        """The namespace as stored, with the aliases of its custom search attributes (as the reference
        answers them: the storage field each name maps to, `<Type><NN>`, numbered per type by name)."""
        desc = rr.DescribeNamespaceResponse()
        desc.CopyFrom(ns.description)
        counts: dict[int, int] = {}
        for name, value_type in sorted((await self.search_attributes.custom(ns.id)).items()):
            counts[value_type] = counts.get(value_type, 0) + 1
            type_name = IndexedValueType.Name(value_type).removeprefix("INDEXED_VALUE_TYPE_").title()
            field = type_name.replace("_", "").replace("Keywordlist", "KeywordList")
            desc.config.custom_search_attribute_aliases[f"{field}{counts[value_type]:02d}"] = name
        return desc

    @rpc
    async def DescribeNamespace(self, request, context):
        if request.id:
            for ns in await self.namespaces.list():
                if ns.id == request.id:
                    return await self._described(ns)
            raise NotFound(f"Namespace {request.id} is not found.")
        ns = await self.namespaces.get(request.namespace)
        return await self._described(ns)

    @rpc
    async def RegisterNamespace(self, request, context):
        check_retention(request.workflow_execution_retention_period)
        await self.namespaces.register(
            request.namespace,
            request.description,
            request.owner_email,
            request.workflow_execution_retention_period
            if request.HasField("workflow_execution_retention_period")
            else None,
            dict(request.data),
            ReplicationState.REPLICATION_STATE_NORMAL,
        )
        return rr.RegisterNamespaceResponse()

    @rpc
    async def UpdateNamespace(self, request, context):
        ns = await self.namespaces.update(
            request.namespace,
            request.update_info if request.HasField("update_info") else None,
            request.config if request.HasField("config") else None,
        )
        d = await self._described(ns)
        return rr.UpdateNamespaceResponse(
            namespace_info=d.namespace_info,
            config=d.config,
            replication_config=d.replication_config,
            is_global_namespace=d.is_global_namespace,
        )

    @rpc
    async def ListNamespaces(self, request, context):
        page, token = await self.namespaces.list_page(
            request.page_size, request.next_page_token, request.namespace_filter.include_deleted
        )
        return rr.ListNamespacesResponse(
            namespaces=[await self._described(ns) for ns in page], next_page_token=token
        )

    # ---- starting, signalling, stopping workflows --------------------------------------------------------
    @rpc
    async def StartWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        check_start_request(request, self.max_blob_bytes)
        await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        await self._check_pinned_start(ns.id, request)
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        dedup_callback_links(request)
        result: StartResult = await self.history.start_workflow(
            ns.id, ns.name, request, eager=request.request_eager_execution
        )
        return rr.StartWorkflowExecutionResponse(
            run_id=result.run_id,
            started=result.started,
            eager_workflow_task=result.eager_workflow_task,
            status=result.status,  # type: ignore[arg-type]
            first_execution_run_id=result.run_id,
            link=request_id_link(
                ns.name,
                request.workflow_id,
                result.run_id,
                request.request_id,
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
            )
            if result.attached_request_id
            else started_event_link(ns.name, request.workflow_id, result.run_id),
        )

    async def _check_pinned_start(self, namespace_id: str, request) -> None:
        """A start pinned to a version needs that version present in its task queue (its versioned
        workers polled it), as on the reference."""
        if not request.HasField("versioning_override"):
            return
        override = request.versioning_override
        version = workflow_versioning.override_version(override)
        if workflow_versioning.override_behavior(override) != workflow_versioning.PINNED or version is None:
            return
        present = await self.matching.versions_polled(namespace_id, request.task_queue.name)
        if workflow_versioning.version_key(version) not in present:
            raise FailedPrecondition(
                f"Pinned version '{version.deployment_name}:{version.build_id}' is not present in task "
                f"queue '{request.task_queue.name}' of type 'Workflow'"
            )

    @rpc
    async def SignalWithStartWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        check_start_request(request, self.max_blob_bytes)
        check_signal_with_start_policies(request)
        await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        require_id(request.signal_name, "SignalName")
        if request.HasField("signal_input"):
            check_blob_size(request.signal_input, self.max_blob_bytes)
        await self._check_pinned_start(ns.id, request)
        start = runs.start_of_signal_with_start(request, request.request_id or str(uuid.uuid4()))
        result = await self.history.signal_with_start(
            ns.id,
            ns.name,
            start,
            request.signal_name,
            request.signal_input if request.HasField("signal_input") else None,
            request.header if request.HasField("header") else None,
        )
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        return rr.SignalWithStartWorkflowExecutionResponse(
            run_id=result.run_id,
            started=result.started,
            first_execution_run_id=result.run_id,
            signal_link=request_id_link(
                ns.name, start.workflow_id, result.run_id, start.request_id, signaled
            ),
        )

    @rpc
    async def SignalWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        require_execution(request)
        require_id(request.signal_name, "SignalName")
        if request.HasField("input"):
            check_blob_size(request.input, self.max_blob_bytes)
        run_id = await self.history.signal(
            ns.id,
            request.workflow_execution,
            request.signal_name,
            request.input if request.HasField("input") else None,
            request.identity,
            request.request_id,
            request.header if request.HasField("header") else None,
            list(request.links),
        )
        signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        link = request_id_link(
            ns.name, request.workflow_execution.workflow_id, run_id, request.request_id, signaled
        )
        return rr.SignalWorkflowExecutionResponse(link=link)

    @rpc
    async def RequestCancelWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        require_execution(request)
        await self.history.request_cancel(
            ns.id,
            request.workflow_execution,
            request.identity,
            request.request_id,
            request.reason,
            first_execution_run_id=request.first_execution_run_id,
        )
        return rr.RequestCancelWorkflowExecutionResponse()

    @rpc
    async def TerminateWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        require_execution(request)
        await self.history.terminate(
            ns.id,
            request.workflow_execution,
            request.reason,
            request.details if request.HasField("details") else None,
            request.identity or FRONTEND_IDENTITY,
            first_execution_run_id=request.first_execution_run_id,
        )
        return rr.TerminateWorkflowExecutionResponse()

    # ---- workflow updates ------------------------------------------------------------------------------
    @rpc
    async def UpdateWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        execution = require_execution(request)
        check_update_request(request, self.max_blob_bytes)
        stage = _update_stage(request.wait_policy.lifecycle_stage)
        wait, caller_bound = _update_wait(context)
        result = await self.history.update_workflow(
            ns.id, execution, request.request, stage, wait, request.first_execution_run_id
        )
        _check_reached(result, stage, caller_bound)
        resp = _update_response(execution.workflow_id, request.request.meta.update_id, result)
        if result.stage >= Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED:
            accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            resp.link.CopyFrom(request_id_link(ns.name, execution.workflow_id, result.run_id, "", accepted))
        return resp

    @rpc
    async def PollWorkflowExecutionUpdate(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        if not request.HasField("update_ref"):
            raise InvalidArgument("UpdateRef is not set on request.")
        ref = request.update_ref
        if not ref.workflow_execution.workflow_id:
            raise InvalidArgument("Can't load workflow execution.  WorkflowId not set.")
        stage = (
            request.wait_policy.lifecycle_stage or Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        )
        wait, caller_bound = _update_wait(context)
        result = await self.history.poll_update(ns.id, ref.workflow_execution, ref.update_id, stage, wait)
        _check_reached(result, stage, caller_bound)
        resp = rr.PollWorkflowExecutionUpdateResponse(
            stage=result.stage,
            update_ref=UpdateRef(
                workflow_execution=WorkflowExecution(
                    workflow_id=ref.workflow_execution.workflow_id, run_id=result.run_id
                ),
                update_id=ref.update_id,
            ),
        )
        if result.outcome is not None:
            resp.outcome.CopyFrom(result.outcome)
        return resp

    @rpc
    async def ExecuteMultiOperation(self, request, context):
        """Update-with-start: exactly [StartWorkflow, UpdateWorkflow], errors shaped per operation."""
        ns = await self.namespaces.get(request.namespace)
        ops = request.operations
        if len(ops) != 2 or not ops[0].HasField("start_workflow") or not ops[1].HasField("update_workflow"):
            raise InvalidArgument("Operations have to be exactly [Start, Update].")
        start, update = ops[0].start_workflow, ops[1].update_workflow
        aborted = MultiOperationFailed.ABORTED
        try:
            if start.namespace and start.namespace != request.namespace:
                raise InvalidArgument("Operation namespace did not match request's namespace.")
            check_start_request(start, self.max_blob_bytes)
            if start.cron_schedule:
                raise InvalidArgument("CronSchedule is not allowed.")
            await self.search_attributes.validate_search_attributes(ns.id, start.search_attributes)
        except ServiceError as e:
            raise MultiOperationFailed(e, aborted) from None
        try:
            if update.namespace and update.namespace != request.namespace:
                raise InvalidArgument("Operation namespace did not match request's namespace.")
            if update.workflow_execution.workflow_id != start.workflow_id:
                raise InvalidArgument("WorkflowId is not consistent with previous operation(s).")
            if update.workflow_execution.run_id:
                raise InvalidArgument("RunId is not allowed.")
            check_update_request(update, self.max_blob_bytes)
            stage = _update_stage(update.wait_policy.lifecycle_stage)
        except ServiceError as e:
            raise MultiOperationFailed(aborted, e) from None
        if not start.request_id:
            start.request_id = str(uuid.uuid4())
        wait, caller_bound = _update_wait(context)
        started, result = await self.history.update_with_start(
            ns.id, ns.name, start, update.request, stage, wait
        )
        _check_reached(result, stage, caller_bound)
        resp = rr.ExecuteMultiOperationResponse()
        resp.responses.add().start_workflow.CopyFrom(
            rr.StartWorkflowExecutionResponse(run_id=started.run_id, started=started.started)
        )
        resp.responses.add().update_workflow.CopyFrom(
            _update_response(start.workflow_id, update.request.meta.update_id, result)
        )
        return resp

    # ---- reading workflows -----------------------------------------------------------------------------
    async def _mutable_state(self, request, field_name: str) -> tuple[str, MutableState]:
        ns = await self.namespaces.get(request.namespace)
        execution = require_execution(request, field_name)
        return ns.id, await self.history.get_mutable_state(ns.id, execution)

    @rpc
    async def DescribeWorkflowExecution(self, request, context):
        _, ms = await self._mutable_state(request, "execution")
        return describe(ms)

    @rpc
    async def GetWorkflowExecutionHistory(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        require_execution(request, "execution")
        # One call to the run's owner (history_reads.py), the long poll included.
        timeout = self._long_poll_timeout(context, HISTORY_LONG_POLL_S)
        return await self.history.get_workflow_history(ns.id, request, timeout)

    @rpc
    async def GetWorkflowExecutionHistoryReverse(self, request, context):
        ns_id, ms = await self._mutable_state(request, "execution")
        last_event_id = ms.next_event_id - 1
        if request.next_page_token:
            try:
                token = json.loads(request.next_page_token)
                run_id, last_event_id = token["run_id"], token["last_event_id"]
                if not isinstance(run_id, str) or type(last_event_id) is not int or last_event_id < 0:
                    raise TypeError("mistyped token")
            except (ValueError, KeyError, TypeError) as e:
                raise InvalidArgument(INVALID_TOKEN) from e
            ms = await self.history.get_mutable_state(
                ns_id, WorkflowExecution(workflow_id=request.execution.workflow_id, run_id=run_id)
            )
            last_event_id = min(last_event_id, ms.next_event_id - 1)
        page_size = effective_page_size(request.maximum_page_size, LIMITS.frontend_history_max_page_size)
        # The page's events are the last ones before last_event_id that fit: read forward a page at a time
        # from page_size events back, keeping only the tail that fits.
        first = max(last_event_id - page_size + 1, 1)
        tail: list = []
        tail_bytes = 0
        token = (
            HistoryCursor(ms.info.run_id, first, last_event_id + 1, 0).encode()
            if first <= last_event_id
            else b""
        )
        while token:
            history, token = await self.history.read_history_page(ms, token, page_size, PAGE_BYTES)
            for event in history.events:
                tail.append(event)
                tail_bytes += framed_size(event)
                while len(tail) > 1 and tail_bytes > PAGE_BYTES:
                    tail_bytes -= framed_size(tail.pop(0))
        resp = rr.GetWorkflowExecutionHistoryReverseResponse(history=History(events=list(reversed(tail))))
        oldest = tail[0].event_id if tail else first
        if oldest > 1:
            resp.next_page_token = json.dumps(
                {"run_id": ms.info.run_id, "last_event_id": oldest - 1}
            ).encode()
        return resp

    @rpc
    async def ResetWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        execution = require_execution(request)
        if request.workflow_task_finish_event_id <= 0:
            raise InvalidArgument("WorkflowTaskFinishEventId is not set on request.")
        excluded = _reset_reapply_excluded(request)
        run_id = await self.history.reset_workflow(
            ns.id,
            ns.name,
            execution,
            request.workflow_task_finish_event_id,
            request.reason,
            request.request_id or str(uuid.uuid4()),
            ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL not in excluded,
            list(request.post_reset_operations),
            reapply_updates=ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE not in excluded,
        )
        return rr.ResetWorkflowExecutionResponse(run_id=run_id)

    @rpc
    async def DeleteWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        execution = require_execution(request)
        await self.history.delete_workflow(ns.id, execution)
        return rr.DeleteWorkflowExecutionResponse()

    @rpc
    async def QueryWorkflow(self, request, context):
        ns_id, ms = await self._mutable_state(request, "execution")
        if not request.query.query_type:
            raise InvalidArgument("QueryType is not set on request.")
        if request.query.HasField("query_args"):
            check_blob_size(request.query.query_args, self.max_blob_bytes)
        if ms.running and ms.info.pause is not None:
            # A paused run's worker gets no task, so no query either: rejected whatever the condition (reference).
            return rr.QueryWorkflowResponse(query_rejected=QueryRejected(status=run_status(ms)))
        if _query_rejected(request.query_reject_condition, ms):
            return rr.QueryWorkflowResponse(query_rejected=QueryRejected(status=ms.info.status))
        timeout = _long_poll_timeout(context, DEFAULT_QUERY_TIMEOUT_S)
        deadline = time.monotonic() + timeout
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        query = WorkflowQuery(
            query_type=request.query.query_type,
            query_args=request.query.query_args,
            header=request.query.header,
        )
        if ms.running:
            buffered = await self.history.consistent_query(ns_id, execution, query, timeout)
            if buffered is not None:
                if not buffered.answered:
                    raise QueryFailed(buffered.error_message)
                return rr.QueryWorkflowResponse(query_result=buffered.result)
            ms = await self.history.get_mutable_state(ns_id, execution)  # its stickiness may have changed
        answer = await self.matching.query_workflow(
            ns_id,
            ms.info.task_queue,
            execution,
            query,
            max(deadline - time.monotonic(), 0.0),
            sticky_queue=ms.info.sticky_task_queue,
            sticky_timeout=ms.info.sticky_schedule_to_start_timeout_ms / 1000,
            pinned=workflow_versioning.pinned_version(ms),
            sticky_member=ms.info.sticky_member,
        )
        if answer.completed_type == QueryResultType.QUERY_RESULT_TYPE_FAILED:
            raise QueryFailed(answer.error_message)
        return rr.QueryWorkflowResponse(query_result=answer.query_result)

    @rpc
    async def RespondQueryTaskCompleted(self, request, context):
        token = await self._task_token(request)
        if request.query_result.ByteSize() > self.max_blob_bytes:
            # As the reference: the caller of QueryWorkflow gets a failed query, not a response that
            # cannot be sent.
            request = rr.RespondQueryTaskCompletedRequest(
                task_token=request.task_token,
                namespace=request.namespace,
                completed_type=QueryResultType.QUERY_RESULT_TYPE_FAILED,
                error_message=QUERY_RESULT_TOO_LARGE,
            )
        if not token.query_id or not await self.matching.respond_query_task_completed(
            token.query_id, request
        ):
            raise NotFound("query task not found, or already expired")
        return rr.RespondQueryTaskCompletedResponse()

    # ---- Nexus tasks (the handler side: a worker polls the requests its endpoints receive) -------------------
    @rpc
    async def PollNexusTaskQueue(self, request, context):
        _check_long_poll_deadline(context)
        ns = await self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        return await self.matching.poll_nexus_task(
            ns.id,
            request.task_queue.name,
            request.identity,
            self._long_poll_timeout(context, MAX_LONG_POLL_S),
            worker_key=request.worker_instance_key,
        )

    @rpc
    async def RespondNexusTaskCompleted(self, request, context):
        await self._respond_nexus_task(request)
        return rr.RespondNexusTaskCompletedResponse()

    @rpc
    async def RespondNexusTaskFailed(self, request, context):
        await self._respond_nexus_task(request)
        return rr.RespondNexusTaskFailedResponse()

    async def _respond_nexus_task(self, request) -> None:
        token = await self._task_token(request)
        if not token.nexus_task_id or not await self.matching.respond_nexus_task(
            token.nexus_task_id, request
        ):
            raise NotFound("Nexus task not found or already expired")

    # ---- task tokens -----------------------------------------------------------------------------------
    async def _task_token(self, request) -> TaskToken:
        """The request's task token, if this cluster sealed it, checked as the reference's namespace
        validator does: its namespace must exist and, when the request names a namespace, be that one
        (else a worker of namespace B could complete namespace A's tasks)."""
        token = self.task_tokens.decode(request.task_token)
        token_namespace = await self.namespaces.get_by_id(token.namespace_id)
        if request.namespace and request.namespace != token_namespace.name:
            if (await self.namespaces.get(request.namespace)).id != token_namespace.id:
                raise InvalidArgument(TOKEN_NAMESPACE_MISMATCH)
        return token

    # ---- workflow tasks --------------------------------------------------------------------------------
    @rpc
    async def PollWorkflowTaskQueue(self, request, context):
        _check_long_poll_deadline(context)  # first, as on the reference
        ns = await self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        queue = await deployments.polled_queue(
            self.matching, ns.id, request, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        )
        return await self.matching.poll_workflow_task(
            ns.id,
            queue,
            request.task_queue.kind,
            request.identity,
            self._long_poll_timeout(context, MAX_LONG_POLL_S),
            # SDKs without worker versioning send their build id as the binary checksum.
            request.deployment_options.build_id
            or request.worker_version_capabilities.build_id
            or request.binary_checksum,
            worker_key=request.worker_instance_key,
            version=workflow_versioning.poller_version(request.deployment_options),
        )

    @rpc
    async def RespondWorkflowTaskCompleted(self, request, context):
        token = await self._task_token(request)
        check_command_types(request.commands)
        _fail_oversized_query_results(request, self.max_blob_bytes)
        return await self.history.respond_workflow_task_completed(token, request, self.max_blob_bytes)

    @rpc
    async def RespondWorkflowTaskFailed(self, request, context):
        token = await self._task_token(request)
        await self.history.respond_workflow_task_failed(
            token, request.cause, request.failure if request.HasField("failure") else None, request.identity
        )
        return rr.RespondWorkflowTaskFailedResponse()

    # ---- activity tasks --------------------------------------------------------------------------------
    @rpc
    async def PollActivityTaskQueue(self, request, context):
        _check_long_poll_deadline(context)  # first, as on the reference
        ns = await self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        queue = await deployments.polled_queue(
            self.matching, ns.id, request, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
        )
        return await self.matching.poll_activity_task(
            ns.id,
            ns.name,
            queue,
            request.identity,
            self._long_poll_timeout(context, MAX_LONG_POLL_S),
            request.deployment_options.build_id or request.worker_version_capabilities.build_id,
            request.task_queue_metadata.max_tasks_per_second.value,
            worker_key=request.worker_instance_key,
            version=workflow_versioning.poller_version(request.deployment_options),
            sdk_name=_header(context, "client-name"),
            sdk_version=_header(context, "client-version"),
        )

    async def _activity_token(self, request) -> tuple[TaskToken, bool]:
        """The task token, or one built from (namespace, workflow id, run id, activity id) for *ById calls."""
        if hasattr(request, "activity_id"):
            ns = await self.namespaces.get(request.namespace)
            require_id(request.activity_id, "ActivityId")
            workflow_id = request.workflow_id
            if not workflow_id and LIMITS.enable_standalone_activities:
                # No workflow id: the standalone activity of that id (and run id, if given), as the reference.
                workflow_id = standalone_ids.workflow_id(request.activity_id)
            else:
                require_workflow_id(workflow_id)
            return TaskToken(ns.id, workflow_id, request.run_id, 0, 0, activity_id=request.activity_id), True
        return await self._task_token(request), False

    async def _on_activity_by_id(self, request, call: Awaitable[_T], completing: bool = False) -> _T:
        """A *ById call's answer; a standalone activity that is not there (or not started) is NOT_FOUND
        with the reference's message, and completing a closed one is FAILED_PRECONDITION."""
        try:
            return await call
        except NotFound:
            if getattr(request, "workflow_id", True):
                raise
            if completing:
                ns = await self.namespaces.get(request.namespace)
                with contextlib.suppress(NotFound):
                    ms = await standalone_activities.mutable_state(self.history, ns.id, request)
                    if not ms.running:
                        raise FailedPrecondition(standalone.invalid_transition_message(ms)) from None
            raise NotFound(f"activity not found for ID: {request.activity_id}") from None

    @rpc
    async def RespondActivityTaskCompleted(self, request, context):
        return await self._complete_activity(request, rr.RespondActivityTaskCompletedResponse())

    @rpc
    async def RespondActivityTaskCompletedById(self, request, context):
        return await self._complete_activity(request, rr.RespondActivityTaskCompletedByIdResponse())

    async def _complete_activity(self, request, response):
        token, by_id = await self._activity_token(request)
        check_blob_size(request.result, self.max_blob_bytes)
        await self._on_activity_by_id(
            request,
            self.history.respond_activity_completed(
                token, request.result if request.HasField("result") else None, request.identity, by_id
            ),
            completing=True,
        )
        return response

    @rpc
    async def RespondActivityTaskFailed(self, request, context):
        return await self._fail_activity(request, rr.RespondActivityTaskFailedResponse())

    @rpc
    async def RespondActivityTaskFailedById(self, request, context):
        return await self._fail_activity(request, rr.RespondActivityTaskFailedByIdResponse())

    async def _fail_activity(self, request, response):
        token, by_id = await self._activity_token(request)
        check_blob_size(request.failure, self.max_blob_bytes, "Failure")
        await self._on_activity_by_id(
            request,
            self.history.respond_activity_failed(
                token,
                request.failure,
                request.identity,
                request.last_heartbeat_details if request.HasField("last_heartbeat_details") else None,
                by_id,
            ),
        )
        return response

    @rpc
    async def RespondActivityTaskCanceled(self, request, context):
        return await self._cancel_activity(request, rr.RespondActivityTaskCanceledResponse())

    @rpc
    async def RespondActivityTaskCanceledById(self, request, context):
        return await self._cancel_activity(request, rr.RespondActivityTaskCanceledByIdResponse())

    async def _cancel_activity(self, request, response):
        token, by_id = await self._activity_token(request)
        await self._on_activity_by_id(
            request,
            self.history.respond_activity_canceled(
                token, request.details if request.HasField("details") else None, request.identity, by_id
            ),
        )
        return response

    @rpc
    async def RecordActivityTaskHeartbeat(self, request, context):
        return rr.RecordActivityTaskHeartbeatResponse(**await self._heartbeat(request))

    @rpc
    async def RecordActivityTaskHeartbeatById(self, request, context):
        return rr.RecordActivityTaskHeartbeatByIdResponse(**await self._heartbeat(request))

    async def _heartbeat(self, request) -> dict[str, bool]:
        """Record the details; answers whether the activity's cancellation was requested, and whether it
        was paused or reset (PauseActivity, ResetActivity): the worker cancels the attempt on each."""
        token, by_id = await self._activity_token(request)
        check_blob_size(request.details, self.max_blob_bytes, "Heartbeat details")
        cancel_requested, paused, reset = await self._on_activity_by_id(
            request,
            self.history.record_activity_heartbeat(
                token, request.details if request.HasField("details") else None, by_id
            ),
        )
        return {"cancel_requested": cancel_requested, "activity_paused": paused, "activity_reset": reset}

    # ---- activity operator APIs (see activity_operations.py) ---------------------------------------------
    async def _activity_operation(self, request) -> str:
        """The checks shared by the operator APIs, in the reference's order (its frontend resolves the
        namespace of every request first); answers the namespace id."""
        ns = await self.namespaces.get(request.namespace)
        activity_operations.check_request(request)
        return ns.id

    @rpc
    async def PauseActivity(self, request, context):
        await self.history.pause_activity(await self._activity_operation(request), request)
        return rr.PauseActivityResponse()

    @rpc
    async def UnpauseActivity(self, request, context):
        await self.history.unpause_activity(await self._activity_operation(request), request)
        return rr.UnpauseActivityResponse()

    @rpc
    async def ResetActivity(self, request, context):
        await self.history.reset_activity(await self._activity_operation(request), request)
        return rr.ResetActivityResponse()

    @rpc
    async def UpdateActivityOptions(self, request, context):
        options = await self.history.update_activity_options(await self._activity_operation(request), request)
        return rr.UpdateActivityOptionsResponse(activity_options=options)

    async def _activity_execution_operation(self, request) -> str:
        """The same for the *ActivityExecution forms, whose checks differ; answers the namespace id.
        Without a workflow id they name a standalone activity, which must exist and be open."""
        ns = await self.namespaces.get(request.namespace)
        activity_operations.check_execution_request(request)
        if not request.workflow_id:
            ms = await standalone_activities.mutable_state(self.history, ns.id, request)
            if not ms.running:
                raise FailedPrecondition(standalone.closed_operation_message(ms, request))
        return ns.id

    @rpc
    async def PauseActivityExecution(self, request, context):
        ns_id = await self._activity_execution_operation(request)
        await self.history.pause_activity(ns_id, activity_operations.as_pause(request))
        return rr.PauseActivityExecutionResponse()

    @rpc
    async def UnpauseActivityExecution(self, request, context):
        ns_id = await self._activity_execution_operation(request)
        await self.history.unpause_activity(ns_id, activity_operations.as_unpause(request))
        return rr.UnpauseActivityExecutionResponse()

    @rpc
    async def ResetActivityExecution(self, request, context):
        ns_id = await self._activity_execution_operation(request)
        await self.history.reset_activity(ns_id, activity_operations.as_reset(request))
        return rr.ResetActivityExecutionResponse()

    @rpc
    async def UpdateActivityExecutionOptions(self, request, context):
        ns_id = await self._activity_execution_operation(request)
        options = await self.history.update_activity_options(ns_id, activity_operations.as_update(request))
        return rr.UpdateActivityExecutionOptionsResponse(activity_options=options)

    # ---- standalone activities (issue 15) --------------------------------------------------------------
    @rpc
    async def StartActivityExecution(self, request, context):
        standalone_activities.check_enabled()
        ns = await self.namespaces.get(request.namespace)
        standalone.check_start(request)
        if request.HasField("input"):
            check_blob_size(request.input, self.max_blob_bytes)
        await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        result: StartResult = await self.history.start_activity_execution(ns.id, ns.name, request)
        return rr.StartActivityExecutionResponse(run_id=result.run_id, started=result.started)

    @rpc
    async def DescribeActivityExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        standalone_activities.check_long_poll(request)
        ms = await standalone_activities.mutable_state(self.history, ns.id, request)
        timeout = self._long_poll_timeout(context, HISTORY_LONG_POLL_S)
        return await standalone_activities.describe_long_poll(self.history, ms, request, timeout)

    @rpc
    async def PollActivityExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_activities.mutable_state(self.history, ns.id, request)
        timeout = self._long_poll_timeout(context, HISTORY_LONG_POLL_S)
        return await standalone_activities.poll(self.history, ms, timeout)

    @rpc
    async def RequestCancelActivityExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_activities.mutable_state(self.history, ns.id, request)
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.request_cancel_activity_execution(
            ns.id, execution, request.identity, request.reason
        )
        return rr.RequestCancelActivityExecutionResponse()

    @rpc
    async def TerminateActivityExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_activities.mutable_state(self.history, ns.id, request)
        if not ms.running:
            raise FailedPrecondition(standalone.terminate_closed_message(ms))
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.terminate(ns.id, execution, request.reason, None, request.identity)
        return rr.TerminateActivityExecutionResponse()

    @rpc
    async def DeleteActivityExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_activities.mutable_state(self.history, ns.id, request)
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.delete_workflow(ns.id, execution)
        return rr.DeleteActivityExecutionResponse()

    @rpc
    async def ListActivityExecutions(self, request, context):
        return await self._visibility(standalone_activities.list_executions, request)

    @rpc
    async def CountActivityExecutions(self, request, context):
        return await self._visibility(standalone_activities.count_executions, request)

    # ---- standalone Nexus operations (issue 15) ---------------------------------------------------------
    @rpc
    async def StartNexusOperationExecution(self, request, context):
        standalone_nexus_operations.check_enabled()
        ns = await self.namespaces.get(request.namespace)
        standalone_nexus.check_start(request)
        if request.HasField("input"):
            check_blob_size(request.input, self.max_blob_bytes)
        await self.search_attributes.validate_search_attributes(ns.id, request.search_attributes)
        endpoint_id = (await nexus_dispatch.endpoint_ids(self.store, {request.endpoint})).get(
            request.endpoint
        )
        if endpoint_id is None:
            raise NotFound(f"could not find Nexus endpoint by name: {request.endpoint}")
        if not request.request_id:
            request.request_id = str(uuid.uuid4())
        result: StartResult = await self.history.start_nexus_operation_execution(
            ns.id, ns.name, request, endpoint_id
        )
        return rr.StartNexusOperationExecutionResponse(run_id=result.run_id, started=result.started)

    @rpc
    async def DescribeNexusOperationExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_nexus_operations.mutable_state(self.history, ns.id, request)
        timeout = self._long_poll_timeout(context, HISTORY_LONG_POLL_S)
        return await standalone_nexus_operations.describe(self.history, ms, request, timeout)

    @rpc
    async def PollNexusOperationExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_nexus_operations.mutable_state(self.history, ns.id, request)
        timeout = self._long_poll_timeout(context, HISTORY_LONG_POLL_S)
        return await standalone_nexus_operations.poll(self.history, ms, request, timeout)

    @rpc
    async def RequestCancelNexusOperationExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_nexus_operations.mutable_state(self.history, ns.id, request)
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.request_cancel_nexus_operation_execution(
            ns.id, execution, request.identity, request.reason
        )
        return rr.RequestCancelNexusOperationExecutionResponse()

    @rpc
    async def TerminateNexusOperationExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_nexus_operations.mutable_state(self.history, ns.id, request)
        if not ms.running:
            raise FailedPrecondition(standalone_nexus.terminate_closed_message(ms))
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.terminate(ns.id, execution, request.reason, None, request.identity)
        return rr.TerminateNexusOperationExecutionResponse()

    @rpc
    async def DeleteNexusOperationExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        ms = await standalone_nexus_operations.mutable_state(self.history, ns.id, request)
        execution = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        await self.history.delete_workflow(ns.id, execution)
        return rr.DeleteNexusOperationExecutionResponse()

    @rpc
    async def ListNexusOperationExecutions(self, request, context):
        return await self._visibility(standalone_nexus_operations.list_executions, request)

    @rpc
    async def CountNexusOperationExecutions(self, request, context):
        return await self._visibility(standalone_nexus_operations.count_executions, request)

    # ---- visibility ------------------------------------------------------------------------------------
    async def _visibility(self, handler, request):
        return await handler(request, self.namespaces, self.store, self.search_attributes)

    @rpc
    async def ListWorkflowExecutions(self, request, context):
        return await self._visibility(visibility.list_workflow_executions, request)

    @rpc
    async def ScanWorkflowExecutions(self, request, context):
        return await self._visibility(visibility.scan_workflow_executions, request)

    @rpc
    async def CountWorkflowExecutions(self, request, context):
        return await self._visibility(visibility.count_workflow_executions, request)

    @rpc
    async def ListOpenWorkflowExecutions(self, request, context):
        return await self._visibility(visibility.list_open_workflow_executions, request)

    @rpc
    async def ListClosedWorkflowExecutions(self, request, context):
        return await self._visibility(visibility.list_closed_workflow_executions, request)

    @rpc
    async def GetSearchAttributes(self, request, context):
        return await self._visibility(visibility.get_search_attributes, request)

    # ---- schedules ---------------------------------------------------------------------------------------
    def _schedules(self) -> ScheduleHandlers:
        if self.schedules is None:
            raise Unimplemented("schedules are not enabled on this node")
        return self.schedules

    @rpc
    async def CreateSchedule(self, request, context):
        return await self._schedules().create(request)

    @rpc
    async def DescribeSchedule(self, request, context):
        return await self._schedules().describe(request)

    @rpc
    async def UpdateSchedule(self, request, context):
        return await self._schedules().update(request)

    @rpc
    async def PatchSchedule(self, request, context):
        return await self._schedules().patch(request)

    @rpc
    async def DeleteSchedule(self, request, context):
        return await self._schedules().delete(request)

    @rpc
    async def ListSchedules(self, request, context):
        return await self._schedules().list(request)

    @rpc
    async def CountSchedules(self, request, context):
        return await self._schedules().count(request)

    @rpc
    async def ListScheduleMatchingTimes(self, request, context):
        return await self._schedules().matching_times(request)

    # ---- batch operations (see frontend/batches.py and cluster/batcher) ---------------------------------
    def _batches(self) -> BatchHandlers:
        if self.batches is None:
            raise Unimplemented("batch operations are not enabled on this node")
        return self.batches

    @rpc
    async def StartBatchOperation(self, request, context):
        return await self._batches().start(request)

    @rpc
    async def StopBatchOperation(self, request, context):
        return await self._batches().stop(request)

    @rpc
    async def DescribeBatchOperation(self, request, context):
        return await self._batches().describe(request)

    @rpc
    async def ListBatchOperations(self, request, context):
        return await self._batches().list(request)

    # ---- workers and task queues -----------------------------------------------------------------------
    @rpc
    async def ShutdownWorker(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        # Both best-effort, as on the reference: only the sticky queue's unload may fail the call.
        try:
            if request.HasField("worker_heartbeat") and LIMITS.worker_heartbeats_enabled:
                # The worker's last heartbeat (status SHUTTING_DOWN), recorded as the reference does.
                await self.matching.record_worker_heartbeats(ns.id, [request.worker_heartbeat])
            if LIMITS.cancel_worker_polls_on_shutdown and request.worker_instance_key and request.task_queue:
                # The SDK waits for its polls when the namespace says the server completes them.
                for task_type in request.task_queue_types or (
                    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                ):
                    # Its polls wait on any partition, or on a parent they were forwarded to.
                    for number in range(self.matching.read_partitions(ns.id, request.task_queue, task_type)):
                        await self.matching.complete_worker_polls(
                            ns.id, request.task_queue, task_type, request.worker_instance_key, number
                        )
                    version = request.worker_heartbeat.deployment_version
                    if version.deployment_name and version.build_id:
                        # A versioned worker polls its version's own queue (worker_deployments.py).
                        await self.matching.complete_worker_polls(
                            ns.id,
                            versioned_queue(request.task_queue, version.deployment_name, version.build_id),
                            task_type,
                            request.worker_instance_key,
                        )
        except ServiceError as e:
            log.warning(
                "ShutdownWorker of %s: %s", request.worker_instance_key or request.identity, e.message
            )
        if request.sticky_task_queue:
            # Its runs' next tasks go to the normal queue at once instead of waiting for a dead worker.
            await self.matching.unload_sticky_queue(ns.id, request.sticky_task_queue)
        return rr.ShutdownWorkerResponse()

    @rpc
    async def UpdateWorkflowExecutionOptions(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        execution_options.check_request(request)
        options = await self.history.update_workflow_options(
            ns.id,
            request.workflow_execution,
            request.workflow_execution_options,
            request.update_mask,
            request.identity,
        )
        return rr.UpdateWorkflowExecutionOptionsResponse(workflow_execution_options=options)

    # ---- PauseWorkflowExecution / UnpauseWorkflowExecution (cluster/frontend/workflow_pause.py) -------------
    @rpc
    async def PauseWorkflowExecution(self, request, context):
        workflow_pause.check_enabled(request.namespace)
        ns = await self.namespaces.get(request.namespace)
        workflow_pause.check_request(request)
        await self.history.pause_workflow(ns.id, request)
        return rr.PauseWorkflowExecutionResponse()

    @rpc
    async def UnpauseWorkflowExecution(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        workflow_pause.check_request(request)
        await self.history.unpause_workflow(ns.id, request)
        return rr.UnpauseWorkflowExecutionResponse()

    # Worker heartbeats (cluster/matching/workers.py): kept by the member owning the namespace's registry.
    @rpc
    async def RecordWorkerHeartbeat(self, request, context):
        if not LIMITS.worker_heartbeats_enabled:
            return rr.RecordWorkerHeartbeatResponse()  # frontend.WorkerHeartbeatsEnabled=false: dropped
        ns = await self.namespaces.get(request.namespace)
        await self.matching.record_worker_heartbeats(ns.id, list(request.worker_heartbeat))
        return rr.RecordWorkerHeartbeatResponse()

    @rpc
    async def ListWorkers(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await self.matching.list_workers(ns.id, request)

    @rpc
    async def CountWorkers(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await self.matching.count_workers(ns.id, request)

    @rpc
    async def DescribeWorker(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await self.matching.describe_worker(ns.id, request.worker_instance_key)

    @rpc
    async def FetchWorkerConfig(self, request, context):
        raise Unimplemented("FetchWorkerConfig command is not enabled.")  # as the reference's dev server

    @rpc
    async def UpdateWorkerConfig(self, request, context):
        raise Unimplemented("UpdateWorkerConfig command is not enabled.")

    @rpc
    async def ResetStickyTaskQueue(self, request, context):
        execution = require_execution(request, "execution")
        ns = await self.namespaces.get(request.namespace)
        await self.history.reset_sticky_task_queue(ns.id, execution)
        return rr.ResetStickyTaskQueueResponse()

    @rpc
    async def UpdateTaskQueueConfig(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        config = await self.matching.update_queue_config(
            ns.id, request.task_queue, request.task_queue_type, request
        )
        return rr.UpdateTaskQueueConfigResponse(config=config)

    @rpc
    async def DescribeTaskQueue(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        require_task_queue(request.task_queue.name)
        return await describe_task_queue(self.matching, ns.id, request)

    # ---- the older build-id versioning APIs: refused after the namespace checks, as the reference does.
    async def _refuse_build_id_versioning(self, name: str, request) -> None:
        await self.namespaces.get(request.namespace)
        raise build_id_versioning.refuse(name)

    @rpc
    async def UpdateWorkerBuildIdCompatibility(self, request, context):
        await self._refuse_build_id_versioning("UpdateWorkerBuildIdCompatibility", request)

    @rpc
    async def GetWorkerBuildIdCompatibility(self, request, context):
        await self._refuse_build_id_versioning("GetWorkerBuildIdCompatibility", request)

    @rpc
    async def UpdateWorkerVersioningRules(self, request, context):
        await self._refuse_build_id_versioning("UpdateWorkerVersioningRules", request)

    @rpc
    async def GetWorkerVersioningRules(self, request, context):
        await self._refuse_build_id_versioning("GetWorkerVersioningRules", request)

    @rpc
    async def GetWorkerTaskReachability(self, request, context):
        await self._refuse_build_id_versioning("GetWorkerTaskReachability", request)

    # ---- Worker Deployments (worker_deployments.py) ----------------------------------------------------
    @rpc
    async def DescribeWorkerDeployment(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.describe(self.matching.deployments, ns.id, request)

    @rpc
    async def CreateWorkerDeployment(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.create(self.matching.deployments, ns.id, request)

    @rpc
    async def ListWorkerDeployments(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.list_deployments(self.matching.deployments, ns.id, request)

    @rpc
    async def DescribeWorkerDeploymentVersion(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.describe_version(self.matching.deployments, self.matching, ns.id, request)

    @rpc
    async def SetWorkerDeploymentCurrentVersion(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.set_current(self.matching, ns.id, request)

    @rpc
    async def SetWorkerDeploymentRampingVersion(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.set_ramping(self.matching, ns.id, request)

    @rpc
    async def SetWorkerDeploymentManager(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.set_manager(self.matching.deployments, ns.id, request)

    @rpc
    async def DeleteWorkerDeploymentVersion(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.delete_version(self.matching.deployments, ns.id, request)

    @rpc
    async def DeleteWorkerDeployment(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.delete_deployment(self.matching.deployments, ns.id, request)

    @rpc
    async def UpdateWorkerDeploymentVersionMetadata(self, request, context):
        ns = await self.namespaces.get(request.namespace)
        return await deployments.update_metadata(self.matching.deployments, ns.id, request)

    @rpc
    async def ListTaskQueuePartitions(self, request, context):
        """Every read partition of the queue's workflow and activity types, with the member serving it."""
        ns = await self.namespaces.get(request.namespace)
        name = request.task_queue.name
        require_task_queue(name)
        resp = rr.ListTaskQueuePartitionsResponse()
        for task_type, out in (
            (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, resp.workflow_task_queue_partitions),
            (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, resp.activity_task_queue_partitions),
        ):
            for key, owner in self.matching.list_partitions(ns.id, name, task_type):
                out.add(key=key, owner_host_name=owner)
        return resp


async def _send_version(context: grpc.aio.ServicerContext) -> None:
    """Hourglass's own version beside the reference version it answers (see cluster_info)."""
    await context.send_initial_metadata(((VERSION_HEADER, hourglass_version()),))


def _update_stage(stage: int) -> int:
    """The stage an update caller waits for; ADMITTED alone is refused, as on the reference."""
    if stage == Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED:
        raise PermissionDenied(
            "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is not supported."
        )
    return stage or Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED


def _update_wait(context: grpc.aio.ServicerContext) -> tuple[float, bool]:
    """How long an update call waits, and whether that is the caller's own deadline (then missing the stage
    is DEADLINE_EXCEEDED) rather than the server's long-poll interval (then the reached stage is answered)."""
    remaining = context.time_remaining()
    if remaining is not None and remaining - UPDATE_DEADLINE_MARGIN_S < UPDATE_LONG_POLL_S:
        return max(remaining - UPDATE_DEADLINE_MARGIN_S, 0.0), True
    return _long_poll_timeout(context, UPDATE_LONG_POLL_S), False


def _check_reached(result: UpdateResult, stage: int, caller_bound: bool) -> None:
    if result.stage < stage and caller_bound:
        raise DeadlineExceeded("context deadline exceeded")


def _update_response(
    workflow_id: str, update_id: str, result: UpdateResult
) -> rr.UpdateWorkflowExecutionResponse:
    resp = rr.UpdateWorkflowExecutionResponse(
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=result.run_id),
            update_id=update_id,
        ),
        stage=result.stage,
    )
    if result.outcome is not None:
        resp.outcome.CopyFrom(result.outcome)
    return resp


def _check_long_poll_deadline(context: grpc.aio.ServicerContext) -> None:
    """A task poll must leave the server time to wait (the reference's MinLongPollTimeout, 2 s): with
    less, a task handed out as the caller gives up would be lost until its timeout."""
    remaining = context.time_remaining()
    if remaining is not None and remaining < MIN_LONG_POLL_S:
        raise FailedPrecondition(LONG_POLL_TOO_SHORT)


def _header(context: grpc.aio.ServicerContext, name: str) -> str:
    """A request header's value ("" when absent), e.g. the SDK's client-name and client-version."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


def _long_poll_timeout(context: grpc.aio.ServicerContext, cap: float) -> float:
    remaining = context.time_remaining()
    if remaining is None:
        return cap
    return max(min(cap, remaining - 1.0), 0.0)


def _query_rejected(condition: int, ms: MutableState) -> bool:
    """A closed workflow's query is rejected, not run, when the caller asks so (as on the reference):
    NOT_OPEN for any closed run, NOT_COMPLETED_CLEANLY for one that did not complete."""
    if ms.running:
        return False
    if condition == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN:
        return True
    return (
        condition == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY
        and ms.info.status != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
    )


def _fill_unimplemented() -> None:
    """Every WorkflowService RPC we do not serve answers UNIMPLEMENTED, naming itself."""
    for name in dir(WorkflowServiceServicer):
        if name.startswith("_") or name in WorkflowService.__dict__:
            continue
        setattr(WorkflowService, name, unimplemented(name))


_fill_unimplemented()


QUERY_RESULT_TOO_LARGE = "Blob data size exceeds limit."


def _fail_oversized_query_results(request: rr.RespondWorkflowTaskCompletedRequest, limit: int) -> None:
    """Answers to buffered queries carried by a workflow task, over the blob limit, become failed
    queries (as on the reference), as when a worker answers a query task directly."""
    for result in request.query_results.values():
        if result.answer.ByteSize() > limit:
            result.Clear()
            result.result_type = QueryResultType.QUERY_RESULT_TYPE_FAILED
            result.error_message = QUERY_RESULT_TOO_LARGE


def _reset_reapply_excluded(request) -> set[int]:
    """The event kinds a reset does not reapply, as the reference reads them: the exclude list, plus the
    deprecated reset_reapply_type (SIGNAL: signals only; NONE: nothing; unset or ALL_ELIGIBLE: all)."""
    excluded = set(request.reset_reapply_exclude_types)
    if request.reset_reapply_type == ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL:
        excluded.add(ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE)
    elif request.reset_reapply_type == ResetReapplyType.RESET_REAPPLY_TYPE_NONE:
        excluded.add(ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL)
        excluded.add(ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE)
    return excluded
