"""Members and the SWIM rules that decide which of two claims about a member wins.

A claim is (state, incarnation). Only the member itself raises its incarnation, to refute a suspicion or
to come back after being declared dead; everyone else repeats what they heard. The precedence below is
the one from the SWIM paper (with Lifeguard's "left" for a graceful leave), so every node applying the
same claims in any order ends with the same view.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class MemberState(enum.StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


ROLES = ("frontend", "history", "matching")


@dataclass
class Member:
    """A node as this node sees it. `id` is its gossip address, "host:port"."""

    id: str
    incarnation: int = 0
    state: MemberState = MemberState.ALIVE
    roles: tuple[str, ...] = ROLES
    rpc_address: str = ""
    frontend_address: str = ""
    # Set by the member itself (`hourglass cluster drain`): it stays a member, answers as a router and
    # counts toward the majority, but the rings give it nothing, so its shards and partitions move away.
    draining: bool = False
    # Local bookkeeping, not gossiped: monotonic time of the last state change seen here.
    changed_at: float = field(default=0.0, compare=False)

    @property
    def alive(self) -> bool:
        """Running as far as this node knows (suspects included): probed, synced with, asked for status."""
        return self.state in (MemberState.ALIVE, MemberState.SUSPECT)

    @property
    def in_ring(self) -> bool:
        """Suspects stay in the rings: moving shards on every missed probe would churn for nothing. A
        draining member does not: it is handing everything over."""
        return self.alive and not self.draining

    def to_wire(self) -> dict:
        wire = {
            "id": self.id,
            "inc": self.incarnation,
            "state": self.state.value,
            "roles": list(self.roles),
            "rpc": self.rpc_address,
            "fe": self.frontend_address,
        }
        if self.draining:  # only when set: a node of an older version reads the same message as before
            wire["drain"] = True
        return wire

    @staticmethod
    def from_wire(d: dict) -> Member:
        return Member(
            id=str(d["id"]),
            incarnation=int(d["inc"]),
            state=MemberState(d["state"]),
            roles=tuple(d.get("roles") or ()),
            rpc_address=str(d.get("rpc", "")),
            frontend_address=str(d.get("fe", "")),
            draining=d.get("drain") is True,
        )


def overrides(new_state: MemberState, new_inc: int, old_state: MemberState, old_inc: int) -> bool:
    """Whether the claim (new_state, new_inc) replaces what is known, (old_state, old_inc)."""
    if old_state == MemberState.LEFT:
        # A member that left comes back only as a new life (a higher incarnation, alive).
        return new_state == MemberState.ALIVE and new_inc > old_inc
    if new_state == MemberState.LEFT:
        return new_inc >= old_inc
    if new_state == MemberState.ALIVE:
        return new_inc > old_inc
    if new_state == MemberState.SUSPECT:
        if old_state == MemberState.ALIVE:
            return new_inc >= old_inc
        return old_state == MemberState.SUSPECT and new_inc > old_inc
    # DEAD
    if old_state == MemberState.DEAD:
        return False
    return new_inc >= old_inc


def quorum(n_known: int, n_reachable_peers: int) -> bool:
    """A node may own shards only while it and the peers it heard from recently are a strict majority of
    the members known (dead ones included; left ones not): the minority side of a partition, or a node
    that was paused, stops writing before the majority takes its shards over."""
    return (1 + n_reachable_peers) * 2 > max(n_known, 1)
