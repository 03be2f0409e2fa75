"""Turn ServiceErrors into gRPC statuses with the typed details Temporal SDKs decode.

Also the generic answers no handler sees: a request that does not decode gets the reference's INTERNAL
"grpc: error unmarshalling request: ..." (grpc-go's codec error) in one log line, not grpc's UNKNOWN with a
traceback; and no status message is ever too large for a client's metadata limit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2

from hourglass.cluster.errors import ServiceError
from hourglass.cluster.frontend.unary_interceptor import Behavior, UnaryRequestInterceptor, call_behavior
from hourglass.cluster.frontend.validation import check_namespace_length
from hourglass.persistence.errors import StoreUnavailableError

log = logging.getLogger(__name__)


# The status travels in the trailers: a message echoing a client's long value must not push them past the
# client's metadata limit (8 KiB for grpc's C core, else the client sees RESOURCE_EXHAUSTED instead of the
# error). The reference's messages stop at 4000 characters. With a typed detail the message travels twice
# (grpc-message, and inside grpc-status-details-bin), so it is cut to half of that.
MAX_MESSAGE_CHARS = 4000
MAX_MESSAGE_WITH_DETAIL_CHARS = 2000
# Non-ASCII bytes are percent-encoded in grpc-message (3 characters each).
MAX_NON_ASCII_MESSAGE_BYTES = MAX_MESSAGE_CHARS // 3
# A detail (e.g. NamespaceNotFoundFailure) repeats the long value again inside grpc-status-details-bin.
MAX_DETAIL_BYTES = 1024
UNMARSHAL_PREFIX = "grpc: error unmarshalling request: "


def bounded_message(message: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """`message`, cut so that the status fits in any client's trailers."""
    if message.isascii():
        return message[:max_chars]
    return message.encode()[: max_chars // 3].decode(errors="ignore")


def bounded_detail(detail: Message) -> Message | None:
    """`detail`, its long strings cut (a NamespaceNotFoundFailure naming a 70 KB namespace, say); None if it
    still does not fit: the status then travels without details rather than not at all."""
    if detail.ByteSize() <= MAX_DETAIL_BYTES:
        return detail
    cut = type(detail)()
    cut.CopyFrom(detail)
    _cut_strings(cut)
    return cut if cut.ByteSize() <= MAX_DETAIL_BYTES else None


def _cut_strings(msg: Message, limit: int = 200) -> None:
    for field, value in msg.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for sub in (value.values() if _is_map(field) else value) if field.is_repeated else (value,):
                if isinstance(sub, Message):
                    _cut_strings(sub, limit)
        elif not field.is_repeated and field.type in (
            FieldDescriptor.TYPE_STRING,
            FieldDescriptor.TYPE_BYTES,
        ):
            if len(value) > limit:
                setattr(msg, field.name, value[:limit])


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, detail=None) -> None:
    detail = bounded_detail(detail) if detail is not None else None
    if detail is None:
        await context.abort(code, bounded_message(message))
    message = bounded_message(message, MAX_MESSAGE_WITH_DETAIL_CHARS)
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(detail)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(code, message)


def rpc(method: Callable) -> Callable:
    """Wrap a servicer method: ServiceError -> its status; anything unexpected -> INTERNAL, logged."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            check_namespace_length(request)
            return await method(self, request, context)
        except ServiceError as e:
            _log_client_error(method.__name__, request, e)
            await abort(context, e.code, e.message, e.detail)
        except StoreUnavailableError as e:
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"persistence unavailable: {e}")
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("unexpected error in %s", method.__name__)
            await abort(context, grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}")

    return wrapper


# Every failed request is worth an operator's look, in one line at info level (a Web UI page that stays
# blank is explained by the line of the call it made). RESOURCE_EXHAUSTED comes in floods and is counted
# in hourglass_requests_refused_total instead: debug.
_QUIET = {grpc.StatusCode.RESOURCE_EXHAUSTED}
_LOGGED_MESSAGE_CHARS = 300


def _log_client_error(method: str, request, e: ServiceError) -> None:
    """One line per refused request (method, namespace, status, message), never a traceback."""
    log_failed_request(method, request, e.code, e.message)


def log_failed_request(method: str, request, code: grpc.StatusCode, message: str) -> None:
    namespace = getattr(request, "namespace", "")
    log.log(
        logging.DEBUG if code in _QUIET else logging.INFO,
        "%s namespace=%s %s: %s",
        method,
        namespace if isinstance(namespace, str) and namespace else "-",
        code.name,
        message[:_LOGGED_MESSAGE_CHARS],
    )


def unimplemented(name: str) -> Callable:
    async def handler(self, request, context: grpc.aio.ServicerContext):
        message = f"Hourglass does not implement {name} yet"
        log_failed_request(name, request, grpc.StatusCode.UNIMPLEMENTED, message)
        await abort(context, grpc.StatusCode.UNIMPLEMENTED, message)

    handler.__name__ = name
    return handler


class Undecodable:
    """What the deserializer hands over instead of a request it could not parse (see DecodeErrorInterceptor)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def unmarshal_message(error: DecodeError) -> str:
    """The reference's message for a request it cannot decode (grpc-go codec + protobuf-go wording)."""
    if "UTF-8" in str(error):
        return UNMARSHAL_PREFIX + "string field contains invalid UTF-8"
    return UNMARSHAL_PREFIX + "proto: cannot parse invalid wire-format data"


def _decoding(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as e:
            return Undecodable(unmarshal_message(e))

    return decode


class DecodeErrorInterceptor(UnaryRequestInterceptor):
    """Garbage bytes or invalid UTF-8 answer INTERNAL "grpc: error unmarshalling request: ..." as the reference.

    Without it grpc answers UNKNOWN "Unexpected <class DecodeError>..." and logs a traceback per request.
    It must be the first interceptor: like grpc-go, the request is decoded before any other one runs.
    Only unary requests are decoded up front (every Temporal RPC is unary)."""

    def deserializer(self, inner: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        return _decoding(inner)

    def guard(self, method: str, behavior: Behavior) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                # One line, in the form of every refused request (see _log_client_error).
                log.info("%s namespace=- INTERNAL: %s", method.rsplit("/", 1)[-1], request.message)
                await abort(context, grpc.StatusCode.INTERNAL, request.message)
            return await call_behavior(behavior, request, context)

        return call
