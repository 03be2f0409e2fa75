"""SWIM at 100 members without 100 machines: Hourglass's own membership (`swim.py`) and ring placement
(`placement.py`) for many members in one process, over an in-memory network, in virtual time.

Why: a real cluster on one box has three members; what the protocol does at a hundred (how long until every
member agrees that one died, how often packet loss makes a live member suspect, how many shards move when
one joins) can only be measured like this. Nothing is re-implemented: every member is a `Swim` whose clock,
wall clock, randomness and transport are the simulation's (the constructor's seams); every datagram is
still sealed, stamped and checked for replay, and the rings are `Placement`'s.

Virtual time: an asyncio event loop whose clock moves only when nothing is ready, jumping to the next timer,
so minutes of gossip take seconds, and a run depends on its seed alone (same seed, same figures).

    python -m hourglass.cluster.membership.simulation --members 100 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import selectors
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from hourglass.cluster.membership.keyring import Keyring
from hourglass.cluster.membership.members import MemberState
from hourglass.cluster.membership.swim import Swim, SwimConfig
from hourglass.cluster.placement import Placement

GOSSIP_PORT = 7946
SEEDS = 3
# Wall clock of virtual time 0 (2026-01-01 UTC): incarnations and replay stamps derive from it.
EPOCH_S = 1_767_225_600.0
SAMPLE_S = 0.1


class SimulationStuck(RuntimeError):
    """Nothing left to run and nothing scheduled: a bug in the simulation, not a figure."""


# ---- virtual time ---------------------------------------------------------------------------------------
class _VirtualSelector(selectors.BaseSelector):
    """Polls the real selector (the loop's self-pipe) without blocking; a wait becomes a jump of the clock."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop
        self._real = selectors.DefaultSelector()

    def register(self, fileobj, events, data=None):
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._real.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._real.modify(fileobj, events, data)

    def get_map(self):
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout=None):
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise SimulationStuck("nothing scheduled: the simulation would wait forever")
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` is virtual: sleeps, timeouts and call_later cost no real time."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


# ---- the network ----------------------------------------------------------------------------------------
class _Endpoint(asyncio.DatagramTransport):
    def __init__(self, network: Network, addr: tuple[str, int], protocol: asyncio.DatagramProtocol) -> None:
        super().__init__()
        self._network = network
        self.addr = addr
        self.protocol = protocol
        self._closed = False

    def sendto(self, data, addr=None) -> None:
        if not self._closed:
            self._network.send(self.addr, bytes(data), (addr[0], int(addr[1])))

    def close(self) -> None:
        self._closed = True
        self._network.endpoints.pop(self.addr, None)

    def is_closing(self) -> bool:
        return self._closed


@dataclass
class NetworkStats:
    sent: int = 0
    lost: int = 0
    unreachable: int = 0


class Network:
    """Datagrams between endpoints of one process: each is lost with probability `loss`, else delivered
    after a latency drawn from `latency_s`; nothing reaches or leaves a crashed address."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, rng: random.Random, latency_s=(0.0002, 0.002)
    ) -> None:
        self.loop = loop
        self.rng = rng
        self.loss = 0.0
        self.latency_s = latency_s
        self.endpoints: dict[tuple[str, int], _Endpoint] = {}
        self.crashed: set[tuple[str, int]] = set()
        self.stats = NetworkStats()

    async def endpoint(
        self, protocol_factory: Callable[[], asyncio.DatagramProtocol], local_addr: tuple[str, int]
    ) -> _Endpoint:
        """What `Swim` calls instead of binding a UDP socket."""
        if local_addr in self.endpoints:
            raise OSError(f"address {local_addr} already in use")
        protocol = protocol_factory()
        endpoint = _Endpoint(self, local_addr, protocol)
        self.endpoints[local_addr] = endpoint
        protocol.connection_made(endpoint)
        return endpoint

    def send(self, src: tuple[str, int], data: bytes, dst: tuple[str, int]) -> None:
        self.stats.sent += 1
        if src in self.crashed:
            return
        if self.loss and self.rng.random() < self.loss:
            self.stats.lost += 1
            return
        self.loop.call_later(self.rng.uniform(*self.latency_s), self._deliver, src, data, dst)

    def _deliver(self, src: tuple[str, int], data: bytes, dst: tuple[str, int]) -> None:
        endpoint = self.endpoints.get(dst)
        if endpoint is None or dst in self.crashed:
            self.stats.unreachable += 1
            return
        endpoint.protocol.datagram_received(data, src)


# ---- members ----------------------------------------------------------------------------------------------
@dataclass
class _Declaration:
    at: float
    by: str
    target: str
    state: MemberState


class _ObservedSwim(Swim):
    """A real member that also reports its probes and the suspicions and deaths it declares."""

    def __init__(self, sim: Simulation, *args, **kwargs) -> None:
        self._sim = sim
        super().__init__(*args, **kwargs)

    def _declare(self, member, state: MemberState) -> None:
        self._sim.declarations.append(_Declaration(self._sim.now, self.id, member.id, state))
        super()._declare(member, state)

    async def _probe(self, target) -> None:
        self._sim.probes += 1
        await super()._probe(target)


def member_address(index: int) -> str:
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}:{GOSSIP_PORT}"


# ---- figures ----------------------------------------------------------------------------------------------
@dataclass
class JoinFigures:
    agreed_after_s: float  # until every member (the new one too) has the same ring
    shards_moved: int
    shards_moved_elsewhere: int  # moved to a member other than the new one: 0 with consistent hashing
    ideal_shards: float  # shards / members after the join


@dataclass
class DeathFigures:
    first_suspected_after_s: float
    declared_dead_after_s: float  # by the first member to do so
    agreed_after_s: float  # until every live member holds it dead (and so has the same ring)
    bound_s: float  # the protocol's bound for the last (see `death_bound_s`)
    shards_moved: int


@dataclass
class LossFigures:
    loss: float
    duration_s: float
    probes: int
    false_suspicions: int  # a live member suspected (by the member whose probe failed)
    false_deaths: int  # live members declared dead by some member (out of the rings until they refute)
    false_death_declarations: int  # every member that declared one of them dead counts once
    expected_suspicions_per_probe: float


@dataclass
class Figures:
    members: int
    seed: int
    shards: int
    formed_after_s: float
    joins: list[JoinFigures] = field(default_factory=list)
    deaths: list[DeathFigures] = field(default_factory=list)
    loss: LossFigures | None = None
    datagrams_sent: int = 0
    datagrams_lost: int = 0
    max_shards_per_member: int = 0
    mean_shards_per_member: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def death_bound_s(config: SwimConfig, members: int) -> float:
    """The latest every live member should hold a crashed member dead, after the crash. Each member probes
    every other one at least once in two rounds of its shuffled order, 2(n-1) periods (the first suspicion
    comes far sooner: someone probes it in most periods); the suspicion timeout runs from when a member hears
    of it; the suspicion reaches every member within its retransmissions, 3·log2(n+1)+1 piggy-backs (one
    per probe period) or the push-pull sync; a member's own timer fires on its next tick."""
    n = members
    first_probe = 2 * (n - 1) * config.probe_interval_s
    spread = (3 * math.ceil(math.log2(n + 1)) + 1) * config.probe_interval_s + config.sync_interval_s
    return first_probe + config.suspicion_timeout_s + spread + 2 * SAMPLE_S


def expected_false_suspicion_rate(loss: float, indirect: int) -> float:
    """Chance that one probe of a live member suspects it: the ping or its ack lost, and for every helper
    one of the four datagrams of ping-req, ping, ack, ack lost."""
    direct = 1 - (1 - loss) ** 2
    via_helper = 1 - (1 - loss) ** 4
    return direct * via_helper**indirect


# ---- the simulation -------------------------------------------------------------------------------------
class Simulation:
    def __init__(
        self,
        members: int,
        seed: int,
        shards: int = 4096,
        config: SwimConfig | None = None,
    ) -> None:
        if members < 2:
            raise ValueError("a simulation needs at least 2 members")
        self.size = members
        self.seed = seed
        self.shards = shards
        self.base = config or SwimConfig()
        self.rng = random.Random(seed)
        self.loop = VirtualTimeLoop()
        self.network = Network(self.loop, random.Random(self.rng.getrandbits(64)))
        self.keyring = Keyring([self.rng.randbytes(32)])
        self.swims: dict[str, _ObservedSwim] = {}
        self.crashed: set[str] = set()
        self.declarations: list[_Declaration] = []
        self.probes = 0
        self._next_index = 0
        self._rings: dict[frozenset[str], dict[int, str | None]] = {}
        self._dead_seen: dict[str, float] = {}
        self._victim: str | None = None

    @property
    def now(self) -> float:
        return self.loop.time()

    def run(
        self, joins: int = 3, deaths: int = 3, loss: float = 0.05, loss_duration_s: float = 120.0
    ) -> Figures:
        """Form the cluster, then `joins` joins, `deaths` crashes, and `loss_duration_s` of packet loss."""
        membership_log = logging.getLogger("hourglass.cluster.membership")
        level = membership_log.level
        membership_log.setLevel(logging.ERROR)  # a hundred members log every join and suspicion
        try:
            return self.loop.run_until_complete(self._scenario(joins, deaths, loss, loss_duration_s))
        finally:
            membership_log.setLevel(level)
            self.loop.run_until_complete(self._stop_all())
            self.loop.close()

    async def _scenario(self, joins: int, deaths: int, loss: float, loss_duration_s: float) -> Figures:
        for _ in range(self.size):
            self._add_member(delay=self.rng.uniform(0, self.base.probe_interval_s))
        formed = await self._until(lambda: self._agreed(), timeout=600.0)
        figures = Figures(
            members=self.size, seed=self.seed, shards=self.shards, formed_after_s=round(formed, 1)
        )
        for _ in range(joins):
            figures.joins.append(await self._join())
        for _ in range(deaths):
            figures.deaths.append(await self._death())
        if loss_duration_s > 0:
            figures.loss = await self._lossy(loss, loss_duration_s)
        counts: dict[str | None, int] = {}
        for owner in self._ring(self._live()).values():
            counts[owner] = counts.get(owner, 0) + 1
        figures.max_shards_per_member = max(counts.values())
        figures.mean_shards_per_member = round(self.shards / len(self._live()), 1)
        figures.datagrams_sent = self.network.stats.sent
        figures.datagrams_lost = self.network.stats.lost
        return figures

    # ---- members ---------------------------------------------------------------------------------------
    def _add_member(self, delay: float = 0.0) -> str:
        member_id = member_address(self._next_index)
        self._next_index += 1
        host, _, port = member_id.rpartition(":")
        config = SwimConfig(
            bind_host=host,
            port=int(port),
            seeds=tuple(member_address(i) for i in range(min(SEEDS, self.size))),
            rpc_address=f"{host}:7234",
            frontend_address=f"{host}:7233",
            probe_interval_s=self.base.probe_interval_s,
            probe_timeout_s=self.base.probe_timeout_s,
            indirect_probes=self.base.indirect_probes,
            suspicion_timeout_s=self.base.suspicion_timeout_s,
            sync_interval_s=self.base.sync_interval_s,
            keyring=self.keyring,
            dead_member_timeout_s=self.base.dead_member_timeout_s,
            replay_window_s=self.base.replay_window_s,
        )
        swim = _ObservedSwim(
            self,
            config,
            on_change=lambda: self._changed(member_id),
            clock=self.loop.time,
            wall_clock=lambda: EPOCH_S + self.loop.time(),
            rng=random.Random(self.rng.getrandbits(64)),
            endpoint=self.network.endpoint,
        )
        self.swims[member_id] = swim
        self.loop.call_later(delay, lambda: self.loop.create_task(swim.start()))
        return member_id

    def _changed(self, member_id: str) -> None:
        victim = self._victim
        if victim is None or member_id in self._dead_seen:
            return
        seen = self.swims[member_id].members.get(victim)
        if seen is not None and seen.state == MemberState.DEAD:
            self._dead_seen[member_id] = self.now

    def _live(self) -> list[str]:
        return [m for m in self.swims if m not in self.crashed]

    def _view(self, member_id: str) -> frozenset[str]:
        """The members in this member's rings (alive or suspect, not draining)."""
        return frozenset(m.id for m in self.swims[member_id].members.values() if m.in_ring)

    def _agreed(self) -> bool:
        expected = frozenset(self._live())
        return all(self._view(m) == expected for m in self._live())

    def _ring(self, members) -> dict[int, str | None]:
        """The shard map every member with this view computes (cached: one ring per distinct view)."""
        key = frozenset(members)
        ring = self._rings.get(key)
        if ring is None:
            placement = Placement(self.shards)
            placement.update(self.swims[m].members[m] for m in key)
            ring = self._rings[key] = placement.shard_map()
        return ring

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> float:
        """Virtual seconds until `predicate` holds, sampled every SAMPLE_S; SimulationStuck past timeout."""
        started = self.now
        while not predicate():
            if self.now - started > timeout:
                raise SimulationStuck(f"condition not reached in {timeout} virtual seconds")
            await asyncio.sleep(SAMPLE_S)
        return self.now - started

    async def _stop_all(self) -> None:
        for member_id, swim in self.swims.items():
            if member_id not in self.crashed:
                await swim.stop(leave=False)

    # ---- scenarios -------------------------------------------------------------------------------------
    async def _join(self) -> JoinFigures:
        before = self._ring(self._live())
        joiner = self._add_member()
        agreed = await self._until(self._agreed, timeout=600.0)
        after = self._ring(self._live())
        moved = [s for s in before if before[s] != after[s]]
        return JoinFigures(
            agreed_after_s=round(agreed, 1),
            shards_moved=len(moved),
            shards_moved_elsewhere=sum(1 for s in moved if after[s] != joiner),
            ideal_shards=round(self.shards / len(self._live()), 1),
        )

    async def _death(self) -> DeathFigures:
        seeds = {member_address(i) for i in range(SEEDS)}
        victim = self.rng.choice([m for m in self._live() if m not in seeds])
        before = self._ring(self._live())
        self._victim, self._dead_seen = victim, {}
        marks = len(self.declarations)
        crashed_at = self.now
        host, _, port = victim.rpartition(":")
        self.network.crashed.add((host, int(port)))  # kill -9: silent from now on
        self.crashed.add(victim)
        await self.swims[victim].stop(leave=False)
        survivors = self._live()
        bound = death_bound_s(self.base, len(survivors) + 1)
        await self._until(lambda: all(m in self._dead_seen for m in survivors), timeout=bound * 2)
        await self._until(self._agreed, timeout=bound)
        about = [d for d in self.declarations[marks:] if d.target == victim]
        suspected = min((d.at for d in about if d.state == MemberState.SUSPECT), default=math.nan)
        dead = min((d.at for d in about if d.state == MemberState.DEAD), default=math.nan)
        self._victim = None
        return DeathFigures(
            first_suspected_after_s=round(suspected - crashed_at, 2),
            declared_dead_after_s=round(dead - crashed_at, 2),
            agreed_after_s=round(max(self._dead_seen.values()) - crashed_at, 2),
            bound_s=round(bound, 1),
            shards_moved=sum(1 for s, owner in before.items() if owner == victim),
        )

    async def _lossy(self, loss: float, duration_s: float) -> LossFigures:
        marks, probes = len(self.declarations), self.probes
        self.network.loss = loss
        await asyncio.sleep(duration_s)
        self.network.loss = 0.0
        about_live = [d for d in self.declarations[marks:] if d.target not in self.crashed]
        return LossFigures(
            loss=loss,
            duration_s=duration_s,
            probes=self.probes - probes,
            false_suspicions=sum(1 for d in about_live if d.state == MemberState.SUSPECT),
            false_deaths=len({d.target for d in about_live if d.state == MemberState.DEAD}),
            false_death_declarations=sum(1 for d in about_live if d.state == MemberState.DEAD),
            expected_suspicions_per_probe=round(
                expected_false_suspicion_rate(loss, self.base.indirect_probes), 5
            ),
        )


def simulate(
    members: int,
    seed: int,
    shards: int = 4096,
    joins: int = 3,
    deaths: int = 3,
    loss: float = 0.05,
    loss_duration_s: float = 120.0,
    config: SwimConfig | None = None,
) -> Figures:
    """Run one simulation; the same arguments give the same figures."""
    return Simulation(members, seed, shards, config).run(joins, deaths, loss, loss_duration_s)


# ---- the command ----------------------------------------------------------------------------------------
def _report(f: Figures, config: SwimConfig, wall_s: float) -> str:
    lines = [
        f"SWIM simulation: {f.members} members, seed {f.seed}, {f.shards} shards; probe every "
        f"{config.probe_interval_s:g} s (ack timeout {config.probe_timeout_s:g} s, {config.indirect_probes} "
        f"indirect), suspicion {config.suspicion_timeout_s:g} s, sync every {config.sync_interval_s:g} s; "
        f"{wall_s:.0f} s of real time",
        f"formation: every member holds all {f.members} alive after {f.formed_after_s:.1f} s",
    ]
    for j in f.joins:
        lines.append(
            f"join: all agree after {j.agreed_after_s:.1f} s; shards moved {j.shards_moved} of {f.shards} "
            f"({100 * j.shards_moved / f.shards:.2f} %, ideal 1/N = {j.ideal_shards:.1f}), "
            f"{j.shards_moved_elsewhere} to another member than the new one"
        )
    for d in f.deaths:
        lines.append(
            f"crash: first suspected after {d.first_suspected_after_s:.2f} s, declared dead after "
            f"{d.declared_dead_after_s:.2f} s, every member holds it dead after {d.agreed_after_s:.2f} s "
            f"(bound {d.bound_s:.0f} s); its {d.shards_moved} shards move"
        )
    if f.deaths:
        agreed = [d.agreed_after_s for d in f.deaths]
        lines.append(f"crash, all agree: median {statistics.median(agreed):.2f} s, max {max(agreed):.2f} s")
    if f.loss is not None:
        x = f.loss
        rate = x.false_suspicions / max(x.probes, 1)
        member_hours = (f.members + len(f.joins) - len(f.deaths)) * x.duration_s / 3600
        lines.append(
            f"packet loss {100 * x.loss:g} % for {x.duration_s:g} s: {x.probes} probes, {x.false_suspicions} false "
            f"suspicions ({100 * rate:.2f} % of probes, expected {100 * x.expected_suspicions_per_probe:.2f} %; "
            f"{x.false_suspicions / member_hours:.1f} per member-hour); {x.false_deaths} live members declared "
            f"dead ({x.false_death_declarations} declarations)"
        )
    lines.append(
        f"ring balance: at most {f.max_shards_per_member} shards on a member (mean {f.mean_shards_per_member:.1f}); "
        f"{f.datagrams_sent} datagrams, {f.datagrams_lost} lost"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hourglass.cluster.membership.simulation",
        description="Hourglass's SWIM membership and ring placement for many members, in virtual time.",
    )
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=4096, help="history shards placed on the ring")
    parser.add_argument("--joins", type=int, default=3, help="members joining one after another")
    parser.add_argument("--deaths", type=int, default=3, help="members crashing one after another")
    parser.add_argument("--loss", type=float, default=0.05, help="packet loss of the lossy phase (0-1)")
    parser.add_argument(
        "--loss-duration", type=float, default=120.0, help="virtual seconds of the lossy phase"
    )
    parser.add_argument("--probe-interval", type=float, default=1.0)
    parser.add_argument("--probe-timeout", type=float, default=0.4)
    parser.add_argument("--suspicion-timeout", type=float, default=4.0)
    parser.add_argument("--sync-interval", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.members < 2 or args.members > 5000:
        parser.error("--members must be between 2 and 5000")
    if not 0 <= args.loss < 1:
        parser.error("--loss must be in [0, 1)")
    if args.deaths > args.members - SEEDS:
        parser.error(f"--deaths must leave the {SEEDS} seeds alive (at most {args.members - SEEDS})")
    if args.probe_timeout >= args.probe_interval:
        parser.error("--probe-timeout must be shorter than --probe-interval")
    config = SwimConfig(
        probe_interval_s=args.probe_interval,
        probe_timeout_s=args.probe_timeout,
        suspicion_timeout_s=args.suspicion_timeout,
        sync_interval_s=args.sync_interval,
    )
    started = time.monotonic()
    figures = simulate(
        args.members, args.seed, args.shards, args.joins, args.deaths, args.loss, args.loss_duration, config
    )
    if args.json:
        print(json.dumps(figures.to_json(), indent=2))
    else:
        print(_report(figures, config, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
