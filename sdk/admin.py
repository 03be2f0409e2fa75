"""A typed async client of the Hourglass cluster admin API (ClusterService on any node's frontend port):
members, shard map, schema version, and node drain / undrain for rolling upgrades.

    from hourglass.sdk.admin import AdminClient

    async with await AdminClient.connect("10.0.0.1:7233", tls=tls_config, api_key=admin_jwt) as admin:
        for m in await admin.members():
            print(m.id, m.state, m.shard_count)
        result = await admin.drain("10.0.0.2:7233", timeout=120)   # any node drains any member
        print(f"{result.member_id} handed over {len(result.released_shards)} shards")

`tls` takes the `temporalio.service.TLSConfig` given to `Client.connect` (or True for TLS with the
system's roots); `api_key` is sent as `authorization: Bearer <key>`, a JWT granting
`temporal-system:admin` when the cluster checks authorization. `hourglass cluster status|drain|undrain`
are built on this client. A call the server refuses raises AdminError with the gRPC status and message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import grpc

from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.security.tls import ClientTLS, KeyPair

SERVICE = "/hourglass.internal.v1.ClusterService/"
DEFAULT_DRAIN_TIMEOUT_S = 120.0
# Room for the server's answer past a drain's own timeout (it reports DEADLINE_EXCEEDED itself).
ANSWER_GRACE_S = 15.0


class AdminError(Exception):
    """The server refused or failed a call: `code` is its gRPC status, `message` what it said."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class MemberInfo:
    id: str  # the gossip address, HOST:PORT
    state: str  # alive, suspect, dead, left, or draining (alive and handing everything over)
    incarnation: int
    roles: tuple[str, ...]
    rpc_address: str
    frontend_address: str
    # What the member reports it holds; None: it could not be asked (dead, left, unreachable).
    shard_count: int | None
    partition_count: int | None
    draining: bool


@dataclass(frozen=True)
class SchemaVersion:
    store: str  # "cassandra" or "sqlite"
    version: int  # 0: the answering node could not read it


@dataclass(frozen=True)
class ClusterStatus:
    answered_by: str
    history_shard_count: int
    quorum: bool  # whether the answering node is on the majority side
    members: list[MemberInfo]
    # shard id -> the member holding it (None: no one right now). Asked with shards=True only.
    shard_map: dict[int, str | None] = field(default_factory=dict)
    schema: SchemaVersion | None = None

    @property
    def unowned_shards(self) -> list[int]:
        return sorted(s for s, owner in self.shard_map.items() if owner is None)


@dataclass(frozen=True)
class DrainResult:
    member_id: str
    released_shards: list[int]  # what it held when the drain began; all held by others now
    seconds: float


@dataclass(frozen=True)
class UndrainResult:
    member_id: str
    shards: list[int]  # what it holds again
    seconds: float


def _client_tls(tls: Any) -> ClientTLS | None:
    """A ClientTLS from what a caller passes: None/False (plaintext), True (system roots), a ClientTLS, or
    the SDK's temporalio.service.TLSConfig."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return ClientTLS()
    if isinstance(tls, ClientTLS):
        return tls
    from temporalio.service import TLSConfig

    if isinstance(tls, TLSConfig):
        if bool(tls.client_cert) != bool(tls.client_private_key):
            raise ValueError("tls: client_cert and client_private_key go together")
        pair = KeyPair(tls.client_cert, tls.client_private_key) if tls.client_cert else None
        return ClientTLS(tls.server_root_ca_cert, pair, tls.domain)
    raise TypeError(
        f"tls must be a temporalio TLSConfig, a ClientTLS, True or None, not {type(tls).__name__}"
    )


def _member(m: pb.Member) -> MemberInfo:
    return MemberInfo(
        id=m.id,
        state=m.state,
        incarnation=m.incarnation,
        roles=tuple(m.roles),
        rpc_address=m.rpc_address,
        frontend_address=m.frontend_address,
        shard_count=m.shard_count if m.shard_count >= 0 else None,
        partition_count=m.partition_count if m.partition_count >= 0 else None,
        draining=m.draining,
    )


def cluster_status_from_proto(resp: pb.ClusterStatusResponse) -> ClusterStatus:
    shard_map: dict[int, str | None] = {}
    for s in resp.shards:
        if s.member_id or s.shard_id not in shard_map:
            shard_map[s.shard_id] = s.member_id or None
    return ClusterStatus(
        answered_by=resp.answered_by,
        history_shard_count=resp.history_shard_count,
        quorum=resp.quorum,
        members=[_member(m) for m in resp.members],
        shard_map=shard_map,
        schema=SchemaVersion(resp.store_kind, resp.schema_version) if resp.store_kind else None,
    )


class AdminClient:
    """One channel to one node; every node answers for the whole cluster."""

    def __init__(
        self, address: str, channel: grpc.aio.Channel, api_key: str | None, rpc_timeout: float
    ) -> None:
        """Use `AdminClient.connect`."""
        self.address = address
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._rpc_timeout = rpc_timeout

    @classmethod
    async def connect(
        cls, address: str, *, tls: Any = None, api_key: str | None = None, rpc_timeout: float = 10.0
    ) -> AdminClient:
        """A client of the node at `address` (its frontend HOST:PORT; an internal address works with a
        member certificate). Raises AdminError(UNAVAILABLE) if the node cannot be reached in `rpc_timeout`."""
        client_tls = _client_tls(tls)
        channel = (
            client_tls.secure_channel(address)
            if client_tls is not None
            else grpc.aio.insecure_channel(address)
        )
        try:
            await asyncio.wait_for(channel.channel_ready(), rpc_timeout)
        except TimeoutError:
            await channel.close()
            raise AdminError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot connect to {address} within {rpc_timeout:g} s (is it up? plaintext vs TLS?)",
            ) from None
        return cls(address, channel, api_key, rpc_timeout)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: str, request, response_type, timeout: float):
        call = self._channel.unary_unary(
            SERVICE + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            return await call(request, timeout=timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as e:
            raise AdminError(e.code(), e.details() or "") from None

    async def status(self, shards: bool = True) -> ClusterStatus:
        """Members, (with `shards`) the shard map, and the store's schema version, as the node sees them."""
        return cluster_status_from_proto(await self.status_response(shards))

    async def status_response(
        self, shards: bool = True, partitions: bool = False
    ) -> pb.ClusterStatusResponse:
        """The Status answer itself (loop lag, transition rates per shard, and with `partitions` the task-queue
        partitions too), as `hourglass cluster status` and the cluster page render it."""
        request = pb.ClusterStatusRequest(shards=shards, partitions=partitions)
        return await self._call("Status", request, pb.ClusterStatusResponse, self._rpc_timeout)

    async def members(self) -> list[MemberInfo]:
        return (await self.status(shards=False)).members

    async def shard_map(self) -> dict[int, str | None]:
        return (await self.status(shards=True)).shard_map

    async def schema_version(self) -> SchemaVersion:
        schema = (await self.status(shards=False)).schema
        if schema is None:
            raise AdminError(grpc.StatusCode.UNAVAILABLE, f"{self.address} did not report a schema version")
        return schema

    async def drain(self, node_address: str = "", timeout: float = DEFAULT_DRAIN_TIMEOUT_S) -> DrainResult:
        """Hand every shard and task-queue partition of the member at `node_address` (its frontend, internal
        or gossip address; empty: the node connected to) to the others; returns once all are held elsewhere.
        The member keeps serving its frontend as a router until stopped or undrained. AdminError with
        DEADLINE_EXCEEDED past `timeout` (the member stays draining), NOT_FOUND for an unknown address,
        FAILED_PRECONDITION when no other member could take its shards."""
        resp = await self._call(
            "Drain",
            pb.DrainRequest(member=node_address, timeout_seconds=timeout),
            pb.DrainResponse,
            timeout + ANSWER_GRACE_S,
        )
        return DrainResult(resp.member_id, list(resp.released_shard_ids), resp.seconds)

    async def undrain(
        self, node_address: str = "", timeout: float = DEFAULT_DRAIN_TIMEOUT_S
    ) -> UndrainResult:
        """Put a drained member back in service; returns once it holds its share of the shards again."""
        resp = await self._call(
            "Undrain",
            pb.UndrainRequest(member=node_address, timeout_seconds=timeout),
            pb.UndrainResponse,
            timeout + ANSWER_GRACE_S,
        )
        return UndrainResult(resp.member_id, list(resp.shard_ids), resp.seconds)
