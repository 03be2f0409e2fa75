"""The Nexus routes of the HTTP API port, as the reference 1.32's frontend serves them.

- `POST /namespaces/{namespace}/nexus/callback` (and `/nexus/callback`): a Nexus operation's completion
  (the handler's POST to the callback URL this cluster gave it). The `Temporal-Callback-Token` header names
  the caller's operation; it was sealed by this cluster, so a forged or altered one is refused (400 "invalid
  callback token") and nothing is recorded. The outcome is recorded by the caller run's shard owner.
- `POST /nexus/endpoints/{endpoint id}/services/{service}/{operation}` and
  `POST /namespaces/{namespace}/task-queues/{task queue}/nexus-services/{service}/{operation}` (with
  `.../cancel` for a cancel): an external caller's start or cancel, handed to the handler's worker through
  matching exactly as a workflow-scheduled operation's request is, the worker's answer sent back in the
  Nexus HTTP protocol (nexus_http.py).

Authorization is the frontend's: the `Authorization` header's claims, asked about the reference's method
names `NexusService/CompleteNexusOperation` and `NexusService/DispatchNexusTask` in the namespace.
Errors are Nexus handler errors: the reference's status (400, 401, 403, 404, 520...) and a failure body.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.nexus.v1 import CancelOperationRequest, Endpoint, Request, StartOperationRequest
from temporalio.api.workflowservice.v1 import RespondNexusTaskFailedRequest

from hourglass.cluster.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NamespaceNotFound,
    NotFound,
    ServiceError,
    Unavailable,
)
from hourglass.cluster.history import nexus_dispatch, nexus_http
from hourglass.cluster.history.limits import LIMITS
from hourglass.cluster.history.timeutil import now_ms, to_timestamp
from hourglass.cluster.security.authorization import NEXUS_SERVICE, CallTarget
from hourglass.cluster.security.claims import AuthInfo, InvalidToken
from hourglass.persistence.visibility.durations import go_duration_ns

log = logging.getLogger(__name__)

COMPLETE_METHOD = NEXUS_SERVICE + "CompleteNexusOperation"
DISPATCH_METHOD = NEXUS_SERVICE + "DispatchNexusTask"
# The reference's component.nexusoperations.limit.operation.token.length.
MAX_OPERATION_TOKEN_LENGTH = 4096
# How long a start or cancel waits for the handler's worker when the caller names no request timeout.
DEFAULT_TIMEOUT_S = 60.0
# Headers that are the transport's, not the operation's: not passed to the handler.
_HOP_HEADERS = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "accept-encoding",
        "accept",
        "authorization",
        "authorization-extras",
        "keep-alive",
    }
)


class HandlerError(Exception):
    """A Nexus handler error: its type names the HTTP status (nexus_http.HANDLER_ERROR_STATUS)."""

    def __init__(self, kind: str, message: str, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = retryable


def is_nexus_path(parts: list[str]) -> bool:
    return (
        parts[:2] == ["nexus", "callback"]
        or parts[:2] == ["nexus", "endpoints"]
        or (len(parts) >= 4 and parts[0] == "namespaces" and parts[2:4] == ["nexus", "callback"])
        or (
            len(parts) >= 5
            and parts[0] == "namespaces"
            and parts[2] == "task-queues"
            and parts[4] == "nexus-services"
        )
    )


class NexusRoutes:
    """The node's Nexus HTTP handlers: the frontend's registries and the routed history and matching."""

    def __init__(
        self,
        namespaces: Any,
        store: Any,
        history: Any,
        matching: Any,
        task_tokens: Any,
        authorization: Any = None,
    ) -> None:
        self.namespaces = namespaces
        self.store = store
        self.history = history
        self.matching = matching
        self.task_tokens = task_tokens
        self.authorization = authorization  # security.interceptor.AuthorizationInterceptor, or None

    async def handle(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        try:
            if request.method != "POST":
                raise HandlerError("NOT_FOUND", "not found")
            if parts[-2:] == ["nexus", "callback"]:
                namespace = unquote(parts[1]) if parts[0] == "namespaces" else None
                return await self._complete(request, namespace)
            return await self._dispatch(request, parts)
        except HandlerError as e:
            return error_response(e)

    # ---- completions ---------------------------------------------------------------------------------
    async def _complete(self, request: web.Request, url_namespace: str | None) -> web.Response:
        # In the reference's order: the request's form first (nexusrpc's completion handler), then its token.
        try:
            nexus_http.parse_links(request.headers.getall(nexus_http.LINK_HEADER, []))
        except ValueError:
            raise HandlerError("BAD_REQUEST", "failed to decode links from request headers") from None
        state = request.headers.get(nexus_http.STATE_HEADER, "")
        body = await request.read()
        result = failure = None
        if state == "succeeded":
            result = nexus_http.content_payload(nexus_http.content_headers(request.headers), body)
        elif state in ("failed", "canceled"):
            content_type = request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                raise HandlerError("BAD_REQUEST", f'invalid request content type: "{content_type}"')
            try:
                failure = nexus_http.temporal_failure(json.loads(body))
            except (ValueError, TypeError):
                raise HandlerError("BAD_REQUEST", "failed to decode Failure from request body") from None
        else:
            raise HandlerError("BAD_REQUEST", f'invalid request operation state: "{state}"')
        try:
            token = nexus_dispatch.read_callback_token(
                self.task_tokens, request.headers.get(nexus_dispatch.CALLBACK_TOKEN_HEADER, "")
            )
        except InvalidArgument:
            log.info("Nexus completion refused: invalid callback token")
            raise HandlerError("BAD_REQUEST", "invalid callback token") from None
        try:
            ns = await self.namespaces.get_by_id(token.namespace_id)
        except (NamespaceNotFound, NotFound):
            raise HandlerError("NOT_FOUND", f'namespace "{token.namespace_id}" not found') from None
        if url_namespace is not None and url_namespace != ns.name:
            log.info("Nexus completion refused: the token's namespace is not %s", url_namespace)
            raise HandlerError("BAD_REQUEST", "invalid callback token")
        await self._authorize(request, COMPLETE_METHOD, ns.name)
        operation_token = request.headers.get(nexus_http.TOKEN_HEADER, "")
        if len(operation_token) > MAX_OPERATION_TOKEN_LENGTH:
            raise HandlerError(
                "BAD_REQUEST",
                "operation token length exceeds allowed limit "
                f"({len(operation_token)}/{MAX_OPERATION_TOKEN_LENGTH})",
            )
        if result is not None and result.ByteSize() > LIMITS.blob_size_error_bytes:
            raise HandlerError("BAD_REQUEST", "result exceeds size limit")
        try:
            await self.history.complete_nexus_operation(
                ns.id,
                WorkflowExecution(workflow_id=token.workflow_id, run_id=token.run_id),
                token.scheduled_event_id,
                token.nexus_task_id,
                operation_token,
                result,
                failure,
                state == "canceled",
            )
        except NotFound as e:
            raise HandlerError("NOT_FOUND", e.message) from None
        except Unavailable as e:
            raise HandlerError("UNAVAILABLE", e.message) from None
        except ServiceError as e:
            raise HandlerError("INTERNAL", e.message) from None
        return web.Response(status=200)

    # ---- starts and cancels from an external caller ----------------------------------------------------
    async def _dispatch(self, request: web.Request, parts: list[str]) -> web.Response:
        if parts[0] == "nexus":  # /nexus/endpoints/{id}/services/{service}/{operation}[...]
            if len(parts) < 6 or parts[3] != "services":
                raise HandlerError("NOT_FOUND", "not found")
            endpoint_name, namespace_id, task_queue = await self._endpoint(unquote(parts[2]))
            try:
                ns = await self.namespaces.get_by_id(namespace_id)
            except (NamespaceNotFound, NotFound):
                raise HandlerError("NOT_FOUND", f'namespace "{namespace_id}" not found') from None
            rest = parts[4:]
        else:  # /namespaces/{namespace}/task-queues/{task queue}/nexus-services/{service}/{operation}[...]
            if len(parts) < 7:
                raise HandlerError("NOT_FOUND", "not found")
            try:
                ns = await self.namespaces.get(unquote(parts[1]))
            except (NamespaceNotFound, NotFound):
                raise HandlerError("NOT_FOUND", f'namespace "{unquote(parts[1])}" not found') from None
            endpoint_name, task_queue = "", unquote(parts[3])
            rest = parts[5:]
        await self._authorize(request, DISPATCH_METHOD, ns.name)
        service, operation = unquote(rest[0]), unquote(rest[1])
        nexus_request = Request(endpoint=endpoint_name, scheduled_time=to_timestamp(now_ms()))
        nexus_request.header.update(_operation_headers(request))
        nexus_request.capabilities.temporal_failure_responses = True
        if len(rest) == 2:
            nexus_request.start_operation.CopyFrom(await _start(request, service, operation))
            cancel = False
        elif rest[2:] == ["cancel"] or (len(rest) == 4 and rest[3] == "cancel"):
            token = request.headers.get(nexus_http.TOKEN_HEADER, "") or (
                unquote(rest[2]) if len(rest) == 4 else ""
            )
            if not token:
                raise HandlerError("BAD_REQUEST", "missing operation token")
            nexus_request.cancel_operation.CopyFrom(
                CancelOperationRequest(
                    service=service, operation=operation, operation_id=token, operation_token=token
                )
            )
            cancel = True
        else:
            raise HandlerError("NOT_FOUND", "not found")
        timeout = _timeout(request)
        try:
            answer = await self.matching.dispatch_nexus_task(ns.id, task_queue, nexus_request, timeout)
        except DeadlineExceeded:
            raise HandlerError("UPSTREAM_TIMEOUT", "upstream timeout") from None
        except ServiceError as e:
            raise HandlerError(
                "UNAVAILABLE" if isinstance(e, Unavailable) else "INTERNAL", e.message
            ) from None
        return answer_response(answer, cancel)

    async def _endpoint(self, endpoint_id: str) -> tuple[str, str, str]:
        _, records = await self.store.list_nexus_endpoints()
        for record in records:
            if record.id == endpoint_id:
                endpoint = Endpoint.FromString(record.data)
                if endpoint.spec.target.WhichOneof("variant") != "worker":
                    raise HandlerError("BAD_REQUEST", "endpoint is not a worker target")
                worker = endpoint.spec.target.worker
                return endpoint.spec.name, worker.namespace, worker.task_queue
        raise HandlerError("NOT_FOUND", "nexus endpoint not found")

    async def _authorize(self, request: web.Request, method: str, namespace: str) -> None:
        auth = self.authorization
        if auth is None:
            return
        token = request.headers.get("Authorization", "")
        claims = None
        if token:
            try:
                claims = auth.claim_mapper.get_claims(
                    AuthInfo(token, request.headers.get("Authorization-Extras", ""))
                )
            except InvalidToken as e:
                log.info("Nexus HTTP request unauthenticated: %s", e)
                raise HandlerError("UNAUTHENTICATED", "unauthorized") from None
        try:
            result = await auth.authorizer.authorize(claims, CallTarget(method, namespace))
        except Exception:  # a plugged-in authorizer failing denies, as on the gRPC port
            log.exception("Nexus HTTP request: authorization failed")
            raise HandlerError("UNAUTHORIZED", "permission denied") from None
        if not result.allowed:
            log.info("Nexus HTTP request unauthorized: method=%s namespace=%s", method, namespace)
            raise HandlerError("UNAUTHORIZED", "permission denied")


def _operation_headers(request: web.Request) -> dict[str, str]:
    out = {}
    for key, value in request.headers.items():
        name = key.lower()
        if name in _HOP_HEADERS or name.startswith(("content-", nexus_http.CALLBACK_HEADER_PREFIX)):
            continue
        out.setdefault(name, value)
    return out


async def _start(request: web.Request, service: str, operation: str) -> StartOperationRequest:
    try:
        links = nexus_http.parse_links(request.headers.getall(nexus_http.LINK_HEADER, []))
    except ValueError:
        raise HandlerError("BAD_REQUEST", f'invalid "{nexus_http.LINK_HEADER}" header') from None
    start = StartOperationRequest(
        service=service,
        operation=operation,
        request_id=request.headers.get(nexus_http.REQUEST_ID_HEADER, "") or str(uuid.uuid4()),
        callback=request.query.get("callback", ""),
    )
    for key, value in request.headers.items():
        if key.lower().startswith(nexus_http.CALLBACK_HEADER_PREFIX):
            start.callback_header[key.lower()[len(nexus_http.CALLBACK_HEADER_PREFIX) :]] = value
    start.links.extend(links)
    body = await request.read()
    start.payload.CopyFrom(nexus_http.content_payload(nexus_http.content_headers(request.headers), body))
    return start


def _timeout(request: web.Request) -> float:
    ns = go_duration_ns(request.headers.get("request-timeout", "") or "")
    if ns is None or ns <= 0:
        return DEFAULT_TIMEOUT_S
    return min(ns / 1e9, DEFAULT_TIMEOUT_S)


def error_response(error: HandlerError) -> web.Response:
    headers = {}
    if error.retryable is not None:
        headers[nexus_http.RETRYABLE_HEADER] = "true" if error.retryable else "false"
    body = nexus_http.handler_error_body(error.kind, error.message)
    return _json_response(nexus_http.HANDLER_ERROR_STATUS.get(error.kind, 500), body, headers)


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """JSON as the reference writes it: `Content-Type: application/json`, no charset parameter."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def answer_response(answer: Any, cancel: bool) -> web.Response:
    """The handler worker's answer as the Nexus HTTP response."""
    if isinstance(answer, RespondNexusTaskFailedRequest):
        if answer.HasField("failure"):
            failure = answer.failure
            info = failure.nexus_handler_failure_info
            kind, behavior, message = info.type, info.retry_behavior, failure.message
        else:
            kind, behavior = answer.error.error_type, answer.error.retry_behavior
            message = answer.error.failure.message
        retryable = {1: True, 2: False}.get(behavior)
        return error_response(HandlerError(kind or "INTERNAL", message, retryable))
    if cancel or answer.response.HasField("cancel_operation"):
        return web.Response(status=202)
    start = answer.response.start_operation
    which = start.WhichOneof("variant")
    if which == "sync_success":
        payload = start.sync_success.payload if start.sync_success.HasField("payload") else None
        content, data = nexus_http.payload_content(payload)
        headers = {"Content-" + k.capitalize(): v for k, v in content.items()}
        return web.Response(status=200, body=data, headers=headers)
    if which == "async_success":
        token = start.async_success.operation_token or start.async_success.operation_id
        return _json_response(201, {"token": token, "state": "running"})
    if which == "failure":
        state = "canceled" if start.failure.HasField("canceled_failure_info") else "failed"
        body = nexus_http.nexus_failure(start.failure)
    elif which == "operation_error":
        error = start.operation_error
        state = "canceled" if error.operation_state == "canceled" else "failed"
        body = {"message": error.failure.message}
        if error.failure.metadata:
            body["metadata"] = dict(error.failure.metadata)
        if error.failure.details:
            try:
                body["details"] = json.loads(error.failure.details)
            except ValueError:
                pass
    else:
        return error_response(
            HandlerError("INTERNAL", "the handler answered with no start operation response")
        )
    return _json_response(nexus_http.STATUS_OPERATION_UNSUCCESSFUL, body, {nexus_http.STATE_HEADER: state})
