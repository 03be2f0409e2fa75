"""One task-queue partition: waiting pollers, sync match, and the persisted backlog.

A task offered while a poller waits goes straight to it (nothing is written); the offer completes only once
the poller has recorded the task as started in history, so a poller that vanishes in between hands the task
back and it is persisted instead of lost. Otherwise the task is appended to the backlog in one batch
fenced by the partition's lease (range_id) and handed out in order.

A non-root partition may be given a `forward` callable (see engine.py): a task no local poller takes is
first offered to the parent partition (sync match there) before it is persisted here. A forwarded offer
that arrives at the root while no poller waits may wait a little in `_offers`, where the next poller
finds it; that is how a child's backlog reaches pollers that only sit at the root.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.taskqueue.v1 import TaskIdBlock, TaskQueueStats, TaskQueueStatus

from hourglass.cluster.errors import ShardNotOwned
from hourglass.cluster.history.timeutil import now_ms
from hourglass.cluster.matching import backlog_data
from hourglass.cluster.matching.queue_config import DispatchLimiter
from hourglass.cluster.matching.stats import QueueStats
from hourglass.persistence.records import QueueTask, TaskQueueKey
from hourglass.persistence.store import Store

log = logging.getLogger(__name__)

RANGE_BITS = 20


@dataclass
class QueryRequest:
    query_id: str
    execution: WorkflowExecution
    query: object  # temporal.api.query.v1.WorkflowQuery
    result: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class MatchedTask:
    namespace_id: str
    execution: WorkflowExecution
    scheduled_event_id: int = 0
    attempt: int = 0
    backlog_task_id: int | None = None
    # Sync match: resolved True once history recorded the start (or dropped the task), False to hand it back.
    accepted: asyncio.Future | None = None
    query: QueryRequest | None = None
    # When a backlog task was persisted (kept if it is given back: the backlog's age counts from there).
    create_time_ms: int = 0
    # A backlog row written before pinned tasks had their version's own queue names its version ("name:build",
    # see backlog_data.py): the engine moves such a task to that queue instead of handing it out here.
    pinned: str = ""
    # An unpinned task that routing put on a version's queue (backlog_data.py): it moves on when the version
    # stops being current or ramping.
    routed: bool = False


# Offers a task to the parent partition, waiting up to the given seconds there; True once it was taken.
Forward = Callable[["MatchedTask", float], Awaitable[bool]]


class Partition:
    def __init__(
        self,
        key: TaskQueueKey,
        store: Store,
        persistent: bool = True,
        writable: Callable[[], bool] | None = None,
    ) -> None:
        self.key = key
        self.store = store
        self.persistent = persistent
        # A worker's sticky queue (in memory, served where the worker polls: sticky_placement.py).
        self.sticky = False
        # In a cluster: whether this node may still write the partition (membership quorum and epoch).
        self._writable = writable
        self.epoch: int | None = None
        self.closed = False
        self._pollers: collections.deque[asyncio.Future] = collections.deque()
        self._backlog: collections.deque[QueueTask] = collections.deque()
        self._outstanding: set[int] = set()
        self._max_handed_out = 0
        self._ack_level = 0
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._range_id = 0
        self._next_id = 0
        self._id_limit = 0
        self.last_poll: dict[str, float] = {}
        # What each poller said of itself: its build id and the dispatch rate it asked for (0 = none).
        self.poller_details: dict[str, tuple[str, float]] = {}
        self.stats = QueueStats()
        # Tasks forwarded by child partitions waiting for a poller here (sync match only, never persisted).
        self._offers: collections.deque[MatchedTask] = collections.deque()
        # Backlog tasks lent to the engine to offer to the parent: still backlog until a poller takes them.
        self._lent: dict[int, QueueTask] = {}
        # Called when the backlog gains tasks (the engine pumps a non-root partition's backlog upward).
        self.on_backlog: Callable[[Partition], None] | None = None
        self.limiter = DispatchLimiter()
        # The background range delete of consumed backlog tasks (ack), at most one at a time.
        self._deleter: asyncio.Task | None = None

    def check_writable(self) -> None:
        if self.closed or (self._writable is not None and not self._writable()):
            raise ShardNotOwned(f"task queue partition {self.key.name} is not owned by this node")

    def close(self) -> None:
        """Another member owns the partition now: waiting pollers answer empty (and poll again there)."""
        self.closed = True
        while self._pollers:
            poller = self._pollers.popleft()
            if not poller.done():
                poller.set_result(None)
        self._refuse_offers()

    def _refuse_offers(self) -> None:
        """Forwarded tasks waiting here go back to the partition that offered them."""
        while self._offers:
            task = self._offers.popleft()
            if task.accepted is not None and not task.accepted.done():
                task.accepted.set_result(False)

    async def _ensure_loaded(self) -> None:
        if self._loaded or not self.persistent:
            return
        async with self._load_lock:
            if self._loaded:
                return
            self.check_writable()
            info = await self.store.lease_task_queue(self.key)
            self._set_range(info.range_id)
            cursor = info.ack_level
            while True:
                tasks = await self.store.get_queue_tasks(self.key, cursor, 1000)
                self._backlog.extend(tasks)
                if len(tasks) < 1000:
                    break
                cursor = tasks[-1].task_id
            self._max_handed_out = self._ack_level = info.ack_level
            self._loaded = True
        self._backlog_grew()

    def _backlog_grew(self) -> None:
        if self._backlog and self.on_backlog is not None:
            self.on_backlog(self)

    def _set_range(self, range_id: int) -> None:
        self._range_id = range_id
        self._next_id = range_id << RANGE_BITS
        self._id_limit = (range_id + 1) << RANGE_BITS

    async def _next_task_id(self) -> int:
        """Ids come from the partition's lease range; a sticky (in-memory) queue takes no lease at all."""
        if self.persistent and self._next_id >= self._id_limit:
            self.check_writable()
            info = await self.store.lease_task_queue(self.key)
            self._set_range(info.range_id)
        self._next_id += 1
        return self._next_id

    @property
    def backlog_size(self) -> int:
        """Tasks waiting here, those being offered to the parent partition included."""
        return len(self._backlog) + len(self._lent)

    @property
    def ready_count(self) -> int:
        """Backlog tasks a poll here would get now (those lent to the parent are not)."""
        return len(self._backlog)

    @property
    def oldest_task_ms(self) -> int:
        """Creation time of the oldest task waiting in the backlog (0 when it is empty or none says)."""
        waiting = itertools.chain(self._backlog, self._lent.values())
        return min((t.create_time_ms for t in waiting if t.create_time_ms), default=0)

    @property
    def has_waiting_poller(self) -> bool:
        return any(not p.done() for p in self._pollers)

    def note_poller(self, identity: str, build_id: str = "", max_tasks_per_second: float = 0.0) -> None:
        """A poll arrived here (even one sent on to the parent): DescribeTaskQueue lists its poller."""
        self.last_poll[identity] = asyncio.get_running_loop().time()
        self.poller_details[identity] = (build_id, max_tasks_per_second)

    async def prepare(self) -> None:
        """Check the lease and read the backlog before deciding whether to forward (it must come first)."""
        self.check_writable()
        await self._ensure_loaded()

    async def load(self) -> None:
        """Read the persisted backlog if not done yet (describing a queue nobody polled since a restart)."""
        self.check_writable()
        await self._ensure_loaded()

    def describe_stats(self) -> TaskQueueStats:
        """Backlog count and age, add and dispatch rates (DescribeTaskQueue's report_stats)."""
        add_rate, dispatch_rate = self.stats.rates()
        age = Duration()
        created = self.oldest_task_ms
        if created:
            age.FromMilliseconds(max(now_ms() - created, 0))
        return TaskQueueStats(
            approximate_backlog_count=self.backlog_size,
            approximate_backlog_age=age,
            tasks_add_rate=add_rate,
            tasks_dispatch_rate=dispatch_rate,
        )

    def describe_status(self) -> TaskQueueStatus:
        """The legacy status: backlog, read and ack levels, and the task id block this node leases."""
        return TaskQueueStatus(
            backlog_count_hint=len(self._backlog),
            read_level=self._max_handed_out,
            ack_level=self._ack_level,
            task_id_block=TaskIdBlock(
                start_id=(self._range_id << RANGE_BITS) + 1, end_id=(self._range_id + 1) << RANGE_BITS
            ),
        )

    def has_poller_within(self, seconds: float) -> bool:
        """A poll waits now, or one started within `seconds`: is a worker (still) there?"""
        if any(not p.done() for p in self._pollers):
            return True
        horizon = asyncio.get_running_loop().time() - seconds
        return any(seen >= horizon for seen in self.last_poll.values())

    def unload(self) -> None:
        """Drop everything held in memory (a sticky queue whose worker shut down): waiting polls return
        empty, and tasks still waiting here are left to their schedule-to-start timeout."""
        while self._pollers:
            poller = self._pollers.popleft()
            if not poller.done():
                poller.set_result(None)
        self._refuse_offers()
        self._backlog.clear()

    # ---- producers -------------------------------------------------------------------------------------
    def _offer_to_poller(self, task: MatchedTask) -> bool:
        while self._pollers:
            poller = self._pollers.popleft()
            if not poller.done():
                poller.set_result(task)
                return True
        return False

    async def add(self, task: MatchedTask, forward: Forward | None = None) -> None:
        """Sync-match the task to a waiting poller (here, else up the tree through `forward`), or persist
        it in the backlog. With a backlog nothing is matched ahead of it: tasks keep their order."""
        self.check_writable()
        await self._ensure_loaded()
        self.stats.added()
        if not self._backlog:
            task.accepted = asyncio.get_running_loop().create_future()
            if self._offer_to_poller(task) and await task.accepted:
                return
            task.accepted = None
            if forward is not None and await forward(task, 0.0):
                return
        await self._persist(task)

    async def offer(self, task: MatchedTask, wait: float, forward: Forward | None = None) -> bool:
        """A task forwarded by a child partition: hand it to a poller here (or further up), waiting up to
        `wait` seconds for one; answers whether a poller took it and history recorded its start.
        Nothing is persisted here: the task stays in the child's backlog until this answers True."""
        self.check_writable()
        task.accepted = asyncio.get_running_loop().create_future()
        if self._offer_to_poller(task):
            return await task.accepted
        if forward is not None:
            return await forward(task, wait)
        if wait <= 0:
            return False
        self._offers.append(task)
        try:
            await asyncio.wait({task.accepted}, timeout=wait)
        finally:
            if task in self._offers:
                self._offers.remove(task)  # not taken: the child keeps it
                if not task.accepted.done():
                    task.accepted.set_result(False)
        return await task.accepted  # taken by a poller: its outcome

    def _take_oldest(self) -> MatchedTask | None:
        """The older of the backlog's first task and the first task a child offers, so a child's backlog
        waits no longer than this partition's own."""
        while self._offers and (self._offers[0].accepted is None or self._offers[0].accepted.done()):
            self._offers.popleft()
        if self._offers and (
            not self._backlog
            or (self._offers[0].create_time_ms or now_ms()) < self._backlog[0].create_time_ms
        ):
            return self._offers.popleft()
        return self._take_from_backlog() if self._backlog else None

    async def _persist(self, task: MatchedTask) -> None:
        qt = QueueTask(
            task_id=await self._next_task_id(),
            namespace_id=task.namespace_id,
            workflow_id=task.execution.workflow_id,
            run_id=task.execution.run_id,
            scheduled_event_id=task.scheduled_event_id,
            create_time_ms=now_ms(),
            data=backlog_data.encode(task.attempt, task.pinned, task.routed),
        )
        if self.persistent:
            self.check_writable()
            await self.store.create_queue_tasks(self.key, self._range_id, [qt])
        self._into_backlog(qt)
        self._wake_poller_for_backlog()
        self._backlog_grew()

    def _wake_poller_for_backlog(self) -> None:
        while self._backlog and self._pollers:
            poller = self._pollers.popleft()
            if not poller.done():
                poller.set_result(self._take_from_backlog())

    async def offer_query(self, query: QueryRequest, timeout: float) -> bool:
        """Queries are never persisted: hand the query to a poller within `timeout`, or give up."""
        deadline = asyncio.get_running_loop().time() + timeout
        task = MatchedTask(namespace_id=self.key.namespace_id, execution=query.execution, query=query)
        while True:
            if self._offer_to_poller(task):
                return True
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(0.05, remaining))

    # ---- consumers -------------------------------------------------------------------------------------
    def take_for_forwarding(self) -> MatchedTask | None:
        """The backlog's first task, handed out to be offered to the parent (ack or give back after)."""
        if not self._backlog or self.closed:
            return None
        qt = self._backlog[0]
        task = self._take_from_backlog()
        self._lent[qt.task_id] = qt
        return task

    def _take_from_backlog(self) -> MatchedTask:
        qt = self._backlog.popleft()
        self._outstanding.add(qt.task_id)
        attempt, pinned = backlog_data.decode(qt.data)
        return MatchedTask(
            namespace_id=qt.namespace_id,
            execution=WorkflowExecution(workflow_id=qt.workflow_id, run_id=qt.run_id),
            scheduled_event_id=qt.scheduled_event_id,
            attempt=attempt,
            backlog_task_id=qt.task_id,
            create_time_ms=qt.create_time_ms,
            pinned=pinned,
            routed=backlog_data.routed(qt.data),
        )

    def complete_worker_polls(self, worker_key: str) -> int:
        """ShutdownWorker of a worker whose SDK waits for its polls: they answer empty now. How many."""
        completed = 0
        for poller in list(self._pollers):
            if getattr(poller, "worker_key", "") == worker_key and not poller.done():
                poller.set_result(None)
                completed += 1
        return completed

    async def poll(
        self,
        timeout: float,
        identity: str,
        build_id: str = "",
        max_tasks_per_second: float = 0.0,
        worker_key: str = "",
        rate_limit: float | None = None,
    ) -> MatchedTask | None:
        """A task for the poller, or None after `timeout`. With `rate_limit` (the partition's share of the
        queue's configured dispatches per second), the poller first waits for its dispatch slot."""
        self.note_poller(identity, build_id, max_tasks_per_second)
        if self.closed:
            return None
        if rate_limit is not None:
            admitted = await self.limiter.admit(rate_limit, timeout)
            if admitted is None or self.closed:
                return None
            timeout = admitted
        await self._ensure_loaded()
        ready = self._take_oldest()
        if ready is not None:
            return ready
        poller = asyncio.get_running_loop().create_future()
        poller.worker_key = worker_key  # type: ignore[attr-defined]  # see complete_worker_polls
        self._pollers.append(poller)
        try:
            done, _ = await asyncio.wait({poller}, timeout=timeout)
        except asyncio.CancelledError:
            # A task handed over as the poll was cancelled goes back (None: the partition let go of it).
            if poller.done() and not poller.cancelled() and poller.result() is not None:
                self.give_back(poller.result())
            poller.cancel()
            raise
        if done or (poller.done() and not poller.cancelled()):
            return poller.result()  # a task may land in the same loop iteration as the timeout
        poller.cancel()
        return None

    async def ack(self, task: MatchedTask) -> None:
        """The task reached history (started, or found stale): it is consumed. The range delete of what is
        consumed runs in the background (`flush_deletes` waits for it): a poller's reply, or the pump's
        next offer, does not wait for a store round trip, as the reference's matching collects consumed
        tasks apart from dispatch. A crash before the delete leaves rows that come back after a reload,
        and history drops them as stale."""
        if task.query is None:
            self.stats.dispatched()
        if task.accepted is not None:
            if not task.accepted.done():
                task.accepted.set_result(True)
            return
        if task.backlog_task_id is None:
            return
        self._outstanding.discard(task.backlog_task_id)
        self._lent.pop(task.backlog_task_id, None)
        self._max_handed_out = max(self._max_handed_out, task.backlog_task_id)
        if self.persistent and (self._deleter is None or self._deleter.done()):
            self._deleter = asyncio.get_running_loop().create_task(self._delete_consumed())

    async def flush_deletes(self) -> None:
        """Wait until what was consumed so far is deleted from the store (or the delete failed)."""
        while self._deleter is not None and not self._deleter.done():
            await asyncio.shield(self._deleter)

    def _deletable_level(self) -> int:
        ack = (min(self._outstanding) - 1) if self._outstanding else self._max_handed_out
        if self._backlog:
            ack = min(ack, self._backlog[0].task_id - 1)
        return ack

    async def _delete_consumed(self) -> None:
        """Range-delete everything below the lowest task still outstanding or waiting in the backlog; one
        delete in flight per partition, the acks that come meanwhile go in the next one."""
        while not self.closed and (ack := self._deletable_level()) > self._ack_level:
            self._ack_level = ack
            try:
                self.check_writable()
                await self.store.delete_queue_tasks(self.key, ack)
            except ShardNotOwned:
                return  # moved to another owner: it deletes what it finds consumed
            except Exception:
                log.warning("could not delete consumed tasks of %s", self.key, exc_info=True)
                return

    def give_back(self, task: MatchedTask) -> None:
        """The poller could not deliver the task: sync tasks go back to their producer, backlog tasks in front."""
        if task.query is not None:
            return
        if task.accepted is not None:
            if not task.accepted.done():
                task.accepted.set_result(False)
            return
        if task.backlog_task_id is not None:
            self._outstanding.discard(task.backlog_task_id)
            self._lent.pop(task.backlog_task_id, None)
            self._into_backlog(
                QueueTask(
                    task.backlog_task_id,
                    task.namespace_id,
                    task.execution.workflow_id,
                    task.execution.run_id,
                    task.scheduled_event_id,
                    create_time_ms=task.create_time_ms,
                    data=backlog_data.encode(task.attempt, task.pinned, task.routed),
                )
            )
            self._wake_poller_for_backlog()
            self._backlog_grew()

    def _into_backlog(self, qt: QueueTask) -> None:
        """Keep the backlog in task-id order, whatever order tasks arrive in (concurrent appends finish in
        any order, given-back tasks return): the range delete of consumed tasks stops just below the
        backlog's first task, so a lower id further back would be deleted while still unconsumed, and lost
        once the partition moves to another node."""
        if not self._backlog or self._backlog[-1].task_id < qt.task_id:
            self._backlog.append(qt)  # the usual case: the newest task
        else:
            bisect.insort(self._backlog, qt, key=lambda t: t.task_id)
