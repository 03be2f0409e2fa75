"""Calls to other members over the internal gRPC API: one channel per member, reused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from hourglass.cluster.errors import NodeUnreachable
from hourglass.cluster.metrics import INTERNAL_CALLS
from hourglass.cluster.rpc import codec
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.security.tls import InternodeClientTLS

log = logging.getLogger(__name__)

SERVICES = {
    "history": "HistoryService",
    "matching": "MatchingService",
    "schedules": "ScheduleService",
    "batches": "BatchService",
}
# Internal calls run under the public caller's own deadline at most; long polls set theirs from their own
# timeout (routing.py).
DEFAULT_TIMEOUT_S = 30.0


OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
# A channel opened with a member certificate that has since been replaced on disk is closed this long
# after the new one is in use, so calls already on it finish.
RETIRE_AFTER_S = 30.0


class InternalClient:
    def __init__(
        self, address_of: Callable[[str], str | None], tls: InternodeClientTLS | None = None
    ) -> None:
        """`address_of`: member id -> its internal RPC address (from the membership view). `tls`: the
        member's certificate and the cluster CA (mutual TLS); None only for plaintext tests of routing."""
        self._address_of = address_of
        self._tls = tls
        self._generation = tls.generation if tls is not None else 0
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._retiring: dict[asyncio.Task, list[grpc.aio.Channel]] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        if self._tls is not None:
            tls = self._tls.current()
            if self._tls.generation != self._generation:  # the certificate changed on disk: new channels
                self._generation = self._tls.generation
                self._retire(list(self._channels.values()))
                self._channels.clear()
        ch = self._channels.get(address)
        if ch is None:
            if self._tls is None:
                ch = grpc.aio.insecure_channel(address, options=OPTIONS)
            else:
                ch = tls.secure_channel(address, OPTIONS)
            self._channels[address] = ch
        return ch

    def _retire(self, channels: list[grpc.aio.Channel]) -> None:
        async def close_later() -> None:
            await asyncio.sleep(RETIRE_AFTER_S)
            for ch in channels:
                await ch.close()

        if channels:
            task = asyncio.get_running_loop().create_task(close_later())
            self._retiring[task] = channels
            task.add_done_callback(lambda t: self._retiring.pop(t, None))

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
        INTERNAL_CALLS.labels(service, method).inc()
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
        for task, channels in list(self._retiring.items()):
            task.cancel()
            for ch in channels:
                await ch.close()
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
