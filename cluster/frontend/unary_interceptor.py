"""A grpc.aio server interceptor that sees each unary request before its handler runs.

grpc.aio interceptors get only the method name and metadata; checks that need the request (its
namespace, whether it decoded) wrap the unary handler instead. Streams and unknown methods pass through.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


async def call_behavior(behavior: Behavior, request: Any, context: grpc.aio.ServicerContext) -> Any:
    """Run a handler that may be a coroutine function or a plain one."""
    result = behavior(request, context)
    return await result if inspect.isawaitable(result) else result


class UnaryRequestInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses give `guard(method, behavior)`, the handler to run instead, and may replace the request
    deserializer with `deserializer(inner)`."""

    def guard(self, method: str, behavior: Behavior) -> Behavior:
        raise NotImplementedError

    def deserializer(self, inner: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        return inner

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.request_deserializer
        return grpc.unary_unary_rpc_method_handler(
            self.guard(handler_call_details.method, handler.unary_unary),
            request_deserializer=self.deserializer(inner) if inner is not None else None,
            response_serializer=passing_bytes(handler.response_serializer),
        )


def passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """The handler's response serializer, except that a handler may answer with the response already
    serialized (bytes): a large history page is framed from stored bytes without building messages."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if isinstance(response, bytes) else serializer(response)

    return serialize
