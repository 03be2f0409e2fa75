"""What the server says about itself: GetClusterInfo, GetSystemInfo's version and OperatorService
ListClusters, from one set of facts the node fills in when it starts.

The version Hourglass reports is the reference release whose API it serves (SERVER_VERSION): the `temporal`
CLI, the Web UI and the SDKs compare it to decide which features they may use, so it must read as a
Temporal server version. Hourglass's own version goes out beside it, in the `hourglass-version` response
header of GetSystemInfo and GetClusterInfo (no field of those answers is free for it without changing what
the reference's clients render).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from importlib import metadata

from temporalio.api.operatorservice.v1 import ClusterMetadata, ListClustersResponse
from temporalio.api.workflowservice.v1 import GetClusterInfoResponse

# The reference release whose API (and CLI/UI feature gates) Hourglass follows.
SERVER_VERSION = "1.32.0"
VERSION_HEADER = "hourglass-version"
# The client versions the reference declares it supports (the CLI prints them).
SUPPORTED_CLIENTS = {
    "Nexus-go-sdk": "<2.0.0",
    "temporal-cli": "<2.0.0",
    "temporal-go": "<2.0.0",
    "temporal-java": "<2.0.0",
    "temporal-php": "<2.0.0",
    "temporal-server": "<2.0.0",
    "temporal-typescript": "<2.0.0",
    "temporal-ui": "<3.0.0",
}
# A cluster without multi-cluster replication: the reference's defaults.
INITIAL_FAILOVER_VERSION = 1
FAILOVER_VERSION_INCREMENT = 10


@functools.cache
def hourglass_version() -> str:
    """The installed package's version, read once: importlib.metadata parses the package's METADATA file
    on every call, a visible share of a node's CPU when clients call GetSystemInfo often."""
    try:
        return metadata.version("hourglass")
    except metadata.PackageNotFoundError:
        return "unknown"


def cluster_id_from_secret(secret: bytes, cluster_name: str) -> str:
    """A UUID fixed for the life of a cluster and different between clusters, without a new stored field:
    derived one-way from the cluster's stored secret (nothing of the secret can be recovered from it)."""
    if not secret:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hourglass-cluster:{cluster_name}"))
    digest = hmac.new(secret, b"hourglass cluster id", hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class ClusterFacts:
    name: str = "hourglass"
    cluster_id: str = ""
    history_shard_count: int = 1
    # The store's own name, as the reference names its stores ("sqlite", "cassandra").
    persistence_store: str = ""
    visibility_store: str = ""
    # The frontend address clients reach this node at (ListClusters' address), and the HTTP port's.
    address: str = ""
    http_address: str = ""

    def cluster_info(self) -> GetClusterInfoResponse:
        return GetClusterInfoResponse(
            supported_clients=SUPPORTED_CLIENTS,
            server_version=SERVER_VERSION,
            cluster_id=self.cluster_id,
            cluster_name=self.name,
            history_shard_count=self.history_shard_count,
            persistence_store=self.persistence_store,
            visibility_store=self.visibility_store,
            initial_failover_version=INITIAL_FAILOVER_VERSION,
            failover_version_increment=FAILOVER_VERSION_INCREMENT,
        )

    def list_clusters(self) -> ListClustersResponse:
        """This cluster only: Hourglass has no remote clusters (AddOrUpdateRemoteCluster is unimplemented)."""
        return ListClustersResponse(
            clusters=[
                ClusterMetadata(
                    cluster_name=self.name,
                    cluster_id=self.cluster_id,
                    address=self.address,
                    http_address=self.http_address,
                    initial_failover_version=INITIAL_FAILOVER_VERSION,
                    history_shard_count=self.history_shard_count,
                    is_connection_enabled=True,
                )
            ]
        )
