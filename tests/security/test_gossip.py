"""Gossip attacks of issue 13, against real SWIM nodes on 127.0.0.1 over UDP.

Each attack is first sent as the old code accepted it (plain JSON, no key): on 4007caf the forged
members joined and, declared dead, made every node non-quorate; the forged alive moved node 1's RPC
address for good; the forged left made node 1 leave; the spoofed sync and ping-req sent the member table
and a ping to the victim's address. Now all of it is dropped unread and counted. The same claims are then
sent sealed with the cluster's key (as a confused or compromised member would) to show the protocol
itself holds: rumoured members are not members until they answer, a node refutes any false claim about
itself, and nothing is reflected at an address that is not a verified member.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, load_config
from hourglass.cluster.membership.keyring import (
    Keyring,
    KeyringError,
    Rejected,
    generate_key,
    parse_keyring,
)
from hourglass.cluster.membership.members import Member, MemberState
from hourglass.cluster.membership.replay import ReplayGuard, stamp
from hourglass.cluster.membership.swim import Swim, SwimConfig

A, S, D, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT
K1, K2, K3 = os.urandom(32), os.urandom(32), os.urandom(32)
pytestmark = pytest.mark.timeout(60)


# ---- helpers ---------------------------------------------------------------------------------------------
def _free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _nodes(n: int, keyrings: list[Keyring] | None = None, **overrides) -> list[Swim]:
    ports = _free_udp_ports(n)
    seeds = tuple(f"127.0.0.1:{p}" for p in ports)
    keyrings = keyrings or [Keyring([K1]) for _ in ports]
    settings = dict(probe_interval_s=0.1, probe_timeout_s=0.05, suspicion_timeout_s=0.6, sync_interval_s=0.5)
    settings.update(overrides)
    return [
        Swim(SwimConfig(port=p, seeds=seeds, rpc_address=f"127.0.0.1:{p + 1}", keyring=ring, **settings))
        for p, ring in zip(ports, keyrings, strict=True)
    ]


@contextlib.asynccontextmanager
async def _running(nodes: list[Swim]):
    for node in nodes:
        await node.start()
    try:
        yield nodes
    finally:
        for node in nodes:
            if node._transport is not None and not node._transport.is_closing():
                await node.stop(leave=False)


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _always(predicate, seconds: float) -> None:
    """The predicate holds at every sample for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate()
        await asyncio.sleep(0.02)


def _converged(nodes: list[Swim]) -> bool:
    ids = {n.id for n in nodes}
    return all(
        set(n.members) == ids and all(m.state == A for m in n.members.values()) and n.quorum()[0]
        for n in nodes
    )


def _whole(nodes: list[Swim]) -> bool:
    """What `_always` checks: every node sees exactly these members, none dead or gone, and is quorate (a
    member briefly suspect on a loaded machine is not a failure; one cut off is dead within 0.7 s)."""
    ids = {n.id for n in nodes}
    return all(
        set(n.members) == ids and all(m.in_ring for m in n.members.values()) and n.quorum()[0] for n in nodes
    )


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("hourglass_gossip_datagrams_rejected_total", {"reason": reason}) or 0.0


def _plain(msg: dict) -> bytes:
    """A datagram in the old wire format (JSON in the clear), as an attacker without the key sends it."""
    return json.dumps(msg).encode()


def _sealed(ring: Keyring, msg: dict, at_ms: int | None = None) -> bytes:
    return ring.seal(stamp(json.dumps(msg).encode(), at_ms))


@contextlib.contextmanager
def _udp_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _send(sock: socket.socket, node: Swim, data: bytes) -> None:
    sock.sendto(data, ("127.0.0.1", node.config.port))


async def _receive(sock: socket.socket, seconds: float) -> bytes | None:
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536), seconds)
    except TimeoutError:
        return None


def _addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def _claim(member: Member, **changes) -> dict:
    wire = member.to_wire()
    wire.update(changes)
    return wire


# ---- attack 1: unknown members -----------------------------------------------------------------------
async def test_forged_unknown_members_never_count_toward_the_majority():
    async with _running(_nodes(3)) as nodes:
        await _until(lambda: _converged(nodes))
        fakes = [
            {"id": f"127.0.0.1:{p}", "inc": 1, "state": "alive", "roles": ["history"]}
            for p in _free_udp_ports(3)
        ]
        sync = {"t": "sync", "from": "127.0.0.1:1", "members": fakes, "reply": False, "upd": fakes}
        before = _rejected("malformed")
        with _udp_socket() as attacker:
            _send(attacker, nodes[0], _plain(sync))
            await _until(lambda: _rejected("malformed") > before)
            # Sealed with the key: a rumour, so only pinged; they never answer and are never members.
            _send(attacker, nodes[0], _sealed(nodes[0].keyring, sync))
            await _until(lambda: len(nodes[0].candidates) == 3)
            await _always(lambda: _whole(nodes), 1.5)  # 0.6 s would have declared them dead
        assert not nodes[0].candidates  # given up on
        assert all(f["id"] not in n.members for n in nodes for f in fakes)


# ---- attack 2: forged alive with another RPC address; refutation -------------------------------------
async def test_forged_alive_with_another_rpc_address_is_dropped_and_refuted():
    async with _running(_nodes(3)) as nodes:
        await _until(lambda: _converged(nodes))
        target, truth = nodes[1], nodes[1].me.rpc_address
        view = nodes[0].members[target.id]
        forged = _claim(view, inc=target.me.incarnation + 1, rpc="127.0.0.1:9")
        msg = {"t": "sync", "from": "127.0.0.1:1", "members": [forged], "reply": False, "upd": [forged]}
        with _udp_socket() as attacker:
            _send(attacker, nodes[0], _plain(msg))
            await _always(lambda: nodes[0].members[target.id].rpc_address == truth, 0.5)
            # Sealed: node 0 believes it for a moment, node 1 hears it and refutes with a new incarnation.
            _send(attacker, nodes[0], _sealed(nodes[0].keyring, msg))
            await _until(lambda: target.me.incarnation > forged["inc"])
        await _until(
            lambda: all(
                n.members[target.id].rpc_address == truth and n.members[target.id].incarnation > forged["inc"]
                for n in nodes
            )
        )
        assert _converged(nodes)


# ---- attack 3: forged left ---------------------------------------------------------------------------
async def test_forged_left_is_dropped_and_refuted():
    async with _running(_nodes(3)) as nodes:
        await _until(lambda: _converged(nodes))
        target = nodes[1]
        forged = _claim(nodes[0].members[target.id], inc=target.me.incarnation + 1, state="left")
        msg = {"t": "sync", "from": target.id, "members": [forged], "reply": False, "upd": [forged]}
        with _udp_socket() as attacker:
            for _ in range(5):
                _send(attacker, nodes[0], _plain(msg))
            await _always(lambda: nodes[0].members[target.id].state == A, 0.5)
            _send(attacker, nodes[0], _sealed(nodes[0].keyring, msg))
            await _until(lambda: target.me.incarnation > forged["inc"])
        await _until(lambda: _converged(nodes))


# ---- attack 4: reflection through sync and ping_req ----------------------------------------------------
async def test_spoofed_sync_and_ping_req_reflect_nothing_at_a_victim():
    async with _running(_nodes(3)) as nodes:
        await _until(lambda: _converged(nodes))
        with _udp_socket() as victim, _udp_socket() as attacker:
            sync = {"t": "sync", "from": _addr(victim), "members": [], "reply": True}
            ping_req = {"t": "ping_req", "from": _addr(attacker), "seq": 1, "target": _addr(victim)}
            _send(attacker, nodes[0], _plain(sync))
            _send(attacker, nodes[0], _plain(ping_req))
            assert await _receive(victim, 1.0) is None
            # Sealed (a key holder): still no ping at an address that is not a verified member.
            _send(attacker, nodes[0], _sealed(nodes[0].keyring, {**ping_req, "seq": 2}))
            assert await _receive(victim, 1.0) is None


# ---- keys, replay, staleness ---------------------------------------------------------------------------
async def test_datagrams_with_a_wrong_key_or_tampered_are_dropped():
    async with _running(_nodes(1)) as (node,):
        with _udp_socket() as peer:
            ping = {"t": "ping", "from": _addr(peer), "seq": 1}
            unknown, invalid = _rejected("unknown_key"), _rejected("invalid")
            _send(peer, node, _sealed(Keyring([K2]), ping))
            tampered = bytearray(_sealed(node.keyring, ping))
            tampered[-1] ^= 1
            _send(peer, node, bytes(tampered))
            assert await _receive(peer, 0.5) is None
            assert (_rejected("unknown_key"), _rejected("invalid")) == (unknown + 1, invalid + 1)
            _send(peer, node, _sealed(node.keyring, ping))  # the same ping, sealed right, is answered
            assert _ack_seq(node.keyring, await _receive(peer, 2.0)) == 1


async def test_a_replayed_datagram_is_dropped():
    async with _running(_nodes(1)) as (node,):
        with _udp_socket() as peer:
            datagram = _sealed(node.keyring, {"t": "ping", "from": _addr(peer), "seq": 7})
            _send(peer, node, datagram)
            assert _ack_seq(node.keyring, await _receive(peer, 2.0)) == 7
            replayed = _rejected("replayed")
            _send(peer, node, datagram)
            assert await _receive(peer, 0.5) is None
            assert _rejected("replayed") == replayed + 1


async def test_a_datagram_with_a_stale_or_future_timestamp_is_dropped():
    async with _running(_nodes(1)) as (node,):
        with _udp_socket() as peer:
            stale = _rejected("stale")
            now = int(time.time() * 1000)
            for at_ms in (now - 31_000, now + 31_000):
                _send(peer, node, _sealed(node.keyring, {"t": "ping", "from": _addr(peer), "seq": 1}, at_ms))
            assert await _receive(peer, 0.5) is None
            assert _rejected("stale") == stale + 2
            _send(
                peer, node, _sealed(node.keyring, {"t": "ping", "from": _addr(peer), "seq": 2}, now - 20_000)
            )
            assert _ack_seq(node.keyring, await _receive(peer, 2.0)) == 2  # within the 30 s window


def _ack_seq(ring: Keyring, datagram: bytes | None) -> int:
    assert datagram is not None, "no answer"
    _, plaintext = ring.open(datagram)
    msg = json.loads(plaintext[8:])
    assert msg["t"] == "ack"
    return msg["seq"]


async def test_a_node_with_only_an_unknown_key_never_joins():
    nodes = _nodes(4, keyrings=[Keyring([K1]), Keyring([K1]), Keyring([K1]), Keyring([K3])])
    async with _running(nodes):
        await _until(lambda: _converged(nodes[:3]))
        await _always(lambda: _whole(nodes[:3]) and set(nodes[3].members) == {nodes[3].id}, 1.5)
        assert _rejected("unknown_key") > 0


async def test_keys_rotate_without_a_gap(tmp_path):
    files = [tmp_path / f"node{i}.keyring" for i in range(3)]
    k1, k2 = generate_key(), generate_key()
    for f in files:
        f.write_text(f"# the cluster key\n{k1}\n")
    nodes = _nodes(3, keyrings=[Keyring.from_file(f) for f in files])
    async with _running(nodes):
        await _until(lambda: _converged(nodes))
        steps = [
            [f"{k1}\n{k2}\n"] * 3,  # 1. add the new key everywhere (still sealing with k1)
            [f"{k2}\n{k1}\n", f"{k1}\n{k2}\n", f"{k1}\n{k2}\n"],  # 2. node by node, make it primary
            [f"{k2}\n{k1}\n"] * 3,
            [f"{k2}\n"] * 3,  # 3. drop the old key
        ]
        for texts in steps:
            for f, text in zip(files, texts, strict=True):
                f.write_text(text)
            # Reloads happen within ~1 s; the cluster stays whole through every step and in between.
            await _always(lambda: _whole(nodes), 1.6)
        assert all(n.keyring.key_ids == Keyring(parse_keyring(k2)).key_ids for n in nodes)
        with _udp_socket() as peer:  # the old key is refused now
            before = _rejected("unknown_key")
            _send(
                peer,
                nodes[0],
                _sealed(Keyring(parse_keyring(k1)), {"t": "ping", "from": _addr(peer), "seq": 1}),
            )
            await _until(lambda: _rejected("unknown_key") > before)


# ---- dead members leave the table --------------------------------------------------------------------
async def test_a_dead_member_is_reaped_after_its_timeout_and_can_join_again():
    nodes = _nodes(3, dead_member_timeout_s=1.5)
    async with _running(nodes):
        await _until(lambda: _converged(nodes))
        gone = nodes[2]
        port = gone.config.port
        await gone.stop(leave=False)
        await _until(lambda: all(n.members[gone.id].state == D for n in nodes[:2]))
        dead_at = time.monotonic()
        await _until(lambda: all(gone.id not in n.members for n in nodes[:2]), timeout=5)
        assert time.monotonic() - dead_at >= 1.0  # not before its timeout
        assert all(n.quorum()[0] for n in nodes[:2])
        back = Swim(
            SwimConfig(
                port=port,
                seeds=gone.config.seeds,
                rpc_address=gone.me.rpc_address,
                keyring=Keyring([K1]),
                probe_interval_s=0.1,
                probe_timeout_s=0.05,
                suspicion_timeout_s=0.6,
                sync_interval_s=0.5,
            )
        )
        nodes[2] = back
        await back.start()
        await _until(lambda: _converged(nodes))


def test_the_replay_memory_is_bounded_and_forgets_what_the_window_already_rejects():
    guard = ReplayGuard(window_s=30, max_entries=3)
    now = 1_000_000_000
    for i in range(5):
        assert guard.check(bytes([i]) * 12, stamp(b"m", now), at_ms=now) == b"m"
    assert len(guard) == 3
    with pytest.raises(Rejected, match="replayed"):
        guard.check(bytes([4]) * 12, stamp(b"m", now), at_ms=now + 30_000)
    guard.check(bytes([9]) * 12, stamp(b"m", now + 31_000), at_ms=now + 31_000)
    assert len(guard) == 1  # the others are past the window: the timestamp alone refuses them now
    with pytest.raises(Rejected, match="stale"):
        guard.check(bytes([4]) * 12, stamp(b"m", now), at_ms=now + 31_000)


# ---- keyring file, config and CLI ----------------------------------------------------------------------
def test_keyring_file_errors_name_the_file_and_line(tmp_path):
    f = tmp_path / "gossip.keyring"
    f.write_text(f"# comment\n{generate_key()}\nnot-a-key\n")
    with pytest.raises(KeyringError, match=r"gossip.keyring line 3: not a base64 32-byte key"):
        Keyring.from_file(f)
    f.write_text("# nothing\n")
    with pytest.raises(KeyringError, match="holds no key"):
        Keyring.from_file(f)
    with pytest.raises(KeyringError, match="cannot read the gossip keyring"):
        Keyring.from_file(tmp_path / "missing")


def test_a_broken_keyring_file_keeps_the_keys_in_use(tmp_path):
    f = tmp_path / "gossip.keyring"
    f.write_text(generate_key() + "\n")
    ring = Keyring.from_file(f)
    sealed = ring.seal(b"x")
    f.write_text("half-written")
    assert not ring.reload_if_changed(now=time.monotonic() + 2)
    assert ring.open(sealed)[1] == b"x"
    with pytest.raises(Rejected, match="malformed"):
        ring.open(b"{}")


def test_cluster_mode_requires_a_gossip_keyring(tmp_path):
    f = tmp_path / "node.yaml"
    f.write_text("store: {kind: sqlite}\ncluster: {seeds: []}\n")
    with pytest.raises(
        ConfigError, match=r"cluster\.gossip_keyring_file is required.*hourglass cluster gossip-key"
    ):
        load_config(f)
    f.write_text(
        "store: {kind: sqlite}\ncluster: {gossip_keyring_file: /etc/hourglass/gossip.keyring}\n"
        "tls: {internode: {server: {cert_file: m.crt, key_file: m.key, client_ca_files: [ca.pem], "
        "require_client_auth: true}}}\n"
    )
    assert load_config(f).cluster.dead_member_timeout_s == 3600


def test_gossip_key_command_prints_a_usable_key():
    result = CliRunner().invoke(main, ["cluster", "gossip-key"])
    assert result.exit_code == 0
    assert len(parse_keyring(result.output)) == 1
