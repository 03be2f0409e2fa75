"""Turn ServiceErrors into gRPC statuses with the typed details Temporal SDKs decode."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import grpc
from google.rpc import status_pb2

from hourglass.cluster.errors import ServiceError
from hourglass.cluster.frontend.validation import check_namespace_length
from hourglass.persistence.errors import StoreUnavailableError

log = logging.getLogger(__name__)


# The status travels in the trailers, twice (grpc-message, and inside grpc-status-details-bin): a
# message echoing a client's long value must not push them past the client's metadata limit (8-16 KiB,
# else the client sees RESOURCE_EXHAUSTED instead of the error). The reference's messages stop at 4000.
MAX_MESSAGE_CHARS = 4000
# Non-ASCII bytes are percent-encoded in grpc-message (3 characters each).
MAX_NON_ASCII_MESSAGE_BYTES = 1300
MAX_DETAILS_BYTES = 6000


def bounded_message(message: str) -> str:
    """`message`, cut so that the status fits in any client's trailers."""
    if message.isascii():
        return message[:MAX_MESSAGE_CHARS]
    return message.encode()[:MAX_NON_ASCII_MESSAGE_BYTES].decode(errors="ignore")


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, detail=None) -> None:
    message = bounded_message(message)
    status = status_pb2.Status(code=code.value[0], message=message)
    if detail is not None:
        status.details.add().Pack(detail)
        if status.ByteSize() > MAX_DETAILS_BYTES:  # a detail echoing a long value: the status alone
            del status.details[:]
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


# Statuses that say the caller sent something wrong: worth an operator's look, in one line. Others
# (NOT_FOUND, ALREADY_EXISTS...) are ordinary answers SDKs rely on, logged at debug level.
_CLIENT_MISTAKES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
_LOGGED_MESSAGE_CHARS = 300


def _log_client_error(method: str, request, e: ServiceError) -> None:
    """One line per refused request (method, namespace, status, message), never a traceback."""
    namespace = getattr(request, "namespace", "")
    log.log(
        logging.INFO if e.code in _CLIENT_MISTAKES else logging.DEBUG,
        "%s namespace=%s %s: %s",
        method,
        namespace if isinstance(namespace, str) and namespace else "-",
        e.code.name,
        e.message[:_LOGGED_MESSAGE_CHARS],
    )


def unimplemented(name: str) -> Callable:
    async def handler(self, request, context: grpc.aio.ServicerContext):
        await abort(context, grpc.StatusCode.UNIMPLEMENTED, f"Hourglass does not implement {name} yet")

    handler.__name__ = name
    return handler
