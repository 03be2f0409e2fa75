"""The ownership controller: makes what this node holds follow the rings and the membership quorum.

On every membership change (and twice a second regardless) it first RELEASES what it should no longer
hold — shards and task-queue partitions the ring gives to others, everything when this node is not on the
majority side, and whatever was taken in an older membership epoch (the node stalled or lost contact
meanwhile) — and only then ACQUIRES what the ring gives it, each shard with the range-id LWT that fences
any previous owner. A shard the store fenced out (another member took it first) waits a while before this
node tries again, so two members that disagree for a moment do not take it back and forth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.matching import sticky_placement
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.membership.swim import Swim
from hourglass.cluster.placement import Placement
from hourglass.cluster.reconcile import reconcile_forever

log = logging.getLogger(__name__)

RECONCILE_INTERVAL_S = 0.5


class OwnershipController:
    def __init__(
        self,
        swim: Swim,
        placement: Placement,
        history: HistoryEngine,
        matching: MatchingEngine,
        join_timeout_s: float,
        fenced_backoff_s: float,
    ) -> None:
        self.swim = swim
        self.placement = placement
        self.history = history
        self.matching = matching
        self.join_timeout_s = join_timeout_s
        self.fenced_backoff_s = fenced_backoff_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._backoff: dict[int, float] = {}
        self.ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        self._wake.set()

    def shard_lost(self, shard_id: int) -> None:
        log.warning("shard %d was taken by another member; releasing it", shard_id)
        self._backoff[shard_id] = time.monotonic() + self.fenced_backoff_s
        self.poke()

    def guard(self) -> int | None:
        """The epoch in which this node may write now, or None while it may not."""
        quorate, epoch = self.swim.quorum()
        return epoch if quorate else None

    async def _joined(self) -> None:
        """Wait until the seeds are in the view (or the join timeout): a node starting alone must not take
        every shard just to hand most of them back a second later."""
        deadline = time.monotonic() + self.join_timeout_s
        seeds = [s for s in self.swim.config.seeds if s != self.swim.id]
        while time.monotonic() < deadline:
            known = self.swim.members
            if all(s in known and known[s].alive for s in seeds):
                return
            await asyncio.sleep(0.1)

    async def _run(self) -> None:
        await self._joined()
        self.ready.set()
        await reconcile_forever(self.reconcile, self._wake, RECONCILE_INTERVAL_S)

    async def reconcile(self) -> None:
        me = self.swim.id
        quorate, epoch = self.swim.quorum()
        self.placement.update(self.swim.members.values())
        desired = set(self.placement.shards_of(me)) if quorate else set()
        for shard_id, shard in list(self.history.shards.items()):
            if shard_id not in desired or shard.epoch != epoch or shard.released:
                log.info("releasing shard %d", shard_id)
                await self.history.release_shard(shard_id)

        def keep(key, partition) -> bool:
            if partition.sticky:  # served where its worker polls, not where the ring places it
                return sticky_placement.keeps(partition, me, self.placement)
            return (
                quorate
                and partition.epoch == epoch
                and self.placement.partition_owner(key.namespace_id, key.name, key.task_type, key.partition)
                == me
            )

        self.matching.release_partitions(keep)
        now = time.monotonic()
        wanted = [s for s in sorted(desired - set(self.history.shards)) if self._backoff.get(s, 0) <= now]
        if wanted and self.guard() == epoch:  # else the view moved while we worked: start over
            # All at once: the others released these as soon as their rings changed, so every shard is
            # unowned until taken here; one acquire's time, not one per shard (a node joining, undrained).
            await asyncio.gather(*(self._acquire(s, epoch, now) for s in wanted))

    async def _acquire(self, shard_id: int, epoch: int, now: float) -> None:
        if self.guard() != epoch:
            return
        try:
            await self.history.acquire_shard(shard_id, epoch)
            log.info("acquired shard %d", shard_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("could not acquire shard %d: %s", shard_id, e)
            self._backoff[shard_id] = now + 1.0
