"""Shard ownership of a single node (no `cluster:` section): it owns every history shard, and keeps them.

Another process on the same store (a second server started on the same database by mistake, or a stale
one) takes a shard by bumping its range id; this node's next write to the shard then fails with
ShardOwnershipLost. As the reference's shard controller does, the node drops the shard (its queue
processors and schedules stop, its cache is forgotten) and, since it still owns it (a lone node owns every
shard), takes it again a moment later with a new range id: its writes go through again and the other
process is the one fenced out. Meanwhile requests for the shard answer a retryable UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.reconcile import reconcile_forever

log = logging.getLogger(__name__)

# How often the node checks that it holds every shard; also the pause before taking back a lost shard.
RECONCILE_INTERVAL_S = 1.0


class StandaloneOwnership:
    def __init__(self, history: HistoryEngine) -> None:
        self.history = history
        self._wake = asyncio.Event()
        self._retry_at: dict[int, float] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Take every shard now, then keep them."""
        self.history.on_shard_lost = self.shard_lost
        for shard_id in range(self.history.shard_count):
            await self.history.acquire_shard(shard_id)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def shard_lost(self, shard_id: int) -> None:
        log.warning("shard %d was taken by another process on the same store; taking it back", shard_id)
        self._retry_at[shard_id] = time.monotonic() + RECONCILE_INTERVAL_S
        self._wake.set()

    async def _run(self) -> None:
        await reconcile_forever(self.reconcile, self._wake, RECONCILE_INTERVAL_S)

    async def reconcile(self) -> None:
        """Release the shards the store fenced out, then (after a pause) take back every missing shard."""
        for shard_id, shard in list(self.history.shards.items()):
            if shard.released:
                await self.history.release_shard(shard_id)
        now = time.monotonic()
        for shard_id in range(self.history.shard_count):
            if shard_id in self.history.shards or self._retry_at.get(shard_id, 0) > now:
                continue
            try:
                await self.history.acquire_shard(shard_id)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("could not take shard %d back: %s", shard_id, e)
                self._retry_at[shard_id] = now + RECONCILE_INTERVAL_S
                continue
            self._retry_at.pop(shard_id, None)
            log.info("took shard %d back", shard_id)
