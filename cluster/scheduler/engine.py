"""Schedules, run by the server itself: each schedule's state is a row in the shard that owns
(namespace, schedule id), and one asyncio task per schedule ("actor") wakes at its next action time.

Durability: a wakeup first commits the starts it is about to take (buffered, each with a request id
derived from the schedule and the nominal time), then starts the workflows through the history engine,
then commits the outcome. A crash in between redoes the starts with the same request ids, which the
history engine answers with the run already started: one nominal time never starts two workflows.
After a restart every schedule catches up from its last processed time, within its catchup window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from temporalio.api.common.v1 import Memo, Payload, SearchAttributes, WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus, WorkflowIdReusePolicy
from temporalio.api.schedule.v1 import Schedule, ScheduleActionResult, ScheduleInfo, SchedulePatch
from temporalio.api.workflowservice.v1 import (
    DescribeScheduleResponse,
    ListScheduleMatchingTimesRequest,
    ListScheduleMatchingTimesResponse,
    StartWorkflowExecutionRequest,
)

from hourglass.cluster.errors import (
    InvalidArgument,
    NotFound,
    ScheduleAlreadyRegistered,
    ScheduleNotFound,
    ServiceError,
    ShardNotOwned,
    Unavailable,
    WorkflowAlreadyStarted,
)
from hourglass.cluster.history.engine import HistoryEngine, shard_id_for
from hourglass.cluster.history.shard import Shard
from hourglass.cluster.history.timeutil import active_clock, now_ms, to_timestamp
from hourglass.cluster.scheduler import policy
from hourglass.cluster.scheduler.spec import CompiledSpec, SpecError, compile_spec
from hourglass.cluster.scheduler.state import BufferedStart, ScheduleState, encode_conflict_token
from hourglass.persistence.errors import ConditionFailedError, ShardOwnershipLostError, StoreUnavailableError
from hourglass.persistence.records import ScheduleRecord
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

RETRY_MS = 1000
WATCH_POLL_S = 30.0
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
COMPLETED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
FAILED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED
CONTINUED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW

Key = tuple[str, str]  # (namespace id, schedule id)


MAX_MATCHING_TIMES = 1000


def jitter_seed(state: ScheduleState) -> str:
    return f"{state.namespace_id}-{state.schedule_id}"


def compiled(state: ScheduleState) -> CompiledSpec | None:
    try:
        return compile_spec(state.schedule.spec, jitter_seed(state))
    except SpecError:
        return None


@dataclass
class _Closed:
    status: int
    result: object = None  # Payloads of a completed run
    failure: object = None  # Failure of a failed run


class _Actor:
    """One schedule's wakeups: sleeps until its next action time or a poke (RPC, watched run closed)."""

    def __init__(self, engine: ScheduleEngine, key: Key) -> None:
        self.engine, self.key = engine, key
        self.wake = asyncio.Event()
        self.watchers: dict[str, asyncio.Task] = {}
        self.task = asyncio.create_task(self._run())

    def poke(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.task.cancel()
        for watcher in self.watchers.values():
            watcher.cancel()

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                next_ms = await self.engine._wakeup(self.key)
            except _Gone:
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("schedule %s: wakeup failed, retrying", self.key, exc_info=True)
                next_ms = now_ms() + RETRY_MS
            timeout = None if next_ms is None else max(next_ms - now_ms(), 0) / 1000
            clock = active_clock()
            if clock is not None:  # a time-skipping server jumps to the next action and wakes us
                clock.expect(self, next_ms, self.wake.set)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout)
            finally:
                if clock is not None:
                    clock.forget(self)

    def watch(self, running: list[WorkflowExecution]) -> None:
        """Keep one watcher per tracked running workflow; a closing one pokes the actor."""
        wanted = {wf.workflow_id: wf for wf in running}
        for wid in list(self.watchers):
            if wid not in wanted or self.watchers[wid].done():
                self.watchers.pop(wid).cancel()
        for wid, wf in wanted.items():
            if wid not in self.watchers:
                self.watchers[wid] = asyncio.create_task(self._watch(wf))

    async def _watch(self, wf: WorkflowExecution) -> None:
        namespace_id = self.key[0]
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                try:
                    ms = await self.engine._run_state(namespace_id, wf)
                except Exception:
                    ms = None
                if ms is None or not ms.running:
                    self.poke()
                    return
                await self.engine.history.peers.wait_for_change(ms, WATCH_POLL_S)


class _Gone(Exception):
    """The schedule was deleted (or its shard is no longer ours): the actor stops."""


class ScheduleEngine:
    def __init__(self, store: Store, history: HistoryEngine) -> None:
        self.store = store
        self.history = history
        self._states: dict[Key, ScheduleState] = {}
        self._actors: dict[Key, _Actor] = {}

    # ---- ownership -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Run the schedules of the shards this node owns now, and follow ownership from here on."""
        self.history.shard_listeners.append(self)
        for shard in list(self.history.shards.values()):
            await self.shard_acquired(shard)

    async def shard_acquired(self, shard: Shard) -> None:
        """Load and run the schedules of a shard this node now owns (each catches up at once)."""
        for record in await self.store.list_schedules(shard.shard_id):
            key = (record.namespace_id, record.schedule_id)
            self._states[key] = ScheduleState.deserialize(record.state, record.version)
            self._start_actor(key)

    async def shard_released(self, shard_id: int) -> None:
        """Stop the schedules of a shard another member takes over (it loads them from the store)."""
        keys = [k for k in self._states if shard_id_for(k[0], k[1], self.history.shard_count) == shard_id]
        actors = [a for k in keys if (a := self._actors.pop(k, None)) is not None]
        for key in keys:
            self._states.pop(key, None)
        for actor in actors:
            actor.stop()
        await asyncio.gather(*(a.task for a in actors), return_exceptions=True)

    async def stop(self) -> None:
        actors = list(self._actors.values())
        self._actors.clear()
        for actor in actors:
            actor.stop()
        await asyncio.gather(*(a.task for a in actors), return_exceptions=True)

    def _start_actor(self, key: Key) -> None:
        if key not in self._actors:
            self._actors[key] = _Actor(self, key)

    def _shard(self, key: Key) -> Shard:
        shard_id = shard_id_for(key[0], key[1], self.history.shard_count)
        shard = self.history.shards.get(shard_id)
        if shard is None or shard.released:
            # Retryable; in a cluster the router retries on the owner the ring names.
            raise ShardNotOwned(f"shard {shard_id} is not owned by this node")
        return shard

    def _fenced_out(self, shard: Shard, e: ShardOwnershipLostError) -> ShardNotOwned:
        """Another owner bumped the shard's range id: give the shard up (the node's ownership controller
        takes it back if it is still ours) and tell the caller to retry."""
        self.history.shard_lost(shard)
        return ShardNotOwned(f"shard {shard.shard_id} moved to another owner: {e}")

    # ---- reads -----------------------------------------------------------------------------------------
    def get(self, namespace_id: str, schedule_id: str) -> ScheduleState:
        self._shard((namespace_id, schedule_id))
        state = self._states.get((namespace_id, schedule_id))
        if state is None:
            raise ScheduleNotFound(schedule_id)
        return state

    async def list(self, namespace_id: str) -> list[ScheduleState]:
        """The namespace's schedules in every shard, newest first (the reference lists them from
        visibility so). Shards this node runs answer from memory; the others (owned by another member,
        or between owners) from their rows in the store, which every write reaches before memory does."""

        async def of_shard(shard_id: int) -> list[ScheduleState]:
            shard = self.history.shards.get(shard_id)
            if shard is not None and not shard.released:
                return [
                    s
                    for (ns, sid), s in list(self._states.items())
                    if ns == namespace_id and shard_id_for(ns, sid, self.history.shard_count) == shard_id
                ]
            records = await self.store.list_schedules(shard_id, namespace_id)
            return [ScheduleState.deserialize(r.state, r.version) for r in records]

        per_shard = await asyncio.gather(*(of_shard(i) for i in range(self.history.shard_count)))
        states = [s for shard_states in per_shard for s in shard_states]
        states.sort(key=lambda s: (-s.info.create_time.ToMilliseconds(), s.schedule_id))
        return states

    async def describe(self, namespace_id: str, schedule_id: str) -> DescribeScheduleResponse:
        """The schedule as DescribeSchedule shows it (an operation routed to the shard's owner)."""
        state = self.get(namespace_id, schedule_id)
        info = ScheduleInfo()
        info.CopyFrom(state.info)
        info.future_action_times.extend(
            policy.future_action_times(state, compiled(state), policy.FUTURE_ACTIONS)
        )
        info.buffer_size = len(state.buffered)
        resp = DescribeScheduleResponse(
            schedule=state.schedule, info=info, conflict_token=encode_conflict_token(state.conflict_token)
        )
        # Emptied ones are left out, not sent empty, as the reference does.
        if state.memo is not None and state.memo.fields:
            resp.memo.CopyFrom(state.memo)
        if state.search_attributes is not None and state.search_attributes.indexed_fields:
            resp.search_attributes.CopyFrom(state.search_attributes)
        return resp

    async def matching_times(
        self, namespace_id: str, request: ListScheduleMatchingTimesRequest
    ) -> ListScheduleMatchingTimesResponse:
        """The times the schedule's spec matches in the request's range (at most MAX_MATCHING_TIMES)."""
        state = self.get(namespace_id, request.schedule_id)
        if not request.HasField("start_time") or not request.HasField("end_time"):
            raise InvalidArgument("missing or invalid query")
        spec = compiled(state)
        resp = ListScheduleMatchingTimesResponse()
        if spec is None:
            return resp
        for t in spec.times_between(
            request.start_time.ToMilliseconds(), request.end_time.ToMilliseconds(), MAX_MATCHING_TIMES
        ):
            resp.start_time.add().FromMilliseconds(t.actual_ms)
        return resp

    # ---- writes ----------------------------------------------------------------------------------------
    async def _write(self, shard: Shard, old: ScheduleState | None, new: ScheduleState) -> None:
        key = (new.namespace_id, new.schedule_id)
        new.version = 1 if old is None else old.version + 1
        record = ScheduleRecord(new.namespace_id, new.schedule_id, new.serialize(), new.version)
        try:
            await self.store.write_schedule(
                shard.shard_id, shard.range_id, record, None if old is None else old.version
            )
        except ConditionFailedError as e:
            if old is None and ConditionFailedError.ALREADY_EXISTS in e.failures.values():
                raise ScheduleAlreadyRegistered(new.schedule_id) from None
            await self._reload(shard, key)
            raise Unavailable("the schedule changed concurrently; try again") from None
        except ShardOwnershipLostError as e:
            raise self._fenced_out(shard, e) from e
        except StoreUnavailableError as e:
            await self._reload(shard, key)
            raise Unavailable(f"persistence unavailable: {e}") from e
        self._states[key] = new

    async def _reload(self, shard: Shard, key: Key) -> None:
        with contextlib.suppress(Exception):
            record = await self.store.get_schedule(shard.shard_id, *key)
            if record is None:
                self._states.pop(key, None)
            else:
                self._states[key] = ScheduleState.deserialize(record.state, record.version)

    async def _mutate(self, namespace_id: str, schedule_id: str, change) -> None:
        """Apply `change(state) -> bool` (False: nothing to write) under the schedule's lock, then wake it."""
        key = (namespace_id, schedule_id)
        shard = self._shard(key)
        async with shard.locks.hold(("schedule", *key)):
            old = self.get(namespace_id, schedule_id)
            new = old.clone()
            if not change(new):
                return
            await self._write(shard, old, new)
        actor = self._actors.get(key)
        if actor is not None:
            actor.poke()

    async def create(
        self,
        namespace: str,
        namespace_id: str,
        schedule_id: str,
        schedule: Schedule,
        initial_patch: SchedulePatch | None,
        memo: Memo | None,
        search_attributes: SearchAttributes | None,
        request_id: str,
    ) -> int:
        """Returns the conflict token. ScheduleAlreadyRegistered if the id is taken (unless a retried
        create)."""
        key = (namespace_id, schedule_id)
        shard = self._shard(key)
        now = now_ms()
        state = ScheduleState(
            namespace=namespace,
            namespace_id=namespace_id,
            schedule_id=schedule_id,
            schedule=Schedule(),
            info=ScheduleInfo(create_time=to_timestamp(now)),
            memo=memo,
            search_attributes=search_attributes,
            last_processed_ms=now,
            create_request_id=request_id,
        )
        state.schedule.CopyFrom(schedule)
        policy.ensure_defaults(state)
        if initial_patch is not None:
            policy.apply_patch(state, initial_patch, now)
        async with shard.locks.hold(("schedule", *key)):
            existing = self._states.get(key)
            if existing is not None:
                if request_id and existing.create_request_id == request_id:
                    return existing.conflict_token
                raise ScheduleAlreadyRegistered(schedule_id)
            await self._write(shard, None, state)
        self._start_actor(key)
        return state.conflict_token

    async def update(
        self,
        namespace_id: str,
        schedule_id: str,
        schedule: Schedule,
        conflict_token: int,
        search_attributes: SearchAttributes | None,
        memo: Memo | None,
    ) -> None:
        def change(state: ScheduleState) -> bool:
            if conflict_token and conflict_token != state.conflict_token:
                # The reference drops a conflicting update silently (the RPC still succeeds).
                log.info("schedule %s: update with a stale conflict token ignored", schedule_id)
                return False
            for name in ("spec", "action", "policies", "state"):
                getattr(state.schedule, name).CopyFrom(getattr(schedule, name))
            policy.ensure_defaults(state)
            if search_attributes is not None:
                state.search_attributes = search_attributes
            if memo is not None:
                state.memo = memo
            state.info.update_time.CopyFrom(to_timestamp(now_ms()))
            state.conflict_token += 1
            return True

        await self._mutate(namespace_id, schedule_id, change)

    async def patch(self, namespace_id: str, schedule_id: str, patch: SchedulePatch) -> None:
        def change(state: ScheduleState) -> bool:
            policy.apply_patch(state, patch, now_ms())
            return True

        await self._mutate(namespace_id, schedule_id, change)

    async def delete(self, namespace_id: str, schedule_id: str) -> None:
        """Remove the schedule; workflows it started keep running, as on the reference."""
        key = (namespace_id, schedule_id)
        shard = self._shard(key)
        async with shard.locks.hold(("schedule", *key)):
            state = self.get(namespace_id, schedule_id)
            try:
                await self.store.delete_schedule(
                    shard.shard_id, shard.range_id, namespace_id, schedule_id, state.version
                )
            except ShardOwnershipLostError as e:
                raise self._fenced_out(shard, e) from e
            except (ConditionFailedError, StoreUnavailableError) as e:
                await self._reload(shard, key)
                raise Unavailable(f"the schedule could not be deleted: {e}") from e
            self._states.pop(key, None)
        actor = self._actors.pop(key, None)
        if actor is not None:
            actor.stop()

    # ---- wakeups ---------------------------------------------------------------------------------------
    async def _wakeup(self, key: Key) -> int | None:
        """Take every action due now; returns when to wake next (None: only when poked)."""
        shard = self._shard(key)
        async with shard.locks.hold(("schedule", *key)):
            old = self._states.get(key)
            if old is None:
                raise _Gone()
            state = old.clone()
            spec = compiled(state)
            now = now_ms()
            await self._refresh_running(state)
            end = max(now, state.last_processed_ms)
            # Every action due up to `end` is now buffered, skipped or counted as missed: resume after it.
            next_ms, _ = policy.process_time_range(state, spec, state.last_processed_ms, end, 0, False)
            state.last_processed_ms = end
            policy.process_backfills(state, spec)
            if state.serialize() != old.serialize():
                # Phase 1: the starts about to be taken are durable before any is taken.
                await self._write(shard, old, state)
                old, state = state, state.clone()
            if state.buffered:
                await self._take_actions(state)
            if state.serialize() != old.serialize():
                await self._write(shard, old, state)
            actor = self._actors.get(key)
            if actor is not None:
                actor.watch(list(state.info.running_workflows))
            if state.backfills or (state.buffered and not state.info.running_workflows):
                return now_ms() + RETRY_MS
            if not policy.can_take_scheduled_action(state, False):
                return None  # paused or out of actions: sleep until an RPC pokes it
            return next_ms

    async def _take_actions(self, state: ScheduleState) -> None:
        if not state.schedule.action.HasField("start_workflow"):
            state.buffered = []
            return
        decision = policy.decide(state, bool(state.info.running_workflows))
        state.buffered = decision.new_buffer
        state.info.overlap_skipped += decision.overlap_skipped
        starts = list(decision.overlapping)
        if decision.non_overlapping is not None:
            starts.append(decision.non_overlapping)
        retry: list[BufferedStart] = []
        for start in starts:
            if not policy.can_take_scheduled_action(state, start.manual, decrement=True):
                continue  # paused or out of actions meanwhile: dropped, as on the reference
            try:
                result = await self._start_workflow(state, start)
            except (WorkflowAlreadyStarted, ServiceError) as e:
                if isinstance(e, Unavailable):
                    retry.append(start)
                    continue
                log.warning("schedule %s: start failed, skipped: %s", state.schedule_id, e)
                continue
            except Exception:
                log.warning("schedule %s: start failed, will retry", state.schedule_id, exc_info=True)
                retry.append(start)
                continue
            tracked = start is decision.non_overlapping
            policy.record_action(state, result, tracked)
        state.buffered = retry + state.buffered
        if decision.need_terminate or decision.need_cancel:
            for wf in list(state.info.running_workflows):
                with contextlib.suppress(ServiceError):
                    if decision.need_terminate:
                        await self.history.peers.terminate(
                            state.namespace_id,
                            wf,
                            "terminated by schedule overlap policy",
                            None,
                            _identity(state),
                        )
                    else:
                        await self.history.peers.request_cancel(
                            state.namespace_id,
                            wf,
                            _identity(state),
                            f"{start_request_prefix(state)}-cancel-{wf.run_id}",
                            "cancelled by schedule overlap policy",
                        )

    async def _start_workflow(self, state: ScheduleState, start: BufferedStart) -> ScheduleActionResult:
        action = state.schedule.action.start_workflow
        workflow_id = policy.scheduled_workflow_id(action.workflow_id, start.nominal_ms)
        request = StartWorkflowExecutionRequest(
            namespace=state.namespace,
            workflow_id=workflow_id,
            workflow_type=action.workflow_type,
            task_queue=action.task_queue,
            identity=_identity(state),
            request_id=start.request_id,
            workflow_id_reuse_policy=WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
            if start.manual
            else WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
        )
        for name in (
            "input",
            "workflow_execution_timeout",
            "workflow_run_timeout",
            "workflow_task_timeout",
            "retry_policy",
            "memo",
            "header",
            "user_metadata",
            "priority",
        ):
            if action.HasField(name):
                getattr(request, name).CopyFrom(getattr(action, name))
        request.search_attributes.CopyFrom(
            _scheduled_search_attributes(action, start.nominal_ms, state.schedule_id)
        )
        allow_all = policy.resolve_overlap(state, start.overlap_policy) == policy.ALLOW_ALL
        if not allow_all:
            if state.last_completion_result is not None:
                request.last_completion_result.CopyFrom(state.last_completion_result)
            if state.continued_failure is not None:
                request.continued_failure.CopyFrom(state.continued_failure)
        result = await self.history.peers.start_workflow(state.namespace_id, state.namespace, request)
        return ScheduleActionResult(
            schedule_time=to_timestamp(start.actual_ms),
            actual_time=to_timestamp(now_ms()),
            start_workflow_result=WorkflowExecution(workflow_id=workflow_id, run_id=result.run_id),
            start_workflow_status=RUNNING,
        )

    async def _run_state(self, namespace_id: str, wf: WorkflowExecution):
        """The latest run of a workflow this schedule started (following continue-as-new and retries)."""
        try:
            current = await self.history.peers.get_mutable_state(
                namespace_id, WorkflowExecution(workflow_id=wf.workflow_id)
            )
        except NotFound:
            return None
        if current.info.run_id == wf.run_id or current.info.first_run_id == wf.run_id:
            return current
        try:
            return await self.history.peers.get_mutable_state(namespace_id, wf)
        except NotFound:
            return None

    async def _refresh_running(self, state: ScheduleState) -> None:
        for wf in list(state.info.running_workflows):
            ms = await self._run_state(state.namespace_id, wf)
            if ms is not None and ms.running:
                continue
            status = (
                ms.info.status
                if ms is not None
                else WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
            )
            message = None
            if ms is not None and ms.info.close_event_id:
                events = await self.history.peers.read_history(ms, ms.info.close_event_id)
                close = events[0] if events else None
                if close is not None and status == COMPLETED:
                    attrs = close.workflow_execution_completed_event_attributes
                    state.last_completion_result = attrs.result if attrs.HasField("result") else None
                    state.continued_failure = None
                elif close is not None and status == FAILED:
                    state.continued_failure = close.workflow_execution_failed_event_attributes.failure
                    message = state.continued_failure.message
            policy.record_closed(state, wf.workflow_id, status, message)


def _identity(state: ScheduleState) -> str:
    return f"temporal-scheduler-{state.namespace}-{state.schedule_id}"


def start_request_prefix(state: ScheduleState) -> str:
    return f"sched-{state.schedule_id}-{state.info.create_time.ToMilliseconds()}"


def _scheduled_search_attributes(action, nominal_ms: int, schedule_id: str) -> SearchAttributes:
    """The action's search attributes plus TemporalScheduledStartTime / TemporalScheduledById."""
    out = SearchAttributes()
    if action.HasField("search_attributes"):
        out.CopyFrom(action.search_attributes)
    when = policy.scheduled_workflow_id("", nominal_ms)[1:]
    out.indexed_fields["TemporalScheduledStartTime"].CopyFrom(
        Payload(metadata={"type": b"Datetime", "encoding": b"json/plain"}, data=f'"{when}"'.encode())
    )
    out.indexed_fields["TemporalScheduledById"].CopyFrom(
        Payload(metadata={"type": b"Keyword", "encoding": b"json/plain"}, data=f'"{schedule_id}"'.encode())
    )
    return out
