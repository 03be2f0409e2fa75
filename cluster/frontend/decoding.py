"""Requests that cannot be decoded get the reference's status and message, and one log line.

gRPC decodes a request before any handler runs; a DecodeError there (garbage bytes, a string field with
invalid UTF-8) would reach the client as UNKNOWN "Unexpected <class ...>" with a traceback logged per
request. The reference's Go server answers INTERNAL "grpc: error unmarshalling request: ..." instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

INVALID_UTF8 = "grpc: error unmarshalling request: string field contains invalid UTF-8"
INVALID_WIRE_FORMAT = "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request whose bytes did not parse; the handler answers with `message`."""

    message: str


def _safe_deserializer(inner: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return inner(data)
        except DecodeError as e:
            return Undecodable(INVALID_UTF8 if "UTF-8" in str(e) else INVALID_WIRE_FORMAT)

    return deserialize


def _safe_unary(method: str, behavior: Callable) -> Callable:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            log.warning("%s: INTERNAL %s", method, request.message)
            await context.abort(grpc.StatusCode.INTERNAL, request.message)
        return await behavior(request, context)

    return handle


def _safe_handler(method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
    if handler is None or handler.request_deserializer is None or handler.unary_unary is None:
        return handler
    return handler._replace(  # type: ignore[attr-defined]  # RpcMethodHandler is a namedtuple
        request_deserializer=_safe_deserializer(handler.request_deserializer),
        unary_unary=_safe_unary(method, handler.unary_unary),
    )


class _SafeGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method  # type: ignore[attr-defined]
        return _safe_handler(method.rsplit("/", 1)[-1], self._inner.service(handler_call_details))


class _DecodingSafeServer:
    """What the generated `add_*Servicer_to_server` functions see: every handler they add decodes safely."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_SafeGenericHandler(h) for h in handlers))

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(
            service, {name: _safe_handler(name, h) for name, h in handlers.items()}
        )


def add_servicer(add_to_server: Callable[[Any, Any], None], servicer: Any, server: grpc.aio.Server) -> None:
    """`add_to_server(servicer, server)`, with requests that cannot be decoded answered as the reference."""
    add_to_server(servicer, _DecodingSafeServer(server))
