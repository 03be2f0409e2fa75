"""Placement rings: every shard has exactly one owner with the role, and membership changes move little."""

from __future__ import annotations

from hourglass.cluster.membership.members import Member, MemberState
from hourglass.cluster.placement import Placement


def _members(*specs):
    return [Member(f"10.0.0.{i}:7946", roles=roles, state=state) for i, roles, state in specs]


ALL = ("frontend", "history", "matching")


def test_every_shard_has_exactly_one_owner_among_members_with_the_role():
    p = Placement(64)
    p.update(
        _members(
            (1, ALL, MemberState.ALIVE),
            (2, ("history",), MemberState.SUSPECT),
            (3, ("frontend", "matching"), MemberState.ALIVE),
            (4, ALL, MemberState.DEAD),
        )
    )
    owners = p.shard_map()
    assert set(owners) == set(range(64))
    assert set(owners.values()) == {"10.0.0.1:7946", "10.0.0.2:7946"}  # no frontend/matching-only, no dead
    assert sorted(p.shards_of("10.0.0.1:7946") + p.shards_of("10.0.0.2:7946")) == list(range(64))
    tq_owners = {p.partition_owner("ns", f"q{i}", 1) for i in range(50)}
    assert tq_owners == {"10.0.0.1:7946", "10.0.0.3:7946"}


def test_a_member_leaving_moves_only_its_own_shards():
    p = Placement(256)
    members = _members(*[(i, ALL, MemberState.ALIVE) for i in range(1, 5)])
    p.update(members)
    before = p.shard_map()
    members[3].state = MemberState.DEAD
    assert p.update(members)
    after = p.shard_map()
    moved = {s for s in before if before[s] != after[s]}
    assert moved == {s for s, owner in before.items() if owner == "10.0.0.4:7946"}
    assert not p.update(members)  # same view: nothing changes


def test_no_member_with_the_role_means_no_owner():
    p = Placement(4)
    p.update(_members((1, ("frontend",), MemberState.ALIVE)))
    assert p.shard_owner(0) is None and p.partition_owner("ns", "q", 1) is None
