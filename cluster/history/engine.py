"""The history role: owns shards and turns every request about a run into one committed transition.

Each operation takes the run's lock, loads its mutable state, builds a Transition, and commits it through
the shard. Requests that cannot apply (stale task token, closed run) are rejected before anything is
written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import xxhash
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import Header, Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import (
    CommandType,
    EventType,
    ParentClosePolicy,
    RetryState,
    TaskQueueKind,
    TimeoutType,
    UpdateAdmittedEventOrigin,
    WorkflowExecutionStatus,
    WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy,
    WorkflowTaskFailedCause,
)
from temporalio.api.enums.v1 import (
    SignalExternalWorkflowExecutionFailedCause as SignalExternalCause,
)
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage as Stage
from temporalio.api.failure.v1 import Failure, ResetWorkflowFailureInfo
from temporalio.api.history.v1 import (
    ActivityTaskScheduledEventAttributes,
    History,
    HistoryEvent,
    WorkflowExecutionUpdateAdmittedEventAttributes,
)
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.update.v1 import Outcome, Request
from temporalio.api.workflow.v1 import WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryResponse,
    PauseActivityRequest,
    PauseWorkflowExecutionRequest,
    PollActivityTaskQueueResponse,
    PollWorkflowTaskQueueResponse,
    ResetActivityRequest,
    RespondWorkflowTaskCompletedRequest,
    RespondWorkflowTaskCompletedResponse,
    StartActivityExecutionRequest,
    StartNexusOperationExecutionRequest,
    StartWorkflowExecutionRequest,
    UnpauseActivityRequest,
    UnpauseWorkflowExecutionRequest,
    UpdateActivityOptionsRequest,
)

from hourglass.cluster.errors import (
    ActivityExecutionAlreadyStarted,
    DeadlineExceeded,
    FailedPrecondition,
    HistoryLimitExceeded,
    InvalidArgument,
    MultiOperationFailed,
    NexusOperationExecutionAlreadyStarted,
    NotFound,
    ServiceError,
    ShardNotOwned,
    SignalsLimitExceeded,
    StickyWorkerUnavailable,
    Unavailable,
    WorkflowAlreadyStarted,
    WorkflowNotReady,
)
from hourglass.cluster.history import (
    activity_ops,
    continuation,
    events_cache,
    execution_options,
    history_limits,
    history_reads,
    nexus_dispatch,
    nexus_operations,
    standalone_ids,
    standalone_nexus,
    workflow_versioning,
)
from hourglass.cluster.history import standalone_activity as standalone
from hourglass.cluster.history.commands import CommandError, handle_commands
from hourglass.cluster.history.external import (
    record_child_closed,
    record_child_start_failed,
    record_child_started,
    record_external_cancel_requested,
    record_external_signaled,
)
from hourglass.cluster.history.history_wire import history_response
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import (
    ActivityInfo,
    ExecutionInfo,
    MutableState,
    ParentInfo,
    had_or_has_workflow_task,
)
from hourglass.cluster.history.nexus_executors import NexusExecutors
from hourglass.cluster.history.paging import (
    INVALID_TOKEN,
    RESPONSE_LIMIT_BYTES,
    HistoryCursor,
    Page,
    framed_size,
    history_budget,
)
from hourglass.cluster.history.queries import RELEASED, QueryAnswer
from hourglass.cluster.history.queues import QueueProcessors
from hourglass.cluster.history.rebuild import rebuild
from hourglass.cluster.history.runs import (
    NewRun,
    attach_on_conflict,
    attaches_on_conflict,
    new_run_id,
    start_run,
)
from hourglass.cluster.history.shard import Shard
from hourglass.cluster.history.tasks import TimerKind, TransferKind, decode
from hourglass.cluster.history.timeutil import duration_ms, now_ms, to_duration, to_timestamp
from hourglass.cluster.history.tokens import TaskToken
from hourglass.cluster.history.transition import Transition
from hourglass.cluster.history.transition_rate import TransitionRates
from hourglass.cluster.history.updates import (
    ACCEPTED_UPDATE_COMPLETED_WORKFLOW_FAILURE,
    FAILING_TASK_ATTEMPT,
    WORKFLOW_TASK_COMPLETION_FAILED_MESSAGE,
    WORKFLOW_TASK_FAILED_MESSAGE,
    InFlightUpdate,
    ProtocolError,
    UpdateProtocol,
    request_message,
)
from hourglass.cluster.metrics import SHARD_MOVEMENTS
from hourglass.cluster.security.task_tokens import TaskTokenCodec, new_secret
from hourglass.persistence.errors import ConditionFailedError, ShardOwnershipLostError, StoreUnavailableError
from hourglass.persistence.records import (
    CurrentRunMode,
    CurrentRunRecord,
    CurrentRunWrite,
    ExecutionKey,
    RunStatus,
    TimerTask,
    TransferTask,
    VisibilityRecord,
)
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WORKFLOW_TASK_TIMEOUT_MS = 10_000
MAX_WORKFLOW_TASK_TIMEOUT_MS = 120_000
SIGNAL_REQUEST_IDS_KEPT = 100
# History pages at least this large are framed in a worker thread (read_history_response).
JOIN_OFF_LOOP_BYTES = 1024 * 1024
# How long a released shard waits for its in-flight batches (the store's own timeouts end them sooner).
RELEASE_SETTLE_S = 5.0
_CLOSED_NOT_COMPLETED = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


class Matching(Protocol):
    """What history needs from matching: hand it tasks to dispatch."""

    async def add_workflow_task(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        kind: int = TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
        pinned: str = "",
        ramping: bool = False,
        member: str = "",
    ) -> None:
        """Raises StickyWorkerUnavailable for a sticky queue nobody polled lately. `pinned`: the only
        deployment version ("name:build") whose pollers may take it ("" = any poller); `ramping`: to the
        queue's ramping version, if it has one (a run continued as new with USE_RAMPING_VERSION); `member`:
        in a cluster, the member serving a sticky queue (cluster/matching/sticky_placement.py)."""

    async def add_activity_task(
        self,
        namespace_id: str,
        task_queue: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        attempt: int,
        pinned: str = "",
    ) -> None: ...

    async def versions_polled(self, namespace_id: str, name: str) -> list[str]:
        """The deployment versions present in workflow queue `name` (their workers polled it)."""

    async def deployment_target(self, namespace_id: str, name: str, workflow_id: str) -> str | None:
        """The version ("name:build", "" = unversioned) workflow queue `name` routes new work of
        `workflow_id` to; None when no deployment routes it."""


class TaskGone(Exception):
    """A dispatched task no longer applies (the run moved on); matching drops it."""


def _check_pinned_poller(ms: MutableState, version: str) -> None:
    """A task dispatched before the run was pinned elsewhere (UpdateWorkflowExecutionOptions moved its
    pin, and dispatched it again to the new version) is not started by a poller of another version."""
    pinned = workflow_versioning.pinned_version(ms)
    if pinned and pinned != version:
        raise TaskGone(f"the run is pinned to deployment version {pinned}")


@dataclass
class StartResult:
    run_id: str
    started: bool
    # Eager workflow start: the run's first workflow task, already started for the starter's worker.
    eager_workflow_task: PollWorkflowTaskQueueResponse | None = None
    # The run's temporal.api.enums.v1.WorkflowExecutionStatus (a retried start may find it closed).
    status: int = 1
    # The start found the run running and uses it (USE_EXISTING), and attached its request id to it
    # (on_conflict_options): the answer's link then names the request, not the started event.
    reused: bool = False
    attached_request_id: bool = False


class ShardListener(Protocol):
    async def shard_acquired(self, shard: Shard) -> None: ...

    async def shard_released(self, shard_id: int) -> None: ...


@dataclass
class UpdateResult:
    """Where an update stands: the run it belongs to, the stage it reached, its outcome once completed."""

    run_id: str
    stage: int
    outcome: Outcome | None


class _RunContinued(Exception):
    """The run an in-flight update waited on continued as new: the update is retried on the new run."""


async def _run(action: Callable[[MutableState, Transition], Any], ms: MutableState, tr: Transition) -> Any:
    result = action(ms, tr)
    if asyncio.iscoroutine(result):
        result = await result
    return result


def _has_speculative_task(ms: MutableState) -> bool:
    return ms.workflow_task is not None and ms.workflow_task.speculative


def shard_id_for(namespace_id: str, workflow_id: str, shard_count: int) -> int:
    """Stable placement: the same (namespace, workflow id) lands on the same shard in every process."""
    return xxhash.xxh3_64_intdigest(f"{namespace_id}\x00{workflow_id}".encode()) % shard_count


class HistoryEngine:
    def __init__(self, store: Store, shard_count: int, matching: Matching | None = None) -> None:
        self.store = store
        # name -> id of a namespace (raises NamespaceNotFound); set by the node, used by cross-run tasks.
        self.resolve_namespace_id: Callable[[str], Awaitable[str]] | None = None
        # Raises InvalidArgument for unknown or mistyped search attributes; set by the node.
        self.validate_search_attributes: Callable[[str, Any], Awaitable[None]] | None = None
        # The dispatch rate configured for an activity queue (namespace id, queue), None when unlimited:
        # activities of a rate-limited queue are not handed out eagerly, which would bypass the limit.
        self.activity_queue_rate: Callable[[str, str], Awaitable[float | None]] | None = None
        # namespace id -> its retention in ms (closed runs are deleted after it); set by the node.
        self.namespace_retention_ms: Callable[[str], Awaitable[int]] | None = None
        self.shard_count = shard_count
        self.matching = matching
        self.shards: dict[int, Shard] = {}
        self.queues: dict[int, QueueProcessors] = {}
        # Where operations on OTHER runs go (child starts, external signals...): this engine on a single
        # node, the routing proxy in a cluster (the run may live on another member's shard).
        self.peers: Any = self
        # In a cluster: answers whether this node may still write (membership quorum and epoch).
        self.write_guard: Callable[[], int | None] | None = None
        # In a cluster: told when the store fenced a shard out (another member took it).
        self.on_shard_lost: Callable[[int], None] | None = None
        # Seals the task tokens handed to workers. The node replaces this throwaway key with the
        # cluster's secret from the store before serving, so every node opens every node's tokens.
        self.task_tokens = TaskTokenCodec(new_secret())
        self.nexus = NexusExecutors(self)
        # Components with state per shard (schedules) follow ownership: told after a shard is taken and
        # when it is released.
        self.shard_listeners: list[ShardListener] = []
        # Transitions per shard over the last seconds (cluster status and page).
        self.transition_rates = TransitionRates()

    async def start(self) -> None:
        """Single node: own every shard."""
        for shard_id in range(self.shard_count):
            await self.acquire_shard(shard_id)

    async def acquire_shard(self, shard_id: int, epoch: int | None = None) -> None:
        """Take the shard (range-id LWT, which fences any previous owner) and start its queue processors."""
        if shard_id in self.shards:
            return
        shard = Shard(
            shard_id,
            self.store,
            self._on_new_tasks,
            self._shard_writable,
            epoch,
            events_cache_bytes=events_cache.NODE_BYTES // self.shard_count,
        )
        shard.on_fenced = self.shard_lost
        shard.on_committed = self.transition_rates.add
        await shard.acquire()
        processors = QueueProcessors(shard, self._execute_transfer, self._execute_timer)
        self.shards[shard_id] = shard
        self.queues[shard_id] = processors
        SHARD_MOVEMENTS.labels("acquired").inc()
        await processors.start()
        for listener in self.shard_listeners:
            await listener.shard_acquired(shard)

    async def release_shard(self, shard_id: int) -> None:
        """Stop writing the shard: no new operation finds it, its processors stop, its cache is dropped."""
        shard = self.shards.pop(shard_id, None)
        processors = self.queues.pop(shard_id, None)
        if shard is not None:
            SHARD_MOVEMENTS.labels("released").inc()
            shard.release()
            # Batches already sent land before anyone is told the shard is free (drain, graceful stop).
            if not await shard.settled(RELEASE_SETTLE_S):
                log.warning(
                    "shard %d: a commit was still unanswered after %.0f s; released anyway",
                    shard_id,
                    RELEASE_SETTLE_S,
                )
            for listener in self.shard_listeners:
                await listener.shard_released(shard_id)
        if processors is not None:
            await processors.stop()

    def _shard_writable(self, shard: Shard) -> bool:
        if shard.released:
            return False
        if self.write_guard is None:
            return True
        return self.write_guard() == shard.epoch

    def shard_lost(self, shard: Shard) -> None:
        """The store refused a write because another owner took the shard: stop using it at once. The
        ownership controller (on_shard_lost) releases it and decides when to take it again."""
        if self.on_shard_lost is not None and not shard.released:
            shard.release()
            self.on_shard_lost(shard.shard_id)

    async def stop(self) -> None:
        self.nexus.stop()
        for shard_id in list(self.shards):
            await self.release_shard(shard_id)

    def _on_new_tasks(self, shard: Shard, transfer: list[TransferTask], timers: list[TimerTask]) -> None:
        processors = self.queues.get(shard.shard_id)
        if processors is not None and processors.shard is shard:
            processors.notify(transfer, timers)

    def shard_for(self, namespace_id: str, workflow_id: str) -> Shard:
        shard_id = shard_id_for(namespace_id, workflow_id, self.shard_count)
        shard = self.shards.get(shard_id)
        if shard is None or shard.released:
            raise ShardNotOwned(f"shard {shard_id} is not owned by this node")
        return shard

    # ---- the transaction helper -------------------------------------------------------------------------
    async def _resolve_run_id(self, shard: Shard, namespace_id: str, workflow_id: str, run_id: str) -> str:
        if run_id:
            return run_id
        current = await shard.get_current_run(namespace_id, workflow_id)
        if current is None:
            raise NotFound(f"workflow not found for ID: {workflow_id}")
        return current.run_id

    async def _update(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        action: Callable[[MutableState, Transition], T | Awaitable[T]],
        *,
        speculative_aware: bool = False,
        first_execution_run_id: str = "",
    ) -> T:
        """Run `action` on the run's state under its lock and commit what it changed (retrying conflicts).

        If the action writes anything while a speculative workflow task is out, that task's events are
        written first, unless the action is `speculative_aware` (it handles such a task itself). A read,
        or a stale timer that changes nothing, leaves the task speculative. The transition's effects run
        once it is committed. `first_execution_run_id` (a client's handle from a start) must be the run's
        chain's first run, else the workflow is not found, as on the reference.
        """
        shard = self.shard_for(namespace_id, workflow_id)
        for attempt in range(5):
            async with shard.locks.hold((namespace_id, workflow_id)):
                resolved = await self._resolve_run_id(shard, namespace_id, workflow_id, run_id)
                key = ExecutionKey(namespace_id, workflow_id, resolved)
                try:
                    ms = await shard.load(key)
                except ShardOwnershipLostError as e:  # its fence found another owner's range
                    self.shard_lost(shard)
                    raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner") from e
                if ms is None:
                    raise NotFound(
                        f'workflow execution not found for workflow ID "{workflow_id}" and run ID "{resolved}"'
                    )
                if first_execution_run_id and ms.info.first_run_id != first_execution_run_id:
                    raise NotFound("workflow execution not found")
                retention = await self._retention_ms(namespace_id)
                tr = Transition(ms, now_ms(), retention)
                speculative_out = not speculative_aware and _has_speculative_task(ms)
                try:
                    result = await _run(action, ms, tr)
                    if speculative_out and tr.changed:
                        # The action writes while a speculative task is out: run it again on the state
                        # reloaded (the speculative task comes back with it) with that task's events first.
                        shard.evict(key)
                        ms = await shard.load(key)
                        tr = Transition(ms, now_ms(), retention)
                        tr.materialize_speculative_workflow_task()
                        result = await _run(action, ms, tr)
                except BaseException:
                    shard.evict(key)  # the action may have changed the cached state before it failed
                    raise
                limit_error: HistoryLimitExceeded | None = None
                reason = history_limits.exceeded(ms, len(tr.events)) if tr.changed else None
                if reason is not None and tr.new_run is None:
                    # Past a history limit: the run is terminated instead of what the action wrote.
                    shard.evict(key)
                    ms = await shard.load(key)
                    tr = Transition(ms, now_ms(), retention)
                    tr.materialize_speculative_workflow_task()
                    tr.terminate_workflow(reason, None, history_limits.IDENTITY)
                    limit_error = HistoryLimitExceeded(reason)
                if tr.changed:
                    batch = [(tr, False)]
                    if tr.new_run is not None:
                        batch.append((tr.new_run, True))  # continue-as-new: same workflow id, same shard
                    try:
                        await shard.commit(batch)
                    except ConditionFailedError:
                        log.info("concurrent update of %s, reloading (attempt %d)", key, attempt)
                        continue
                    except ShardOwnershipLostError as e:
                        self.shard_lost(shard)
                        raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner") from e
                    except StoreUnavailableError as e:
                        raise Unavailable(f"persistence unavailable: {e}") from e
                for effect in tr.effects:
                    effect()
                if not ms.running:
                    shard.drop_update_registry(key)
                if not ms.running or ms.workflow_task is None:
                    shard.release_queries(key)
                if limit_error is not None:
                    raise limit_error
                return result
        raise Unavailable("too many concurrent updates of the workflow, try again")

    async def _retention_ms(self, namespace_id: str) -> int:
        return await self.namespace_retention_ms(namespace_id) if self.namespace_retention_ms else 0

    # ---- deletion --------------------------------------------------------------------------------------
    async def delete_workflow(self, namespace_id: str, execution: WorkflowExecution) -> None:
        """Terminate the run if it still runs, then remove its state, history and visibility."""
        shard = self.shard_for(namespace_id, execution.workflow_id)
        run_id = await self._resolve_run_id(shard, namespace_id, execution.workflow_id, execution.run_id)
        target = WorkflowExecution(workflow_id=execution.workflow_id, run_id=run_id)
        try:
            await self.terminate(namespace_id, target, "Delete workflow execution", None, "history-service")
        except NotFound:
            pass  # already closed
        await self._delete_run(shard, ExecutionKey(namespace_id, execution.workflow_id, run_id))

    async def _delete_run(self, shard: Shard, key: ExecutionKey) -> None:
        async with shard.locks.hold((key.namespace_id, key.workflow_id)):
            ms = await shard.load(key)
            if ms is None or ms.running:
                return
            shard.check_writable()
            await self.store.delete_visibility(key.namespace_id, key.workflow_id, key.run_id)
            shard.forget_current_run(key.namespace_id, key.workflow_id)
            await self.store.delete_execution(shard.shard_id, key.namespace_id, key.workflow_id, key.run_id)
            shard.forget_current_run(key.namespace_id, key.workflow_id)
            await self.store.delete_history(key.namespace_id, key.workflow_id, key.run_id)
            shard.evict(key)

    # ---- reset -----------------------------------------------------------------------------------------
    async def reset_workflow(
        self,
        namespace_id: str,
        namespace: str,
        execution: WorkflowExecution,
        finish_event_id: int,
        reason: str,
        request_id: str,
        reapply_signals: bool,
        post_reset_operations: list | None = None,
        *,
        reapply_updates: bool = False,
    ) -> str:
        """A new run replaying the base run's history up to a workflow task, which is failed with
        RESET_WORKFLOW so the worker decides again from there; later signals are reapplied, and later
        updates (as WorkflowExecutionUpdateAdmitted events the worker runs again, as on the reference). The
        request's post-reset operations then update the new run's options. The current run, if running,
        is terminated in the same batch. Returns the new run id."""
        shard = self.shard_for(namespace_id, execution.workflow_id)
        async with shard.locks.hold((namespace_id, execution.workflow_id)):
            base_run_id = await self._resolve_run_id(
                shard, namespace_id, execution.workflow_id, execution.run_id
            )
            base = await shard.load(ExecutionKey(namespace_id, execution.workflow_id, base_run_id))
            if base is None:
                raise NotFound(
                    f'workflow execution not found for workflow ID "{execution.workflow_id}" and run ID "{base_run_id}"'
                )
            events = await shard.read_events(base)
            started_id = reset_point(events, finish_event_id)
            now = now_ms()
            run_id = new_run_id()
            ms = rebuild(
                events[:started_id], namespace_id, namespace, execution.workflow_id, run_id, node_id=1
            )
            ms.info.create_request_id = request_id
            # The new run starts now (its history keeps the original started event, describe shows its
            # time as the original start), as the reference's reset does.
            ms.info.original_start_time_ms = ms.info.start_time_ms
            ms.info.start_request_id = base.info.start_request_id or base.info.create_request_id
            ms.info.start_time_ms = ms.info.execution_time_ms = ms.info.last_reset_time_ms = now
            if ms.info.workflow_run_timeout_ms:
                ms.info.run_expiration_ms = now + ms.info.workflow_run_timeout_ms
            tr = Transition(ms, now, await self._retention_ms(namespace_id))
            tr.events = [HistoryEvent.FromString(e.SerializeToString()) for e in events[:started_id]]
            tr.fail_workflow_task(
                WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
                Failure(message=reason, reset_workflow_failure_info=ResetWorkflowFailureInfo()),
                "history-service",
                schedule_next=False,
            )
            failed = tr.events[-1].workflow_task_failed_event_attributes
            failed.base_run_id, failed.new_run_id = base_run_id, run_id
            reapplied_updates: set[str] = set()  # admitted, then accepted: reapplied once
            for ev in events[started_id:]:
                if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and reapply_signals:
                    tr.add_event(ev.event_type, ev.workflow_execution_signaled_event_attributes)
                elif (
                    reapply_updates
                    and (update := _reapplied_update(ev)) is not None
                    and update.meta.update_id not in reapplied_updates
                ):
                    reapplied_updates.add(update.meta.update_id)
                    tr.add_event(
                        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
                        WorkflowExecutionUpdateAdmittedEventAttributes(
                            request=update,
                            origin=UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY,
                        ),
                    )
            workflow_versioning.index(ms)
            for operation in post_reset_operations or ():
                if operation.HasField("update_workflow_options"):
                    options = operation.update_workflow_options
                    execution_options.update(
                        ms,
                        tr,
                        options.workflow_execution_options,
                        options.update_mask,
                        "",  # the reference's post-reset options event names no identity
                        await self.matching.versions_polled(namespace_id, ms.info.task_queue),
                    )
            tr.schedule_workflow_task()
            tr.rearm_pending_work()
            current = await shard.get_current_run(namespace_id, execution.workflow_id)
            tr.current_run = CurrentRunWrite(
                mode=CurrentRunMode.REPLACE,
                previous_run_id=current.run_id,
                record=CurrentRunRecord(
                    namespace_id=namespace_id,
                    workflow_id=execution.workflow_id,
                    run_id=run_id,
                    status=RunStatus.RUNNING,
                    execution_status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
                    create_request_id=request_id,
                    start_time_ms=now,
                ),
            )
            batch: list[tuple[Transition, bool]] = [(tr, True)]
            if current.status == RunStatus.RUNNING:
                running = await shard.load(ExecutionKey(namespace_id, execution.workflow_id, current.run_id))
                stop = Transition(running.clone(), now, await self._retention_ms(namespace_id))
                stop.materialize_speculative_workflow_task()
                if current.run_id == base_run_id:
                    stop.ms.info.reset_run_id = run_id
                stop.terminate_workflow(reason, None, "history-service")
                stop.current_run = None  # the reset run's REPLACE moves the pointer
                batch.insert(0, (stop, False))
            try:
                await shard.commit(batch)
            except ConditionFailedError:
                raise Unavailable("the workflow changed while it was being reset; try again") from None
            except ShardOwnershipLostError as e:
                self.shard_lost(shard)
                raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner") from e
            return run_id

    # ---- start -----------------------------------------------------------------------------------------
    async def start_workflow(
        self,
        namespace_id: str,
        namespace: str,
        request: StartWorkflowExecutionRequest,
        signal: tuple[str, Payloads | None, Header | None] | None = None,
        parent: ParentInfo | None = None,
        on_new_run: Callable[[ExecutionKey], None] | None = None,
        eager: bool = False,
    ) -> StartResult:
        """Start a run. `on_new_run` is told the new run's key before it is committed (and so before its
        first workflow task can be polled): update-with-start admits its update there. `eager` starts the
        first workflow task at once and returns it (request_eager_execution), when there is one to start."""
        if request.HasField("memo"):
            history_limits.check_start_memo(request.memo)
        shard = self.shard_for(namespace_id, request.workflow_id)
        # A workflow id is new far more often than not: first try to create its pointer without reading
        # it (the batch's condition fails if it exists, as the reference's brand-new create), then read
        # it and apply the id policies. Not with `on_new_run`, which must be told one run only.
        optimistic = on_new_run is None
        for _ in range(5 + optimistic):
            async with shard.locks.hold((namespace_id, request.workflow_id)):
                current = (
                    None if optimistic else await shard.get_current_run(namespace_id, request.workflow_id)
                )
                run_id = new_run_id()
                plan = await self._plan_start(shard, current, request, run_id)
                attach_to = None
                if isinstance(plan, StartResult):
                    if not (plan.reused and attaches_on_conflict(request)):
                        return plan
                    attach_to = plan  # attached to outside this lock: _update takes it
                else:
                    to_terminate = plan
                    new = NewRun.from_start_request(namespace_id, namespace, request)
                    new.signal = signal
                    new.parent = parent
                    tr = start_run(new, now_ms(), run_id)
                    eager_wt = (
                        tr.start_workflow_task_eagerly(request.request_id, request.identity)
                        if eager
                        else None
                    )
                    if current is not None:
                        tr.current_run.mode = CurrentRunMode.REPLACE
                        tr.current_run.previous_run_id = current.run_id
                    batch = [(tr, True)]
                    if to_terminate is not None:
                        batch.insert(0, (to_terminate, False))
                    if on_new_run is not None:
                        on_new_run(ExecutionKey(namespace_id, request.workflow_id, run_id))
                    try:
                        await shard.commit(batch)
                    except ConditionFailedError:
                        optimistic = False
                        await self._forget_history(namespace_id, request.workflow_id, run_id)
                        continue
                    except ShardOwnershipLostError as e:
                        self.shard_lost(shard)
                        raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner") from e
                    result = StartResult(tr.ms.info.run_id, True)
                    if eager_wt is not None:
                        execution = WorkflowExecution(workflow_id=request.workflow_id, run_id=run_id)
                        ms = await shard.load(ExecutionKey(namespace_id, request.workflow_id, run_id))
                        result.eager_workflow_task = await self._workflow_task_response(
                            shard, ms, eager_wt, execution
                        )
                    return result
            if await self._attach_on_conflict(namespace_id, request, attach_to):
                return attach_to
            # the run closed meanwhile: the start is planned again
        raise Unavailable("too many concurrent starts of the workflow id, try again")

    async def _attach_on_conflict(
        self, namespace_id: str, request: StartWorkflowExecutionRequest, result: StartResult
    ) -> bool:
        """Attach a start's request id, callbacks and links to the running run it found (runs.py
        attach_on_conflict); False when that run closed meanwhile (the start is then planned again). A
        retried start (its request id already attached) attaches nothing more."""

        def attach(ms: MutableState, tr: Transition) -> bool:
            if not ms.running:
                return False
            if not (request.request_id and request.request_id in ms.info.attached_request_ids):
                attach_on_conflict(tr, request)
            return True

        try:
            attached = await self._update(namespace_id, request.workflow_id, result.run_id, attach)
        except NotFound:
            return False
        result.attached_request_id = request.on_conflict_options.attach_request_id
        return attached

    async def _forget_history(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """A start whose batch was refused appended its first events for a run that will never exist:
        delete them (best effort: an unreachable store leaves an unreferenced node, nothing more)."""
        try:
            await self.store.delete_history(namespace_id, workflow_id, run_id)
        except Exception:
            log.info("could not delete the history of run %s, never created", run_id, exc_info=True)

    async def start_activity_execution(
        self, namespace_id: str, namespace: str, request: StartActivityExecutionRequest
    ) -> StartResult:
        """Start a standalone activity: its hidden run, created with the activity scheduled (standalone.py)."""
        wid = standalone_ids.workflow_id(request.activity_id)
        policies = standalone.start_policies(request)
        shard = self.shard_for(namespace_id, wid)
        for _ in range(5):
            async with shard.locks.hold((namespace_id, wid)):
                current = await shard.get_current_run(namespace_id, wid)
                run_id = new_run_id()
                try:
                    plan = await self._plan_start(shard, current, policies, run_id)
                except WorkflowAlreadyStarted as e:
                    detail = e.detail
                    raise ActivityExecutionAlreadyStarted(
                        "activity execution already started",
                        detail.start_request_id,
                        detail.run_id,
                    ) from None
                if isinstance(plan, StartResult):
                    return plan
                tr = start_run(standalone.new_run(namespace_id, namespace, request), now_ms(), run_id)
                delay_ms = duration_ms(request.start_delay)
                ai = tr.schedule_activity(standalone.scheduled_attributes(request), eager=delay_ms > 0)
                if delay_ms:
                    # Held back (not handed to matching) until the start delay's timer dispatches it.
                    tr.eager_activities.clear()
                    tr.schedule_activity_attempt(ai, tr.now + delay_ms)
                    tr.ms.info.execution_time_ms = tr.now + delay_ms
                if request.HasField("start_delay"):
                    ai.start_delay_ms = delay_ms  # describe shows it when given, even 0s
                started = await self._commit_new_run(shard, tr, current)
                if started is not None:
                    return started
        raise Unavailable("too many concurrent starts of the activity id, try again")

    async def _commit_new_run(self, shard: Shard, tr: Transition, current) -> StartResult | None:
        """Commit a standalone start's new run, replacing the id's pointer to `current` (a closed run)
        when there is one; None when the batch's condition failed (another start won: plan again)."""
        if current is not None:
            tr.current_run.mode = CurrentRunMode.REPLACE
            tr.current_run.previous_run_id = current.run_id
        try:
            await shard.commit([(tr, True)])
        except ConditionFailedError:
            return None
        except ShardOwnershipLostError as e:
            self.shard_lost(shard)
            raise ShardNotOwned(f"shard {shard.shard_id} moved to another owner") from e
        return StartResult(tr.ms.info.run_id, True)

    async def start_nexus_operation_execution(
        self,
        namespace_id: str,
        namespace: str,
        request: StartNexusOperationExecutionRequest,
        endpoint_id: str,
    ) -> StartResult:
        """Start a standalone Nexus operation: its hidden run, created with the operation scheduled
        (standalone_nexus.py); the start goes to the handler through the transfer queue, as a workflow's."""
        wid = standalone_ids.nexus_workflow_id(request.operation_id)
        policies = standalone_nexus.start_policies(request)
        shard = self.shard_for(namespace_id, wid)
        for _ in range(5):
            async with shard.locks.hold((namespace_id, wid)):
                current = await shard.get_current_run(namespace_id, wid)
                run_id = new_run_id()
                try:
                    plan = await self._plan_start(shard, current, policies, run_id)
                except WorkflowAlreadyStarted as e:
                    raise NexusOperationExecutionAlreadyStarted(
                        "nexus operation execution already started",
                        e.detail.start_request_id,
                        e.detail.run_id,
                    ) from None
                if isinstance(plan, StartResult):
                    return plan
                tr = start_run(standalone_nexus.new_run(namespace_id, namespace, request), now_ms(), run_id)
                nexus_operations.schedule(tr, standalone_nexus.scheduled_attributes(request, endpoint_id))
                started = await self._commit_new_run(shard, tr, current)
                if started is not None:
                    return started
        raise Unavailable("too many concurrent starts of the operation id, try again")

    async def request_cancel_nexus_operation_execution(
        self, namespace_id: str, execution: WorkflowExecution, identity: str, reason: str
    ) -> None:
        """Ask a standalone Nexus operation's handler to cancel it (standalone_nexus.request_cancel)."""

        def cancel(ms: MutableState, tr: Transition):
            op = standalone_nexus.the_operation(ms)
            if op is None:
                raise FailedPrecondition("operation already completed")
            standalone_nexus.request_cancel(tr, op, reason)

        await self._update(namespace_id, execution.workflow_id, execution.run_id, cancel)

    async def request_cancel_activity_execution(
        self, namespace_id: str, execution: WorkflowExecution, identity: str, reason: str
    ) -> None:
        """Cancel a standalone activity: at once if no worker runs it, else its heartbeats say so."""

        def cancel(ms: MutableState, tr: Transition):
            ai = standalone.the_activity(ms)
            if not ms.running or ai is None:
                raise FailedPrecondition(standalone.terminal_state_message(ms))
            if not ai.cancel_requested:
                ai.cancel_reason = reason
                tr.request_cancel_activity(ai, 0, identity, standalone.reason_payloads(reason))

        await self._update(namespace_id, execution.workflow_id, execution.run_id, cancel)

    async def _plan_start(
        self, shard: Shard, current: CurrentRunRecord | None, request, new_run_id: str
    ) -> StartResult | Transition | None:
        """What a start does given the current run: a StartResult (nothing to write), or go ahead,
        possibly terminating the running run in the same batch (the Transition returned)."""
        if current is None:
            return None
        wid = request.workflow_id
        if current.create_request_id == request.request_id and request.request_id:
            # a retried start: the reference says started
            return StartResult(current.run_id, True, status=current.execution_status or 1)
        if current.status == RunStatus.RUNNING:
            conflict = request.workflow_id_conflict_policy
            if (
                request.workflow_id_reuse_policy
                == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING
            ):
                conflict = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
            if conflict == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
                return StartResult(current.run_id, False, reused=True)
            if conflict == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING:
                ms = await shard.load(ExecutionKey(current.namespace_id, wid, current.run_id))
                tr = Transition(ms.clone(), now_ms(), await self._retention_ms(current.namespace_id))
                tr.materialize_speculative_workflow_task()
                details = Payloads(
                    payloads=[
                        Payload(
                            metadata={"encoding": b"json/plain"},
                            data=f'"terminated by new runID: {new_run_id}"'.encode(),
                        )
                    ]
                )
                tr.terminate_workflow("TerminateIfRunning WorkflowIdReusePolicy", details, "history-service")
                tr.current_run = None  # the new run's REPLACE moves the pointer
                return tr
            raise WorkflowAlreadyStarted(
                f"Workflow execution is already running. WorkflowId: {wid}, RunId: {current.run_id}.",
                current.create_request_id,
                current.run_id,
            )
        reuse = request.workflow_id_reuse_policy
        if reuse == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE:
            raise WorkflowAlreadyStarted(
                f"Workflow execution already finished and WorkflowIdReusePolicy is REJECT_DUPLICATE. "
                f"WorkflowId: {wid}, RunId: {current.run_id}.",
                current.create_request_id,
                current.run_id,
            )
        if (
            reuse == WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
            and current.execution_status not in _CLOSED_NOT_COMPLETED
        ):
            raise WorkflowAlreadyStarted(
                f"Workflow execution already finished successfully. WorkflowId: {wid}, RunId: {current.run_id}. "
                "Workflow Id reuse policy: allow duplicate workflow Id if last run failed.",
                current.create_request_id,
                current.run_id,
            )
        return None

    # ---- workflow tasks --------------------------------------------------------------------------------
    async def consistent_query(
        self, namespace_id: str, execution: WorkflowExecution, query: WorkflowQuery, timeout: float
    ) -> QueryAnswer | None:
        """A query on a run with a workflow task in flight waits for it and is answered with a workflow
        task, so that it sees every event that came before it (as on the reference). None when the query
        may go to the worker directly: nothing in flight, or released unanswered once nothing was."""
        shard = self.shard_for(namespace_id, execution.workflow_id)
        async with shard.locks.hold((namespace_id, execution.workflow_id)):
            run_id = await self._resolve_run_id(shard, namespace_id, execution.workflow_id, execution.run_id)
            key = ExecutionKey(namespace_id, execution.workflow_id, run_id)
            ms = await shard.load(key)
            if ms is None or not ms.running or ms.workflow_task is None:
                return None
            buffered = shard.query_buffer(key).add(query)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(buffered.outcome), max(timeout, 0.01))
        except TimeoutError:
            raise DeadlineExceeded("query timed out waiting for the workflow task in flight") from None
        finally:
            buffer = shard.find_query_buffer(key)
            if buffer is not None:
                buffer.remove(buffered.query_id)
        return None if outcome == RELEASED else outcome

    async def record_workflow_task_started(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        request_id: str,
        identity: str,
        poll_queue: TaskQueue | None = None,
        build_id: str = "",
        version: str = "",
    ) -> PollWorkflowTaskQueueResponse:
        """Start the task for the poller of `poll_queue`. A sticky run's task polled from its sticky queue
        carries only the events after the previous started event: that worker has the rest cached. A
        pinned run's task says whether its task queue now sends new work to another version."""
        shard = self.shard_for(namespace_id, execution.workflow_id)
        key = ExecutionKey(namespace_id, execution.workflow_id, execution.run_id)
        target_version = None
        loaded = await shard.load(key)
        if loaded is not None and workflow_versioning.told_of_new_targets(loaded):
            target_version = await self.matching.deployment_target(
                namespace_id, loaded.info.task_queue, execution.workflow_id
            )

        def start(ms: MutableState, tr: Transition):
            wt = ms.workflow_task
            if not ms.running or wt is None or wt.scheduled_event_id != scheduled_event_id:
                raise TaskGone("the run has no such workflow task waiting")
            if wt.started:
                if wt.request_id == request_id:
                    return wt  # a retried record of the same poll
                raise TaskGone("another poll started the workflow task")
            if poll_queue is not None:
                if ms.sticky and poll_queue.name != ms.info.sticky_task_queue:
                    # The sticky worker was gone and the task went to the normal queue: whoever takes
                    # it there needs the whole history, and becomes the run's sticky worker later.
                    ms.clear_sticky()
                elif not ms.sticky and poll_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY:
                    raise TaskGone("the run left its sticky queue")  # a stale task
            _check_pinned_poller(ms, version)
            changed = workflow_versioning.target_version_changed(ms, target_version)
            wt = tr.start_workflow_task(request_id, identity, build_id, changed)
            registry = shard.find_update_registry(key)
            if registry:
                registry.ship(wt)
            return wt

        try:
            wt = await self._update(
                namespace_id, execution.workflow_id, execution.run_id, start, speculative_aware=True
            )
        except HistoryLimitExceeded as e:
            raise TaskGone(f"the run was terminated: {e.message}") from None
        ms = await shard.load(key)
        if wt.speculative:
            self._arm_speculative_timeout(key, wt)
        return await self._workflow_task_response(shard, ms, wt, execution)

    async def _workflow_task_response(
        self,
        shard: Shard,
        ms: MutableState,
        wt,
        execution: WorkflowExecution,
        *,
        partial: bool = False,
        reserved_bytes: int = 0,
    ) -> PollWorkflowTaskQueueResponse:
        """What the worker gets for a started workflow task: its token, update messages, queries and the
        first page of its history (the worker reads the rest with the response's next_page_token).

        The page fits, with everything else in the response (and `reserved_bytes` of the message that
        carries it), in what a client accepts by default.
        """
        key = ExecutionKey(ms.info.namespace_id, execution.workflow_id, execution.run_id)
        # A sticky worker has the run cached up to its last task: it gets only what came after. So does
        # one handed the next task in its completion's response (`partial`), sticky or not (reference).
        partial = partial or ms.sticky
        first_event_id = ms.last_completed_workflow_task_started_event_id + 1 if partial else 1
        transient = Transition(ms, now_ms()).transient_workflow_task_events()
        token = TaskToken(
            key.namespace_id,
            execution.workflow_id,
            execution.run_id,
            wt.scheduled_event_id,
            wt.attempt,
            wt.started_event_id,
            started_time_ms=wt.started_time_ms,
        )
        resp = PollWorkflowTaskQueueResponse(
            task_token=self.task_tokens.encode(token),
            workflow_execution=execution,
            workflow_type=WorkflowType(name=ms.info.workflow_type),
            previous_started_event_id=ms.last_completed_workflow_task_started_event_id,
            started_event_id=wt.started_event_id,
            attempt=wt.attempt,
            workflow_execution_task_queue=TaskQueue(name=ms.info.task_queue, kind=1),
            scheduled_time=to_timestamp(wt.scheduled_time_ms),
            started_time=to_timestamp(wt.started_time_ms),
        )
        registry = shard.find_update_registry(key)
        if registry:
            for entry in registry.sent_with(wt):
                resp.messages.append(request_message(entry, wt.started_event_id - 1))
        queries = shard.find_query_buffer(key)
        if queries:
            for query_id, query in queries.ship(
                (wt.scheduled_event_id, wt.attempt, wt.started_time_ms)
            ).items():
                resp.queries[query_id].CopyFrom(query)
        # The transient events may travel twice: in the page and in its token (base64).
        other = resp.ByteSize() + reserved_bytes + 3 * sum(framed_size(e) for e in transient)
        page = Page(LIMITS.history_max_page_size, history_budget(RESPONSE_LIMIT_BYTES, other))
        cursor = HistoryCursor(execution.run_id, first_event_id, ms.next_event_id, 0, transient)
        following = await shard.read_page(ms, cursor, page)
        resp.history.SetInParent()  # present even when empty: the SDK refuses a task without one
        resp.history.events.extend(page.events)
        if following is not None:
            resp.next_page_token = following.encode()
        return resp

    def _arm_speculative_timeout(self, key: ExecutionKey, wt) -> None:
        """A speculative task's start-to-close timeout is an in-memory timer (nothing is persisted)."""
        scheduled_event_id, started_time_ms = wt.scheduled_event_id, wt.started_time_ms

        def fire(ms: MutableState, tr: Transition):
            current = ms.workflow_task
            if (
                ms.running
                and current is not None
                and current.started
                and current.scheduled_event_id == scheduled_event_id
                and current.started_time_ms == started_time_ms
            ):
                self._abort_task_updates(key, current, tr)
                tr.materialize_speculative_workflow_task()
                tr.timeout_workflow_task()

        async def run() -> None:
            try:
                await self._update(
                    key.namespace_id, key.workflow_id, key.run_id, fire, speculative_aware=True
                )
            except Exception:
                log.exception("speculative workflow task timeout of %s", key)

        loop = asyncio.get_running_loop()
        loop.call_later(wt.start_to_close_timeout_ms / 1000, lambda: loop.create_task(run()))

    def _started_workflow_task(self, ms: MutableState, token: TaskToken):
        wt = ms.workflow_task
        if (
            not ms.running
            or wt is None
            or not wt.started
            or wt.scheduled_event_id != token.scheduled_event_id
            or wt.attempt != token.attempt
            or wt.started_event_id != token.started_event_id
            or (token.started_time_ms and wt.started_time_ms != token.started_time_ms)
        ):
            raise NotFound("Workflow task not found.")
        return wt

    async def respond_workflow_task_completed(
        self,
        token: TaskToken,
        request: RespondWorkflowTaskCompletedRequest,
        max_blob_bytes: int,
        sticky_member: str = "",
    ) -> RespondWorkflowTaskCompletedResponse:
        """Apply the worker's commands and update messages (`sticky_member`: in a cluster, the member that
        serves the worker's sticky queue, kept with it in the run's state). The reply carries the event id the worker must
        roll its history back to when a speculative task is dropped (reset_history_event_id), the
        activities it asked to run eagerly, already started for it, and the next workflow task, already
        started, when the worker asked for it (return_new_workflow_task) and the completion scheduled one.
        """
        failed: list[CommandError] = []
        try:
            await self._check_command_search_attributes(token.namespace_id, request.commands)
        except CommandError as e:
            failed.append(e)
        await self._decline_eager_on_limited_queues(token.namespace_id, request.commands)
        shard = self.shard_for(token.namespace_id, token.workflow_id)
        key = ExecutionKey(token.namespace_id, token.workflow_id, token.run_id)
        returned: list = []  # the new task started for the response, if any
        # ScheduleNexusOperation names an endpoint: its id is read from the registry (the store) up front.
        endpoints = await nexus_dispatch.endpoint_ids(
            self.store,
            {
                c.schedule_nexus_operation_command_attributes.endpoint
                for c in request.commands
                if c.command_type == CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION
            },
        )

        def complete(ms: MutableState, tr: Transition) -> RespondWorkflowTaskCompletedResponse:
            returned.clear()  # an attempt that lost a conflict (and is run again) started nothing
            wt = self._started_workflow_task(ms, token)
            if failed:
                raise failed[0]
            registry = shard.update_registry(key)
            protocol = UpdateProtocol(request.messages, registry, ms, wt)
            tr.effects = protocol.effects
            if request.query_results:
                results = dict(request.query_results)
                tr.effects.append(lambda: shard.query_buffer(key).answer(results))
            if (
                wt.speculative
                and not request.commands
                and protocol.only_rejections()
                and not request.force_create_new_workflow_task
            ):
                # Only rejections: the task disappears as if it never ran, and the worker rolls back.
                protocol.finish(tr)
                ms.workflow_task = None
                tr.effects.append(lambda: shard.forget_speculative(key))
                return RespondWorkflowTaskCompletedResponse(
                    reset_history_event_id=ms.last_completed_workflow_task_started_event_id
                )
            tr.materialize_speculative_workflow_task()
            had_buffered = bool(ms.buffered_events)
            # SDKs without worker versioning send their build id as the binary checksum; history shows
            # it as the task's worker version, as on the reference.
            build_id = (
                request.deployment_options.build_id
                or request.worker_version_stamp.build_id
                or request.binary_checksum
            )
            completed_id = tr.complete_workflow_task(
                request.identity,
                "",
                request.sdk_metadata if request.HasField("sdk_metadata") else None,
                build_id,
                request.metering_metadata if request.HasField("metering_metadata") else None,
                request,
            )
            sticky = request.sticky_attributes if request.HasField("sticky_attributes") else None
            if sticky is not None and sticky.HasField("worker_task_queue"):
                ms.set_sticky(
                    sticky.worker_task_queue.name,
                    sticky.schedule_to_start_timeout.ToMilliseconds(),
                    sticky_member,
                )
            else:
                ms.clear_sticky()
            tr.protocol = protocol
            tr.nexus_endpoints = endpoints
            try:
                tr.begin_commands()
                handle_commands(
                    tr, request.commands, completed_id, request.identity, had_buffered, max_blob_bytes
                )
                protocol.finish(tr)
                tr.end_commands()
            except ProtocolError as e:
                failed.append(CommandError(e.cause, e.message))
                raise failed[-1] from None
            except CommandError as e:
                failed.append(e)
                raise
            versioned = workflow_versioning.reported_version(request) is not None
            eager = tr.start_eager_activities(request.identity, build_id)
            if ms.running and (
                ms.buffered_events or request.force_create_new_workflow_task or registry.undelivered(wt)
            ):
                tr.schedule_workflow_task()
                if request.return_new_workflow_task:
                    # A versioned worker's task started event carries no stamp (as on the reference).
                    stamp = "" if versioned else build_id
                    new_wt = tr.start_new_workflow_task_in_response(request.identity, stamp)
                    if new_wt is not None:
                        registry.ship(new_wt)
                        returned.append(new_wt)
            return RespondWorkflowTaskCompletedResponse(
                activity_tasks=[
                    _activity_task(self.task_tokens, ms.info.namespace, ms.info, ai, attrs)
                    for ai, attrs in eager
                ]
            )

        try:
            response = await self._update(
                token.namespace_id, token.workflow_id, token.run_id, complete, speculative_aware=True
            )
        except CommandError:
            err = failed[-1]

            def fail(ms: MutableState, tr: Transition):
                wt = self._started_workflow_task(ms, token)
                self._abort_task_updates(key, wt, tr, WORKFLOW_TASK_COMPLETION_FAILED_MESSAGE)
                failure = Failure(message=err.failure_message)
                if err.server_failure:
                    failure.server_failure_info.SetInParent()
                tr.fail_workflow_task(
                    err.cause,
                    failure,
                    request.identity,
                    schedule_next=not err.terminate,
                )
                if err.terminate:
                    tr.terminate_workflow(err.failure_message, None, history_limits.IDENTITY)

            await self._update(token.namespace_id, token.workflow_id, token.run_id, fail)
            if not err.silent:
                raise InvalidArgument(err.failure_message) from None
            return RespondWorkflowTaskCompletedResponse()
        if response.reset_history_event_id:
            await self._deliver_admitted_updates(key)
        if returned:
            ms = await shard.load(key)
            if ms is not None:
                execution = WorkflowExecution(workflow_id=token.workflow_id, run_id=token.run_id)
                response.workflow_task.CopyFrom(
                    await self._workflow_task_response(
                        shard, ms, returned[-1], execution, partial=True, reserved_bytes=response.ByteSize()
                    )
                )
        return response

    async def _decline_eager_on_limited_queues(self, namespace_id: str, commands: Any) -> None:
        if self.activity_queue_rate is None:
            return
        for command in commands:
            attrs = command.schedule_activity_task_command_attributes
            if (
                command.HasField("schedule_activity_task_command_attributes")
                and attrs.request_eager_execution
                and await self.activity_queue_rate(namespace_id, attrs.task_queue.name) is not None
            ):
                attrs.request_eager_execution = False

    async def _check_command_search_attributes(self, namespace_id: str, commands) -> None:
        """Search attributes a command sets must be registered with the right type (async, so checked
        before the transition): otherwise the task fails with BAD_SEARCH_ATTRIBUTES, as on the reference."""
        if self.validate_search_attributes is None:
            return
        for command in commands:
            which = command.WhichOneof("attributes")
            attrs = getattr(command, which) if which else None
            if attrs is None or "search_attributes" not in attrs.DESCRIPTOR.fields_by_name:
                continue
            if not attrs.HasField("search_attributes"):
                continue
            try:
                await self.validate_search_attributes(namespace_id, attrs.search_attributes)
            except InvalidArgument as e:
                raise CommandError(
                    WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES, e.message
                ) from None

    async def respond_workflow_task_failed(
        self, token: TaskToken, cause: int, failure: Failure | None, identity: str
    ) -> None:
        key = ExecutionKey(token.namespace_id, token.workflow_id, token.run_id)

        def fail(ms: MutableState, tr: Transition):
            wt = self._started_workflow_task(ms, token)
            self._abort_task_updates(key, wt, tr)
            tr.fail_workflow_task(cause, failure, identity)

        await self._update(token.namespace_id, token.workflow_id, token.run_id, fail)

    def _abort_task_updates(
        self, key: ExecutionKey, wt, tr: Transition, refused_message: str | None = None
    ) -> None:
        """A workflow task that carried updates fails or times out. When the server refused its completion
        (`refused_message`), its updates get that error once the failure is committed, as the reference;
        otherwise the next attempt carries them again, up to the failing attempt (see
        `UpdateRegistry.on_task_failed`)."""
        registry = self.shard_for(key.namespace_id, key.workflow_id).find_update_registry(key)
        if registry:
            if refused_message is not None:
                tr.effects.append(registry.abort_sent_with(wt, refused_message))
            else:
                tr.effects.append(registry.on_task_failed(wt))

    async def reset_sticky_task_queue(self, namespace_id: str, execution: WorkflowExecution) -> None:
        """Forget the run's sticky queue: its next workflow task goes to the normal queue, full history.
        A task already waiting on the sticky queue moves when its schedule-to-start timeout fires."""

        def reset(ms: MutableState, tr: Transition):
            if not ms.running:
                raise NotFound("workflow execution already completed")
            if ms.sticky:
                ms.clear_sticky()
                tr.dirty = True

        await self._update(namespace_id, execution.workflow_id, execution.run_id, reset)

    # ---- activities ------------------------------------------------------------------------------------
    async def record_activity_task_started(
        self,
        namespace_id: str,
        namespace: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        attempt: int,
        request_id: str,
        identity: str,
        task_queue: str = "",
        sdk_name: str = "",
        sdk_version: str = "",
        build_id: str = "",
        version: str = "",
    ) -> PollActivityTaskQueueResponse:
        """Start the attempt a poller took from `task_queue` ("" = any): a task of an older attempt, of a
        paused activity, or left on a queue the activity was moved off (UpdateActivityOptions) is gone.
        `sdk_name`/`sdk_version`: the poller's SDK, which a standalone activity's describe shows;
        `build_id`: its build, which the attempt's started event records; `version`: its deployment
        version, checked against the run's pin."""

        def start(ms: MutableState, tr: Transition):
            ai = ms.activities.get(scheduled_event_id)
            if (
                not ms.running
                or ai is None
                or ai.attempt != attempt
                or ai.waiting_retry
                or ai.paused
                or ms.info.pause is not None  # unpausing the run hands the attempt to matching again
                or (task_queue and ai.task_queue != task_queue)
            ):
                raise TaskGone("the activity attempt no longer waits for a worker")
            if ai.started:
                if ai.request_id == request_id:
                    return ai
                raise TaskGone("another poll started the activity attempt")
            if ai.task_queue == ms.info.task_queue:
                _check_pinned_poller(ms, version)
            # Activity pollers seldom say their build: the reference then stamps the started event with
            # the build of the workflow task that scheduled it (the run's most recent one).
            stamp = ms.info.most_recent_worker_version_stamp
            tr.start_activity(ai, request_id, identity, build_id or (stamp.build_id if stamp else ""))
            if standalone_ids.is_standalone(ms.info.workflow_id) and sdk_name:
                ai.sdk_name, ai.sdk_version = sdk_name, sdk_version
            return ai

        try:
            ai = await self._update(namespace_id, execution.workflow_id, execution.run_id, start)
        except HistoryLimitExceeded as e:
            raise TaskGone(f"the run was terminated: {e.message}") from None
        shard = self.shard_for(namespace_id, execution.workflow_id)
        ms = await shard.load(ExecutionKey(namespace_id, execution.workflow_id, execution.run_id))
        scheduled = await shard.read_event(ms, ai.scheduled_node_id, ai.scheduled_event_id)
        return _activity_task(
            self.task_tokens, namespace, ms.info, ai, scheduled.activity_task_scheduled_event_attributes
        )

    def _started_activity(self, ms: MutableState, token: TaskToken, activity_id: str = "") -> ActivityInfo:
        ai = ms.activity_by_id(activity_id) if activity_id else ms.activities.get(token.scheduled_event_id)
        if activity_id and ms.running and ai is None:
            # The reference's answer to a completion by id naming no pending activity.
            raise NotFound(
                f"cannot find pending activity with ActivityID {activity_id}, "
                "check workflow execution history for more details"
            )
        if (
            not ms.running
            or ai is None
            or not ai.started
            or (not activity_id and ai.attempt != token.attempt)
        ):
            raise NotFound(
                "invalid activityID or activity already timed out or invoking workflow is completed"
            )
        return ai

    async def _on_activity(
        self,
        token: TaskToken,
        action: Callable[[ActivityInfo, Transition], Any],
        by_id: bool = False,
        force_start: str | None = None,
    ):
        """`action` on the started activity the token names. `force_start` (a by-id completion's
        identity): one not started yet is started first, as the reference lets
        RespondActivityTaskCompletedById force-complete an activity no worker has started."""

        def run(ms: MutableState, tr: Transition):
            if by_id and force_start is not None and ms.running:
                scheduled = ms.activity_by_id(token.activity_id)
                if scheduled is not None and not scheduled.started:
                    tr.start_activity(scheduled, "", force_start)
            ai = self._started_activity(ms, token, token.activity_id if by_id else "")
            return action(ai, tr)

        return await self._update(token.namespace_id, token.workflow_id, token.run_id, run)

    async def respond_activity_completed(
        self, token: TaskToken, result: Payloads | None, identity: str, by_id: bool = False
    ) -> None:
        def complete(ai: ActivityInfo, tr: Transition):
            ai.last_attempt_complete_time_ms = tr.now
            tr.complete_activity(ai, result, identity)

        await self._on_activity(token, complete, by_id, force_start=identity)

    async def respond_activity_failed(
        self,
        token: TaskToken,
        failure: Failure,
        identity: str,
        last_heartbeat_details: Payloads | None,
        by_id: bool = False,
    ) -> None:
        def fail(ai: ActivityInfo, tr: Transition):
            if last_heartbeat_details is not None:
                ai.heartbeat_details = last_heartbeat_details
            ai.last_attempt_complete_time_ms = tr.now
            tr.fail_activity(ai, failure, identity)

        await self._on_activity(token, fail, by_id)

    async def respond_activity_canceled(
        self, token: TaskToken, details: Payloads | None, identity: str, by_id: bool = False
    ) -> None:
        def cancel(ai: ActivityInfo, tr: Transition):
            if not ai.cancel_requested:
                if standalone_ids.is_standalone(tr.ms.info.workflow_id):
                    # The reference's words (and status) for a standalone activity.
                    raise InvalidArgument(
                        "unable to mark activity as canceled without activity being request canceled first"
                    )
                raise FailedPrecondition("Activity cancellation was not requested.")
            ai.last_attempt_complete_time_ms = tr.now
            tr.cancel_activity_confirmed(ai, details, identity)

        await self._on_activity(token, cancel, by_id)

    async def record_activity_heartbeat(
        self, token: TaskToken, details: Payloads | None, by_id: bool = False
    ) -> tuple[bool, bool, bool]:
        """Store the details; answers whether the activity's cancellation was requested, whether it was
        paused and whether it was reset (the worker cancels the attempt on each)."""

        def heartbeat(ai: ActivityInfo, tr: Transition) -> tuple[bool, bool, bool]:
            ai.heartbeat_details = details
            ai.last_heartbeat_time_ms = tr.now
            tr.dirty = True
            return ai.cancel_requested, ai.paused, ai.reset

        return await self._on_activity(token, heartbeat, by_id)

    # ---- activity operator APIs ---------------------------------------------------------------------------
    def _scheduled_reader(self, ms: MutableState) -> activity_ops.ReadScheduled:
        shard = self.shard_for(ms.info.namespace_id, ms.info.workflow_id)

        async def read(ai: ActivityInfo) -> ActivityTaskScheduledEventAttributes:
            event = await shard.read_event(ms, ai.scheduled_node_id, ai.scheduled_event_id)
            if event is None:
                raise InvalidArgument("ActivityTaskScheduledEvent not found")
            return event.activity_task_scheduled_event_attributes

        return read

    async def pause_activity(self, namespace_id: str, request: PauseActivityRequest) -> None:
        await self._activity_operation(
            namespace_id, request, lambda ms, tr: activity_ops.pause(ms, tr, request)
        )

    async def unpause_activity(self, namespace_id: str, request: UnpauseActivityRequest) -> None:
        await self._activity_operation(
            namespace_id, request, lambda ms, tr: activity_ops.unpause(ms, tr, request)
        )

    async def reset_activity(self, namespace_id: str, request: ResetActivityRequest) -> None:
        await self._activity_operation(
            namespace_id,
            request,
            lambda ms, tr: activity_ops.reset(ms, tr, request, self._scheduled_reader(ms)),
        )

    async def update_activity_options(
        self, namespace_id: str, request: UpdateActivityOptionsRequest
    ) -> ActivityOptions:
        return await self._activity_operation(
            namespace_id,
            request,
            lambda ms, tr: activity_ops.update_options(ms, tr, request, self._scheduled_reader(ms)),
        )

    async def _activity_operation(
        self, namespace_id: str, request, action: Callable[[MutableState, Transition], T]
    ) -> T:
        """An operator's request on the activities of the run it names, as one transition."""
        execution = request.execution
        return await self._update(namespace_id, execution.workflow_id, execution.run_id, action)

    # ---- workflow updates -------------------------------------------------------------------------------
    async def update_workflow(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        request: Request,
        stage: int,
        timeout: float,
        first_execution_run_id: str = "",
    ) -> UpdateResult:
        """Admit the update (or join the one with its id), get it to the worker, and wait up to `timeout` s
        for `stage`. An update in flight when its run continues as new is retried on the new run."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            run_id, entry = await self._admit_update(
                namespace_id, execution.workflow_id, execution.run_id, request, first_execution_run_id
            )
            key = ExecutionKey(namespace_id, execution.workflow_id, run_id)
            try:
                return await self._wait_update(key, request.meta.update_id, stage, deadline, entry)
            except _RunContinued:
                if execution.run_id:
                    raise NotFound("workflow update was aborted by closing workflow") from None

    async def update_with_start(
        self,
        namespace_id: str,
        namespace: str,
        start: StartWorkflowExecutionRequest,
        request: Request,
        stage: int,
        timeout: float,
    ) -> tuple[StartResult, UpdateResult]:
        """ExecuteMultiOperation [Start, Update]: update the running workflow when the start may reuse it
        (or the update is already known to it), else start a new run with the update admitted into its
        first workflow task. Raises MultiOperationFailed naming the operation that failed."""
        shard = self.shard_for(namespace_id, start.workflow_id)
        update_id = request.meta.update_id
        current = await shard.get_current_run(namespace_id, start.workflow_id)
        if current is not None:
            key = ExecutionKey(namespace_id, start.workflow_id, current.run_id)
            ms = await shard.load(key)
            registry = shard.find_update_registry(key)
            known = ms.updates.get(update_id) if ms is not None else None
            if ms is not None and (
                # An update the run completed answers from history; one a closed run left unfinished does
                # not hold the start back (the reference starts a new run, or refuses it by the id policy).
                (known is not None and (ms.running or known.completed_event_id))
                or (
                    ms.running
                    and (
                        (start.request_id and start.request_id == ms.info.create_request_id)
                        or (registry is not None and registry.get(update_id) is not None)
                        or start.workflow_id_conflict_policy
                        == WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
                    )
                )
            ):
                execution = WorkflowExecution(workflow_id=start.workflow_id, run_id=current.run_id)
                try:
                    result = await self.update_workflow(namespace_id, execution, request, stage, timeout)
                except ServiceError as e:
                    raise MultiOperationFailed(MultiOperationFailed.ABORTED, e) from None
                return StartResult(current.run_id, False), result
        admitted: list[tuple[ExecutionKey, InFlightUpdate]] = []

        def admit(key: ExecutionKey) -> None:
            admitted.clear()
            admitted.append((key, shard.update_registry(key).admit(request)))

        try:
            started = await self.start_workflow(namespace_id, namespace, start, on_new_run=admit)
        except ServiceError as e:
            for key, _ in admitted:
                shard.drop_update_registry(key)
            raise MultiOperationFailed(e, MultiOperationFailed.ABORTED) from None
        key, entry = admitted[0] if admitted else (None, None)
        if key is None or key.run_id != started.run_id:
            if key is not None:
                shard.drop_update_registry(key)
            raise MultiOperationFailed(Unavailable("Workflow was not started"), MultiOperationFailed.ABORTED)
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            result = await self._wait_update(key, update_id, stage, deadline, entry)
        except WorkflowNotReady:
            # The run started but its first task failed on the update: answer the start, with the update
            # merely admitted, so the caller keeps its handle on the run; its retry gets the update's error.
            result = UpdateResult(key.run_id, Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED, None)
        except _RunContinued:
            raise MultiOperationFailed(
                None, NotFound("workflow update was aborted by closing workflow")
            ) from None
        except ServiceError as e:
            raise MultiOperationFailed(None, e) from None
        return started, result

    async def poll_update(
        self, namespace_id: str, execution: WorkflowExecution, update_id: str, stage: int, timeout: float
    ) -> UpdateResult:
        """Wait up to `timeout` s for an update (admitted earlier, or recorded in history) to reach `stage`."""
        shard = self.shard_for(namespace_id, execution.workflow_id)
        run_id = await self._resolve_run_id(shard, namespace_id, execution.workflow_id, execution.run_id)
        key = ExecutionKey(namespace_id, execution.workflow_id, run_id)
        if await shard.load(key) is None:
            raise NotFound(
                f'workflow execution not found for workflow ID "{execution.workflow_id}" and run ID "{run_id}"'
            )
        registry = shard.find_update_registry(key)
        entry = registry.get(update_id) if registry else None
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            return await self._wait_update(key, update_id, stage, deadline, entry)
        except _RunContinued:
            raise NotFound("workflow update was aborted by closing workflow") from None

    async def _admit_update(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        request: Request,
        first_execution_run_id: str = "",
    ) -> tuple[str, InFlightUpdate | None]:
        shard = self.shard_for(namespace_id, workflow_id)
        dispatch: list[int] = []

        def admit(ms: MutableState, tr: Transition):
            if request.meta.update_id in ms.updates:
                return ms.info.run_id, None  # accepted before: its outcome is in history
            if not ms.running:
                raise NotFound("workflow execution already completed")
            if ms.info.pause is not None:
                raise FailedPrecondition("Workflow is paused. Cannot update the workflow.")
            if ms.workflow_task is not None and ms.workflow_task.attempt >= FAILING_TASK_ATTEMPT:
                # The run's workflow task keeps failing: an update would only fail with it (reference).
                raise WorkflowNotReady(WORKFLOW_TASK_FAILED_MESSAGE)
            key = ExecutionKey(namespace_id, workflow_id, ms.info.run_id)
            entry = shard.update_registry(key).admit(request)
            if entry.error is not None:
                raise entry.error  # its workflow task failed on it before: it is not tried again
            if self._needs_speculative_task(ms):
                dispatch.append(tr.schedule_speculative_workflow_task().scheduled_event_id)
                shard.remember_speculative(key, ms)
            elif ms.running and not had_or_has_workflow_task(ms):
                # Still in its start delay (or cron/retry backoff): an update starts the first task at
                # once (a normal one, in history), as on the reference; the backoff timer then finds it.
                tr.schedule_workflow_task()
            return ms.info.run_id, entry

        resolved, entry = await self._update(
            namespace_id,
            workflow_id,
            run_id,
            admit,
            speculative_aware=True,
            first_execution_run_id=first_execution_run_id,
        )
        await self._dispatch_speculative(namespace_id, workflow_id, resolved, dispatch)
        return resolved, entry

    @staticmethod
    def _needs_speculative_task(ms: MutableState) -> bool:
        """No workflow task to carry updates. (A run still waiting for its first task, during a start
        delay or cron backoff, gets a normal first task instead: see _admit_update.)"""
        return ms.running and had_or_has_workflow_task(ms) and ms.workflow_task is None

    async def _dispatch_speculative(
        self, namespace_id: str, workflow_id: str, run_id: str, scheduled: list[int]
    ) -> None:
        """Hand a speculative task to matching directly (no transfer task: nothing was written). Outside the
        run's lock: a waiting poller starts the task at once, which takes that lock."""
        if not scheduled:
            return
        execution = WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
        ms = await self.get_mutable_state(namespace_id, execution)
        wt = ms.workflow_task
        if wt is None or not wt.speculative or wt.scheduled_event_id != scheduled[0]:
            return  # already taken, or replaced meanwhile
        await self._dispatch_workflow_task(ms, wt, execution)
        if wt.sticky:
            self._arm_speculative_sticky_timeout(
                ExecutionKey(namespace_id, workflow_id, run_id),
                wt,
                ms.info.sticky_schedule_to_start_timeout_ms,
            )

    def _arm_speculative_sticky_timeout(self, key: ExecutionKey, wt, timeout_ms: int) -> None:
        """A speculative task no sticky poller took in time moves to the normal queue (in memory: nothing
        of it is persisted, so neither is its schedule-to-start timer)."""
        scheduled_event_id = wt.scheduled_event_id
        execution = WorkflowExecution(workflow_id=key.workflow_id, run_id=key.run_id)

        def unstick(ms: MutableState, tr: Transition) -> str | None:
            current = ms.workflow_task
            if (
                ms.running
                and current is not None
                and current.speculative
                and current.sticky
                and not current.started
                and current.scheduled_event_id == scheduled_event_id
            ):
                current.sticky = False
                current.task_queue = ms.info.task_queue
                return current.task_queue, workflow_versioning.pinned_version(ms)
            return None

        async def run() -> None:
            try:
                moved = await self._update(
                    key.namespace_id, key.workflow_id, key.run_id, unstick, speculative_aware=True
                )
                if moved is not None:
                    queue, pinned = moved
                    await self.matching.add_workflow_task(
                        key.namespace_id, queue, execution, scheduled_event_id, pinned=pinned
                    )
            except Exception:
                log.exception("sticky schedule-to-start timeout of the speculative task of %s", key)

        loop = asyncio.get_running_loop()
        loop.call_later(max(timeout_ms, 1000) / 1000, lambda: loop.create_task(run()))

    async def _deliver_admitted_updates(self, key: ExecutionKey) -> None:
        """After a dropped speculative task: updates admitted meanwhile need a task of their own."""
        shard = self.shard_for(key.namespace_id, key.workflow_id)
        dispatch: list[int] = []

        def deliver(ms: MutableState, tr: Transition) -> None:
            registry = shard.find_update_registry(key)
            if registry and registry.undelivered() and self._needs_speculative_task(ms):
                dispatch.append(tr.schedule_speculative_workflow_task().scheduled_event_id)
                shard.remember_speculative(key, ms)

        await self._update(key.namespace_id, key.workflow_id, key.run_id, deliver, speculative_aware=True)
        await self._dispatch_speculative(key.namespace_id, key.workflow_id, key.run_id, dispatch)

    async def _wait_update(
        self, key: ExecutionKey, update_id: str, stage: int, deadline: float, entry: InFlightUpdate | None
    ) -> UpdateResult:
        """Wait until the update reaches `stage` or the deadline passes (then: the stage it reached)."""
        shard = self.shard_for(key.namespace_id, key.workflow_id)
        loop = asyncio.get_running_loop()
        while True:
            watchers = [shard.watch(key)]
            if entry is not None:
                watchers.append(entry.changed)
            ms = await shard.load(key)
            if ms is None:
                raise NotFound("workflow execution already completed")
            info = ms.updates.get(update_id)
            if info is not None:
                if info.completed_event_id:
                    event = await shard.read_event(ms, info.completed_node_id, info.completed_event_id)
                    outcome = event.workflow_execution_update_completed_event_attributes.outcome
                    return UpdateResult(
                        key.run_id, Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED, outcome
                    )
                if not ms.running:
                    outcome = Outcome(failure=ACCEPTED_UPDATE_COMPLETED_WORKFLOW_FAILURE)
                    return UpdateResult(
                        key.run_id, Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED, outcome
                    )
                reached = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
            else:
                if entry is not None and entry.rejection is not None:
                    outcome = Outcome(failure=entry.rejection)
                    return UpdateResult(
                        key.run_id, Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED, outcome
                    )
                if entry is not None and entry.error is not None:
                    raise entry.error
                if entry is None:
                    raise NotFound(f'update "{update_id}" not found')
                if not ms.running:
                    if ms.info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW:
                        raise _RunContinued()
                    raise NotFound("workflow update was aborted by closing workflow")
                reached = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
            remaining = deadline - loop.time()
            if stage <= reached or remaining <= 0:
                return UpdateResult(key.run_id, reached, None)
            waits = [asyncio.ensure_future(w.wait()) for w in watchers]
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    # ---- signals, cancel, terminate -------------------------------------------------------------------
    async def signal(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        name: str,
        payloads: Payloads | None,
        identity: str,
        request_id: str,
        header: Header | None,
        links: list | None = None,
    ) -> str:
        """Signal the run; returns its run id (the answer's link names it). `links`: the request's, kept
        on the signaled event."""

        def signal(ms: MutableState, tr: Transition) -> str:
            if not ms.running:
                raise NotFound("workflow execution already completed")
            if request_id and request_id in ms.info.signal_request_ids:
                return ms.info.run_id
            history_limits.check_signal_allowed(ms)
            if request_id:
                ms.info.signal_request_ids = (ms.info.signal_request_ids + [request_id])[
                    -SIGNAL_REQUEST_IDS_KEPT:
                ]
            tr.signal(name, payloads, identity, header, links or ())
            return ms.info.run_id

        return await self._update(namespace_id, execution.workflow_id, execution.run_id, signal)

    async def signal_with_start(
        self,
        namespace_id: str,
        namespace: str,
        request: StartWorkflowExecutionRequest,
        signal_name: str,
        signal_input: Payloads | None,
        signal_header: Header | None,
    ) -> StartResult:
        shard = self.shard_for(namespace_id, request.workflow_id)
        current = await shard.get_current_run(namespace_id, request.workflow_id)
        if current is not None and current.status == RunStatus.RUNNING:
            try:
                await self.signal(
                    namespace_id,
                    WorkflowExecution(workflow_id=request.workflow_id, run_id=current.run_id),
                    signal_name,
                    signal_input,
                    request.identity,
                    "",
                    signal_header,
                    list(request.links),
                )
                return StartResult(current.run_id, False)
            except NotFound:
                pass  # it closed meanwhile: start a new run
        sig_request = StartWorkflowExecutionRequest()
        sig_request.CopyFrom(request)
        # Signal-with-start never fails because the workflow is running: it signals it instead.
        sig_request.workflow_id_conflict_policy = (
            WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
        )
        return await self.start_workflow(
            namespace_id, namespace, sig_request, (signal_name, signal_input, signal_header)
        )

    async def request_cancel(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        identity: str,
        request_id: str,
        reason: str,
        external: tuple[int, WorkflowExecution] | None = None,
        first_execution_run_id: str = "",
    ) -> None:
        def cancel(ms: MutableState, tr: Transition):
            if not ms.running:
                return  # not an error on the reference: nothing to cancel, nothing written
            if ms.info.cancel_requested:
                return  # idempotent, as on the reference
            if request_id:
                ms.info.cancel_request_ids.append(request_id)
            tr.request_cancel(reason, identity, external)

        await self._update(
            namespace_id,
            execution.workflow_id,
            execution.run_id,
            cancel,
            first_execution_run_id=first_execution_run_id,
        )

    async def terminate(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        reason: str,
        details: Payloads | None,
        identity: str,
        first_execution_run_id: str = "",
    ) -> None:
        def terminate(ms: MutableState, tr: Transition):
            if not ms.running:
                raise NotFound("workflow execution already completed")
            tr.terminate_workflow(reason, details, identity)

        await self._update(
            namespace_id,
            execution.workflow_id,
            execution.run_id,
            terminate,
            first_execution_run_id=first_execution_run_id,
        )

    async def update_workflow_options(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        options: WorkflowExecutionOptions,
        mask: FieldMask,
        identity: str,
    ) -> WorkflowExecutionOptions:
        """UpdateWorkflowExecutionOptions (cluster/history/execution_options.py); the run's new options.
        A pin may name a version the run's queue has: one whose versioned workers polled it."""
        present: list[str] = []
        if execution_options.pinned_request(options, mask):
            ms = await self.get_mutable_state(namespace_id, execution)
            present = await self.matching.versions_polled(namespace_id, ms.info.task_queue)

        def update(ms: MutableState, tr: Transition) -> WorkflowExecutionOptions:
            return execution_options.update(ms, tr, options, mask, identity, present)

        return await self._update(namespace_id, execution.workflow_id, execution.run_id, update)

    async def pause_workflow(self, namespace_id: str, request: PauseWorkflowExecutionRequest) -> None:
        """PauseWorkflowExecution with the reference's checks and messages (see Transition.pause_workflow)."""

        def pause(ms: MutableState, tr: Transition):
            if not ms.running:
                raise NotFound("workflow execution already completed")
            if ms.info.pause is not None:
                if request.request_id and ms.info.pause.request_id == request.request_id:
                    return  # the same request again
                raise FailedPrecondition("workflow is already paused.")
            tr.pause_workflow(request.identity, request.reason, request.request_id)

        await self._update(namespace_id, request.workflow_id, request.run_id, pause)

    async def unpause_workflow(self, namespace_id: str, request: UnpauseWorkflowExecutionRequest) -> None:
        def unpause(ms: MutableState, tr: Transition):
            if not ms.running:
                raise NotFound("workflow execution already completed")
            if ms.info.pause is None:
                raise FailedPrecondition("workflow is not paused.")
            tr.unpause_workflow(request.identity, request.reason, request.request_id)

        await self._update(namespace_id, request.workflow_id, request.run_id, unpause)

    # ---- reads -----------------------------------------------------------------------------------------
    async def get_mutable_state(self, namespace_id: str, execution: WorkflowExecution) -> MutableState:
        shard = self.shard_for(namespace_id, execution.workflow_id)
        # Under the run's lock, and a copy: transitions change the cached state in place before they
        # commit, and a reader must never see (say) a close whose events are not readable yet.
        async with shard.locks.hold((namespace_id, execution.workflow_id)):
            run_id = await self._resolve_run_id(shard, namespace_id, execution.workflow_id, execution.run_id)
            ms = await shard.load(ExecutionKey(namespace_id, execution.workflow_id, run_id))
            if ms is None:
                raise NotFound(
                    f'workflow execution not found for workflow ID "{execution.workflow_id}" and run ID "{run_id}"'
                )
            return ms.clone()

    async def read_history(self, ms: MutableState, first_event_id: int = 1) -> list[HistoryEvent]:
        return await self.shard_for(ms.info.namespace_id, ms.info.workflow_id).read_events(ms, first_event_id)

    async def get_workflow_history(
        self, namespace_id: str, request: GetWorkflowExecutionHistoryRequest, timeout: float
    ) -> GetWorkflowExecutionHistoryResponse | bytes:
        """GetWorkflowExecutionHistory as a whole, here where the run lives (history_reads.py)."""
        return await history_reads.get_workflow_history(self, namespace_id, request, timeout)

    async def read_history_page(
        self, ms: MutableState, token: bytes, page_size: int, max_bytes: int
    ) -> tuple[History, bytes]:
        """One page of the run's history from where `token` (a HistoryCursor) says, of about `page_size`
        events and at most `max_bytes` (paging.py), and the token of the next page (empty after the last).
        """
        cursor = HistoryCursor.decode(token)
        if cursor.run_id != ms.info.run_id:
            raise InvalidArgument(INVALID_TOKEN)
        page = Page(max(page_size, 1), max(max_bytes, 1))
        shard = self.shard_for(ms.info.namespace_id, ms.info.workflow_id)
        following = await shard.read_page(ms, cursor, page)
        return History(events=page.events), b"" if following is None else following.encode()

    async def read_history_response(
        self, ms: MutableState, token: bytes, page_size: int, max_bytes: int, end_token: bytes = b""
    ) -> bytes:
        """`read_history_page` as a serialized GetWorkflowExecutionHistoryResponse (the page and the next
        page's token, or `end_token` after the last page): stored batches go into it unparsed, so a large
        page costs the event loop one copy (history_wire.py)."""
        cursor = HistoryCursor.decode(token)
        if cursor.run_id != ms.info.run_id:
            raise InvalidArgument(INVALID_TOKEN)
        page = Page(max(page_size, 1), max(max_bytes, 1), serialized=True)
        shard = self.shard_for(ms.info.namespace_id, ms.info.workflow_id)
        following = await shard.read_page(ms, cursor, page)
        token = end_token if following is None else following.encode()
        if page.size >= JOIN_OFF_LOOP_BYTES:
            # bytes.join lets go of the GIL while it copies over 1 MB: a thread does it beside the loop.
            return await asyncio.to_thread(history_response, page.framed, token)
        return history_response(page.framed, token)

    async def wait_for_change(self, ms: MutableState, timeout: float, until_closed: bool = False) -> None:
        """Return once the run has committed anything after the state `ms` shows, or after `timeout` s.

        `ms` is a copy taken under the run's lock, so it is exactly what was read. With `until_closed`, only
        the run's close ends the wait: a client waiting for the result (a close-event long poll) is not sent
        back empty-handed at every transition, which would cost it a round trip and the server a state copy.
        The caller re-reads the state under the lock, so a close seen here before its commit is harmless.
        A shard released meanwhile ends the wait too: the caller's re-read goes to the shard's next owner.
        """
        info = ms.info
        shard = self.shard_for(info.namespace_id, info.workflow_id)
        key = ExecutionKey(info.namespace_id, info.workflow_id, info.run_id)
        deadline = asyncio.get_running_loop().time() + timeout
        version = ms.db_record_version
        while not shard.released:
            watcher = shard.watch(key)  # registered before the re-read, so no commit slips between the two
            current = await shard.load(key)
            if current is None:
                return
            if current.db_record_version != version:
                if not until_closed or not current.running:
                    return
                version = current.db_record_version
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(watcher.wait(), remaining)
            except TimeoutError:
                return

    # ---- queue task execution --------------------------------------------------------------------------
    async def _execute_transfer(self, shard: Shard, task: TransferTask) -> None:
        key = ExecutionKey(task.namespace_id, task.workflow_id, task.run_id)
        execution = WorkflowExecution(workflow_id=task.workflow_id, run_id=task.run_id)
        data = decode(task.data)
        # Read under the run's lock: a transition in flight changes the cached state before it commits,
        # and a task judged against changes that then fail to commit would be dropped.
        async with shard.locks.hold((task.namespace_id, task.workflow_id)):
            ms = await shard.load(key)
        if ms is None:
            return
        if task.kind == TransferKind.VISIBILITY:
            shard.check_writable()
            await self.store.upsert_visibility(visibility_record(ms))
            return
        if task.kind == TransferKind.RECORD_CHILD_COMPLETION:
            await self._record_child_completion(shard, ms)
            return
        if task.kind == TransferKind.PARENT_CLOSE_POLICY:
            await self._apply_parent_close_policy(data)
            return
        if task.kind == TransferKind.COMPLETION_CALLBACK:
            await self.nexus.completion_callback(shard, ms, data)
            return
        if not ms.running:
            return
        if task.kind == TransferKind.WORKFLOW_TASK:
            wt = ms.workflow_task
            if wt is None or wt.scheduled_event_id != data["scheduled_event_id"] or wt.started:
                return
            await self._dispatch_workflow_task(ms, wt, execution)
        elif task.kind == TransferKind.ACTIVITY_TASK:
            ai = ms.activities.get(data["scheduled_event_id"])
            if ai is None or ai.attempt != data["attempt"] or ai.started or ai.paused or ai.waiting_retry:
                return
            # A pinned run's activities on its own task queue go to its version's pollers only.
            pinned = workflow_versioning.pinned_version(ms) if ai.task_queue == ms.info.task_queue else ""
            await self.matching.add_activity_task(
                task.namespace_id, ai.task_queue, execution, ai.scheduled_event_id, ai.attempt, pinned=pinned
            )
        elif task.kind in self._cross_run_executors:
            await self._cross_run_executors[task.kind](self, shard, ms, data)
        else:
            log.error("unknown transfer task kind %s", task.kind)

    async def _dispatch_workflow_task(self, ms: MutableState, wt, execution: WorkflowExecution) -> None:
        """Hand the task to its queue: the sticky one while the run is still sticky to it, else (or when
        no sticky poller was seen lately) the normal queue. Stickiness itself is left for the poll
        (record_workflow_task_started) or the schedule-to-start timeout to clear, as the reference does."""
        ns_id = ms.info.namespace_id
        if wt.sticky and ms.info.sticky_task_queue == wt.task_queue:
            try:
                await self.matching.add_workflow_task(
                    ns_id,
                    wt.task_queue,
                    execution,
                    wt.scheduled_event_id,
                    TaskQueueKind.TASK_QUEUE_KIND_STICKY,
                    member=ms.info.sticky_member,
                )
                return
            except StickyWorkerUnavailable:
                pass
        await self.matching.add_workflow_task(
            ns_id,
            ms.info.task_queue,
            execution,
            wt.scheduled_event_id,
            pinned=workflow_versioning.pinned_version(ms),
            # Continued as new onto the ramping version: there until a worker reports a version.
            ramping=ms.info.start_on_ramping and ms.info.deployment_version is None,
        )

    # ---- work that crosses runs (children, external signals and cancels) ---------------------------------
    async def _start_child(self, shard: Shard, ms: MutableState, data: dict) -> None:
        child = ms.children.get(data["initiated_event_id"])
        if child is None or child.started_event_id or not ms.running:
            return
        initiated = await shard.read_event(ms, child.initiated_node_id, child.initiated_event_id)
        a = initiated.start_child_workflow_execution_initiated_event_attributes
        info = ms.info
        request = StartWorkflowExecutionRequest(
            namespace=a.namespace,
            workflow_id=a.workflow_id,
            workflow_type=a.workflow_type,
            task_queue=a.task_queue,
            workflow_execution_timeout=a.workflow_execution_timeout,
            workflow_run_timeout=a.workflow_run_timeout,
            workflow_task_timeout=a.workflow_task_timeout,
            identity=f"history-service:{info.workflow_id}",
            # Deterministic, so a retried task finds the child it already started instead of failing.
            request_id=f"{info.run_id}:{child.initiated_event_id}",
            workflow_id_reuse_policy=a.workflow_id_reuse_policy,
            cron_schedule=a.cron_schedule,
        )
        for name in ("input", "header", "memo", "search_attributes", "retry_policy", "priority"):
            if a.HasField(name):
                getattr(request, name).CopyFrom(getattr(a, name))
        for name in ("workflow_execution_timeout", "workflow_run_timeout"):
            if not duration_ms(getattr(request, name)):
                request.ClearField(name)  # a child's unlimited timeouts stay unset (no 0s echoed)
        parent = ParentInfo(
            namespace=info.namespace,
            namespace_id=info.namespace_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            initiated_event_id=child.initiated_event_id,
            root_workflow_id=info.parent.root_workflow_id if info.parent else info.workflow_id,
            root_run_id=info.parent.root_run_id if info.parent else info.run_id,
        )
        namespace_id = await self.resolve_namespace_id(a.namespace)
        try:
            result = await self.peers.start_workflow(namespace_id, a.namespace, request, parent=parent)
        except WorkflowAlreadyStarted:
            result = None

        def record(ms: MutableState, tr: Transition):
            pending = ms.children.get(child.initiated_event_id)
            if not ms.running or pending is None or pending.started_event_id:
                return
            if result is None:
                record_child_start_failed(
                    tr, pending, namespace_id, a.control, a.workflow_task_completed_event_id
                )
            else:
                record_child_started(
                    tr, pending, result.run_id, namespace_id, a.header if a.HasField("header") else None
                )

        await self._update(info.namespace_id, info.workflow_id, info.run_id, record)

    async def _record_child_completion(self, shard: Shard, ms: MutableState) -> None:
        parent = ms.info.parent
        if parent is None or ms.running:
            return
        (close_event, *_) = await shard.read_events(ms, ms.info.close_event_id)
        try:
            await self.peers.notify_parent_of_child_close(parent, ms.info.namespace_id, close_event)
        except NotFound:
            pass  # the parent is gone (retention): nobody to tell

    async def notify_parent_of_child_close(
        self, parent: ParentInfo, child_namespace_id: str, close_event: HistoryEvent
    ) -> None:
        """Tell the parent run that its child closed (runs on the member owning the parent's shard)."""

        def record(pms: MutableState, tr: Transition):
            child = pms.children.get(parent.initiated_event_id)
            if not pms.running or child is None:
                return
            if not child.started_event_id:
                raise Unavailable("the parent has not recorded the child's start yet")  # retried
            record_child_closed(tr, child, child_namespace_id, close_event)

        await self._update(parent.namespace_id, parent.workflow_id, parent.run_id, record)

    async def _apply_parent_close_policy(self, data: dict) -> None:
        namespace_id = await self.resolve_namespace_id(data["namespace"])
        execution = WorkflowExecution(workflow_id=data["workflow_id"], run_id=data["run_id"])
        try:
            if data["policy"] == ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL:
                await self.peers.request_cancel(
                    namespace_id, execution, "history-service", "", "by parent close policy"
                )
            else:
                await self.peers.terminate(
                    namespace_id, execution, "by parent close policy", None, "history-service"
                )
        except NotFound:
            pass  # the child already closed

    async def _signal_external(self, shard: Shard, ms: MutableState, data: dict) -> None:
        req = ms.signals_requested.get(data["initiated_event_id"])
        if req is None:
            return
        initiated = await shard.read_event(ms, req.initiated_node_id, req.initiated_event_id)
        a = initiated.signal_external_workflow_execution_initiated_event_attributes
        namespace_id = await self.resolve_namespace_id(req.namespace)
        target = WorkflowExecution(workflow_id=req.workflow_id, run_id=req.run_id)
        delivered = True
        cause = SignalExternalCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
        try:
            await self.peers.signal(
                namespace_id,
                target,
                a.signal_name,
                a.input if a.HasField("input") else None,
                f"history-service:{ms.info.workflow_id}",
                f"{ms.info.run_id}:{req.initiated_event_id}",
                a.header if a.HasField("header") else None,
            )
        except (NotFound, HistoryLimitExceeded):  # gone, or terminated for its history's size
            delivered = False
        except SignalsLimitExceeded:
            delivered = False
            cause = SignalExternalCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_SIGNAL_COUNT_LIMIT_EXCEEDED
        await self._record_external_outcome(
            ms, req.initiated_event_id, namespace_id, delivered, signal=True, cause=cause
        )

    async def _cancel_external(self, shard: Shard, ms: MutableState, data: dict) -> None:
        req = ms.cancels_requested.get(data["initiated_event_id"])
        if req is None:
            return
        namespace_id = await self.resolve_namespace_id(req.namespace)
        target = WorkflowExecution(workflow_id=req.workflow_id, run_id=req.run_id)
        source = WorkflowExecution(workflow_id=ms.info.workflow_id, run_id=ms.info.run_id)
        delivered = True
        try:
            await self.peers.request_cancel(
                namespace_id,
                target,
                "history-service",  # as on the reference
                f"{ms.info.run_id}:{req.initiated_event_id}",
                req.reason,
                (req.initiated_event_id, source),
            )
        except NotFound:
            delivered = False
        await self._record_external_outcome(ms, req.initiated_event_id, namespace_id, delivered, signal=False)

    async def _record_external_outcome(
        self,
        ms: MutableState,
        initiated_event_id: int,
        namespace_id: str,
        delivered: bool,
        signal: bool,
        cause: int = 0,
    ) -> None:
        def record(sms: MutableState, tr: Transition):
            pending = (sms.signals_requested if signal else sms.cancels_requested).get(initiated_event_id)
            if not sms.running or pending is None:
                return
            if signal:
                record_external_signaled(tr, pending, namespace_id, delivered, cause)
            else:
                record_external_cancel_requested(tr, pending, namespace_id, delivered)

        await self._update(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id, record)

    async def complete_nexus_operation(
        self,
        namespace_id: str,
        execution: WorkflowExecution,
        scheduled_event_id: int,
        request_id: str,
        operation_token: str,
        result,
        failure,
        canceled: bool,
    ) -> None:
        """An asynchronous Nexus operation this run scheduled ended (runs on the caller's shard owner)."""
        await self.nexus.complete_operation(
            namespace_id,
            execution,
            scheduled_event_id,
            request_id,
            operation_token,
            result,
            failure,
            canceled,
        )

    _cross_run_executors = {
        TransferKind.START_CHILD: _start_child,
        TransferKind.SIGNAL_EXTERNAL: _signal_external,
        TransferKind.CANCEL_EXTERNAL: _cancel_external,
        TransferKind.NEXUS_START: lambda engine, shard, ms, data: engine.nexus.start(shard, ms, data),
        TransferKind.NEXUS_CANCEL: lambda engine, shard, ms, data: engine.nexus.cancel(shard, ms, data),
    }

    async def _execute_timer(self, shard: Shard, task: TimerTask) -> None:
        data = decode(task.data)
        if task.kind == TimerKind.DELETE_HISTORY:
            await self._delete_run(shard, ExecutionKey(task.namespace_id, task.workflow_id, task.run_id))
            return

        if task.kind == TimerKind.CALLBACK_RETRY:  # on a closed run: fire() is for running ones
            try:
                await self._update(
                    task.namespace_id,
                    task.workflow_id,
                    task.run_id,
                    lambda ms, tr: self.nexus.retry_callback(ms, tr, data),
                )
            except NotFound:
                pass
            return

        def fire(ms: MutableState, tr: Transition):
            if not ms.running:
                return
            kind = task.kind
            if kind == TimerKind.USER_TIMER:
                ti = ms.timers.get(data["timer_id"])
                if ti is not None and ti.started_event_id == data["started_event_id"]:
                    tr.fire_timer(ti.timer_id)
            elif kind == TimerKind.WORKFLOW_TASK_TIMEOUT:
                wt = ms.workflow_task
                if (
                    wt is None
                    or wt.scheduled_event_id != data["scheduled_event_id"]
                    or wt.attempt != data["attempt"]
                ):
                    return
                timeout_type = data.get("timeout_type", TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
                if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                    if not wt.started:
                        tr.time_out_sticky_workflow_task()
                elif wt.started:
                    self._abort_task_updates(
                        ExecutionKey(task.namespace_id, task.workflow_id, task.run_id), wt, tr
                    )
                    tr.timeout_workflow_task()
            elif kind == TimerKind.ACTIVITY_TIMEOUT:
                self._fire_activity_timeout(ms, tr, data, task.fire_time_ms)
            elif kind == TimerKind.ACTIVITY_RETRY:
                ai = ms.activities.get(data["scheduled_event_id"])
                if (
                    ai is not None
                    and ai.waiting_retry
                    and not ai.paused
                    and ai.attempt == data["attempt"]
                    and ai.next_attempt_time_ms <= task.fire_time_ms  # else rescheduled later
                ):
                    tr.dispatch_activity(ai)
            elif kind == TimerKind.WORKFLOW_TIMEOUT:
                tr.force_close_workflow_task("history-service")
                retry_state, new_run = continuation.after_failure(tr, None)
                if retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET and execution_deadline_passed(
                    ms, tr.now
                ):
                    retry_state = (
                        RetryState.RETRY_STATE_TIMEOUT
                    )  # the whole execution's deadline, not the run's
                tr.time_out_workflow(retry_state, new_run)
            elif kind == TimerKind.NEXUS_RETRY:
                op = ms.nexus_operations.get(data["scheduled_event_id"])
                if op is not None and data.get("cancel"):
                    if op.cancel_attempt == data["attempt"] and not op.cancel_delivered:
                        tr.transfer(TransferKind.NEXUS_CANCEL, scheduled_event_id=op.scheduled_event_id)
                elif op is not None and op.attempt == data["attempt"] and not op.started_event_id:
                    tr.transfer(TransferKind.NEXUS_START, scheduled_event_id=op.scheduled_event_id)
            elif kind == TimerKind.NEXUS_TIMEOUT:
                op = ms.nexus_operations.get(data["scheduled_event_id"])
                if op is not None:
                    nexus_operations.record_timed_out(tr, op)
            elif kind == TimerKind.WORKFLOW_BACKOFF:
                if not had_or_has_workflow_task(ms):  # an update or a signal may have started it already
                    tr.schedule_workflow_task()
            else:
                log.error("unknown timer task kind %s", kind)

        try:
            await self._update(task.namespace_id, task.workflow_id, task.run_id, fire)
        except (NotFound, HistoryLimitExceeded):
            pass  # gone, or terminated for its history's size instead (done: nothing to retry)

    def _fire_activity_timeout(self, ms: MutableState, tr: Transition, data: dict, fire_time_ms: int) -> None:
        """A timeout timer fired: it applies if the activity's current deadline (its timeouts may have been
        changed since, see UpdateActivityOptions) is not after this timer. A paused activity has no timeouts
        (as on the reference): unpausing arms them again."""
        ai = ms.activities.get(data["scheduled_event_id"])
        if ai is None or ai.paused:
            return
        timeout_type = data["timeout_type"]
        if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
            s2c = ai.schedule_to_close_timeout_ms
            if s2c > 0 and ai.first_scheduled_time_ms + s2c <= fire_time_ms:
                tr.time_out_activity(ai, timeout_type)
            return
        if ai.attempt != data["attempt"]:
            return
        if timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
            s2s = ai.schedule_to_start_timeout_ms
            if (
                not ai.started
                and not ai.waiting_retry
                and s2s > 0
                and ai.scheduled_time_ms + s2s <= fire_time_ms
            ):
                tr.time_out_activity(ai, timeout_type)
        elif timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
            stc = ai.start_to_close_timeout_ms
            if ai.started and stc > 0 and ai.started_time_ms + stc <= fire_time_ms:
                tr.time_out_activity(ai, timeout_type)
        elif (
            timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT and ai.started and ai.heartbeat_timeout_ms > 0
        ):
            last = max(ai.last_heartbeat_time_ms, ai.started_time_ms)
            deadline = last + ai.heartbeat_timeout_ms
            if deadline <= tr.now:
                tr.time_out_activity(ai, timeout_type)
            else:
                tr.arm_activity_timeout(ai, timeout_type, deadline)


def reset_point(events: list[HistoryEvent], finish_event_id: int) -> int:
    """The id of the WorkflowTaskStarted event a reset goes back to, given the event that ended that task."""
    ok = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow_task_completed_event_attributes",
        EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow_task_failed_event_attributes",
        EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "workflow_task_timed_out_event_attributes",
    }
    if not 1 <= finish_event_id <= len(events):
        raise InvalidArgument(f"WorkflowTaskFinishEventId {finish_event_id} is not an event of the run.")
    finish = events[finish_event_id - 1]
    if finish.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        return finish_event_id
    if finish.event_type not in ok:
        raise InvalidArgument(
            f"WorkflowTaskFinishEventId {finish_event_id} must be a WorkflowTaskCompleted, WorkflowTaskFailed, "
            f"WorkflowTaskTimedOut or WorkflowTaskStarted event, not {EventType.Name(finish.event_type)}."
        )
    return getattr(finish, ok[finish.event_type]).started_event_id


def execution_deadline_passed(ms: MutableState, now: int) -> bool:
    """The execution's own deadline (not just this run's) is what timed the run out."""
    info = ms.info
    return bool(info.execution_expiration_ms) and info.execution_expiration_ms <= now


_PAUSED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_PAUSED


def visibility_record(ms: MutableState) -> VisibilityRecord:
    """What lists show of the run. History length and size and the state transition count are recorded
    when the run closes, as the reference records them (its start and upsert records leave them 0)."""
    info = ms.info
    parent = info.parent
    closed = not ms.running
    return VisibilityRecord(
        namespace_id=info.namespace_id,
        workflow_id=info.workflow_id,
        run_id=info.run_id,
        workflow_type=info.workflow_type,
        task_queue=info.task_queue,
        status=_PAUSED if ms.running and info.pause is not None else info.status,
        start_time_ms=info.start_time_ms,
        execution_time_ms=info.execution_time_ms,
        close_time_ms=info.close_time_ms,
        history_length=ms.history_length if closed else 0,
        memo=info.memo.SerializeToString() if info.memo is not None else b"",
        search_attributes=info.search_attributes.SerializeToString()
        if info.search_attributes is not None
        else b"",
        parent_workflow_id=parent.workflow_id if parent is not None else "",
        parent_run_id=parent.run_id if parent is not None else "",
        root_workflow_id=(parent.root_workflow_id or parent.workflow_id) if parent else info.workflow_id,
        root_run_id=(parent.root_run_id or parent.run_id) if parent else info.run_id,
        state_transition_count=ms.state_transition_count if closed else 0,
        history_size_bytes=ms.history_size_bytes if closed else 0,
    )


def _activity_task(
    task_tokens: TaskTokenCodec,
    namespace: str,
    info: ExecutionInfo,
    ai: ActivityInfo,
    attrs: ActivityTaskScheduledEventAttributes,
) -> PollActivityTaskQueueResponse:
    """The task a worker runs for a started activity attempt (polled, or handed over eagerly)."""
    token = TaskToken(
        info.namespace_id,
        info.workflow_id,
        info.run_id,
        ai.scheduled_event_id,
        ai.attempt,
        activity_id=ai.activity_id,
    )
    task = PollActivityTaskQueueResponse(
        task_token=task_tokens.encode(token),
        workflow_namespace=namespace,
        workflow_type=WorkflowType(name=info.workflow_type),
        workflow_execution=WorkflowExecution(workflow_id=info.workflow_id, run_id=info.run_id),
        activity_type=attrs.activity_type,
        activity_id=ai.activity_id,
        header=attrs.header,
        input=attrs.input,
        scheduled_time=to_timestamp(ai.first_scheduled_time_ms),
        current_attempt_scheduled_time=to_timestamp(ai.scheduled_time_ms),
        started_time=to_timestamp(ai.started_time_ms),
        attempt=ai.attempt,
        schedule_to_close_timeout=to_duration(ai.schedule_to_close_timeout_ms),
        start_to_close_timeout=to_duration(ai.start_to_close_timeout_ms),
        heartbeat_timeout=to_duration(ai.heartbeat_timeout_ms),
        # The activity's current policy: UpdateActivityOptions may have changed the scheduled one.
        retry_policy=ai.retry_policy if ai.retry_policy is not None else attrs.retry_policy,
        # The activity's current priority too (UpdateActivityOptions may have changed it).
        priority=ai.priority if ai.priority is not None else attrs.priority,
    )
    if ai.heartbeat_details is not None:
        task.heartbeat_details.CopyFrom(ai.heartbeat_details)
    if standalone_ids.is_standalone(info.workflow_id):
        # No workflow runs a standalone activity: the worker sees none, as the reference sends it.
        task.ClearField("workflow_type")
        task.ClearField("workflow_execution")
        # Its run id instead (the SDKs key its payloads' serialization context and external storage by it).
        task.activity_run_id = info.run_id
    return task


def _reapplied_update(ev: HistoryEvent) -> Request | None:
    """The request of an update a reset reapplies: one admitted or accepted after the reset point."""
    if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
        return ev.workflow_execution_update_admitted_event_attributes.request
    if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        attrs = ev.workflow_execution_update_accepted_event_attributes
        return attrs.accepted_request if attrs.HasField("accepted_request") else None
    return None
