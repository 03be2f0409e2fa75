"""SWIM failure detection and gossip over UDP (asyncio), written for Hourglass.

Each probe period this node pings one member (round robin over a shuffled list); without an ack within
`probe_timeout_s` it asks `indirect_probes` other members to ping it (ping-req); without any ack by the end
of the period the member becomes *suspect*. A suspect that does not refute (by gossiping itself alive with
a higher incarnation) within `suspicion_timeout_s` is declared *dead*. State changes ride on every message
(piggy-backed, each retransmitted about 3·log2(n) times), a periodic push-pull sync repairs anything lost,
and nodes not alive in the view (seeds included) are contacted so partitions heal and restarted nodes join.

It also answers the question a shard owner must ask before every write: "am I still on the majority side?"
(`quorum()`): only acks to pings this node sent count as contact, and a stall of the process (SIGSTOP, a
long pause) starts a new ownership epoch, so a node that was away never writes with what it held before.

Gossip is authenticated, because the membership decides who writes what:
- every datagram is sealed with the cluster's keyring (`keyring.py`, AES-256-GCM) and carries its
  sender's clock (`replay.py`); anything that does not open, is stale or replayed is dropped and counted
  in hourglass_gossip_datagrams_rejected_total{reason};
- a member enters the view only once verified: heard from directly (its own entry in a datagram from its
  own address, or the ack to a ping this node sent it). A third party's rumour about an unknown member
  only makes this node ping it; unverified claims are in no ring and do not count toward the majority;
- a node refutes any claim about itself that is not what it is (state, addresses, roles);
- dead (and left) members are forgotten after `dead_member_timeout_s`;
- `sync` replies go to authenticated senders only, and ping-req relays only to verified members, so the
  port cannot be used to reflect traffic at a third party.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hourglass.cluster.membership.keyring import Keyring, Rejected
from hourglass.cluster.membership.members import ROLES, Member, MemberState, overrides, quorum
from hourglass.cluster.membership.replay import DEFAULT_WINDOW_S, ReplayGuard, stamp
from hourglass.cluster.metrics import GOSSIP_DATAGRAMS_REJECTED

log = logging.getLogger(__name__)

MAX_UPDATES_PER_MESSAGE = 12
TICK_S = 0.1
# Rumoured members being verified at once; more wait for a later rumour (bounded memory and pings).
MAX_CANDIDATES = 256
# Rejected datagrams are logged at debug level each, and as one warning per reason at most this often.
REJECTION_WARNING_INTERVAL_S = 60.0
_REJECTION_HINTS = {
    "unknown_key": "sealed with a key this node does not have: check cluster.gossip_keyring_file on every node",
    "invalid": "did not authenticate: forged or corrupted",
    "stale": "sender clock more than the replay window away from ours: check NTP, or old datagrams replayed",
    "replayed": "seen before",
    "malformed": "not a sealed gossip datagram (an old node, or not Hourglass gossip)",
}


@dataclass
class SwimConfig:
    bind_host: str = "127.0.0.1"
    port: int = 7946
    # What other members use to reach this one (defaults to bind_host).
    advertise_host: str = ""
    seeds: tuple[str, ...] = ()
    roles: tuple[str, ...] = ROLES
    rpc_address: str = ""
    frontend_address: str = ""
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 0.4
    indirect_probes: int = 2
    suspicion_timeout_s: float = 4.0
    sync_interval_s: float = 5.0
    # Seals and opens every datagram; required (gossip in the clear would let anyone rewrite membership).
    keyring: Keyring | None = None
    # How long a dead or left member stays in the table (and a dead one counts toward the majority).
    dead_member_timeout_s: float = 3600.0
    # Datagrams whose sender clock is further than this from ours are dropped (replay protection).
    replay_window_s: float = DEFAULT_WINDOW_S

    @property
    def member_id(self) -> str:
        return f"{self.advertise_host or self.bind_host}:{self.port}"


def _addr(member_id: str) -> tuple[str, int]:
    host, _, port = member_id.rpartition(":")
    return host, int(port)


def _same_address(addr, member_id: str) -> bool:
    try:
        return (addr[0], addr[1]) == _addr(member_id)
    except (ValueError, TypeError, IndexError):
        return False


@dataclass
class _Candidate:
    """A member known only by rumour, pinged until it answers (then it is a member) or given up."""

    claim: Member
    first_heard: float
    pinged_at: float = 0.0
    seq: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, swim: Swim) -> None:
        self.swim = swim

    def datagram_received(self, data: bytes, addr) -> None:
        self.swim._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable of a dead member: expected
        log.debug("gossip socket error: %s", exc)


Endpoint = Callable[
    [Callable[[], asyncio.DatagramProtocol], tuple[str, int]], Awaitable[asyncio.DatagramTransport]
]


async def udp_endpoint(
    protocol_factory: Callable[[], asyncio.DatagramProtocol], local_addr: tuple[str, int]
) -> asyncio.DatagramTransport:
    """The real transport: a UDP socket bound to `local_addr`."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        protocol_factory, local_addr=local_addr
    )
    return transport


class Swim:
    """One member. The keyword-only seams (clock, wall clock, randomness, transport) default to the real
    ones; `simulation.py` replaces them to run many members in one process in virtual time."""

    def __init__(
        self,
        config: SwimConfig,
        on_change: Callable[[], None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        endpoint: Endpoint = udp_endpoint,
    ) -> None:
        if config.keyring is None:
            raise ValueError("gossip needs a keyring (cluster.gossip_keyring_file)")
        self.config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = rng if rng is not None else random.Random()
        self._endpoint = endpoint
        self.keyring = config.keyring
        self._replay = ReplayGuard(config.replay_window_s)
        self.id = config.member_id
        self.on_change = on_change or (lambda: None)
        # A restarted process must outrank what the cluster remembers of its previous life.
        self.me = Member(
            id=self.id,
            incarnation=int(wall_clock() * 1000),
            roles=tuple(config.roles),
            rpc_address=config.rpc_address,
            frontend_address=config.frontend_address,
            changed_at=self._clock(),
        )
        # Verified members only (and this node): what the rings and the quorum are made of.
        self.members: dict[str, Member] = {self.id: self.me}
        self.candidates: dict[str, _Candidate] = {}
        self._verifying: dict[int, str] = {}  # seq of a verification ping -> the candidate pinged
        self._warned_at: dict[str, float] = {}
        # Test hook: drop every datagram sent or received (gossip cut off, the rest of the node running).
        self.blocked = False
        self._transport: asyncio.DatagramTransport | None = None
        self._seq = 0
        self._waiting: dict[int, tuple[asyncio.Future, float, str]] = {}
        self._relays: dict[int, tuple[str, int]] = {}
        self._broadcasts: dict[str, list] = {}
        self._acked_at: dict[str, float] = {}
        # When each member first appeared here: a member that just joined counts as reachable until we
        # had the time to probe it, so every join does not look like a lost majority.
        self._joined_at: dict[str, float] = {}
        self._probe_order: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self._last_tick = self._clock()
        self._quorate = True
        self.epoch = 0

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._transport = await self._endpoint(
            lambda: _Protocol(self), (self.config.bind_host, self.config.port)
        )
        self._queue_broadcast(self.me)
        self._quorate = self._compute_quorum()
        self._tasks = [
            asyncio.create_task(self._probe_loop()),
            asyncio.create_task(self._tick_loop()),
            asyncio.create_task(self._sync_loop()),
        ]
        self._sync_with_seeds()

    async def stop(self, leave: bool = True) -> None:
        """Stop gossiping; with `leave`, tell the others first so they move our shards at once."""
        if leave and self._transport is not None:
            self.me.incarnation += 1
            self.me.state = MemberState.LEFT
            for m in list(self.members.values()):
                if m.id != self.id and m.alive:
                    self._send(m.id, {"t": "sync", "members": [self.me.to_wire()], "reply": False})
        self._stopping = True
        # Cancelled again until done: on Python 3.11 a wait_for whose future completes as the cancel
        # arrives returns the result instead (the ack to a probe, say), and the loop would go on.
        pending = set(self._tasks)
        while pending:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        if self._transport is not None:
            self._transport.close()

    # ---- views -----------------------------------------------------------------------------------------
    def live_members(self) -> list[Member]:
        return [m for m in self.members.values() if m.alive]

    def set_draining(self, draining: bool, announce: bool = True) -> None:
        """Mark this node draining (the rings give it nothing) or back in service, as a new claim of its
        own (a higher incarnation, so it wins everywhere). With `announce`, every live member is told at
        once; without, the others hear it on the next gossip (the caller first releases what it holds)."""
        if self.me.draining != draining:
            self.me.incarnation += 1
            self.me.draining = draining
            self.me.changed_at = self._clock()
            self._queue_broadcast(self.me)
            log.info("membership: this node is %s", "draining" if draining else "back in service")
            self.on_change()
        if announce:
            self.announce()

    def announce(self) -> None:
        """Send this node's own entry to every live member now, rather than on the next probes."""
        for m in list(self.members.values()):
            if m.id != self.id and m.alive:
                self._send(m.id, {"t": "sync", "members": [self.me.to_wire()], "reply": False})

    def quorum(self) -> tuple[bool, int]:
        """(this node is on the majority side now, the ownership epoch). The epoch changes whenever the
        quorum was lost or the process stalled, even if it is back: what was owned before is stale."""
        now = self._clock()
        if now - self._last_tick > self.config.suspicion_timeout_s / 2:
            self._last_tick = now
            self.epoch += 1
            log.warning("membership: the process stalled; everything owned before is given up")
        q = self._compute_quorum(now)
        if self._quorate and not q:
            self.epoch += 1
            log.warning("membership: lost contact with the majority of the cluster")
        self._quorate = q
        return q, self.epoch

    def _compute_quorum(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        known = [m for m in self.members.values() if m.state != MemberState.LEFT]
        lease = self.config.suspicion_timeout_s
        reachable = sum(
            1
            for m in known
            if m.id != self.id
            and m.state != MemberState.DEAD
            and now - max(self._acked_at.get(m.id, -1e9), self._joined_at.get(m.id, -1e9)) < lease
        )
        return quorum(len(known), reachable)

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    # ---- sending ---------------------------------------------------------------------------------------
    def _send(self, member_id: str, msg: dict) -> None:
        if self.blocked or self._transport is None:
            return
        msg["from"] = self.id
        msg.setdefault("upd", self._piggyback(member_id))
        try:
            body = json.dumps(msg, separators=(",", ":")).encode()
            self._transport.sendto(self.keyring.seal(stamp(body, self._now_ms())), _addr(member_id))
        except (OSError, ValueError) as e:
            log.debug("cannot send to %s: %s", member_id, e)

    def _piggyback(self, to: str) -> list[dict]:
        out = [self.me.to_wire()]
        target = self.members.get(to)
        if target is not None and target.state in (MemberState.SUSPECT, MemberState.DEAD):
            out.append(target.to_wire())  # so a member we think is gone hears it, and refutes
        chosen = sorted(self._broadcasts.items(), key=lambda kv: kv[1][1], reverse=True)
        for member_id, entry in chosen[:MAX_UPDATES_PER_MESSAGE]:
            if member_id in (self.id, to):
                continue
            out.append(entry[0])
            entry[1] -= 1
            if entry[1] <= 0:
                del self._broadcasts[member_id]
        return out

    def _queue_broadcast(self, member: Member) -> None:
        n = max(len(self.members), 1)
        self._broadcasts[member.id] = [member.to_wire(), 3 * math.ceil(math.log2(n + 1)) + 1]

    # ---- receiving -------------------------------------------------------------------------------------
    def _open(self, data: bytes) -> dict:
        """The message of an authenticated, fresh, first-seen datagram, or Rejected."""
        nonce, plaintext = self.keyring.open(data)
        body = self._replay.check(nonce, plaintext, at_ms=self._now_ms())
        try:
            msg = json.loads(body)
            if not isinstance(msg, dict) or not isinstance(msg["from"], str) or not isinstance(msg["t"], str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise Rejected("malformed") from None
        return msg

    def _rejected(self, reason: str, addr) -> None:
        GOSSIP_DATAGRAMS_REJECTED.labels(reason).inc()
        log.debug("dropping a gossip datagram from %s: %s", addr, reason)
        now = self._clock()
        if now - self._warned_at.get(reason, -1e9) >= REJECTION_WARNING_INTERVAL_S:
            self._warned_at[reason] = now
            log.warning(
                "gossip: dropped a datagram from %s (%s: %s); hourglass_gossip_datagrams_rejected_total counts "
                "them all",
                addr,
                reason,
                _REJECTION_HINTS.get(reason, reason),
            )

    def _received(self, data: bytes, addr=None) -> None:
        if self.blocked:
            return
        try:
            msg = self._open(data)
        except Rejected as e:
            self._rejected(e.reason, addr)
            return
        sender, kind = msg["from"], msg["t"]
        try:
            # Whose own entry in this message is first-hand: the sender's, if the datagram came from the
            # sender's address or answers a verification ping this node sent to that address.
            vouched = None
            if addr is not None and _same_address(addr, sender):
                vouched = sender
            elif kind == "ack" and self._verifying.get(int(msg["seq"])) == sender:
                vouched = sender
            incarnation = self.me.incarnation
            for upd in msg.get("upd", ()):
                try:
                    claim = Member.from_wire(upd)
                except (KeyError, ValueError, TypeError):
                    log.debug("dropping a malformed member update")
                    continue
                self._apply(claim, direct=claim.id == vouched)
            if kind == "ping":
                self._send(sender, {"t": "ack", "seq": int(msg["seq"])})
            elif kind == "ack":
                self._on_ack(sender, int(msg["seq"]))
            elif kind == "ping_req":
                self._relay_probe(sender, int(msg["seq"]), str(msg["target"]))
            elif kind == "sync":
                for d in msg.get("members", ()):
                    with contextlib.suppress(KeyError, ValueError, TypeError):
                        claim = Member.from_wire(d)
                        self._apply(claim, direct=claim.id == vouched)
                if msg.get("reply"):
                    self._send(sender, {"t": "sync", "members": self._table(), "reply": False})
            if (
                self.me.incarnation > incarnation
                and kind != "ping"
                and not msg.get("reply")
                and sender in self.members
                and sender != self.id
            ):
                # This message made us refute a claim about us (a suspicion, say): its sender, who holds
                # the claim and may be the one whose timer would declare us dead, hears the answer now
                # (answers to pings and sync requests carry our entry already).
                self._send(sender, {"t": "sync", "members": [], "reply": False})
        except (KeyError, ValueError, TypeError):
            log.debug("dropping a malformed %s message from %s", kind, sender)

    def _on_ack(self, sender: str, seq: int) -> None:
        if self._verifying.get(seq) == sender:
            del self._verifying[seq]
        relay = self._relays.pop(seq, None)
        if relay is not None:  # we pinged on someone's behalf: tell them
            origin, origin_seq = relay
            self._send(origin, {"t": "ack", "seq": origin_seq})
        waiting = self._waiting.get(seq)
        if waiting is None:
            return
        fut, sent_at, target = waiting
        if sender == target:
            # Contact is measured from when OUR ping left, so datagrams queued while we were stopped
            # never make a paused node believe it is still in touch.
            self._acked_at[sender] = max(self._acked_at.get(sender, -1e9), sent_at)
        if not fut.done():
            fut.set_result(True)

    def _relay_probe(self, origin: str, origin_seq: int, target: str) -> None:
        if target == self.id or target not in self.members:
            log.debug("membership: not relaying a ping to %s, not a verified member", target)
            return
        self._seq += 1
        self._relays[self._seq] = (origin, origin_seq)
        self._send(target, {"t": "ping", "seq": self._seq})
        loop = asyncio.get_running_loop()
        loop.call_later(self.config.probe_interval_s * 2, self._relays.pop, self._seq, None)

    def _apply(self, claim: Member, direct: bool = False) -> None:
        """Merge one claim about a member into the view (SWIM precedence), refuting claims about us.
        `direct`: the claim is the member's own entry, heard from it first-hand (see `_received`)."""
        if claim.id == self.id:
            if self.me.state == MemberState.LEFT or claim.incarnation < self.me.incarnation:
                return
            if (
                claim.state,
                claim.rpc_address,
                claim.frontend_address,
                tuple(claim.roles),
                claim.draining,
            ) != (
                self.me.state,
                self.me.rpc_address,
                self.me.frontend_address,
                tuple(self.me.roles),
                self.me.draining,
            ):
                self.me.incarnation = claim.incarnation + 1
                log.info(
                    "membership: refuting a claim about this node (%s, rpc %r)",
                    claim.state,
                    claim.rpc_address,
                )
                self._queue_broadcast(self.me)
            return
        known = self.members.get(claim.id)
        if known is None:
            if not direct:
                self._consider(claim)
                return
            if claim.state != MemberState.ALIVE:
                return
            self._forget_candidate(claim.id)
            claim.changed_at = self._joined_at[claim.id] = self._clock()
            self.members[claim.id] = claim
            log.info("membership: %s joined (verified)", claim.id)
        elif overrides(claim.state, claim.incarnation, known.state, known.incarnation):
            state_changed = claim.state != known.state or claim.draining != known.draining
            known.draining = claim.draining
            known.incarnation = claim.incarnation
            known.state = claim.state
            known.roles = claim.roles
            known.rpc_address = claim.rpc_address or known.rpc_address
            known.frontend_address = claim.frontend_address or known.frontend_address
            if state_changed:
                known.changed_at = self._clock()
                log.info(
                    "membership: %s is %s%s (incarnation %d)",
                    claim.id,
                    claim.state,
                    ", draining" if claim.draining else "",
                    claim.incarnation,
                )
            else:
                self._queue_broadcast(known)
                return
        else:
            return
        self._queue_broadcast(self.members[claim.id])
        self.on_change()

    def _declare(self, member: Member, state: MemberState) -> None:
        self._apply(
            Member(
                member.id,
                member.incarnation,
                state,
                member.roles,
                member.rpc_address,
                member.frontend_address,
                member.draining,
            )
        )

    def _table(self) -> list[dict]:
        return [m.to_wire() for m in self.members.values()]

    # ---- verification of rumoured members ------------------------------------------------------------
    def _consider(self, claim: Member) -> None:
        """A rumour about a member this node does not know: ping it; it joins the view when it answers."""
        if claim.state not in (MemberState.ALIVE, MemberState.SUSPECT):
            return  # nothing to verify about a member we never knew that is gone
        candidate = self.candidates.get(claim.id)
        if candidate is not None:
            candidate.claim = claim
            return
        if len(self.candidates) >= MAX_CANDIDATES:
            log.debug("membership: too many members being verified; %s waits for a later rumour", claim.id)
            return
        try:
            _addr(claim.id)
        except ValueError:
            return
        self.candidates[claim.id] = candidate = _Candidate(claim, self._clock())
        self._ping_candidate(candidate)

    def _ping_candidate(self, candidate: _Candidate) -> None:
        self._verifying.pop(candidate.seq, None)
        self._seq += 1
        candidate.seq, candidate.pinged_at = self._seq, self._clock()
        self._verifying[candidate.seq] = candidate.claim.id
        self._send(candidate.claim.id, {"t": "ping", "seq": candidate.seq})

    def _forget_candidate(self, member_id: str) -> None:
        candidate = self.candidates.pop(member_id, None)
        if candidate is not None:
            self._verifying.pop(candidate.seq, None)

    def _verify_candidates(self, now: float) -> None:
        """Re-ping candidates every probe period; give up on those silent for a suspicion timeout."""
        for candidate in list(self.candidates.values()):
            if now - candidate.first_heard >= self.config.suspicion_timeout_s:
                log.info("membership: %s, known only by rumour, never answered; ignored", candidate.claim.id)
                self._forget_candidate(candidate.claim.id)
            elif now - candidate.pinged_at >= self.config.probe_interval_s:
                self._ping_candidate(candidate)

    def _reap(self, now: float) -> None:
        """Forget members dead or left for `dead_member_timeout_s`: until then a dead member still counts
        toward the majority (so the minority side of a partition stops writing); after, a member that was
        only partitioned away must join again (verified) like a new one."""
        reaped = [
            m.id
            for m in self.members.values()
            if m.id != self.id
            and m.state in (MemberState.DEAD, MemberState.LEFT)
            and now - m.changed_at >= self.config.dead_member_timeout_s
        ]
        for member_id in reaped:
            del self.members[member_id]
            for table in (self._acked_at, self._joined_at, self._broadcasts):
                table.pop(member_id, None)
            log.info(
                "membership: %s removed from the table (gone for %.0f s)",
                member_id,
                self.config.dead_member_timeout_s,
            )
        if reaped:
            self.on_change()

    # ---- loops -----------------------------------------------------------------------------------------
    def _next_probe_target(self) -> Member | None:
        candidates = {m.id for m in self.members.values() if m.id != self.id and m.alive}
        self._probe_order = [i for i in self._probe_order if i in candidates]
        if not self._probe_order:
            self._probe_order = sorted(candidates)  # then shuffled: the same order for the same seed
            self._rng.shuffle(self._probe_order)
        return self.members[self._probe_order.pop()] if self._probe_order else None

    async def _probe_loop(self) -> None:
        while not self._stopping:
            started = self._clock()
            target = self._next_probe_target()
            if target is not None:
                try:
                    await self._probe(target)
                except Exception:
                    log.exception("membership: probe of %s failed", target.id)
            await asyncio.sleep(max(self.config.probe_interval_s - (self._clock() - started), 0.01))

    async def _probe(self, target: Member) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._seq += 1
        seq = self._seq
        fut = loop.create_future()
        self._waiting[seq] = (fut, self._clock(), target.id)
        try:
            self._send(target.id, {"t": "ping", "seq": seq})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), cfg.probe_timeout_s)
                return
            helpers = [m for m in self.live_members() if m.id not in (self.id, target.id)]
            for helper in self._rng.sample(helpers, min(cfg.indirect_probes, len(helpers))):
                self._send(helper.id, {"t": "ping_req", "seq": seq, "target": target.id})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(fut), max(cfg.probe_interval_s - cfg.probe_timeout_s, 0.05)
                )
                return
            current = self.members.get(target.id)
            if current is not None and current.state == MemberState.ALIVE and not self.blocked:
                log.info("membership: %s did not answer, suspecting it", target.id)
                self._declare(current, MemberState.SUSPECT)
                # Told at once (as Lifeguard does), a live member refutes well within its suspicion timeout.
                # Gossip alone reaches it only once a member that heard of it sends it something: at a
                # hundred members, often later than the timeout (see simulation.py's figures).
                self._send(target.id, {"t": "sync", "members": [], "reply": False})
        finally:
            self._waiting.pop(seq, None)

    async def _tick_loop(self) -> None:
        """Suspicion timeouts, and the stall detector behind `quorum()`."""
        while not self._stopping:
            await asyncio.sleep(TICK_S)
            self.quorum()
            self._last_tick = self._clock()
            now = self._last_tick
            self.keyring.reload_if_changed(now)
            self._verify_candidates(now)
            self._reap(now)
            for m in list(self.members.values()):
                if m.state == MemberState.SUSPECT and now - m.changed_at >= self.config.suspicion_timeout_s:
                    log.warning("membership: %s declared dead", m.id)
                    self._declare(m, MemberState.DEAD)

    def _sync_with_seeds(self) -> None:
        for seed in self.config.seeds:
            if seed != self.id:
                known = self.members.get(seed)
                if known is None or not known.alive:
                    self._send(seed, {"t": "sync", "members": self._table(), "reply": True})

    async def _sync_loop(self) -> None:
        """Push-pull anti-entropy with one live member, and re-contact of seeds and dead members (joins,
        healed partitions, restarts)."""
        fast = True
        while not self._stopping:
            await asyncio.sleep(self.config.probe_interval_s if fast else self.config.sync_interval_s)
            others = [m for m in self.members.values() if m.id != self.id]
            fast = not any(m.alive for m in others)
            live = [m for m in others if m.alive]
            if live:
                self._send(self._rng.choice(live).id, {"t": "sync", "members": self._table(), "reply": True})
            for m in others:
                if m.state == MemberState.DEAD:
                    self._send(m.id, {"t": "sync", "members": self._table(), "reply": True})
            self._sync_with_seeds()
