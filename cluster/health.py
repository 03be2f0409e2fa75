"""The standard gRPC health check asked of a node's frontend: what `hourglass server health` (the
container's HEALTHCHECK) runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hourglass.cluster.security.tls import ClientTLS


async def check_health(address: str, service: str, timeout: float, tls: ClientTLS | None = None) -> int:
    """The node's grpc.health.v1 serving status for `service` (raises grpc.aio.AioRpcError if it does
    not answer)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = tls.secure_channel(address) if tls is not None else grpc.aio.insecure_channel(address)
    async with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return response.status
