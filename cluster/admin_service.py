"""ClusterService's admin calls (Drain, Undrain): answered by any node, run on the member they name.

The node that receives the call finds the member by its id, internal or frontend address, and runs the
drain itself or forwards it to that member's internal port (mutual TLS, as every member-to-member call).
Callers on the public port were already checked for the admin role by the authorizer.
"""

from __future__ import annotations

import grpc

from hourglass.cluster.drain import DEFAULT_TIMEOUT_S, Drainer
from hourglass.cluster.errors import NotFound, ServiceError
from hourglass.cluster.membership.members import Member
from hourglass.cluster.membership.swim import Swim
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.rpc.client import InternalClient

# Room for the forwarded call's answer past the drain's own timeout.
FORWARD_GRACE_S = 10.0


class ForwardedError(ServiceError):
    """The member a call was forwarded to answered with this status: passed on as it is."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class AdminService:
    def __init__(self, swim: Swim, client: InternalClient, drainer: Drainer) -> None:
        self.swim = swim
        self.client = client
        self.drainer = drainer

    def find_member(self, name: str) -> Member:
        """The live member `name` designates (its id, internal RPC or frontend address); empty: this node."""
        if not name:
            return self.swim.me
        for m in self.swim.members.values():
            if m.alive and name in (m.id, m.rpc_address, m.frontend_address):
                return m
        known = ", ".join(sorted(f"{m.id} (frontend {m.frontend_address})" for m in self.swim.live_members()))
        raise NotFound(f"no live cluster member has the address {name!r}; members: {known}")

    async def drain(self, request: pb.DrainRequest) -> pb.DrainResponse:
        target = self.find_member(request.member)
        if target.id == self.swim.id:
            return await self.drainer.drain(request.timeout_seconds)
        return await self._forward(target, "Drain", request, pb.DrainResponse)

    async def undrain(self, request: pb.UndrainRequest) -> pb.UndrainResponse:
        target = self.find_member(request.member)
        if target.id == self.swim.id:
            return await self.drainer.undrain(request.timeout_seconds)
        return await self._forward(target, "Undrain", request, pb.UndrainResponse)

    async def _forward(self, target: Member, method: str, request, response_type):
        forwarded = type(request)()
        forwarded.CopyFrom(request)
        forwarded.member = target.id
        call = self.client.channel(target.rpc_address).unary_unary(
            f"/hourglass.internal.v1.ClusterService/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )
        timeout = (request.timeout_seconds or DEFAULT_TIMEOUT_S) + FORWARD_GRACE_S
        try:
            return await call(forwarded, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise ForwardedError(e.code(), f"{target.id}: {e.details()}") from None
