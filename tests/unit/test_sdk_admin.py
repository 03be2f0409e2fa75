"""hourglass.sdk.admin without a cluster: what it makes of its arguments and of a single node."""

from __future__ import annotations

import grpc
import pytest
from temporalio.service import TLSConfig

from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.persistence.sqlite.store import SQLiteStore
from hourglass.schema.migrate_sqlite import default_schema_dir, load_schema_versions
from hourglass.sdk.admin import AdminClient, AdminError, _client_tls, cluster_status_from_proto


def test_tls_takes_the_sdks_tls_config():
    tls = _client_tls(
        TLSConfig(server_root_ca_cert=b"ca", client_cert=b"c", client_private_key=b"k", domain="x")
    )
    assert tls.root_ca == b"ca" and tls.key_pair.cert_chain == b"c" and tls.server_name == "x"
    assert _client_tls(None) is None and _client_tls(True).root_ca is None
    with pytest.raises(ValueError, match="go together"):
        _client_tls(TLSConfig(client_cert=b"c"))
    with pytest.raises(TypeError):
        _client_tls("yes")


def test_status_maps_unknown_counts_and_unowned_shards():
    resp = pb.ClusterStatusResponse(
        answered_by="a:1",
        history_shard_count=2,
        quorum=True,
        members=[pb.Member(id="a:1", state="draining", draining=True, shard_count=-1, partition_count=3)],
        shards=[pb.ShardOwner(shard_id=0, member_id="b:1"), pb.ShardOwner(shard_id=1)],
        schema_version=3,
        store_kind="cassandra",
    )
    status = cluster_status_from_proto(resp)
    assert status.members[0].shard_count is None and status.members[0].partition_count == 3
    assert status.members[0].draining and status.shard_map == {0: "b:1", 1: None}
    assert status.unowned_shards == [1] and status.schema.version == 3


async def test_sqlite_store_reports_its_schema_version():
    store = await SQLiteStore.open(None)
    try:
        newest = load_schema_versions(default_schema_dir())[-1].version
        assert await store.schema_version() == ("sqlite", newest)
    finally:
        await store.close()


async def test_connect_to_nothing_is_a_clear_unavailable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AdminError) as e:
        await AdminClient.connect(f"127.0.0.1:{port}", rpc_timeout=0.5)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and f"127.0.0.1:{port}" in e.value.message
