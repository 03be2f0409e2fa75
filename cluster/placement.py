"""Placement: which member owns a history shard or a task-queue partition, from consistent-hash rings.

One `uhashring` ring per role, built from the members in the ring (alive or suspect) that have the role,
each with virtual nodes, so a member joining or leaving moves only about 1/n of the keys. Every node
computes the same rings from the same membership view; while views differ, the range-id fence keeps two
owners from both writing.
"""

from __future__ import annotations

from collections.abc import Iterable

from uhashring import HashRing

from hourglass.cluster.membership.members import Member

VNODES = 64


def partition_key(namespace_id: str, name: str, task_type: int, partition: int = 0) -> str:
    return f"tq/{namespace_id}/{task_type}/{partition}/{name}"


class Placement:
    def __init__(self, shard_count: int, vnodes: int = VNODES) -> None:
        self.shard_count = shard_count
        self.vnodes = vnodes
        self._rings: dict[str, HashRing | None] = {"history": None, "matching": None}
        self.members: dict[str, Member] = {}

    def update(self, members: Iterable[Member]) -> bool:
        """Rebuild the rings from a membership view; answers whether any ring's member set changed."""
        live = {m.id: m for m in members if m.in_ring}
        changed = False
        for role in self._rings:
            ids = sorted(i for i, m in live.items() if role in m.roles)
            ring = self._rings[role]
            old = sorted(ring.get_nodes()) if ring is not None else []
            if ids != old:
                changed = True
                self._rings[role] = HashRing(nodes=ids, vnodes=self.vnodes) if ids else None
        self.members = live
        return changed

    def _owner(self, role: str, key: str) -> str | None:
        ring = self._rings[role]
        return ring.get_node(key) if ring is not None else None

    def shard_owner(self, shard_id: int) -> str | None:
        return self._owner("history", f"shard/{shard_id}")

    def partition_owner(self, namespace_id: str, name: str, task_type: int, partition: int = 0) -> str | None:
        return self._owner("matching", partition_key(namespace_id, name, task_type, partition))

    def shards_of(self, member_id: str) -> list[int]:
        return [s for s in range(self.shard_count) if self.shard_owner(s) == member_id]

    def shard_map(self) -> dict[int, str | None]:
        return {s: self.shard_owner(s) for s in range(self.shard_count)}
