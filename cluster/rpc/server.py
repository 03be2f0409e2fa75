"""The internal gRPC services a member serves to the others: history, matching and schedule operations
(run on the local engine, which refuses what it does not own), and cluster status."""

from __future__ import annotations

import asyncio
import logging

import grpc

from hourglass.cluster.errors import ServiceError, Unavailable
from hourglass.cluster.rpc import codec
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.persistence.errors import StoreUnavailableError

log = logging.getLogger(__name__)

PACKAGE = "hourglass.internal.v1"


def invoke_handler(service: str, target: object, allowed: frozenset[str]) -> grpc.GenericRpcHandler:
    """A generic handler for `<service>/Invoke`: runs an allowed method of `target` with decoded args."""

    async def invoke(request: pb.Call, context: grpc.aio.ServicerContext) -> pb.Reply:
        if request.method not in allowed:
            return pb.Reply(
                error=pb.Error(kind="Unimplemented", code=12, message=f"{service} has no {request.method}")
            )
        try:
            args = [codec.decode(a) for a in request.args]
            result = await getattr(target, request.method)(*args)
            return pb.Reply(value=codec.encode(result))
        except asyncio.CancelledError:
            raise
        except StoreUnavailableError as e:
            return pb.Reply(error=codec.encode_error(Unavailable(f"persistence unavailable: {e}")))
        except Exception as e:
            if not isinstance(e, codec.KNOWN_ERRORS):
                log.exception("internal %s.%s failed", service, request.method)
            return pb.Reply(error=codec.encode_error(e))

    return grpc.method_handlers_generic_handler(
        f"{PACKAGE}.{service}",
        {
            "Invoke": grpc.unary_unary_rpc_method_handler(
                invoke,
                request_deserializer=pb.Call.FromString,
                response_serializer=pb.Reply.SerializeToString,
            )
        },
    )


def cluster_handler(
    status, local_ownership=None, set_gossip_blocked=None, drain=None, undrain=None
) -> grpc.GenericRpcHandler:
    """ClusterService with the methods given: each callable takes the request message and returns the
    response message (a ServiceError it raises is answered with its status). A method not given is not
    served (UNIMPLEMENTED): the public port gets `Status`, `Drain` and `Undrain` (the authorizer lets
    admins only through), the internal port `LocalOwnership` too, and `SetGossipBlocked` only with
    `cluster.test_hooks`."""

    def unary(fn, request_type, response_type):
        async def handler(request, context):
            try:
                return await fn(request)
            except ServiceError as e:
                await context.abort(e.code, e.message)

        return grpc.unary_unary_rpc_method_handler(
            handler,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )

    methods = {"Status": unary(status, pb.ClusterStatusRequest, pb.ClusterStatusResponse)}
    if local_ownership is not None:
        methods["LocalOwnership"] = unary(
            local_ownership, pb.LocalOwnershipRequest, pb.LocalOwnershipResponse
        )
    if set_gossip_blocked is not None:
        methods["SetGossipBlocked"] = unary(
            set_gossip_blocked, pb.SetGossipBlockedRequest, pb.SetGossipBlockedResponse
        )
    if drain is not None:
        methods["Drain"] = unary(drain, pb.DrainRequest, pb.DrainResponse)
    if undrain is not None:
        methods["Undrain"] = unary(undrain, pb.UndrainRequest, pb.UndrainResponse)
    return grpc.method_handlers_generic_handler(f"{PACKAGE}.ClusterService", methods)
