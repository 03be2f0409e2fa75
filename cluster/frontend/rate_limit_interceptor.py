"""The frontend's rate-limit gate: a grpc.aio interceptor that asks the RequestLimiter (rate_limits.py)
before a unary call runs and refuses with the reference's RESOURCE_EXHAUSTED status, message and
`ResourceExhaustedFailure` (cause and scope), which the SDKs read to back off and retry. It sits after the
authorization interceptor, as on the reference, so unauthorized callers do not spend a namespace's quota."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, GetWorkflowExecutionHistoryRequest

from hourglass.cluster.frontend.grpc_errors import abort
from hourglass.cluster.frontend.rate_limits import (
    CALLER_TYPE_HEADER,
    CALLER_TYPE_OPERATOR,
    Refusal,
    RequestLimiter,
)
from hourglass.cluster.frontend.unary_interceptor import Behavior, UnaryRequestInterceptor, call_behavior
from hourglass.cluster.metrics import REQUESTS_REFUSED

log = logging.getLogger(__name__)

MAX_NAMESPACE_LABELS = 1000


def _namespace(request: Any) -> str:
    namespace = getattr(request, "namespace", "")
    return namespace if isinstance(namespace, str) else ""


def failure_detail(refusal: Refusal) -> ResourceExhaustedFailure:
    return ResourceExhaustedFailure(
        cause=ResourceExhaustedCause.Value(f"RESOURCE_EXHAUSTED_CAUSE_{refusal.cause}"),
        scope=ResourceExhaustedScope.Value(f"RESOURCE_EXHAUSTED_SCOPE_{refusal.scope}"),
    )


class RateLimitInterceptor(UnaryRequestInterceptor):
    """Streams are not rated, as on the reference (its limits are unary interceptors)."""

    def __init__(self, limiter: RequestLimiter) -> None:
        self.limiter = limiter
        self._labelled_namespaces: set[str] = set()

    def guard(self, method: str, behavior: Behavior) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            long_poll = not isinstance(request, GetWorkflowExecutionHistoryRequest) or request.wait_new_event
            reachability = isinstance(request, DescribeTaskQueueRequest) and request.report_task_reachability
            namespace = _namespace(request)
            outcome = self.limiter.admit(
                method,
                namespace,
                long_poll=long_poll,
                reachability=reachability,
                operator=_is_operator(context),
            )
            if isinstance(outcome, Refusal):
                self._count(method, namespace, outcome)
                await abort(
                    context, grpc.StatusCode.RESOURCE_EXHAUSTED, outcome.message, failure_detail(outcome)
                )
            try:
                return await call_behavior(behavior, request, context)
            finally:
                outcome()

        return call

    def _count(self, method: str, namespace: str, refusal: Refusal) -> None:
        if namespace not in self._labelled_namespaces:
            if len(self._labelled_namespaces) >= MAX_NAMESPACE_LABELS:
                namespace = "_other_"
            else:
                self._labelled_namespaces.add(namespace)
        REQUESTS_REFUSED.labels(method.rsplit("/", 1)[-1], namespace, refusal.cause, refusal.scope).inc()


def _is_operator(context: grpc.aio.ServicerContext) -> bool:
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_TYPE_HEADER:
            return value == CALLER_TYPE_OPERATOR
    return False
