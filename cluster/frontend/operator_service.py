"""The OperatorService: search attributes per namespace, namespace deletion, this cluster's listing and the
Nexus endpoint registry (cluster/frontend/nexus_endpoints.py).

Every other OperatorService RPC (remote clusters) answers UNIMPLEMENTED with its name, like the
WorkflowService's unimplemented RPCs.
"""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import request_response_pb2 as rr
from temporalio.api.operatorservice.v1.service_pb2_grpc import OperatorServiceServicer

from hourglass.cluster.errors import InvalidArgument, Unavailable
from hourglass.cluster.frontend.cluster_info import ClusterFacts
from hourglass.cluster.frontend.grpc_errors import rpc, unimplemented
from hourglass.cluster.frontend.namespace_deletion import NamespaceDeleter
from hourglass.cluster.frontend.namespaces import Namespace, NamespaceRegistry
from hourglass.cluster.frontend.nexus_endpoints import NexusEndpointRegistry
from hourglass.cluster.frontend.search_attributes import SearchAttributeRegistry, system_attribute_types


class OperatorService(OperatorServiceServicer):
    def __init__(
        self,
        namespaces: NamespaceRegistry,
        search_attributes: SearchAttributeRegistry,
        deleter: NamespaceDeleter | None = None,
        cluster: ClusterFacts | None = None,
        nexus_endpoints: NexusEndpointRegistry | None = None,
    ) -> None:
        self.namespaces = namespaces
        self.search_attributes = search_attributes
        self.deleter = deleter
        self.cluster = cluster or ClusterFacts(name=namespaces.server.cluster_name)
        self.nexus_endpoints = nexus_endpoints or NexusEndpointRegistry(namespaces.store, namespaces)

    async def _namespace(self, name: str) -> Namespace:
        if not name:
            raise InvalidArgument("Namespace is not set on request.")
        return await self.namespaces.get(name)

    @rpc
    async def AddSearchAttributes(self, request, context):
        ns = await self._namespace(request.namespace)
        await self.search_attributes.add(ns.id, dict(request.search_attributes))
        return rr.AddSearchAttributesResponse()

    @rpc
    async def RemoveSearchAttributes(self, request, context):
        ns = await self._namespace(request.namespace)
        await self.search_attributes.remove(ns.id, list(request.search_attributes))
        return rr.RemoveSearchAttributesResponse()

    @rpc
    async def ListSearchAttributes(self, request, context):
        ns = await self._namespace(request.namespace)
        return rr.ListSearchAttributesResponse(
            custom_attributes=await self.search_attributes.custom(ns.id),
            system_attributes=system_attribute_types(),
        )

    @rpc
    async def DeleteNamespace(self, request, context):
        if self.deleter is None:
            raise Unavailable("namespace deletion is not running on this node")
        deleted = await self.deleter.delete(request.namespace, request.namespace_id)
        return rr.DeleteNamespaceResponse(deleted_namespace=deleted)

    @rpc
    async def ListClusters(self, request, context):
        return self.cluster.list_clusters()

    @rpc
    async def CreateNexusEndpoint(self, request, context):
        endpoint = await self.nexus_endpoints.create(request.spec)
        return rr.CreateNexusEndpointResponse(endpoint=endpoint)

    @rpc
    async def UpdateNexusEndpoint(self, request, context):
        endpoint = await self.nexus_endpoints.update(request.id, request.version, request.spec)
        return rr.UpdateNexusEndpointResponse(endpoint=endpoint)

    @rpc
    async def DeleteNexusEndpoint(self, request, context):
        await self.nexus_endpoints.delete(request.id, request.version)
        return rr.DeleteNexusEndpointResponse()

    @rpc
    async def GetNexusEndpoint(self, request, context):
        return rr.GetNexusEndpointResponse(endpoint=await self.nexus_endpoints.get(request.id))

    @rpc
    async def ListNexusEndpoints(self, request, context):
        endpoints, token = await self.nexus_endpoints.list(
            request.page_size, request.next_page_token, request.name
        )
        return rr.ListNexusEndpointsResponse(endpoints=endpoints, next_page_token=token)


def _fill_unimplemented() -> None:
    """Every OperatorService RPC we do not serve answers UNIMPLEMENTED, naming itself."""
    for name in dir(OperatorServiceServicer):
        if name.startswith("_") or name in OperatorService.__dict__:
            continue
        setattr(OperatorService, name, unimplemented(name))


_fill_unimplemented()
