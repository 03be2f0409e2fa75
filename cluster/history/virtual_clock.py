"""The clock of a time-skipping server (start-dev --time-skipping, hourglass.sdk.testing).

Semantics of the SDKs' test server (sdk-java's SelfAdvancingTimerImpl), over Hourglass's durable state:
virtual time is the wall clock plus an offset. While time skipping is locked (LockTimeSkipping; a server
starts locked, as the SDKs expect) or the server has work in flight, it runs at wall speed. When it is
unlocked and nothing is runnable, the offset jumps to the next deadline: the earliest timer task in the
store (user timers, activity and workflow timeouts, retries, delayed and cron starts), a schedule's next
action, or a TestService sleep. Retention timers (deleting closed runs) are never jumped to, so a test can
still read a finished workflow's history.

What holds the clock at wall speed:
- external locks (counted: each LockTimeSkipping needs its UnlockTimeSkipping);
- a shard with queue work: transfer tasks not yet run, timers due or firing, a timer window to read;
- a run with a started workflow task or a started activity: its worker is working, and jumping would time
  it out;
- a run whose workflow task or activity was scheduled moments ago (the grace below): a worker polling that
  queue takes it within milliseconds, and the grace covers the hand-off. Past it, the task waits for a
  worker that is not there, and time may skip: an activity no worker takes reaches its 3-day
  schedule-to-close timeout at once. (The Java test server holds the clock from an activity's schedule to
  its completion instead, so there such a timeout takes 3 real days.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from hourglass.cluster.history.mutable_state import MutableState
from hourglass.cluster.history.timeutil import install_clock, uninstall_clock, wall_ms

log = logging.getLogger(__name__)

WORKFLOW_TASK_GRACE_MS = 5_000
ACTIVITY_GRACE_MS = 2_000
# How often the skipper re-checks on its own (holds expire, locked time advances) besides being poked.
TICK_S = 0.05
# Idle must last this long, with no change in between, before a jump: a hand-off between two components
# (a commit, then its task in the queue) never looks idle for that long.
SETTLE_S = 0.02
FOREVER_MS = 2**62


class NotLockedError(Exception):
    """UnlockTimeSkipping without a LockTimeSkipping to balance it."""


class DeadlineSource(Protocol):
    """A shard's queue processors, as the clock sees them."""

    def time_skipping_busy(self, now_ms: int) -> bool: ...

    async def next_deadline_ms(self, after_ms: int) -> int | None: ...

    def on_time_jump(self) -> None: ...


def hold_until_ms(ms: MutableState) -> int:
    """Until when (virtual ms) this run's outstanding tasks hold the clock; 0: they do not."""
    if not ms.running:
        return 0
    hold = 0
    wt = ms.workflow_task
    if wt is not None and not wt.speculative:
        hold = FOREVER_MS if wt.started else wt.scheduled_time_ms + WORKFLOW_TASK_GRACE_MS
    for ai in ms.activities.values():
        if hold == FOREVER_MS:
            break
        if ai.paused or ai.waiting_retry:
            continue
        hold = max(hold, FOREVER_MS if ai.started else ai.scheduled_time_ms + ACTIVITY_GRACE_MS)
    return hold


class _Sleeper:
    __slots__ = ("deadline_ms", "future", "then")

    def __init__(self, deadline_ms: int, future: asyncio.Future, then: Callable[[], None] | None) -> None:
        self.deadline_ms, self.future, self.then = deadline_ms, future, then


class VirtualClock:
    def __init__(self, *, locked: bool = True) -> None:
        self.offset_ms = 0
        self.lock_count = 1 if locked else 0
        self.jumps = 0
        self._sources: set[DeadlineSource] = set()
        self._holds: dict[object, int] = {}
        self._sleepers: list[_Sleeper] = []
        self._waiters: dict[object, tuple[int | None, Callable[[], None]]] = {}
        self._generation = 0
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def now_ms(self) -> int:
        return wall_ms() + self.offset_ms

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Make this the clock of every server component on the running loop, and start skipping."""
        self._loop = asyncio.get_running_loop()
        install_clock(self._loop, self)
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sleeper in self._sleepers:
            if not sleeper.future.done():
                sleeper.future.cancel()
        if self._loop is not None:
            uninstall_clock(self._loop)

    # ---- TestService -----------------------------------------------------------------------------------
    def lock(self) -> None:
        self.lock_count += 1
        self.poke()

    def unlock(self) -> None:
        if self.lock_count == 0:
            raise NotLockedError(
                "time skipping is not locked: UnlockTimeSkipping must follow a LockTimeSkipping"
            )
        self.lock_count -= 1
        self.poke()

    async def sleep_until(self, deadline_ms: int, then: Callable[[], None] | None = None) -> None:
        """Wait until virtual time reaches deadline_ms (a jump target meanwhile); `then` runs right as it
        does, before the clock can move further (UnlockTimeSkippingWithSleep locks there)."""
        sleeper = _Sleeper(deadline_ms, asyncio.get_running_loop().create_future(), then)
        self._sleepers.append(sleeper)
        self.poke()
        try:
            self._wake_due()
            await sleeper.future
        finally:
            with contextlib.suppress(ValueError):
                self._sleepers.remove(sleeper)

    # ---- what the server reports -----------------------------------------------------------------------
    def poke(self) -> None:
        self._generation += 1
        if self._changed is not None:
            self._changed.set()

    def track_run(self, key: object, ms: MutableState) -> None:
        """A run's state was committed: what it now holds."""
        hold = hold_until_ms(ms)
        if hold:
            self._holds[key] = hold
        else:
            self._holds.pop(key, None)
        self.poke()

    def attach(self, source: DeadlineSource) -> None:
        self._sources.add(source)
        self.poke()

    def detach(self, source: DeadlineSource) -> None:
        self._sources.discard(source)

    def expect(self, owner: object, deadline_ms: int | None, wake: Callable[[], None]) -> None:
        """A component (a schedule) next acts at deadline_ms: a jump target; `wake` is called on a jump."""
        self._waiters[owner] = (deadline_ms, wake)
        self.poke()

    def forget(self, owner: object) -> None:
        self._waiters.pop(owner, None)

    # ---- skipping --------------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._changed is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), TICK_S)
            self._changed.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("time skipping: could not find the next deadline", exc_info=True)

    async def _step(self) -> None:
        self._wake_due()
        if await self._target() is None:
            return
        generation = self._generation
        await asyncio.sleep(SETTLE_S)
        if generation != self._generation:
            return
        target = await self._target()
        if target is None:
            return
        now = self.now_ms()
        if target > now:
            self.offset_ms += target - now
            self.jumps += 1
            log.debug("time skipping: jumped %d ms", target - now)
        self._wake_due()
        for source in list(self._sources):
            source.on_time_jump()
        for _, wake in list(self._waiters.values()):
            wake()

    def _idle(self, now: int) -> bool:
        if self.lock_count:
            return False
        if any(hold > now for hold in self._holds.values()):
            return False
        return not any(source.time_skipping_busy(now) for source in list(self._sources))

    async def _target(self) -> int | None:
        """The deadline to jump to, when time may skip now; None when it may not (or there is none)."""
        now = self.now_ms()
        if not self._idle(now):
            return None
        deadlines = [s.deadline_ms for s in self._sleepers]
        deadlines += [d for d, _ in self._waiters.values() if d is not None]
        for source in list(self._sources):
            d = await source.next_deadline_ms(now)
            if d is not None:
                deadlines.append(d)
        if not deadlines or min(deadlines) <= now or not self._idle(self.now_ms()):
            return None  # nothing ahead, or something is due: it runs first
        return min(deadlines)

    def _wake_due(self) -> None:
        now = self.now_ms()
        for sleeper in list(self._sleepers):
            if sleeper.deadline_ms <= now and not sleeper.future.done():
                if sleeper.then is not None:
                    sleeper.then()
                sleeper.future.set_result(None)
