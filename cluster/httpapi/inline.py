"""Calling the frontend's gRPC handlers in-process, through the same interceptors as the gRPC port.

The reference's HTTP API does the same (an "inline client connection" running the frontend's unary
interceptor chain, then the handler): an HTTP request is decoded, authorized, rate-limited, counted, logged
and validated exactly as the same call over gRPC. Here the request is serialized and given to the
handler's own deserializer, the grpc.aio interceptors resolve the handler as the server would, and a
context stands in for grpc's: it carries the HTTP headers as metadata and records the status a handler
aborts with (and its `grpc-status-details-bin`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2


class _CallDetails(NamedTuple):
    """grpc.HandlerCallDetails: what interceptors and generic handlers are given."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class HandlerRegistry:
    """Collects the method handlers `add_*Servicer_to_server` registers, like a grpc server does."""

    def __init__(self) -> None:
        self._generic: list[Any] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self._generic.append(grpc.method_handlers_generic_handler(service, handlers))

    def lookup(self, details: _CallDetails) -> grpc.RpcMethodHandler | None:
        for generic in self._generic:
            handler = generic.service(details)
            if handler is not None:
                return handler
        return None


@dataclass
class CallResult:
    """The outcome of one call: `response` (a message) when `code` is OK, else `message` and `details`
    (the google.rpc.Status the gRPC port would send in its trailers)."""

    code: grpc.StatusCode
    message: str = ""
    status: status_pb2.Status | None = None
    response: Message | None = None


@dataclass
class InlineContext:
    """The part of grpc.aio.ServicerContext the frontend's handlers and interceptors use."""

    metadata: tuple[tuple[str, str], ...]
    peer_address: str
    deadline: float | None = None  # time.monotonic() by which the caller gives up; None: no deadline
    _code: grpc.StatusCode | None = None
    _details: str = ""
    _trailing: tuple = field(default_factory=tuple)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def peer(self) -> str:
        return self.peer_address

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        self._trailing = tuple(metadata)

    def trailing_metadata(self) -> tuple:
        return self._trailing

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def send_initial_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        return None

    def auth_context(self) -> dict:
        return {}

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence = ()) -> None:
        self._code = code
        self._details = details
        if trailing_metadata:
            self._trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def status(self) -> status_pb2.Status:
        """The status a client would decode: the aborted one with its details, else code and message."""
        for key, value in self._trailing:
            if key == "grpc-status-details-bin":
                return status_pb2.Status.FromString(value)
        code = self._code or grpc.StatusCode.UNKNOWN
        return status_pb2.Status(code=code.value[0], message=self._details)


Interceptor = grpc.aio.ServerInterceptor


class InlineChannel:
    """Runs unary calls through `interceptors` (in the gRPC server's order) and the handlers of `registry`."""

    def __init__(self, registry: HandlerRegistry, interceptors: Sequence[Interceptor]) -> None:
        self.registry = registry
        self.interceptors = tuple(interceptors)

    async def _resolve(self, details: _CallDetails) -> grpc.RpcMethodHandler | None:
        async def step(index: int, current: _CallDetails) -> grpc.RpcMethodHandler | None:
            if index == len(self.interceptors):
                return self.registry.lookup(current)
            return await self.interceptors[index].intercept_service(lambda d: step(index + 1, d), current)

        return await step(0, details)

    async def call(
        self,
        method: str,
        request: Message,
        response_class: Callable[[bytes], Message] | type[Message],
        context: InlineContext,
    ) -> CallResult:
        handler = await self._resolve(_CallDetails(method, context.metadata))
        if handler is None or handler.unary_unary is None:
            return CallResult(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method}")
        decoded = request
        if handler.request_deserializer is not None:
            decoded = handler.request_deserializer(request.SerializeToString())
        try:
            response = await handler.unary_unary(decoded, context)
        except grpc.aio.AbortError:
            status = context.status()
            return CallResult(grpc_code(status.code), status.message, status)
        raw = handler.response_serializer(response) if handler.response_serializer else response
        parse = getattr(response_class, "FromString", response_class)
        return CallResult(grpc.StatusCode.OK, response=parse(raw))


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_code(number: int) -> grpc.StatusCode:
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)
