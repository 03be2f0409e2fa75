"""The frontend's authorization gate: every method served on the public port (WorkflowService,
OperatorService, health, ClusterService) passes through it. The handler is wrapped so the decoded
request is visible (its `namespace` field is the target), then the claim mapper and the authorizer decide,
as the reference's authorization interceptor does. A denial is PERMISSION_DENIED "Request unauthorized."
with no detail about why; the why goes to the server's log, one line."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from temporalio.api.enums.v1 import CommandType
from temporalio.api.errordetails.v1 import PermissionDeniedFailure
from temporalio.api.workflowservice.v1 import RespondWorkflowTaskCompletedRequest

from hourglass.cluster.frontend.grpc_errors import abort
from hourglass.cluster.security.authorization import (
    WORKFLOW_SERVICE,
    Authorizer,
    CallTarget,
    DefaultAuthorizer,
)
from hourglass.cluster.security.claims import (
    AuthInfo,
    ClaimMapper,
    Claims,
    DefaultJWTClaimMapper,
    InvalidToken,
)
from hourglass.cluster.security.jwt_keys import JWTKeyProvider

log = logging.getLogger(__name__)

REQUEST_UNAUTHORIZED = "Request unauthorized."
AUTH_HEADER = "authorization"
AUTH_EXTRA_HEADER = "authorization-extras"

# Commands of a workflow task that act on another namespace, and the method each amounts to there.
_CROSS_NAMESPACE_COMMANDS = {
    CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: (
        "signal_external_workflow_execution_command_attributes",
        "SignalWorkflowExecution",
    ),
    CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: (
        "start_child_workflow_execution_command_attributes",
        "StartWorkflowExecution",
    ),
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: (
        "request_cancel_external_workflow_execution_command_attributes",
        "RequestCancelWorkflowExecution",
    ),
}


def request_namespace(request: Any) -> str:
    """The namespace a request acts on: its `namespace` string field, "" if it has none."""
    namespace = getattr(request, "namespace", "")
    return namespace if isinstance(namespace, str) else ""


class Denied(Exception):
    """`reason` is for the log; `public_reason` (an authorizer's Result.reason) also goes to the caller."""

    def __init__(self, reason: str, public_reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.public_reason = public_reason


class AuthorizationInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, claim_mapper: ClaimMapper, authorizer: Authorizer) -> None:
        self.claim_mapper = claim_mapper
        self.authorizer = authorizer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # UNIMPLEMENTED, as without the interceptor
        method = handler_call_details.method
        io = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._guard(method, handler.unary_unary, True), **io)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._guard(method, handler.unary_stream, True), **io)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._guard(method, handler.stream_unary, False), **io
            )
        return grpc.stream_stream_rpc_method_handler(self._guard(method, handler.stream_stream, False), **io)

    def _guard(self, method: str, behavior: Callable, unary_request: bool) -> Callable:
        """`behavior` behind the check; a request stream is not read first (its target is unknown)."""
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await self.check(method, request if unary_request else None, context)
                async for item in behavior(request, context):
                    yield item

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self.check(method, request if unary_request else None, context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return call

    async def check(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        """Return if the call may proceed; otherwise abort it with PERMISSION_DENIED."""
        namespace = request_namespace(request)
        subject = ""
        try:
            claims = self._claims(context)
            subject = claims.subject if claims is not None else ""
            await self._authorize(claims, CallTarget(method, namespace, request))
            for target in _cross_namespace_targets(namespace, request):
                await self._authorize(claims, target)
        except Denied as e:
            log.info(
                "request unauthorized: method=%s namespace=%s subject=%s reason=%s",
                method,
                namespace or "-",
                subject or "-",
                e.reason,
            )
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                REQUEST_UNAUTHORIZED,
                PermissionDeniedFailure(reason=e.public_reason),
            )
        except grpc.aio.AbortError:
            raise
        except Exception:  # a plugged-in mapper or authorizer failing must deny, never answer 500 nor allow
            log.exception("authorization failed: method=%s namespace=%s", method, namespace or "-")
            await abort(
                context, grpc.StatusCode.PERMISSION_DENIED, REQUEST_UNAUTHORIZED, PermissionDeniedFailure()
            )

    def _claims(self, context: grpc.aio.ServicerContext) -> Claims | None:
        """None when the request carries no credentials (as the reference: the authorizer sees nil)."""
        token = extra = ""
        for key, value in context.invocation_metadata() or ():
            if key == AUTH_HEADER and isinstance(value, str):
                token = value
            elif key == AUTH_EXTRA_HEADER and isinstance(value, str):
                extra = value
        if not token:
            return None
        try:
            return self.claim_mapper.get_claims(AuthInfo(token, extra))
        except InvalidToken as e:
            raise Denied(f"invalid token: {e}") from None

    async def _authorize(self, claims: Claims | None, target: CallTarget) -> None:
        result = await self.authorizer.authorize(claims, target)
        if not result.allowed:
            why = result.reason or ("no credentials" if claims is None else "no role allows it")
            raise Denied(why, result.reason)


def _cross_namespace_targets(namespace: str, request: Any) -> list[CallTarget]:
    """A workflow task's commands that signal, start or cancel in another namespace: the caller needs the
    same right there as if it called that method itself (the reference's authorizeTargetNamespaces)."""
    if not isinstance(request, RespondWorkflowTaskCompletedRequest):
        return []
    targets: dict[tuple[str, str], CallTarget] = {}
    for command in request.commands:
        kind = _CROSS_NAMESPACE_COMMANDS.get(command.command_type)
        if kind is None:
            continue
        attributes, method = kind
        target_namespace = getattr(command, attributes).namespace
        if target_namespace and target_namespace != namespace:
            targets.setdefault(
                (target_namespace, method), CallTarget(WORKFLOW_SERVICE + method, target_namespace, request)
            )
    return list(targets.values())


async def start_authorization(section: Any) -> tuple[AuthorizationInterceptor, JWTKeyProvider]:
    """The interceptor for a config's `authorization` section (`authorizer: default`), with its key
    provider read once and refreshing; the caller stops the provider. Raises KeySourceError naming a key
    source that cannot be read."""
    keys = JWTKeyProvider(
        section.jwt_key_provider.key_source_uris, section.jwt_key_provider.refresh_interval_s
    )
    await keys.start()
    mapper = DefaultJWTClaimMapper(keys, section.permissions_claim_name)
    return AuthorizationInterceptor(mapper, DefaultAuthorizer()), keys
