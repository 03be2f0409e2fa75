"""Batch operations (StartBatchOperation ...), run by the server itself as the reference's per-namespace
batcher worker does: each batch's state is a row in the shard that owns (namespace, job id), and one
asyncio task per running batch ("actor") on that shard's owner works through its executions.

Durability: the actor commits the page it is about to work on (executions and the next page token) before
it touches any of them, then commits after each execution (its index and the counts). A node killed
mid-batch leaves the row where it was; the shard's next owner loads it and goes on from the committed
index, redoing at most the one execution in flight. Signals and cancellations carry a request id derived
from the job and the run, which history deduplicates, so a redone execution is not signalled twice.

Operations go through this node's WorkflowService handlers (the reference's batcher calls its frontend
too), so each execution is validated and routed exactly as a client's request would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from temporalio.api.batch.v1 import BatchOperationInfo
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    BatchOperationType,
    EventType,
    ResetType,
    ResourceExhaustedCause,
    ResourceExhaustedScope,
)
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

from hourglass.cluster.batcher.state import COMPLETED, FAILED, BatchState
from hourglass.cluster.errors import (
    InvalidArgument,
    NamespaceNotFound,
    NotFound,
    ResourceExhausted,
    ServiceError,
    ShardNotOwned,
    Unavailable,
    WorkflowAlreadyStarted,
)
from hourglass.cluster.history.engine import HistoryEngine, shard_id_for
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.shard import Shard
from hourglass.cluster.history.timeutil import now_ms, to_timestamp
from hourglass.persistence.errors import ConditionFailedError, ShardOwnershipLostError, StoreUnavailableError
from hourglass.persistence.records import BatchRecord
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace id, job id)
# The reference batcher's page of ListWorkflowExecutions, and its attempts at an execution whose
# operation fails with a retryable error before counting it as a failure.
PAGE_SIZE = 1000
ATTEMPTS_ON_RETRYABLE_ERROR = 50
RETRY_S = 1.0
# What the reference's batcher adds to the query of an operation on running workflows.
RUNNING_FILTER = "ExecutionStatus='Running'"
# Operations that only apply to running workflows: the reference adds the running filter to their query.
_RUNNING_ONLY = {
    "termination_operation",
    "signal_operation",
    "cancellation_operation",
    "update_workflow_options_operation",
    "unpause_activities_operation",
    "update_activity_options_operation",
    "reset_activities_operation",
}
# What DescribeBatchOperation says of each operation: the reference (API v1.63) answers the workflow ones
# with their *_WORKFLOW values (TERMINATE_WORKFLOW = 13 ... UPDATE_WORKFLOW_EXECUTION_OPTIONS = 18), which
# older protos (temporalio 1.35's) do not name yet.
OPERATION_TYPES = {
    "termination_operation": 13,
    "cancellation_operation": 14,
    "signal_operation": 15,
    "deletion_operation": 16,
    "reset_operation": 17,
    "update_workflow_options_operation": 18,
    "unpause_activities_operation": BatchOperationType.BATCH_OPERATION_TYPE_UNPAUSE_ACTIVITY,
    "update_activity_options_operation": BatchOperationType.BATCH_OPERATION_TYPE_UPDATE_ACTIVITY_OPTIONS,
    "reset_activities_operation": BatchOperationType.BATCH_OPERATION_TYPE_RESET_ACTIVITY,
}


class _Gone(Exception):
    """The batch is no longer running here (finished, stopped, or its shard moved): the actor stops."""


class _Context:
    """What the WorkflowService handlers read of a gRPC context when the batcher calls them."""

    def time_remaining(self) -> float:
        return 30.0

    def invocation_metadata(self) -> tuple:
        return ()


def adjusted_query(request: rr.StartBatchOperationRequest) -> str:
    """The query the batch lists, as the reference's batcher builds it from the request."""
    query = request.visibility_query
    if request.HasField("unpause_activities_operation"):
        op = request.unpause_activities_operation
        if op.WhichOneof("activity") == "type":
            value = "property:activityType=" + op.type
            # The frontend replaces the query by the activity type's pause marker, as the reference's does.
            query = "TemporalPauseInfo = '" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if query and request.WhichOneof("operation") in _RUNNING_ONLY:
        return f"({query}) AND ({RUNNING_FILTER})"
    return query


class _Pacer:
    """At most `rps` operations a second (the request's max_operations_per_second, else worker.batcherRPS)."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        if self.next > now:
            await asyncio.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval


class BatchEngine:
    def __init__(self, store: Store, history: HistoryEngine) -> None:
        self.store = store
        self.history = history
        # This node's WorkflowService (set by the node once its routed engines exist); operations and
        # listings go through its handlers.
        self.frontend: Any = None
        self._states: dict[Key, BatchState] = {}
        self._actors: dict[Key, asyncio.Task] = {}

    # ---- ownership (as ScheduleEngine) -------------------------------------------------------------------
    async def start(self) -> None:
        self.history.shard_listeners.append(self)
        for shard in list(self.history.shards.values()):
            await self.shard_acquired(shard)

    async def shard_acquired(self, shard: Shard) -> None:
        for record in await self.store.list_batches(shard.shard_id):
            key = (record.namespace_id, record.job_id)
            state = BatchState.deserialize(record.state, record.version)
            self._states[key] = state
            if state.running:
                self._start_actor(key)

    async def shard_released(self, shard_id: int) -> None:
        keys = [k for k in self._states if self._shard_id(k) == shard_id]
        actors = [a for k in keys if (a := self._actors.pop(k, None)) is not None]
        for key in keys:
            self._states.pop(key, None)
        for actor in actors:
            actor.cancel()
        await asyncio.gather(*actors, return_exceptions=True)

    async def stop(self) -> None:
        actors = list(self._actors.values())
        self._actors.clear()
        for actor in actors:
            actor.cancel()
        await asyncio.gather(*actors, return_exceptions=True)

    def _shard_id(self, key: Key) -> int:
        return shard_id_for(key[0], key[1], self.history.shard_count)

    def _shard(self, key: Key) -> Shard:
        shard = self.history.shards.get(self._shard_id(key))
        if shard is None or shard.released:
            raise ShardNotOwned(f"shard {self._shard_id(key)} is not owned by this node")
        return shard

    def _start_actor(self, key: Key) -> None:
        if key not in self._actors or self._actors[key].done():
            self._actors[key] = asyncio.create_task(self._run(key))

    # ---- reads -------------------------------------------------------------------------------------------
    async def list(self, namespace_id: str) -> list[BatchState]:
        """The namespace's batches in every shard, newest first: the shards this node runs from memory,
        the others from the store (every write reaches the store before memory)."""

        async def of_shard(shard_id: int) -> list[BatchState]:
            shard = self.history.shards.get(shard_id)
            if shard is not None and not shard.released:
                return [
                    s
                    for k, s in list(self._states.items())
                    if k[0] == namespace_id and self._shard_id(k) == shard_id
                ]
            records = await self.store.list_batches(shard_id, namespace_id)
            return [BatchState.deserialize(r.state, r.version) for r in records]

        per_shard = await asyncio.gather(*(of_shard(i) for i in range(self.history.shard_count)))
        states = [s for shard_states in per_shard for s in shard_states]
        states.sort(key=lambda s: (-s.start_ms, s.job_id))
        return states

    async def describe(self, namespace_id: str, job_id: str) -> rr.DescribeBatchOperationResponse:
        self._shard((namespace_id, job_id))
        state = self._states.get((namespace_id, job_id))
        if state is None:
            raise NotFound(f"workflow not found for ID: {job_id}")
        return describe_response(state)

    # ---- writes ------------------------------------------------------------------------------------------
    async def _write(self, shard: Shard, old: BatchState | None, new: BatchState) -> None:
        key = (new.namespace_id, new.job_id)
        new.version = 1 if old is None else old.version + 1
        record = BatchRecord(new.namespace_id, new.job_id, new.serialize(), new.version)
        try:
            await self.store.write_batch(
                shard.shard_id, shard.range_id, record, None if old is None else old.version
            )
        except ConditionFailedError:
            await self._reload(shard, key)
            raise Unavailable("the batch operation changed concurrently; try again") from None
        except ShardOwnershipLostError as e:
            self.history.shard_lost(shard)
            raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner: {e}") from e
        except StoreUnavailableError as e:
            await self._reload(shard, key)
            raise Unavailable(f"persistence unavailable: {e}") from e
        self._states[key] = new

    async def _reload(self, shard: Shard, key: Key) -> None:
        with contextlib.suppress(Exception):
            record = await self.store.get_batch(shard.shard_id, *key)
            if record is None:
                self._states.pop(key, None)
            else:
                self._states[key] = BatchState.deserialize(record.state, record.version)

    async def start_batch(
        self, namespace: str, namespace_id: str, request: rr.StartBatchOperationRequest
    ) -> None:
        """Record the batch (its executions are counted or listed by its actor) and start its actor.
        ResourceExhausted past frontend.MaxConcurrentBatchOperationPerNamespace running batches."""
        key = (namespace_id, request.job_id)
        shard = self._shard(key)
        running = sum(1 for s in await self.list(namespace_id) if s.running)
        if running >= LIMITS.max_concurrent_batch_operations:
            raise ResourceExhausted(
                "Max concurrent batch operations is reached",
                ResourceExhaustedFailure(
                    cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
                    scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
            )
        operation = request.WhichOneof("operation")
        operation_type = OPERATION_TYPES[operation]
        state = BatchState(
            namespace=namespace,
            namespace_id=namespace_id,
            job_id=request.job_id,
            operation_type=operation_type,
            request=request.SerializeToString(),
            identity=getattr(request, operation).identity,
            query=adjusted_query(request),
            start_ms=now_ms(),
        )
        if not state.query:
            state.page = [[e.workflow_id, e.run_id] for e in request.executions] + [
                [e.business_id, e.run_id] for e in request.target_executions
            ]
            state.total = len(state.page)
            state.listed = True
        async with shard.locks.hold(("batch", *key)):
            existing = self._states.get(key)
            if existing is not None:
                raise WorkflowAlreadyStarted(
                    f"Workflow execution already finished. WorkflowId: {request.job_id}.", "", ""
                )
            try:
                await self._write(shard, None, state)
            except Unavailable:
                if self._states.get(key) is not None:
                    raise WorkflowAlreadyStarted(
                        f"Workflow execution is already running. WorkflowId: {request.job_id}.", "", ""
                    ) from None
                raise
        self._start_actor(key)

    async def stop_batch(self, namespace_id: str, job_id: str, reason: str, identity: str) -> None:
        """As the reference, which terminates the batch's workflow: the batch ends in state FAILED."""
        key = (namespace_id, job_id)
        shard = self._shard(key)
        async with shard.locks.hold(("batch", *key)):
            old = self._states.get(key)
            if old is None:
                raise NotFound(f"workflow not found for ID: {job_id}")
            if not old.running:
                raise NotFound("workflow execution already completed")
            new = old.clone()
            new.state = FAILED
            new.close_ms = now_ms()
            await self._write(shard, old, new)
        log.info("batch %s stopped by %r: %s", job_id, identity, reason)
        actor = self._actors.pop(key, None)
        if actor is not None:
            actor.cancel()

    # ---- the actor -----------------------------------------------------------------------------------------
    async def _run(self, key: Key) -> None:
        state = self._states.get(key)
        if state is None:
            return
        request = state.start_request()
        rps = request.max_operations_per_second or LIMITS.batcher_rps
        pacer = _Pacer(rps)
        while True:
            try:
                if self.frontend is None:
                    await asyncio.sleep(0.1)
                    continue
                await self._step(key, request, pacer)
            except _Gone:
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("batch %s: step failed, retrying", key[1], exc_info=True)
                await asyncio.sleep(RETRY_S)

    async def _step(self, key: Key, request: rr.StartBatchOperationRequest, pacer: _Pacer) -> None:
        """One durable step: fetch and commit the next page, handle one execution, or finish."""
        try:
            shard = self._shard(key)
        except ShardNotOwned:
            raise _Gone() from None  # its next owner runs it (shard_released cancels us anyway)
        old = self._states.get(key)
        if old is None or not old.running:
            raise _Gone()
        new = old.clone()
        if new.index >= len(new.page):
            if new.listed and not new.page_token:
                new.state = COMPLETED
                new.close_ms = now_ms()
                new.total = new.success + new.failure
            else:
                try:
                    await self._fetch_page(new)
                except (InvalidArgument, NamespaceNotFound) as e:
                    # Not retryable (the namespace or a search attribute of the query is gone): the batch
                    # fails, as the reference's batch workflow does on a non-retryable listing error.
                    log.warning("batch %s failed: %s", key[1], e.message)
                    new.state = FAILED
                    new.close_ms = now_ms()
        else:
            workflow_id, run_id = new.page[new.index]
            ok = await self._apply(
                new, request, WorkflowExecution(workflow_id=workflow_id, run_id=run_id), pacer
            )
            new.index += 1
            if ok:
                new.success += 1
            else:
                new.failure += 1
        async with shard.locks.hold(("batch", *key)):
            if self._states.get(key) is not old:
                return  # stopped (or reloaded) meanwhile: look again
            await self._write(shard, old, new)

    async def _fetch_page(self, state: BatchState) -> None:
        from hourglass.cluster.frontend import visibility

        fe = self.frontend
        if not state.listed:
            count = await visibility.count_workflow_executions(
                rr.CountWorkflowExecutionsRequest(namespace=state.namespace, query=state.query),
                fe.namespaces,
                fe.store,
                fe.search_attributes,
            )
            state.total = count.count
        resp = await visibility.list_workflow_executions(
            rr.ListWorkflowExecutionsRequest(
                namespace=state.namespace,
                page_size=PAGE_SIZE,
                query=state.query,
                next_page_token=state.page_token,
            ),
            fe.namespaces,
            fe.store,
            fe.search_attributes,
        )
        state.page = [[e.execution.workflow_id, e.execution.run_id] for e in resp.executions]
        state.index = 0
        state.page_token = resp.next_page_token
        state.listed = True

    async def _apply(
        self, state: BatchState, request: rr.StartBatchOperationRequest, wf: WorkflowExecution, pacer: _Pacer
    ) -> bool:
        """Run the operation on one execution: True when done (NotFound counts as done, as on the
        reference), False when it failed for good."""
        for attempt in range(1, ATTEMPTS_ON_RETRYABLE_ERROR + 1):
            await pacer.wait()
            try:
                await self._operate(state, request, wf)
                return True
            except NotFound:
                return True
            except (Unavailable, StoreUnavailableError) as e:
                log.info(
                    "batch %s: %s on %s, attempt %d: %s",
                    state.job_id,
                    "retryable",
                    wf.workflow_id,
                    attempt,
                    e,
                )
                await asyncio.sleep(min(RETRY_S * attempt, 5.0))
            except ServiceError as e:
                log.info("batch %s: %s failed: %s", state.job_id, wf.workflow_id, e.message)
                return False
        return False

    async def _operate(
        self, state: BatchState, request: rr.StartBatchOperationRequest, wf: WorkflowExecution
    ) -> None:
        fe, ns = self.frontend, state.namespace
        ctx = _Context()
        # Idempotent under a redo after a crash: history keeps the request ids it has seen.
        request_id = f"batch-{state.job_id}-{wf.workflow_id}-{wf.run_id}"
        op = request.WhichOneof("operation")
        if op == "termination_operation":
            await _call(
                fe.TerminateWorkflowExecution,
                fe,
                rr.TerminateWorkflowExecutionRequest(
                    namespace=ns,
                    workflow_execution=wf,
                    reason=request.reason,
                    identity=request.termination_operation.identity,
                ),
                ctx,
            )
        elif op == "cancellation_operation":
            await _call(
                fe.RequestCancelWorkflowExecution,
                fe,
                rr.RequestCancelWorkflowExecutionRequest(
                    namespace=ns,
                    workflow_execution=wf,
                    identity=request.cancellation_operation.identity,
                    request_id=request_id,
                ),
                ctx,
            )
        elif op == "signal_operation":
            sig = request.signal_operation
            req = rr.SignalWorkflowExecutionRequest(
                namespace=ns,
                workflow_execution=wf,
                signal_name=sig.signal,
                identity=sig.identity,
                request_id=request_id,
            )
            if sig.HasField("input"):
                req.input.CopyFrom(sig.input)
            if sig.HasField("header"):
                req.header.CopyFrom(sig.header)
            await _call(fe.SignalWorkflowExecution, fe, req, ctx)
        elif op == "deletion_operation":
            await _call(
                fe.DeleteWorkflowExecution,
                fe,
                rr.DeleteWorkflowExecutionRequest(
                    namespace=ns,
                    workflow_execution=wf,
                ),
                ctx,
            )
        elif op == "reset_operation":
            await self._reset(state, request, wf, request_id, ctx)
        elif op == "unpause_activities_operation":
            u = request.unpause_activities_operation
            req = rr.UnpauseActivityRequest(
                namespace=ns,
                execution=wf,
                identity=u.identity,
                reset_attempts=u.reset_attempts,
                reset_heartbeat=u.reset_heartbeat,
            )
            if u.HasField("jitter"):
                req.jitter.CopyFrom(u.jitter)
            if u.WhichOneof("activity") == "type":
                req.type = u.type
            else:
                req.unpause_all = True
            await _call(fe.UnpauseActivity, fe, req, ctx)
        elif op == "reset_activities_operation":
            r = request.reset_activities_operation
            req = rr.ResetActivityRequest(
                namespace=ns,
                execution=wf,
                identity=r.identity,
                reset_heartbeat=r.reset_heartbeat,
                keep_paused=r.keep_paused,
                restore_original_options=r.restore_original_options,
            )
            if r.HasField("jitter"):
                req.jitter.CopyFrom(r.jitter)
            if r.WhichOneof("activity") == "type":
                req.type = r.type
            else:
                req.match_all = True
            await _call(fe.ResetActivity, fe, req, ctx)
        elif op == "update_activity_options_operation":
            o = request.update_activity_options_operation
            req = rr.UpdateActivityOptionsRequest(
                namespace=ns,
                execution=wf,
                identity=o.identity,
                restore_original=o.restore_original,
            )
            if o.HasField("update_mask"):
                req.update_mask.CopyFrom(o.update_mask)
            if o.HasField("activity_options"):
                req.activity_options.CopyFrom(o.activity_options)
            if o.WhichOneof("activity") == "type":
                req.type = o.type
            else:
                req.match_all = True
            await _call(fe.UpdateActivityOptions, fe, req, ctx)
        elif op == "update_workflow_options_operation":
            o = request.update_workflow_options_operation
            req = rr.UpdateWorkflowExecutionOptionsRequest(
                namespace=ns,
                workflow_execution=wf,
                identity=o.identity,
            )
            req.workflow_execution_options.CopyFrom(o.workflow_execution_options)
            req.update_mask.CopyFrom(o.update_mask)
            await _call(fe.UpdateWorkflowExecutionOptions, fe, req, ctx)
        else:
            raise InvalidArgument(f"unknown batch type: {op}")

    async def _reset(
        self,
        state: BatchState,
        request: rr.StartBatchOperationRequest,
        wf: WorkflowExecution,
        request_id: str,
        ctx,
    ) -> None:
        fe, reset = self.frontend, request.reset_operation
        # A reset is not deduplicated by its request id (on the reference neither): a batch redoing this
        # execution after its owner died must not reset the run its first attempt made.
        try:
            current = await self.history.peers.get_mutable_state(
                state.namespace_id, WorkflowExecution(workflow_id=wf.workflow_id)
            )
        except NotFound:
            current = None
        if current is not None and current.info.create_request_id == request_id:
            return
        if reset.HasField("options"):
            target = reset.options.WhichOneof("target")
            if target == "workflow_task_id":
                event_id = reset.options.workflow_task_id
            elif target in ("first_workflow_task", "last_workflow_task"):
                event_id = await self._workflow_task_event_id(
                    state.namespace, wf, target == "first_workflow_task"
                )
            else:
                raise InvalidArgument(f"provided reset target ({target}) is not supported.")
            reapply = reset.options.reset_reapply_type
            excludes = list(reset.options.reset_reapply_exclude_types)
        else:
            if reset.reset_type not in (
                ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK,
                ResetType.RESET_TYPE_LAST_WORKFLOW_TASK,
            ):
                raise InvalidArgument(
                    f"provided reset type ({ResetType.Name(reset.reset_type)}) is not supported."
                )
            event_id = await self._workflow_task_event_id(
                state.namespace, wf, reset.reset_type == ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK
            )
            reapply, excludes = reset.reset_reapply_type, []
        req = rr.ResetWorkflowExecutionRequest(
            namespace=state.namespace,
            workflow_execution=wf,
            reason=request.reason,
            request_id=request_id,
            workflow_task_finish_event_id=event_id,
            reset_reapply_type=reapply,
            reset_reapply_exclude_types=excludes,
            identity=reset.identity,
        )
        req.post_reset_operations.extend(reset.post_reset_operations)
        await _call(fe.ResetWorkflowExecution, fe, req, ctx)

    async def _workflow_task_event_id(self, namespace: str, wf: WorkflowExecution, first: bool) -> int:
        """The reference batcher's reset point: the first (or last) completed workflow task, else the
        event after the first (last) scheduled one."""
        fe, ctx = self.frontend, _Context()
        completed: list[int] = []
        first_scheduled, token = 0, b""
        while True:
            resp = await _call(
                fe.GetWorkflowExecutionHistory,
                fe,
                rr.GetWorkflowExecutionHistoryRequest(
                    namespace=namespace, execution=wf, maximum_page_size=1000, next_page_token=token
                ),
                ctx,
            )
            if isinstance(resp, bytes):  # the handler answers pre-serialized pages
                resp = rr.GetWorkflowExecutionHistoryResponse.FromString(resp)
            for e in resp.history.events:
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    completed.append(e.event_id)
                    if first:
                        return e.event_id
                elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and not first_scheduled:
                    first_scheduled = e.event_id + 1
            token = resp.next_page_token
            if not token:
                break
        if completed:
            return completed[-1]
        if first_scheduled:
            return first_scheduled
        raise InvalidArgument("unable to find any scheduled or completed task")


async def _call(handler, service, request, ctx):
    """A WorkflowService handler without its gRPC wrapper: errors stay ServiceErrors."""
    return await handler.__wrapped__(service, request, ctx)


def describe_response(state: BatchState) -> rr.DescribeBatchOperationResponse:
    request = state.start_request()
    resp = rr.DescribeBatchOperationResponse(
        operation_type=state.operation_type,
        job_id=state.job_id,
        state=state.state,
        identity=state.identity,
        reason=request.reason,
        query=request.visibility_query,
    )
    resp.start_time.CopyFrom(to_timestamp(state.start_ms))
    if state.close_ms:
        resp.close_time.CopyFrom(to_timestamp(state.close_ms))
    if state.state != FAILED:
        # A stopped batch shows no counts on the reference (its workflow was terminated mid-activity).
        resp.total_operation_count = state.total
        resp.complete_operation_count = state.success
        resp.failure_operation_count = state.failure
    if request.target_executions:
        resp.executions.extend(request.target_executions)
    for e in request.executions:
        resp.executions.add(business_id=e.workflow_id, run_id=e.run_id, type=1)
    return resp


def list_response(states: list[BatchState], page_size: int, token: bytes) -> rr.ListBatchOperationsResponse:
    """One page of ListBatchOperations, newest first; the token is the offset of the next page."""
    try:
        offset = int(json.loads(token)["offset"]) if token else 0
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("invalid next page token") from None
    page = states[offset : offset + page_size]
    resp = rr.ListBatchOperationsResponse()
    for s in page:
        info = BatchOperationInfo(job_id=s.job_id, state=s.state)
        info.start_time.CopyFrom(to_timestamp(s.start_ms))
        if s.close_ms:
            info.close_time.CopyFrom(to_timestamp(s.close_ms))
        resp.operation_info.append(info)
    if offset + page_size < len(states):
        resp.next_page_token = json.dumps({"offset": offset + page_size}).encode()
    return resp
