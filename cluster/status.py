"""Cluster status: what every member is and holds, answered by any node (ClusterService.Status), and
its rendering for `hourglass cluster status`."""

from __future__ import annotations

import asyncio

from hourglass.cluster.membership.swim import Swim
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.rpc.client import InternalClient
from hourglass.cluster.security.tls import ClientTLS

ASK_TIMEOUT_S = 2.0


class StatusService:
    def __init__(self, swim: Swim, client: InternalClient, local_ownership, shard_count: int) -> None:
        self.swim = swim
        self.client = client
        self._local = local_ownership  # () -> pb.LocalOwnershipResponse
        self.shard_count = shard_count

    async def local_ownership(self, request: pb.LocalOwnershipRequest) -> pb.LocalOwnershipResponse:
        return self._local()

    async def set_gossip_blocked(self, request: pb.SetGossipBlockedRequest) -> pb.SetGossipBlockedResponse:
        self.swim.blocked = request.blocked
        return pb.SetGossipBlockedResponse()

    async def _ask(self, member) -> pb.LocalOwnershipResponse | None:
        if member.id == self.swim.id:
            return self._local()
        if not member.in_ring or not member.rpc_address:
            return None
        call = self.client.channel(member.rpc_address).unary_unary(
            "/hourglass.internal.v1.ClusterService/LocalOwnership",
            request_serializer=pb.LocalOwnershipRequest.SerializeToString,
            response_deserializer=pb.LocalOwnershipResponse.FromString,
        )
        try:
            return await call(pb.LocalOwnershipRequest(), timeout=ASK_TIMEOUT_S)
        except Exception:
            return None

    async def status(self, request: pb.ClusterStatusRequest) -> pb.ClusterStatusResponse:
        members = sorted(self.swim.members.values(), key=lambda m: m.id)
        reports = await asyncio.gather(*(self._ask(m) for m in members))
        quorate, _ = self.swim.quorum()
        resp = pb.ClusterStatusResponse(
            answered_by=self.swim.id, history_shard_count=self.shard_count, quorum=quorate
        )
        owners: dict[int, list[str]] = {}
        for m, report in zip(members, reports, strict=True):
            resp.members.append(
                pb.Member(
                    id=m.id,
                    state=m.state.value,
                    incarnation=m.incarnation,
                    roles=list(m.roles),
                    rpc_address=m.rpc_address,
                    frontend_address=m.frontend_address if "frontend" in m.roles else "",
                    shard_count=len(report.shard_ids) if report is not None else -1,
                    partition_count=report.partition_count if report is not None else -1,
                )
            )
            for shard_id in report.shard_ids if report is not None else ():
                owners.setdefault(shard_id, []).append(m.id)
        if request.shards:
            for shard_id in range(self.shard_count):
                for owner in owners.get(shard_id) or [""]:
                    resp.shards.append(pb.ShardOwner(shard_id=shard_id, member_id=owner))
        return resp


async def fetch_status(
    address: str,
    shards: bool,
    timeout: float = 10.0,
    tls: ClientTLS | None = None,
    api_key: str | None = None,
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
        return await call(pb.ClusterStatusRequest(shards=shards), timeout=timeout, metadata=metadata)


def render(resp: pb.ClusterStatusResponse) -> str:
    """One line per member with its state word; then, if asked, the shard map."""
    rows = [("MEMBER", "STATE", "INCARNATION", "ROLES", "FRONTEND", "RPC", "SHARDS", "PARTITIONS")]
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
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"answered by {resp.answered_by}; {resp.history_shard_count} history shards; "
        f"majority reachable: {'yes' if resp.quorum else 'NO'}"
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if resp.shards:
        lines.append("")
        lines.append("SHARD  OWNER")
        for s in resp.shards:
            lines.append(f"{s.shard_id:<5}  {s.member_id or '(none)'}")
    return "\n".join(lines)
