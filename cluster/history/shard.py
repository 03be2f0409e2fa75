"""A history shard owned by this node: fencing, task ids, the mutable-state cache and the commit path.

A commit is always: (1) append the transition's events as one history node (idempotent, unconditional),
(2) ONE conditional batch in the shard partition fenced by range_id and the run's db_record_version.
Both are done by the group committer, for every commit of its group at once.
If (2) fails or its outcome is unknown, the cached state is dropped and reloaded before anything else.
The batches of commits of different runs that are ready together are merged into one (group commit,
persistence/group_commit.py): each commit still learns its own outcome, and one with an unknown outcome
makes every commit of its group doubtful, each handled as below.

Task ids are handed out before the commit; until it ends they are `uncommitted_task_ids`, which the
queue processors never acknowledge past. A commit whose outcome is unknown (the store timed out, the
caller gave up) may still land later: a request queued in a paused Cassandra runs when it resumes, a
batch Paxos accepted before a crash is completed by the next conditional write to the partition. Until
that is settled its ids stay `uncommitted` (`doubtful`), and the shard must be fenced (as the reference
re-acquires a shard after such a write): its range id is bumped, so that a batch written with the old one
can no longer land, and one already accepted is completed first. Only then is the store final for it:
runs are read from the store again only after the fence, and the queue processors re-read their tasks
once after it. Reading earlier would see the state before the batch, and act on it after it landed: a
task the batch wrote judged against a state without it (an activity never dispatched, a workflow task
never timed out), or a transition built on it appending events that collide with the batch's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable

from temporalio.api.history.v1 import History, HistoryEvent

from hourglass.cluster.errors import InvalidArgument
from hourglass.cluster.history import history_limits
from hourglass.cluster.history.events_cache import NODE_BYTES, EventsCache
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.mutable_state import MutableState, WorkflowTaskInfo
from hourglass.cluster.history.page_reader import read_page
from hourglass.cluster.history.paging import HistoryCursor, Page
from hourglass.cluster.history.queries import QueryBuffer
from hourglass.cluster.history.timeutil import active_clock
from hourglass.cluster.history.transition import Transition
from hourglass.cluster.history.updates import UpdateRegistry
from hourglass.persistence.errors import (
    ConditionFailedError,
    ShardOwnershipLostError,
    StoreUnavailableError,
    UnencodableWriteError,
)
from hourglass.persistence.group_commit import GroupCommitter
from hourglass.persistence.records import (
    CurrentRunRecord,
    ExecutionKey,
    ExecutionRecord,
    ExecutionWrite,
    HistoryNode,
    ShardInfo,
    TimerTask,
    TransferTask,
)
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

# Task ids come from blocks of 2^20 per range id, so a new owner never reuses an old owner's ids.
RANGE_BITS = 20
CACHE_SIZE = 4096


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[object, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class Shard:
    def __init__(
        self,
        shard_id: int,
        store: Store,
        on_new_tasks: Callable[[Shard, list[TransferTask], list[TimerTask]], None],
        writable: Callable[[Shard], bool] | None = None,
        epoch: int | None = None,
        events_cache_bytes: int = NODE_BYTES,
    ) -> None:
        self.shard_id = shard_id
        # In a cluster: the membership epoch this shard was acquired in, and the check that it still holds.
        self.epoch = epoch
        self._writable = writable
        self.released = False
        # Told when the store says another owner took the shard (its range id moved): the engine gives the
        # shard up, and its ownership controller decides whether to take it back.
        self.on_fenced: Callable[[Shard], None] | None = None
        # Told (shard id, transitions) after each applied commit: the engine's per-shard rates.
        self.on_committed: Callable[[int, int], None] | None = None
        self.store = store
        self.range_id = 0
        # Transfer tasks up to here are executed and deleted; the shard row has `_saved_ack_level`.
        self.transfer_ack_level = 0
        self._saved_ack_level = 0
        self._ack_level_saved_at = 0.0
        self._timer_ack_level_ms = 0
        self._next_task_id = 0
        self._task_id_limit = 0
        self._on_new_tasks = on_new_tasks
        self._cache: OrderedDict[ExecutionKey, MutableState] = OrderedDict()
        # (namespace id, workflow id) -> the current-run pointer this owner last committed.
        self._pointers: OrderedDict[tuple[str, str], CurrentRunRecord] = OrderedDict()
        self.locks = KeyedLocks()
        self._change_watchers: dict[ExecutionKey, asyncio.Event] = {}
        self._events = EventsCache(events_cache_bytes)
        self._range_lock = asyncio.Lock()
        # Ids allocated to commits still in flight: the transfer ack level stays below all of them.
        self.uncommitted_task_ids: set[int] = set()
        # Commits with an unknown outcome: (the range id when they failed, their task ids), oldest first.
        # Their tasks may appear in the store until the range moved past that id (`fence`).
        self.doubtful: list[tuple[int, list[int]]] = []
        # Counts commits with an unknown outcome: a read that overlapped one is not cached.
        self._doubtful_commits = 0
        # The highest range id this node tried to move the shard to without learning the outcome.
        self._range_tried = 0
        # In memory only (as on the reference): admitted updates per run, and speculative workflow tasks
        # with the record version they apply to, so a run reloaded after an eviction gets its task back.
        self._update_registries: dict[ExecutionKey, UpdateRegistry] = {}
        self._speculative: dict[ExecutionKey, tuple[int, WorkflowTaskInfo]] = {}
        # Queries waiting for a run's in-flight workflow task (queries.py).
        self._query_buffers: dict[ExecutionKey, QueryBuffer] = {}
        # Batches sent to the store and not answered yet; set when there are none (see `settled`).
        self._committing = 0
        self._no_commits = asyncio.Event()
        self._no_commits.set()
        # Commits of different runs ready together go to the store as one batch, fenced by the range id
        # of the moment it is sent, never from a shard that stopped being writable.
        self._committer = GroupCommitter(
            store,
            shard_id,
            lambda: self.range_id,
            self.check_writable,
            max_writes=LIMITS.group_commit_max_transitions,
            max_in_flight=LIMITS.group_commit_max_in_flight,
            linger=LIMITS.group_commit_linger_ms / 1000,
        )

    # ---- ownership -------------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Refuse to write once the shard was released or this node lost its place in the cluster, BEFORE
        touching the store: even the unconditional history append must not come from a stale owner."""
        if self.released or (self._writable is not None and not self._writable(self)):
            raise ShardOwnershipLostError(self.shard_id, self.range_id, None)

    async def acquire(self) -> None:
        """Take the shard: bump its range id with a condition, so any previous owner is fenced out."""
        info = await self.store.get_or_create_shard(self.shard_id)
        new = dataclasses.replace(info, range_id=info.range_id + 1)
        await self.store.update_shard(new, expected_range_id=info.range_id)
        self._set_range(new.range_id)
        self.transfer_ack_level = self._saved_ack_level = new.transfer_ack_level
        self._timer_ack_level_ms = new.timer_ack_level_ms
        self._ack_level_saved_at = time.monotonic()

    def _set_range(self, range_id: int) -> None:
        self.range_id = range_id
        self._next_task_id = range_id << RANGE_BITS
        self._task_id_limit = (range_id + 1) << RANGE_BITS

    async def _allocate_task_ids(self, n: int) -> list[int]:
        async with self._range_lock:
            if self._next_task_id + n > self._task_id_limit:
                self.check_writable()
                await self._bump_range(await self.store.get_or_create_shard(self.shard_id))
            first = self._next_task_id
            self._next_task_id += n
            return list(range(first, first + n))

    @property
    def fence_needed(self) -> bool:
        """A commit with an unknown outcome may still land: nothing may be read or acted on before `fence`."""
        return bool(self.doubtful) and self.doubtful[-1][0] >= self.range_id

    async def fence(self) -> None:
        """Bump the range id, so that no commit made with an older one can land any more (its condition on
        the shard row fails), and one the database had accepted is completed first (the bump is a Paxos
        round on the shard partition). Afterwards the store holds all it ever will of those commits."""
        async with self._range_lock:
            if not self.fence_needed:
                return
            self.check_writable()
            await self._bump_range(await self.store.get_or_create_shard(self.shard_id))
            log.info(
                "shard %s fenced at range %s after a commit with an unknown outcome",
                self.shard_id,
                self.range_id,
            )
            # Long polls on history look again: a commit that landed only now woke none of them.
            self._wake_watchers()

    def release(self) -> None:
        """Stop serving the shard. Long polls on its runs end now: their callers read again from the next
        owner instead of waiting out their timeout on a state no one here will change."""
        self.released = True
        self._wake_watchers()

    async def settled(self, timeout: float) -> bool:
        """Wait (at most `timeout` s) until no batch sent to the store is still unanswered: a node handing
        the shard over lets those land (and their callers get their answers) before the next owner's fence
        could refuse them. Answers whether it settled in time."""
        try:
            await asyncio.wait_for(self._no_commits.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def _wake_watchers(self) -> None:
        for watcher in self._change_watchers.values():
            watcher.set()
        self._change_watchers.clear()

    async def _bump_range(self, info: ShardInfo) -> None:
        """Move the shard to the next range id (under _range_lock), from the row just read. A bump whose
        outcome is unknown may have landed: remembered, so this node never takes it for another owner's."""
        if not self._own_range(info.range_id):
            raise ShardOwnershipLostError(self.shard_id, self.range_id, info.range_id)
        new = dataclasses.replace(
            info, range_id=info.range_id + 1, transfer_ack_level=self.transfer_ack_level
        )
        try:
            await self._update_shard(new, expected_range_id=info.range_id)
        except (ShardOwnershipLostError, RangeBumpLandedLate):
            raise  # refused: this bump did not land
        except BaseException:  # a timeout, a lost connection, a cancelled caller: it may land
            self._range_tried = max(self._range_tried, new.range_id)
            raise
        self._set_range(new.range_id)

    def _own_range(self, range_id: int) -> bool:
        """The range id this node holds, or one it moved the shard to with an outcome it did not learn."""
        return self.range_id <= range_id <= max(self.range_id, self._range_tried)

    def ack_level_unsaved_for(self) -> float:
        """Seconds since the shard row last got the transfer ack level, 0 when it has the current one."""
        if self.transfer_ack_level <= self._saved_ack_level:
            return 0.0
        return time.monotonic() - self._ack_level_saved_at

    async def save_transfer_ack_level(self) -> None:
        """Write the in-memory transfer ack level to the shard row, without reading the row first: only
        this owner writes it under its range id (the condition), and the timer ack level it also holds is
        the one read at acquire (nothing changes it)."""
        async with self._range_lock:
            self.check_writable()
            ack_level = self.transfer_ack_level
            await self._update_shard(
                ShardInfo(self.shard_id, self.range_id, ack_level, self._timer_ack_level_ms)
            )
            self._saved_ack_level = ack_level
            self._ack_level_saved_at = time.monotonic()

    async def _update_shard(self, new: ShardInfo, expected_range_id: int | None = None) -> None:
        """Write the shard row. Refused with a range id this node moved to itself: a bump of ours landed
        late (unavailable for now); refused with another: the shard was taken (on_fenced is told)."""
        try:
            await self.store.update_shard(
                new, expected_range_id=self.range_id if expected_range_id is None else expected_range_id
            )
        except ShardOwnershipLostError as e:
            if e.actual_range_id is not None and self._own_range(e.actual_range_id):
                raise RangeBumpLandedLate(f"shard {self.shard_id}: an earlier range bump landed late") from e
            if self.on_fenced is not None:
                self.on_fenced(self)
            raise

    # ---- state -----------------------------------------------------------------------------------------
    async def get_current_run(self, namespace_id: str, workflow_id: str) -> CurrentRunRecord | None:
        """The workflow id's pointer: as this owner last committed it, else read from the store. Only the
        owner writes the shard's pointers (under its range id), so the ones it wrote stay true until it
        deletes the run or a commit of the workflow fails (evicted then, as the mutable state is)."""
        pointer = self._pointers.get((namespace_id, workflow_id))
        if pointer is not None:
            self._pointers.move_to_end((namespace_id, workflow_id))
            return pointer
        return await self.store.get_current_run(self.shard_id, namespace_id, workflow_id)

    def forget_current_run(self, namespace_id: str, workflow_id: str) -> None:
        """The pointer is being deleted (with its run): the next caller reads the store."""
        self._pointers.pop((namespace_id, workflow_id), None)

    def _remember_pointer(self, pointer: CurrentRunRecord) -> None:
        key = (pointer.namespace_id, pointer.workflow_id)
        self._pointers[key] = pointer
        self._pointers.move_to_end(key)
        while len(self._pointers) > CACHE_SIZE:
            self._pointers.popitem(last=False)

    async def load(self, key: ExecutionKey) -> MutableState | None:
        """The run's state: cached, or read from the store once no commit with an unknown outcome may
        still land (a run such a commit wrote is not cached: the failure evicted it)."""
        ms = self._cache.get(key)
        if ms is not None:
            self._cache.move_to_end(key)
            return ms
        if self.fence_needed:
            await self.fence()
        doubtful_commits = self._doubtful_commits
        record = await self.store.get_execution(self.shard_id, key.namespace_id, key.workflow_id, key.run_id)
        if record is None:
            return None
        ms = MutableState.deserialize(record.state)
        ms.db_record_version = record.db_record_version
        speculative = self._speculative.get(key)
        if speculative is not None:
            version, wt = speculative
            if version == ms.db_record_version and ms.workflow_task is None and ms.running:
                ms.workflow_task = wt
            else:
                del self._speculative[key]
        if self._doubtful_commits != doubtful_commits:
            return ms  # a commit failed meanwhile, maybe of this run: what was read may be older than it
        cached = self._cache.get(key)
        if cached is not None and cached.db_record_version >= ms.db_record_version:
            # Cached while this read was in flight (a commit, or another read): never replaced by an
            # older state.
            return cached
        self._remember(key, ms)
        return ms

    def _remember(self, key: ExecutionKey, ms: MutableState) -> None:
        self._cache[key] = ms
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def evict(self, key: ExecutionKey) -> None:
        self._cache.pop(key, None)

    # ---- updates (in memory) ---------------------------------------------------------------------------
    def update_registry(self, key: ExecutionKey) -> UpdateRegistry:
        registry = self._update_registries.get(key)
        if registry is None:
            registry = self._update_registries[key] = UpdateRegistry()
        return registry

    def find_update_registry(self, key: ExecutionKey) -> UpdateRegistry | None:
        return self._update_registries.get(key)

    def drop_update_registry(self, key: ExecutionKey) -> None:
        self._update_registries.pop(key, None)

    # ---- consistent queries (in memory) -----------------------------------------------------------------
    def query_buffer(self, key: ExecutionKey) -> QueryBuffer:
        buffer = self._query_buffers.get(key)
        if buffer is None:
            buffer = self._query_buffers[key] = QueryBuffer()
        return buffer

    def find_query_buffer(self, key: ExecutionKey) -> QueryBuffer | None:
        return self._query_buffers.get(key)

    def release_queries(self, key: ExecutionKey) -> None:
        """The run has no workflow task in flight: its waiting queries may go to the worker directly."""
        buffer = self._query_buffers.pop(key, None)
        if buffer is not None:
            buffer.release_all()

    def remember_speculative(self, key: ExecutionKey, ms: MutableState) -> None:
        """Keep the run's speculative workflow task across cache evictions while nothing is committed."""
        assert ms.workflow_task is not None and ms.workflow_task.speculative
        self._speculative[key] = (ms.db_record_version, ms.workflow_task)

    def forget_speculative(self, key: ExecutionKey) -> None:
        self._speculative.pop(key, None)

    # ---- commit ----------------------------------------------------------------------------------------
    async def commit(self, transitions: list[tuple[Transition, bool]]) -> None:
        """Commit transitions of runs of this shard as one batch. Each item: (transition, is_new_run).

        On any failure every involved run is evicted from the cache: its in-memory state may be ahead of
        the database, and the next caller must reload it.
        """
        keys = [_key(tr.ms) for tr, _ in transitions]
        allocated: list[int] = []
        try:
            writes, nodes = await self._prepare_all(transitions, allocated)
            self.check_writable()
            self._committing += 1
            self._no_commits.clear()
            try:
                await self._committer.commit(writes, nodes)
            finally:
                self._committing -= 1
                if self._committing == 0:
                    self._no_commits.set()
        except BaseException as e:
            for key in keys:
                self.evict(key)
                self.forget_current_run(key.namespace_id, key.workflow_id)
            # Only a rejected condition (or a batch that could not be encoded) says for sure that nothing
            # was written; a timeout, a lost connection or a cancelled caller leave the batch's tasks
            # possibly in the store.
            if isinstance(e, UnencodableWriteError):
                self.uncommitted_task_ids.difference_update(allocated)
                # A number of the request no store can hold, past the validations: the client's error.
                raise InvalidArgument(f"a value of the request is out of range: {str(e)[:300]}") from e
            if isinstance(e, ConditionFailedError | ShardOwnershipLostError):
                self.uncommitted_task_ids.difference_update(allocated)
                if isinstance(e, ShardOwnershipLostError) and self._moved_here(e):
                    # This node moved the range meanwhile (a fence, a new block of ids): retry on it.
                    raise ConditionFailedError({}, f"shard {self.shard_id} range moved on this node") from e
            else:
                self.doubtful.append((self.range_id, allocated))
                self._doubtful_commits += 1
            raise
        if self.on_committed is not None:
            self.on_committed(self.shard_id, len(writes))
        try:
            new_transfer: list[TransferTask] = []
            new_timers: list[TimerTask] = []
            clock = active_clock()
            for (tr, _), key, write in zip(transitions, keys, writes, strict=True):
                self._remember(key, tr.ms)
                if write.current_run is not None:
                    self._remember_pointer(write.current_run.record)
                if clock is not None:
                    clock.track_run(key, tr.ms)
                self._events.add(key, tr.events)
                self._speculative.pop(key, None)  # a committed state holds no speculative task
                new_transfer.extend(write.transfer_tasks)
                new_timers.extend(write.timer_tasks)
                watcher = self._change_watchers.pop(key, None)
                if watcher is not None:
                    watcher.set()
            if new_transfer or new_timers:
                self._on_new_tasks(self, new_transfer, new_timers)
        finally:
            self.uncommitted_task_ids.difference_update(allocated)

    def _moved_here(self, e: ShardOwnershipLostError) -> bool:
        """The range id that failed a commit is one this node moved the shard to since it started."""
        actual = e.actual_range_id
        return actual is not None and actual > e.expected_range_id and self._own_range(actual)

    def settle_doubtful(self, fenced_range_id: int) -> None:
        """The store's tasks were re-read after the range reached `fenced_range_id`: the commits that failed
        before (with a lower range id) are settled, whatever they wrote has been seen."""
        while self.doubtful and self.doubtful[0][0] < fenced_range_id:
            _, ids = self.doubtful.pop(0)
            self.uncommitted_task_ids.difference_update(ids)

    async def _prepare_all(
        self, transitions: list[tuple[Transition, bool]], allocated: list[int]
    ) -> tuple[list[ExecutionWrite], list[HistoryNode]]:
        """The batch's writes and the history nodes to append before it (the group committer appends them
        with the other commits' of its group). A value that cannot be encoded (a client's out-of-range
        number: a timestamp past year 9999, an integer beyond 64 bits) is an UnencodableWriteError: the
        batch was not sent."""
        try:
            prepared = [await self._prepare(tr, is_new, allocated) for tr, is_new in transitions]
        except (OverflowError, ValueError) as e:
            raise UnencodableWriteError(str(e)) from e
        return [write for write, _ in prepared], [node for _, node in prepared if node is not None]

    async def _prepare(
        self, tr: Transition, is_new_run: bool, allocated: list[int]
    ) -> tuple[ExecutionWrite, HistoryNode | None]:
        """The transition's write and its history node (to append before the batch), state updated."""
        ms = tr.ms
        info = ms.info
        n_ids = 1 + len(tr.transfer_tasks) + len(tr.timer_tasks)
        ids = await self._allocate_task_ids(n_ids)
        # No await since the allocation: no later id can be acknowledged before these are registered.
        allocated.extend(ids)
        self.uncommitted_task_ids.update(ids)
        txn_id, task_ids = ids[0], iter(ids[1:])
        node = None
        if tr.events:
            for ev in tr.events:
                ev.task_id = txn_id
            node = HistoryNode(
                namespace_id=info.namespace_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                node_id=tr.events[0].event_id,
                txn_id=txn_id,
                events=History(events=tr.events).SerializeToString(),
                last_event_id=tr.events[-1].event_id,
            )
            ms.last_history_txn_id = txn_id
            ms.history_size_bytes += len(node.events)
            history_limits.warn_size_crossed(ms, len(node.events))
        expected = None if is_new_run else ms.db_record_version
        ms.db_record_version += 1
        ms.state_transition_count += 1
        record = ExecutionRecord(
            namespace_id=info.namespace_id,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            state=ms.serialize(),
            db_record_version=ms.db_record_version,
        )
        transfer = [
            TransferTask(
                next(task_ids), info.namespace_id, info.workflow_id, info.run_id, t.kind, t.encoded()
            )
            for t in tr.transfer_tasks
        ]
        timers = [
            TimerTask(
                t.fire_time_ms,
                next(task_ids),
                info.namespace_id,
                info.workflow_id,
                info.run_id,
                t.kind,
                t.encoded(),
            )
            for t in tr.timer_tasks
        ]
        return ExecutionWrite(record, expected, tr.current_run, transfer, timers), node

    # ---- history ---------------------------------------------------------------------------------------
    async def read_events(
        self, ms: MutableState, first_event_id: int = 1, limit_nodes: int = 1000
    ) -> list[HistoryEvent]:
        """Committed events of the run with id >= first_event_id, in order."""
        info = ms.info
        cached = self._events.span(
            ExecutionKey(info.namespace_id, info.workflow_id, info.run_id), first_event_id, ms.next_event_id
        )
        if cached is not None:
            return cached
        events: list[HistoryEvent] = []
        # A sticky task's history starts where a batch does (after the last WorkflowTaskStarted), so try
        # reading from the node of that id on; if no batch starts there, read from the beginning.
        next_node = first_event_id
        probing = first_event_id > 1
        while True:
            nodes = await self.store.read_history_nodes(
                info.namespace_id,
                info.workflow_id,
                info.run_id,
                next_node,
                ms.last_history_txn_id,
                limit_nodes,
            )
            if probing:
                probing = False
                if not nodes or nodes[0].node_id != first_event_id:
                    next_node = 1
                    continue
            for node in nodes:
                if node.last_event_id and node.last_event_id < first_event_id:
                    continue
                batch = History()
                batch.ParseFromString(node.events)
                events.extend(ev for ev in batch.events if first_event_id <= ev.event_id < ms.next_event_id)
            if len(nodes) < limit_nodes:
                return events
            next_node = nodes[-1].node_id + 1

    async def read_page(self, ms: MutableState, cursor: HistoryCursor, page: Page) -> HistoryCursor | None:
        """One page of the run's history from `cursor` on (page_reader); the next page's cursor or None."""
        return await read_page(self.store, self._events, ms, cursor, page)

    async def read_event(self, ms: MutableState, node_id: int, event_id: int) -> HistoryEvent | None:
        """One event, knowing the node (first event id of its batch) that holds it."""
        info = ms.info
        cached = self._events.get(ExecutionKey(info.namespace_id, info.workflow_id, info.run_id), event_id)
        if cached is not None:
            return cached
        nodes = await self.store.read_history_nodes(
            info.namespace_id, info.workflow_id, info.run_id, node_id, ms.last_history_txn_id, 1
        )
        for node in nodes:
            batch = History()
            batch.ParseFromString(node.events)
            for ev in batch.events:
                if ev.event_id == event_id:
                    return ev
        return None

    def watch(self, key: ExecutionKey) -> asyncio.Event:
        """An event set at the next commit of this run (for long polls on history)."""
        watcher = self._change_watchers.get(key)
        if watcher is None:
            watcher = self._change_watchers[key] = asyncio.Event()
        return watcher


class RangeBumpLandedLate(StoreUnavailableError):
    """A shard-row write was refused because a range bump of this node whose outcome it did not learn has
    landed: nobody took the shard; the caller retries once the shard is fenced again."""


def _key(ms: MutableState) -> ExecutionKey:
    return ExecutionKey(ms.info.namespace_id, ms.info.workflow_id, ms.info.run_id)
