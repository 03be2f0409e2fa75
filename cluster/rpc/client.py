"""Calls to other members over the internal gRPC API: one channel per member, reused."""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc

from hourglass.cluster.errors import NodeUnreachable
from hourglass.cluster.rpc import codec
from hourglass.cluster.rpc import internal_pb2 as pb

log = logging.getLogger(__name__)

SERVICES = {"history": "HistoryService", "matching": "MatchingService", "schedules": "ScheduleService"}
# Internal calls run under the public caller's own deadline at most; long polls set theirs from their own
# timeout (routing.py).
DEFAULT_TIMEOUT_S = 30.0


class InternalClient:
    def __init__(self, address_of: Callable[[str], str | None]) -> None:
        """`address_of`: member id -> its internal RPC address (from the membership view)."""
        self._address_of = address_of
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = self._channels[address] = grpc.aio.insecure_channel(
                address,
                options=[
                    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ],
            )
        return ch

    async def invoke(
        self, member_id: str, service: str, method: str, args: tuple, timeout: float = DEFAULT_TIMEOUT_S
    ) -> object:
        """Run `method(*args)` of a role on another member; its errors are raised here as the same class."""
        address = self._address_of(member_id)
        if not address:
            raise NodeUnreachable(f"member {member_id} has no internal RPC address")
        call = self.channel(address).unary_unary(
            f"/hourglass.internal.v1.{SERVICES[service]}/Invoke",
            request_serializer=pb.Call.SerializeToString,
            response_deserializer=pb.Reply.FromString,
        )
        request = pb.Call(method=method, args=[codec.encode(a) for a in args])
        try:
            reply = await call(request, timeout=timeout, wait_for_ready=False)
        except grpc.aio.AioRpcError as e:
            raise NodeUnreachable(
                f"member {member_id} ({address}) did not answer {service}.{method}: {e.code().name}"
            ) from None
        if reply.WhichOneof("outcome") == "error":
            raise codec.decode_error(reply.error)
        return codec.decode(reply.value)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
