"""Cluster status: what every member is and holds, answered by any node (ClusterService.Status), and
its rendering for `hourglass cluster status`."""

from __future__ import annotations

import asyncio
import logging

from hourglass.cluster.membership.swim import Swim
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.rpc.client import InternalClient
from hourglass.cluster.security.tls import ClientTLS
from hourglass.sdk.admin import ClusterStatus

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 2.0


class StatusService:
    def __init__(
        self, swim: Swim, client: InternalClient, local_ownership, shard_count: int, store=None
    ) -> None:
        self.swim = swim
        self.store = store
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
        if not member.alive or not member.rpc_address:
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
        if self.store is not None:
            try:
                resp.store_kind, resp.schema_version = await self.store.schema_version()
            except Exception as e:  # the status is what an operator reads when the store is in trouble
                log.warning("cluster status: cannot read the store's schema version: %s", e)
        owners: dict[int, list[str]] = {}
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


def render(status: ClusterStatus) -> str:
    """One line per member with its state word; then, if asked, the shard map."""
    rows = [("MEMBER", "STATE", "INCARNATION", "ROLES", "FRONTEND", "RPC", "SHARDS", "PARTITIONS")]
    for m in status.members:
        rows.append(
            (
                m.id,
                m.state,
                str(m.incarnation),
                ",".join(m.roles),
                m.frontend_address or "-",
                m.rpc_address or "-",
                str(m.shard_count) if m.shard_count is not None else "?",
                str(m.partition_count) if m.partition_count is not None else "?",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    schema = f"; {status.schema.store} schema v{status.schema.version}" if status.schema else ""
    lines = [
        f"answered by {status.answered_by}; {status.history_shard_count} history shards; "
        f"majority reachable: {'yes' if status.quorum else 'NO'}{schema}"
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if status.shard_map:
        lines.append("")
        lines.append("SHARD  OWNER")
        for shard_id, owner in sorted(status.shard_map.items()):
            lines.append(f"{shard_id:<5}  {owner or '(none)'}")
    return "\n".join(lines)
