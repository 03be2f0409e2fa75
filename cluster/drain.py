"""Drain and undrain of this node: hand every shard and task-queue partition to the other members before an
upgrade or a stop, and take a share back afterwards.

A drain works as a graceful stop does, without stopping: the node marks itself draining (so its own rings,
and then everyone's, give it nothing), its ownership controller releases what it holds (each shard only
once the batches already sent to the store have landed, long polls ended so callers poll again where the
work now is), and only then does it tell every member at once, so the next owners fence a shard nobody
writes any more. The node stays a member (it counts toward the majority) and keeps serving its frontend as
a router. The drain is done when every shard is held by another member.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from hourglass.cluster.errors import DeadlineExceeded, FailedPrecondition
from hourglass.cluster.history.engine import HistoryEngine
from hourglass.cluster.matching.engine import MatchingEngine
from hourglass.cluster.membership.swim import Swim
from hourglass.cluster.placement import Placement
from hourglass.cluster.rpc import internal_pb2 as pb

DEFAULT_TIMEOUT_S = 60.0
POLL_S = 0.1


class Drainer:
    def __init__(
        self,
        swim: Swim,
        placement: Placement,
        history: HistoryEngine,
        matching: MatchingEngine,
        poke: Callable[[], None],
        cluster_status: Callable[[pb.ClusterStatusRequest], Awaitable[pb.ClusterStatusResponse]],
    ) -> None:
        self.swim = swim
        self.placement = placement
        self.history = history
        self.matching = matching
        self._poke = poke
        self._status = cluster_status
        # One drain or undrain at a time: a second call waits for the first and then does its own.
        self._lock = asyncio.Lock()

    def _held(self) -> list[int]:
        return sorted(s for s, shard in self.history.shards.items() if not shard.released)

    async def drain(self, timeout_s: float) -> pb.DrainResponse:
        """Hand everything over; DEADLINE_EXCEEDED (the node stays draining) if it takes over `timeout_s`."""
        timeout_s = timeout_s or DEFAULT_TIMEOUT_S
        started = time.monotonic()
        deadline = started + timeout_s
        async with self._lock:
            others = [
                m
                for m in self.swim.members.values()
                if m.id != self.swim.id and m.in_ring and "history" in m.roles
            ]
            if not others and not self.swim.me.draining:
                raise FailedPrecondition(
                    f"no other member can take the shards of {self.swim.id}: draining the only history member "
                    "would leave every shard unowned"
                )
            held = self._held()
            self.swim.set_draining(True, announce=False)
            self._poke()
            while self._held() or self.matching.partition_count:
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"{self.swim.id} still holds shards {self._held()} and "
                        f"{self.matching.partition_count} task-queue partitions after {timeout_s:g} s; "
                        "it stays draining"
                    )
                await asyncio.sleep(POLL_S)
            self.swim.announce()  # released: now the others may take it all at once
            unowned: list[int] = []
            while True:
                status = await self._status(pb.ClusterStatusRequest(shards=True))
                unowned = sorted(
                    {s.shard_id for s in status.shards}
                    - {s.shard_id for s in status.shards if s.member_id and s.member_id != self.swim.id}
                )
                if not unowned:
                    break
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"{self.swim.id} released everything, but shards {unowned} are not held by another "
                        f"member after {timeout_s:g} s (are the others up and in the majority?); it stays "
                        "draining"
                    )
                self.swim.announce()  # a datagram may have been lost
                await asyncio.sleep(POLL_S)
            return pb.DrainResponse(
                member_id=self.swim.id, released_shard_ids=held, seconds=time.monotonic() - started
            )

    async def undrain(self, timeout_s: float) -> pb.UndrainResponse:
        """Back in service: returns once this node holds the shards the ring gives it."""
        timeout_s = timeout_s or DEFAULT_TIMEOUT_S
        started = time.monotonic()
        deadline = started + timeout_s
        async with self._lock:
            self.swim.set_draining(False, announce=True)
            self._poke()
            while True:
                quorate, _ = self.swim.quorum()
                want = self.placement.shards_of(self.swim.id) if quorate else []
                held = self._held()
                if quorate and held == sorted(want):
                    break
                if time.monotonic() > deadline:
                    raise DeadlineExceeded(
                        f"{self.swim.id} is back in service but holds {held} of its shards {sorted(want)} "
                        f"after {timeout_s:g} s"
                    )
                await asyncio.sleep(POLL_S)
            return pb.UndrainResponse(
                member_id=self.swim.id, shard_ids=held, seconds=time.monotonic() - started
            )
