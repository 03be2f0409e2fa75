"""Cluster status: what every member is and holds, answered by any node (ClusterService.Status), and
its rendering for `hourglass cluster status`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format

from hourglass.cluster.membership.members import Member
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.rpc.client import InternalClient
from hourglass.cluster.security.tls import ClientTLS

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0
# A member lists at most this many partitions (every worker's sticky queue is one): the answer stays small.
PARTITIONS_PER_MEMBER = 2000
STICKY_KIND = 2  # temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_STICKY


def local_report(
    member_id: str, history, matching, loop_lag, quorum: bool, partitions: bool
) -> pb.LocalOwnershipResponse:
    """What this node holds and how it is doing: its shards with their transition rates, its partitions
    (when asked), and its event loop's recent lag. `history` is a HistoryEngine, `matching` a
    MatchingEngine, `loop_lag` a LoopLagMonitor (or None)."""
    shard_ids = sorted(s for s, shard in history.shards.items() if not shard.released)
    lag_max, lag_p99 = loop_lag.recent() if loop_lag is not None else (0.0, 0.0)
    report = pb.LocalOwnershipResponse(
        member_id=member_id,
        shard_ids=shard_ids,
        partition_count=matching.partition_count,
        quorum=quorum,
        loop_lag_max_seconds=lag_max,
        loop_lag_p99_seconds=lag_p99,
    )
    for shard_id, rate in history.transition_rates.rates(shard_ids).items():
        report.shard_rates.append(pb.ShardRate(shard_id=shard_id, transitions_per_second=rate))
    if partitions:
        for key, partition in matching.partitions_snapshot(PARTITIONS_PER_MEMBER):
            report.partitions.append(
                pb.TaskQueuePartition(
                    namespace_id=key.namespace_id,
                    task_queue=key.name,
                    task_type=key.task_type,
                    partition=key.partition,
                    sticky=not partition.persistent,
                    backlog=partition.backlog_size,
                    member_id=member_id,
                )
            )
    return report


class StatusService:
    """ClusterService.Status of a cluster member: every member's own report, gathered by the member asked.
    `local_ownership(partitions)` is this member's report; `namespace_name(id)` names partitions'
    namespaces (the id is kept when it fails); `store` reports its schema version."""

    def __init__(
        self,
        swim,
        client: InternalClient | None,
        local_ownership: Callable[[bool], pb.LocalOwnershipResponse],
        shard_count: int,
        namespace_name: Callable[[str], Awaitable[str]] | None = None,
        store=None,
    ) -> None:
        self.swim = swim
        self.store = store
        self.client = client
        self._local = local_ownership
        self.shard_count = shard_count
        self.namespace_name = namespace_name

    async def local_ownership(self, request: pb.LocalOwnershipRequest) -> pb.LocalOwnershipResponse:
        return self._local(request.partitions)

    async def set_gossip_blocked(self, request: pb.SetGossipBlockedRequest) -> pb.SetGossipBlockedResponse:
        self.swim.blocked = request.blocked
        return pb.SetGossipBlockedResponse()

    async def _ask(self, member, partitions: bool) -> pb.LocalOwnershipResponse | None:
        if member.id == self.swim.id:
            return self._local(partitions)
        if self.client is None or not member.alive or not member.rpc_address:
            return None
        call = self.client.channel(member.rpc_address).unary_unary(
            "/hourglass.internal.v1.ClusterService/LocalOwnership",
            request_serializer=pb.LocalOwnershipRequest.SerializeToString,
            response_deserializer=pb.LocalOwnershipResponse.FromString,
        )
        try:
            return await call(pb.LocalOwnershipRequest(partitions=partitions), timeout=ASK_TIMEOUT_S)
        except Exception:
            return None

    async def status(self, request: pb.ClusterStatusRequest) -> pb.ClusterStatusResponse:
        members = sorted(self.swim.members.values(), key=lambda m: m.id)
        reports = await asyncio.gather(*(self._ask(m, request.partitions) for m in members))
        quorate, _ = self.swim.quorum()
        resp = pb.ClusterStatusResponse(
            answered_by=self.swim.id, history_shard_count=self.shard_count, quorum=quorate
        )
        if self.store is not None:
            try:
                resp.store_kind, resp.schema_version = await self.store.schema_version()
            except Exception as e:  # the status is what an operator reads when the store is in trouble
                log.warning("cluster status: cannot read the store's schema version: %s", e)
        owners: dict[int, list[tuple[str, float]]] = {}
        names: dict[str, str] = {}
        for m, report in zip(members, reports, strict=True):
            resp.members.append(
                pb.Member(
                    id=m.id,
                    state="draining" if m.draining and m.alive else m.state.value,
                    draining=m.draining,
                    incarnation=m.incarnation,
                    roles=list(m.roles),
                    rpc_address=m.rpc_address,
                    frontend_address=m.frontend_address if "frontend" in m.roles else "",
                    shard_count=len(report.shard_ids) if report is not None else -1,
                    partition_count=report.partition_count if report is not None else -1,
                    loop_lag_max_seconds=report.loop_lag_max_seconds if report is not None else -1,
                    loop_lag_p99_seconds=report.loop_lag_p99_seconds if report is not None else -1,
                )
            )
            if report is None:
                continue
            rates = {r.shard_id: r.transitions_per_second for r in report.shard_rates}
            for shard_id in report.shard_ids:
                owners.setdefault(shard_id, []).append((m.id, rates.get(shard_id, 0.0)))
            for partition in report.partitions:
                partition.member_id = m.id
                partition.namespace = await self._name(partition.namespace_id, names)
                resp.partitions.append(partition)
        if request.shards:
            for shard_id in range(self.shard_count):
                for owner, rate in owners.get(shard_id) or [("", 0.0)]:
                    resp.shards.append(
                        pb.ShardOwner(shard_id=shard_id, member_id=owner, transitions_per_second=rate)
                    )
        return resp

    async def _name(self, namespace_id: str, names: dict[str, str]) -> str:
        if namespace_id not in names:
            name = namespace_id
            if self.namespace_name is not None:
                try:
                    name = await self.namespace_name(namespace_id)
                except Exception:  # a namespace deleted meanwhile: show its id
                    pass
            names[namespace_id] = name
        return names[namespace_id]


class _Alone:
    """The member table of a node that is not in a cluster (start-dev): itself, always alive."""

    def __init__(self, member_id: Callable[[], str]) -> None:
        self._member_id = member_id
        self.blocked = False

    @property
    def id(self) -> str:
        return self._member_id()

    @property
    def members(self) -> dict[str, Member]:
        return {self.id: Member(self.id, frontend_address=self.id)}

    def quorum(self) -> tuple[bool, int]:
        return True, 0


def standalone_status(
    member_id: Callable[[], str],
    local_ownership: Callable[[bool], pb.LocalOwnershipResponse],
    shard_count: int,
    namespace_name: Callable[[str], Awaitable[str]] | None = None,
    store=None,
) -> StatusService:
    """The Status of a single node (start-dev): one member, named by its frontend address, owning what
    its own engines hold; the same answer shape as a cluster's, so the CLI and the page need no case."""
    return StatusService(_Alone(member_id), None, local_ownership, shard_count, namespace_name, store)


def status_dict(resp: pb.ClusterStatusResponse) -> dict[str, Any]:
    """The Status answer as JSON-ready data (the field names of the proto), as `/api/v1/cluster` serves it
    and `hourglass cluster status -o json` prints it."""
    return json_format.MessageToDict(
        resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def status_json(resp: pb.ClusterStatusResponse) -> str:
    return json.dumps(status_dict(resp), indent=2, sort_keys=True)


async def fetch_status(
    address: str,
    shards: bool,
    timeout: float = 10.0,
    tls: ClientTLS | None = None,
    api_key: str | None = None,
    partitions: bool = False,
) -> pb.ClusterStatusResponse:
    """Ask one node (frontend or internal address) for the cluster's status; over TLS if `tls` is given
    (the internal address needs a member certificate); `api_key` is sent as a bearer token (a frontend
    that checks authorization answers only a system admin)."""
    import grpc

    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
    channel = tls.secure_channel(address) if tls is not None else grpc.aio.insecure_channel(address)
    async with channel:
        call = channel.unary_unary(
            "/hourglass.internal.v1.ClusterService/Status",
            request_serializer=pb.ClusterStatusRequest.SerializeToString,
            response_deserializer=pb.ClusterStatusResponse.FromString,
        )
        return await call(
            pb.ClusterStatusRequest(shards=shards, partitions=partitions), timeout=timeout, metadata=metadata
        )


def _lag(seconds: float) -> str:
    return "?" if seconds < 0 else f"{seconds * 1000:.0f}ms"


def render(resp: pb.ClusterStatusResponse) -> str:
    """One line per member with its state word, load and loop lag; then, if asked, the shard map and the
    task-queue partitions."""
    member_rate: dict[str, float] = {}
    for s in resp.shards:
        if s.member_id:
            member_rate[s.member_id] = member_rate.get(s.member_id, 0.0) + s.transitions_per_second
    rows = [
        ("MEMBER", "STATE", "INCARNATION", "ROLES", "FRONTEND", "RPC", "SHARDS", "PARTITIONS")
        + (("TRANSITIONS/S",) if resp.shards else ())
        + ("LAG MAX", "LAG P99")
    ]
    for m in resp.members:
        rows.append(
            (
                m.id,
                m.state,
                str(m.incarnation),
                ",".join(m.roles),
                m.frontend_address or "-",
                m.rpc_address or "-",
                str(m.shard_count) if m.shard_count >= 0 else "?",
                str(m.partition_count) if m.partition_count >= 0 else "?",
            )
            + ((f"{member_rate.get(m.id, 0.0):.1f}",) if resp.shards else ())
            + (_lag(m.loop_lag_max_seconds), _lag(m.loop_lag_p99_seconds))
        )
    schema = f"; {resp.store_kind} schema v{resp.schema_version}" if resp.store_kind else ""
    lines = [
        f"answered by {resp.answered_by}; {resp.history_shard_count} history shards; "
        f"majority reachable: {'yes' if resp.quorum else 'NO'}{schema}"
    ]
    lines += _table(rows)
    if resp.shards:
        lines.append("")
        lines += _table(
            [("SHARD", "OWNER", "TRANSITIONS/S")]
            + [
                (str(s.shard_id), s.member_id or "(none)", f"{s.transitions_per_second:.1f}")
                for s in resp.shards
            ]
        )
    if resp.partitions:
        types = {1: "workflow", 2: "activity"}
        lines.append("")
        lines += _table(
            [("NAMESPACE", "TASK QUEUE", "TYPE", "PARTITION", "OWNER", "BACKLOG")]
            + [
                (
                    p.namespace or p.namespace_id,
                    p.task_queue + (" (sticky)" if p.sticky else ""),
                    types.get(p.task_type, str(p.task_type)),
                    str(p.partition),
                    p.member_id,
                    str(p.backlog),
                )
                for p in resp.partitions
            ]
        )
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
