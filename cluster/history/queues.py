"""A shard's queue processors: run transfer tasks right after commit, timer tasks when they are due.

Tasks live in the store until executed, so a crash at any point re-runs them on reload; each executor is
idempotent (it checks the run's state before acting). Transfer tasks are acknowledged by range (a range
delete, and an ack level saved in the shard row now and then), never row by row, and never past a task
this node has not run: not past one still pending, nor one a commit in flight (or with an unknown
outcome) may still write. After a
commit with an unknown outcome the processors fence the shard (shard.py) and re-read their tasks once.
Timers fire out of order (retries, timers committed late), so fired ones are deleted by key, but together:
one request per shard and ack interval instead of one per timer (a crash before it re-fires them, which
their idempotent executors allow, as a crash between firing and a one-by-one delete did).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable

from hourglass.cluster.history.tasks import TimerKind
from hourglass.cluster.history.timeutil import active_clock, now_ms
from hourglass.persistence.records import TimerTask, TransferTask

log = logging.getLogger(__name__)

TRANSFER_WORKERS = 16
TIMER_WORKERS = 16
PAGE_SIZE = 1000
# Timers due within this window are kept in memory; later ones are read when the window moves.
TIMER_LOOKAHEAD_MS = 60_000
ACK_INTERVAL_S = 1.0
# How often the shard row gets the ack level (the reference: history.shardUpdateMinInterval, 5 min).
ACK_SAVE_INTERVAL_S = 10.0
# Fired timers deleted per request: one write in the shard's partition, under Cassandra's batch size warning.
TIMER_DELETE_BATCH = 50
RETRY_BACKOFF_S = (0.05, 0.2, 1.0, 2.0, 5.0)


class QueueProcessors:
    def __init__(
        self,
        shard,
        execute_transfer: Callable[[object, TransferTask], Awaitable[None]],
        execute_timer: Callable[[object, TimerTask], Awaitable[None]],
    ) -> None:
        self.shard = shard
        self.store = shard.store
        self._execute_transfer = execute_transfer
        self._execute_timer = execute_timer
        self._transfer_queue: asyncio.Queue[TransferTask] = asyncio.Queue()
        self._transfer_pending: set[int] = set()
        # Executed since the last ack: a re-read of the store after an unknown outcome skips them.
        self._transfer_done: set[int] = set()
        self._transfer_max_seen = 0
        self._timer_heap: list[tuple[int, int, TimerTask]] = []
        self._timer_known: set[int] = set()
        self._timer_window_end = 0
        self._timer_wakeup = asyncio.Event()
        self._timer_slots = asyncio.Semaphore(TIMER_WORKERS)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._firing = 0
        # Fired timers not deleted yet (they stay in `_timer_known`, so a re-read does not fire them again).
        self._timers_fired: list[TimerTask] = []
        # The virtual clock of a time-skipping server (None on a real node): it asks this shard whether
        # it has work in flight and when its next timer is due, and wakes the timer loop when it jumps.
        self._clock = None

    async def start(self) -> None:
        self._clock = active_clock()
        if self._clock is not None:
            self._clock.attach(self)
        self._transfer_max_seen = self.shard.transfer_ack_level
        await self._load_transfer_tasks()
        self._timer_window_end = now_ms() + TIMER_LOOKAHEAD_MS
        await self._load_timers(0, self._timer_window_end)
        for _ in range(TRANSFER_WORKERS):
            self._tasks.append(asyncio.create_task(self._transfer_worker()))
        self._tasks.append(asyncio.create_task(self._transfer_acker()))
        self._tasks.append(asyncio.create_task(self._timer_loop()))
        self._tasks.append(asyncio.create_task(self._timer_deleter()))

    async def stop(self) -> None:
        self._stopping = True
        if self._clock is not None:
            self._clock.detach(self)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def notify(self, transfer: list[TransferTask], timers: list[TimerTask]) -> None:
        for task in transfer:
            self._enqueue_transfer(task)
        for timer in timers:
            self._add_timer(timer)

    # ---- transfer --------------------------------------------------------------------------------------
    def _enqueue_transfer(self, task: TransferTask) -> None:
        if task.task_id in self._transfer_pending or task.task_id in self._transfer_done:
            return
        self._transfer_pending.add(task.task_id)
        self._transfer_max_seen = max(self._transfer_max_seen, task.task_id)
        self._transfer_queue.put_nowait(task)

    async def _load_transfer_tasks(self) -> None:
        cursor = self.shard.transfer_ack_level
        while True:
            tasks = await self.store.get_transfer_tasks(self.shard.shard_id, cursor, 2**62, PAGE_SIZE)
            for task in tasks:
                self._enqueue_transfer(task)
            if len(tasks) < PAGE_SIZE:
                return
            cursor = tasks[-1].task_id

    async def _transfer_worker(self) -> None:
        while True:
            task = await self._transfer_queue.get()
            await self._run_with_retries(self._execute_transfer, task)
            self._transfer_pending.discard(task.task_id)
            self._transfer_done.add(task.task_id)

    async def _run_with_retries(self, execute, task) -> None:
        attempt = 0
        while not self._stopping:
            try:
                await execute(self.shard, task)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.warning(
                    "task %s of shard %s failed (attempt %d), retrying in %.2fs",
                    task.kind,
                    self.shard.shard_id,
                    attempt + 1,
                    delay,
                    exc_info=attempt >= 2,
                )
                attempt += 1
                await asyncio.sleep(delay)

    def _transfer_ack_candidate(self) -> int:
        """The highest task id below every task not yet run (pending, or being committed right now)."""
        blockers = self._transfer_pending | self.shard.uncommitted_task_ids
        return min(blockers) - 1 if blockers else self._transfer_max_seen

    async def _recover_uncertain_tasks(self) -> None:
        """After commits with an unknown outcome: fence them out, then re-read the store's tasks and enqueue
        what this node missed. Whatever those commits wrote is in the store by then, or never will be.
        Retried every ack interval until it succeeds (the store may still be unreachable)."""
        await self.shard.fence()
        fenced = self.shard.range_id
        await self._load_transfer_tasks()
        await self._load_timers(0, self._timer_window_end)
        self.shard.settle_doubtful(fenced)

    async def _transfer_acker(self) -> None:
        """Range-delete the executed tasks every ack interval (moving the ack level in memory), and write
        the ack level to the shard row now and then: it only bounds what a next owner re-reads, which the
        range deletes already emptied, so one conditional write per shard and second (a Paxos round in
        the shard's partition, contending with its commits) bought nothing."""
        while True:
            await asyncio.sleep(ACK_INTERVAL_S)
            if self.shard.doubtful:
                try:
                    await self._recover_uncertain_tasks()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("could not re-read the tasks of shard %s", self.shard.shard_id, exc_info=True)
                    continue
            ack = self._transfer_ack_candidate()
            try:
                if ack > self.shard.transfer_ack_level:
                    self.shard.check_writable()
                    await self.store.delete_transfer_tasks(self.shard.shard_id, ack)
                    self.shard.transfer_ack_level = ack
                    self._transfer_done = {i for i in self._transfer_done if i > ack}
                if self.shard.ack_level_unsaved_for() >= ACK_SAVE_INTERVAL_S:
                    await self.shard.save_transfer_ack_level()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "could not advance transfer ack level of shard %s", self.shard.shard_id, exc_info=True
                )

    # ---- timers ----------------------------------------------------------------------------------------
    def _add_timer(self, timer: TimerTask) -> None:
        if timer.fire_time_ms >= self._timer_window_end or timer.task_id in self._timer_known:
            return
        self._timer_known.add(timer.task_id)
        heapq.heappush(self._timer_heap, (timer.fire_time_ms, timer.task_id, timer))
        if self._timer_heap[0][1] == timer.task_id:
            self._timer_wakeup.set()

    async def _load_timers(self, start_ms: int, end_ms: int) -> None:
        cursor = start_ms
        while True:
            timers = await self.store.get_timer_tasks(self.shard.shard_id, cursor, end_ms, PAGE_SIZE)
            for timer in timers:
                self._add_timer(timer)
            if len(timers) < PAGE_SIZE:
                return
            # Timers sharing the last page's fire time are re-read; `_timer_known` drops the duplicates.
            cursor = timers[-1].fire_time_ms

    async def _timer_loop(self) -> None:
        failures = 0
        while True:
            now = now_ms()
            if self._timer_window_end - now < TIMER_LOOKAHEAD_MS // 2:
                # The window moves first so that timers committed during the read are kept in memory too.
                start, self._timer_window_end = self._timer_window_end, now + TIMER_LOOKAHEAD_MS
                try:
                    await self._load_timers(start, self._timer_window_end)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The store is unreachable: read the same range again soon; what is loaded still fires.
                    self._timer_window_end = start
                    failures += 1
                    log.warning(
                        "could not read the timers of shard %s (attempt %d)",
                        self.shard.shard_id,
                        failures,
                        exc_info=failures >= 3,
                    )
            while self._timer_heap and self._timer_heap[0][0] <= now:
                _, _, timer = heapq.heappop(self._timer_heap)
                await self._timer_slots.acquire()
                self._firing += 1
                asyncio.create_task(self._fire(timer))
            wait_ms = TIMER_LOOKAHEAD_MS // 4
            if failures:
                wait_ms = int(RETRY_BACKOFF_S[min(failures - 1, len(RETRY_BACKOFF_S) - 1)] * 1000)
            if self._timer_heap:
                wait_ms = min(wait_ms, self._timer_heap[0][0] - now)
            self._timer_wakeup.clear()
            try:
                await asyncio.wait_for(self._timer_wakeup.wait(), max(wait_ms, 1) / 1000)
            except TimeoutError:
                pass

    async def _fire(self, timer: TimerTask) -> None:
        fired = False
        try:
            await self._run_with_retries(self._execute_timer, timer)
            fired = not self._stopping
        finally:
            self._firing -= 1
            if fired:
                self._timers_fired.append(timer)  # `_timer_deleter` deletes it, then forgets it
            else:
                self._timer_known.discard(timer.task_id)
            self._timer_slots.release()

    async def _timer_deleter(self) -> None:
        """Every ack interval, delete the timers fired since, a batch per request."""
        while True:
            await asyncio.sleep(ACK_INTERVAL_S)
            while self._timers_fired:
                batch = self._timers_fired[:TIMER_DELETE_BATCH]
                try:
                    self.shard.check_writable()
                    await self.store.delete_fired_timer_tasks(
                        self.shard.shard_id, [(t.fire_time_ms, t.task_id) for t in batch]
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning(
                        "could not delete %d fired timer tasks of shard %s",
                        len(batch),
                        self.shard.shard_id,
                        exc_info=True,
                    )
                    break  # kept: tried again at the next interval
                del self._timers_fired[: len(batch)]
                for timer in batch:
                    self._timer_known.discard(timer.task_id)

    # ---- time skipping (virtual_clock.DeadlineSource) ----------------------------------------------------
    def time_skipping_busy(self, now: int) -> bool:
        """Work the clock must not jump over: tasks to run, timers due or firing, a timer window to read."""
        return bool(
            self._transfer_pending
            or self._firing
            or (self._timer_heap and self._timer_heap[0][0] <= now)
            or self._timer_window_end - now < TIMER_LOOKAHEAD_MS // 2
        )

    async def next_deadline_ms(self, after_ms: int) -> int | None:
        """Fire time of this shard's earliest timer after `after_ms`, retention timers left out."""
        cursor = after_ms + 1
        for _ in range(20):
            timers = await self.store.get_timer_tasks(self.shard.shard_id, cursor, 2**62, 100)
            for timer in timers:
                if timer.kind != TimerKind.DELETE_HISTORY:
                    return timer.fire_time_ms
            if len(timers) < 100:
                return None
            cursor = timers[-1].fire_time_ms + 1
        return None

    def on_time_jump(self) -> None:
        self._timer_wakeup.set()
