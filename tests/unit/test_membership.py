"""SWIM membership: the precedence of claims, the quorum rule, and small real clusters over UDP."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from hourglass.cluster.membership.keyring import Keyring
from hourglass.cluster.membership.members import Member, MemberState, overrides, quorum
from hourglass.cluster.membership.swim import Swim, SwimConfig

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


def test_claim_precedence_follows_swim():
    assert overrides(A, 2, A, 1) and not overrides(A, 1, A, 1)
    assert overrides(S, 1, A, 1) and not overrides(S, 0, A, 1)
    assert overrides(A, 2, S, 1) and not overrides(A, 1, S, 1)  # only a higher incarnation refutes
    assert overrides(D, 1, S, 1) and overrides(D, 1, A, 1) and not overrides(D, 5, D, 1)
    assert overrides(A, 2, D, 1) and not overrides(A, 1, D, 1)  # a new life comes back from the dead
    assert overrides(L, 1, A, 1) and not overrides(A, 1, L, 1) and overrides(A, 2, L, 1)
    assert not overrides(S, 9, L, 1)


def test_quorum_is_a_strict_majority_of_known_members():
    assert quorum(1, 0)  # a single node
    assert quorum(3, 1) and not quorum(3, 0)
    assert not quorum(2, 0) and quorum(2, 1)
    assert quorum(5, 2) and not quorum(5, 1)


def _free_udp_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _cluster(n: int) -> list[Swim]:
    ports = _free_udp_ports(n)
    seeds = tuple(f"127.0.0.1:{p}" for p in ports)
    keyring = Keyring([os.urandom(32)])
    return [
        Swim(
            SwimConfig(
                port=p,
                seeds=seeds,
                rpc_address=f"127.0.0.1:{p + 1}",
                probe_interval_s=0.1,
                probe_timeout_s=0.05,
                suspicion_timeout_s=0.6,
                sync_interval_s=0.5,
                keyring=keyring,
            )
        )
        for p in ports
    ]


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _state(swim: Swim, member_id: str) -> MemberState | None:
    m = swim.members.get(member_id)
    return m.state if m else None


@pytest.mark.timeout(60)
async def test_members_converge_and_detect_a_silent_member():
    nodes = _cluster(3)
    for node in nodes:
        await node.start()
    try:
        await _until(lambda: all(len(n.live_members()) == 3 for n in nodes))
        assert all(n.quorum()[0] for n in nodes)
        assert {m.rpc_address for m in nodes[0].members.values()} == {n.me.rpc_address for n in nodes}
        victim = nodes[2]
        await victim.stop(leave=False)  # like kill -9: no goodbye
        await _until(lambda: all(_state(n, victim.id) == D for n in nodes[:2]))
        assert all(n.quorum()[0] for n in nodes[:2])  # 2 of 3 is still a majority
    finally:
        for node in nodes[:2]:
            await node.stop()


@pytest.mark.timeout(60)
async def test_a_member_cut_off_from_gossip_loses_quorum_and_comes_back_with_a_new_incarnation():
    nodes = _cluster(3)
    for node in nodes:
        await node.start()
    try:
        await _until(lambda: all(len(n.live_members()) == 3 for n in nodes))
        cut = nodes[0]
        _, epoch_before = cut.quorum()
        incarnation_before = cut.me.incarnation
        cut.blocked = True
        await _until(lambda: not cut.quorum()[0])
        await _until(lambda: all(_state(n, cut.id) == D for n in nodes[1:]))
        assert all(n.quorum()[0] for n in nodes[1:])
        cut.blocked = False
        await _until(lambda: all(_state(n, cut.id) == A for n in nodes[1:]))
        await _until(lambda: cut.quorum()[0])
        assert cut.quorum()[1] > epoch_before  # what it held before the cut is never written again
        assert cut.me.incarnation > incarnation_before  # it refuted its death
    finally:
        for node in nodes:
            await node.stop()


@pytest.mark.timeout(60)
async def test_a_leaving_member_is_removed_at_once_and_does_not_count_for_quorum():
    nodes = _cluster(3)
    for node in nodes:
        await node.start()
    try:
        await _until(lambda: all(len(n.live_members()) == 3 for n in nodes))
        await nodes[2].stop(leave=True)
        await _until(lambda: all(_state(n, nodes[2].id) == L for n in nodes[:2]), timeout=2.0)
        await nodes[1].stop(leave=False)
        # 1 of the 2 remaining known members: not a majority.
        await _until(lambda: not nodes[0].quorum()[0])
    finally:
        await nodes[0].stop()


async def test_a_stalled_process_starts_a_new_epoch():
    swim = Swim(
        SwimConfig(
            port=_free_udp_ports(1)[0],
            suspicion_timeout_s=0.4,
            probe_interval_s=0.1,
            keyring=Keyring([os.urandom(32)]),
        )
    )
    await swim.start()
    try:
        quorate, epoch = swim.quorum()
        assert quorate
        time.sleep(0.5)  # noqa: ASYNC251 -- the event loop is blocked, as under SIGSTOP
        assert swim.quorum()[1] > epoch
    finally:
        await swim.stop()


def test_member_wire_round_trip():
    m = Member("10.0.0.1:7946", 7, S, ("history",), "10.0.0.1:7234", "10.0.0.1:7233")
    back = Member.from_wire(m.to_wire())
    assert (back.id, back.incarnation, back.state, back.roles, back.rpc_address, back.frontend_address) == (
        m.id,
        7,
        S,
        ("history",),
        "10.0.0.1:7234",
        "10.0.0.1:7233",
    )


async def test_stop_ends_a_loop_that_swallowed_its_cancellation():
    """On Python 3.11 a wait_for whose future completes just as the cancel arrives returns the result and
    swallows the cancel (a probe whose ack lands then): that loop went on, and stop() (so a node's
    shutdown, and a test's teardown) waited for it forever. stop() cancels again until every loop ends."""
    (swim,) = _cluster(1)
    await swim.start()
    swallowed = asyncio.Event()

    async def loop_that_swallows_one_cancel() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.Event().wait()  # goes on, as the probe loop did, until cancelled again

    swim._tasks.append(asyncio.create_task(loop_that_swallows_one_cancel()))
    await asyncio.sleep(0)
    await asyncio.wait_for(swim.stop(leave=False), 5)
    assert swallowed.is_set()
    assert all(t.done() for t in swim._tasks)


def test_draining_travels_on_the_wire_and_takes_a_member_out_of_the_rings_only():
    m = Member("127.0.0.1:1", 5, A, draining=True)
    wire = m.to_wire()
    assert wire["drain"] is True and Member.from_wire(wire).draining
    assert "drain" not in Member("127.0.0.1:1", 5, A).to_wire()  # an older node reads the same as before
    assert m.alive and not m.in_ring
    assert not Member("127.0.0.1:1", 5, S, draining=True).in_ring
    assert Member("127.0.0.1:1", 5, S).in_ring


@pytest.mark.timeout(60)
async def test_a_draining_member_leaves_every_ring_keeps_the_majority_and_comes_back():
    from hourglass.cluster.placement import Placement

    nodes = _cluster(3)
    for node in nodes:
        await node.start()
    try:
        await _until(lambda: all(len(n.live_members()) == 3 for n in nodes))
        drained = nodes[2]
        drained.set_draining(True)
        await _until(lambda: all(n.members[drained.id].draining for n in nodes))
        for n in nodes:
            placement = Placement(16)
            placement.update(n.members.values())
            assert placement.shards_of(drained.id) == []  # every view gives it nothing
            assert sorted(m.id for m in n.live_members()) == sorted(x.id for x in nodes)  # still a member
        await asyncio.sleep(1.0)  # several suspicion periods: it is still probed, alive, and counted
        assert all(_state(n, drained.id) == A for n in nodes) and all(n.quorum()[0] for n in nodes)
        drained.set_draining(False)
        await _until(lambda: not any(n.members[drained.id].draining for n in nodes))
        placement = Placement(16)
        placement.update(nodes[0].members.values())
        assert placement.shards_of(drained.id)
    finally:
        for node in nodes:
            await node.stop()
