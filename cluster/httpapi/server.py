"""The HTTP API port (the reference's `--http-port`, `rpc.httpPort`): Temporal's JSON routes
(`/api/v1/namespaces/{namespace}/workflows/...`) served by aiohttp on the node's own event loop.

Each request is matched to its RPC (routes.py), its JSON body, path and query parameters become the
request message (temporal_json.py), and the call runs through the frontend's interceptors and handler
in-process (inline.py): the same authorization (the `Authorization: Bearer` header), validation, rate
limits, metrics and logging as over gRPC. Errors answer the reference's HTTP status for the gRPC code and
its body, the google.rpc.Status as JSON: `{"code": 5, "message": "...", "details": [...]}`.

With `tls.frontend` configured the port serves HTTPS with the frontend's certificate (client certificates
required when the frontend requires them), re-read when the files change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import Sequence
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.rpc import status_pb2

from hourglass.cluster.httpapi import nexus_routes
from hourglass.cluster.httpapi import routes as api_routes
from hourglass.cluster.httpapi.inline import CallResult, InlineChannel, InlineContext
from hourglass.cluster.httpapi.temporal_json import (
    JSONInputError,
    enum_name,
    from_json,
    merge_value,
    to_json,
)

log = logging.getLogger(__name__)

# As the reference: a request body is at most gRPC's default message size.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# JSON of more than this is converted in a thread: a 1 MB history page takes ~0.4 s of Python, which on
# the loop would hold up every other request of the node (in a thread, the loop runs every 5 ms).
OFF_LOOP_BYTES = 64 * 1024
# runtime.HTTPStatusFromCode of grpc-gateway, which the reference answers with.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
# Headers passed to the handlers as gRPC metadata, as the reference forwards them (`Authorization` always;
# `Grpc-Metadata-X` as `x`).
FORWARDED_HEADERS = (
    "authorization",
    "authorization-extras",
    "x-forwarded-for",
    "client-name",
    "client-version",
)
METADATA_PREFIX = "grpc-metadata-"
CLIENT_NAME = "temporal-server-http"
JSON_CONTENT_TYPE = "application/json"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def status_body(code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None) -> str:
    status = status or status_pb2.Status(code=code.value[0], message=message)
    return to_json(status)


class HttpApi:
    """The aiohttp application of the HTTP API over an InlineChannel."""

    def __init__(self, channel: InlineChannel, nexus: Any = None) -> None:
        self.channel = channel
        # The Nexus routes (nexus_routes.NexusRoutes): completions and external callers' operations.
        self.nexus = nexus
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_response_prepare.append(_server_header)

    async def handle(self, request: web.Request) -> web.Response:
        """Every request: its answer, or INTERNAL in the API's JSON (never aiohttp's text page)."""
        try:
            return await self._handle(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("HTTP API: %s %s failed", request.method, request.path)
            return self._error(grpc.StatusCode.INTERNAL, "internal error", None)

    async def _handle(self, request: web.Request) -> web.Response:
        indent = 2 if "pretty" in request.query else None
        shorthand = "noPayloadShorthand" not in request.query
        # grpc-gateway's fallback: a form POSTed to another method's path (what `curl -d` sends) is that
        # method's call, its fields the form's; X-HTTP-Method-Override names the method.
        form = request.method == "POST" and request.content_type == FORM_CONTENT_TYPE
        method = request.headers.get("X-HTTP-Method-Override", "").upper() if form else ""
        path = request.raw_path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if self.nexus is not None and nexus_routes.is_nexus_path(parts):
            return await self.nexus.handle(request, parts)
        try:
            found = api_routes.match(method or request.method, path, any_method=form)
        except api_routes.RouteNotFound as e:
            code = grpc.StatusCode.UNIMPLEMENTED if e.method_mismatch else grpc.StatusCode.NOT_FOUND
            return self._error(code, str(e), indent)
        route = found.route
        try:
            message = await self._request_message(request, found, shorthand, form and found.route.body != "*")
        except JSONInputError as e:
            return self._error(grpc.StatusCode.INVALID_ARGUMENT, str(e), indent)
        except web.HTTPRequestEntityTooLarge:
            return self._error(grpc.StatusCode.INVALID_ARGUMENT, "http: request body too large", indent)
        context = InlineContext(_metadata(request), _peer(request), _deadline(request))
        try:
            result = await self.channel.call(route.grpc_method, message, route.response_class(), context)
        except Exception:
            log.exception("HTTP API: %s %s failed", request.method, request.path)
            return self._error(grpc.StatusCode.INTERNAL, f"internal error in {route.method.name}", indent)
        return await self._answer(result, shorthand, indent)

    async def _request_message(
        self, request: web.Request, found: api_routes.Match, shorthand: bool, form: bool
    ) -> Any:
        route = found.route
        request_class = route.request_class()
        if route.body == "*":
            raw = await request.read()
            if len(raw) > OFF_LOOP_BYTES:
                message = await asyncio.to_thread(from_json, raw, request_class, shorthand=shorthand)
            else:
                message = from_json(raw, request_class, shorthand=shorthand)
        else:
            items = _query_items(request)
            if form:
                items += [(k, v) for k, v in (await request.post()).items() if isinstance(v, str)]
            message = request_class()
            merge_value(message, _parameters(request_class.DESCRIPTOR, items), shorthand=shorthand)
        # Path variables win over the body, as in grpc-gateway.
        merge_value(
            message, _parameters(request_class.DESCRIPTOR, found.path_values.items()), shorthand=shorthand
        )
        return message

    async def _answer(self, result: CallResult, shorthand: bool, indent: int | None) -> web.Response:
        if result.code != grpc.StatusCode.OK:
            return self._error(result.code, result.message, indent, result.status)
        if result.response.ByteSize() > OFF_LOOP_BYTES:
            body = await asyncio.to_thread(to_json, result.response, shorthand=shorthand, indent=indent)
        else:
            body = to_json(result.response, shorthand=shorthand, indent=indent)
        return web.Response(status=200, text=body, content_type=JSON_CONTENT_TYPE)

    def _error(
        self, code: grpc.StatusCode, message: str, indent: int | None, status: status_pb2.Status | None = None
    ) -> web.Response:
        status = status or status_pb2.Status(code=code.value[0], message=message)
        return web.Response(
            status=HTTP_STATUS.get(code, 500),
            text=to_json(status, indent=indent),
            content_type=JSON_CONTENT_TYPE,
        )


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Name the server, not the Python and aiohttp versions it runs on."""
    response.headers["Server"] = "hourglass"


def _metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    metadata: list[tuple[str, str]] = []
    for key, value in request.headers.items():
        name = key.lower()
        if name in FORWARDED_HEADERS:
            metadata.append((name, value))
        elif name.startswith(METADATA_PREFIX) and len(name) > len(METADATA_PREFIX):
            metadata.append((name[len(METADATA_PREFIX) :], value))
    names = {k for k, _ in metadata}
    if "client-name" not in names:
        metadata.append(("client-name", CLIENT_NAME))
    if "x-forwarded-for" not in names and request.remote:
        metadata.append(("x-forwarded-for", request.remote))
    return tuple(metadata)


def _peer(request: web.Request) -> str:
    return f"ipv4:{request.remote}" if request.remote else ""


def _deadline(request: web.Request) -> float | None:
    """grpc-gateway's `Grpc-Timeout` header (`10S`, `500m`), as a deadline on the monotonic clock."""
    timeout = _TIMEOUT.match(request.headers.get("Grpc-Timeout", ""))
    if timeout is None:
        return None
    return time.monotonic() + int(timeout[1]) * _TIMEOUT_UNITS[timeout[2]]


def _query_items(request: web.Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query.items() if k not in ("pretty", "noPayloadShorthand")]


def _parameters(descriptor: Descriptor, items: Sequence[tuple[str, str]] | Any) -> dict[str, Any]:
    """Path or query parameters (`execution.runId=...`, names in proto or JSON form) as a JSON object for
    `descriptor`; repeated fields take every value. Unknown names are ignored, as by grpc-gateway."""
    out: dict[str, Any] = {}
    for path, text in items:
        target, current = out, descriptor
        parts = path.split(".")
        field = None
        for i, part in enumerate(parts):
            field = _field(current, part)
            if field is None:
                break
            if i < len(parts) - 1:
                if field.type != FieldDescriptor.TYPE_MESSAGE or field.is_repeated:
                    field = None
                    break
                target = target.setdefault(field.json_name, {})
                current = field.message_type
        if field is None:
            continue
        value = _scalar(field, text, path)
        if field.is_repeated:
            target.setdefault(field.json_name, []).append(value)
        else:
            target[field.json_name] = value
    return out


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    field = descriptor.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in descriptor.fields:
        if candidate.json_name == name:
            return candidate
    return None


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _scalar(field: FieldDescriptor, text: str, path: str) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise JSONInputError(f'parsing field "{field.name}": invalid boolean "{text}"')
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(text)
        except ValueError:
            raise JSONInputError(f'parsing field "{field.name}": invalid number "{text}"') from None
    if kind == FieldDescriptor.TYPE_ENUM:
        return enum_name(field.enum_type, text) if not text.lstrip("-").isdigit() else int(text)
    if kind == FieldDescriptor.TYPE_MESSAGE or kind == FieldDescriptor.TYPE_STRING:
        return text
    if kind == FieldDescriptor.TYPE_BYTES:
        return text
    try:
        return int(text)
    except ValueError:
        raise JSONInputError(f'parsing field "{field.name}": invalid integer "{text}"') from None


class HttpApiServer:
    """The listening port: aiohttp's runner and TCP site on the running loop."""

    def __init__(self, api: HttpApi, ip: str, port: int, tls: Any = None) -> None:
        self.api = api
        self.ip = ip
        self.port = port
        self.tls = tls  # webpage.server's TLS context holder (`current()`), or None for plain HTTP
        self._runner: web.AppRunner | None = None
        self.bound_port = 0

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = self.tls.current()

        def pick(connection: ssl.SSLObject, server_name: str | None, initial: ssl.SSLContext) -> None:
            # Every handshake takes the certificate files' current version (rotated without a restart).
            current = self.tls.current()
            if current is not initial:
                connection.context = current

        context.sni_callback = pick
        return context

    async def start(self) -> int:
        self._runner = web.AppRunner(self.api.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.ip, self.port, ssl_context=self._ssl_context(), reuse_port=False
        )
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        server = site._server  # the asyncio server: its socket knows the port picked for port 0
        self.bound_port = server.sockets[0].getsockname()[1] if server and server.sockets else self.port
        return self.bound_port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
