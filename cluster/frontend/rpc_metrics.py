"""Per-method request metrics of the public port: rate, latency and gRPC status of every unary request.

It wraps the authorization and rate-limit interceptors, so refusals (PERMISSION_DENIED, RESOURCE_EXHAUSTED)
are counted as the client saw them. The status comes from the handler's abort (the code the client gets);
a handler that raised anything else answered UNKNOWN, and a client that went away CANCELLED.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from hourglass.cluster.frontend.unary_interceptor import Behavior, UnaryRequestInterceptor, call_behavior
from hourglass.cluster.metrics import RPC_LATENCY_SECONDS, RPC_REQUESTS

# Past this many distinct namespaces the label reads "_other_", so a client inventing names cannot grow
# the series without bound (as for hourglass_requests_refused_total).
MAX_NAMESPACE_LABELS = 1000


class RpcMetricsInterceptor(UnaryRequestInterceptor):
    def __init__(self) -> None:
        self._namespaces: set[str] = set()

    def guard(self, method: str, behavior: Behavior) -> Behavior:
        name = method.rsplit("/", 1)[-1]
        latency = RPC_LATENCY_SECONDS.labels(name)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            status = "OK"
            try:
                return await call_behavior(behavior, request, context)
            except asyncio.CancelledError:
                status = "CANCELLED"
                raise
            except BaseException:
                status = _aborted_code(context)
                raise
            finally:
                latency.observe(time.perf_counter() - started)
                RPC_REQUESTS.labels(name, self._namespace_label(request), status).inc()

        return call

    def _namespace_label(self, request: Any) -> str:
        namespace = getattr(request, "namespace", "")
        if not isinstance(namespace, str):
            return ""
        if namespace not in self._namespaces:
            if len(self._namespaces) >= MAX_NAMESPACE_LABELS:
                return "_other_"
            self._namespaces.add(namespace)
        return namespace


def _aborted_code(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name
    return grpc.StatusCode.UNKNOWN.name
