"""GetClusterInfo, GetSystemInfo and ListClusters against the reference's, and the header that carries
Hourglass's own version."""

from __future__ import annotations

import grpc
from temporalio.api.operatorservice.v1 import ListClustersRequest
from temporalio.api.workflowservice.v1 import GetClusterInfoRequest, GetSystemInfoRequest
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub
from temporalio.client import Client

from hourglass.cluster.frontend.cluster_info import VERSION_HEADER, hourglass_version

from .conftest import ServerProcess
from .servers import HOURGLASS, HOURGLASS_CASSANDRA


async def test_cluster_info_reads_as_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours = await (await Client.connect(server.address)).workflow_service.get_cluster_info(
        GetClusterInfoRequest()
    )
    theirs = await (await Client.connect(reference_server.address)).workflow_service.get_cluster_info(
        GetClusterInfoRequest()
    )
    assert ours.server_version == theirs.server_version
    assert dict(ours.supported_clients) == dict(theirs.supported_clients)
    assert (ours.initial_failover_version, ours.failover_version_increment) == (
        theirs.initial_failover_version,
        theirs.failover_version_increment,
    )
    expected_store = {HOURGLASS: "sqlite", HOURGLASS_CASSANDRA: "cassandra"}.get(
        server.kind, theirs.persistence_store
    )
    assert (ours.persistence_store, ours.visibility_store) == (expected_store, expected_store)
    assert len(ours.cluster_id) == 36  # a UUID, as the reference's
    system = await (await Client.connect(server.address)).workflow_service.get_system_info(
        GetSystemInfoRequest()
    )
    assert system.server_version == theirs.server_version


async def test_list_clusters_names_this_cluster(server: ServerProcess) -> None:
    client = await Client.connect(server.address)
    info = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    listed = (await client.operator_service.list_clusters(ListClustersRequest())).clusters
    assert [
        (c.cluster_name, c.cluster_id, c.history_shard_count, c.is_connection_enabled) for c in listed
    ] == [(info.cluster_name, info.cluster_id, info.history_shard_count, True)]
    assert listed[0].address == server.address


async def test_hourglass_version_header(server: ServerProcess) -> None:
    if server.kind not in (HOURGLASS, HOURGLASS_CASSANDRA):
        return  # the reference sends no such header
    async with grpc.aio.insecure_channel(server.address) as channel:
        call = WorkflowServiceStub(channel).GetClusterInfo(GetClusterInfoRequest())
        await call
        headers = dict(await call.initial_metadata())
    assert headers[VERSION_HEADER] == hourglass_version()
