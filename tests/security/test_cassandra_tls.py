"""Hourglass to Cassandra over TLS, against a real node: verified, mutually authenticated, or refused.

The development node (`tools/cassandra/devserver.py up`) serves plaintext and TLS on one port and requires
a client certificate from TLS clients; its CA and client certificate come from `dev_node_tls`. Tests skip
when the node has no such material (HOURGLASS_CASSANDRA_HOSTS names a node of another checkout: point
HOURGLASS_CASSANDRA_TLS_DIR at its tls/ directory). Wrong CAs and client certificates are made here with
trustme; nothing secret is committed.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from hourglass.cluster.config import load_config, open_store
from hourglass.cluster.schema_cli import schema
from hourglass.persistence.cassandra import testing
from hourglass.persistence.cassandra.config import CassandraConfig, build_cluster
from hourglass.persistence.cassandra.store import CassandraStore
from hourglass.persistence.errors import StoreUnavailableError
from hourglass.persistence.records import ClusterMetadata, NamespaceRecord
from hourglass.schema.migrate_cassandra import latest_version


@pytest.fixture(scope="module")
def node() -> Iterator[testing.DevNodeTLS]:
    if testing.skip_requested():
        pytest.skip(f"{testing.SKIP_ENV} is set")
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    config = testing.acquire()
    try:
        tls = testing.dev_node_tls(config)
        if tls is None:
            pytest.skip(
                f"no TLS material for the Cassandra node at {config.hosts[0]}:{config.port} "
                f"(not a dev node of this checkout; set {testing.TLS_DIR_ENV})"
            )
        yield tls
    finally:
        testing.release()


def tls_config(node: testing.DevNodeTLS, keyspace: str = "system", **changes: object) -> CassandraConfig:
    """Verified TLS with the dev CA and the dev client certificate, then `changes`."""
    config = CassandraConfig(
        hosts=[node.host],
        port=node.port,
        keyspace=keyspace,
        tls_ca_file=str(node.ca_file),
        tls_cert_file=str(node.client_cert_file),
        tls_key_file=str(node.client_key_file),
        connect_timeout_s=5,
    )
    return replace(config, **changes)


def connect_error(config: CassandraConfig) -> str:
    """What a store gets when it connects with `config` (which must fail)."""
    with pytest.raises(StoreUnavailableError) as info:
        CassandraStore.connect_blocking(config, check_schema=False).close_blocking()
    return str(info.value)


def schema_cli(node: testing.DevNodeTLS, *args: str, client_cert: bool = True) -> list[str]:
    flags = ["--hosts", f"{node.host}:{node.port}", "--tls-ca-file", str(node.ca_file)]
    if client_cert:
        flags += ["--tls-cert-file", str(node.client_cert_file), "--tls-key-file", str(node.client_key_file)]
    return [*args, *flags]


@pytest.fixture(scope="module")
def keyspace(node: testing.DevNodeTLS) -> Iterator[str]:
    """A keyspace the schema tool creates over TLS; dropped at the end."""
    name = testing.new_keyspace_name("tls")
    result = CliRunner().invoke(schema, schema_cli(node, "setup", "--keyspace", name))
    assert result.exit_code == 0, result.output
    assert f"keyspace {name!r} is at schema version {latest_version()}" in result.output
    try:
        yield name
    finally:
        cluster = build_cluster(tls_config(node))
        try:
            testing.drop_keyspace(cluster.connect(), name)
        finally:
            cluster.shutdown()


async def test_a_store_over_verified_mutual_tls_writes_and_reads(
    node: testing.DevNodeTLS, keyspace: str, tmp_path: Path
) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "store:\n  kind: cassandra\n  cassandra:\n"
        f"    hosts: ['{node.host}']\n    port: {node.port}\n    keyspace: {keyspace}\n"
        f"    tls_ca_file: {node.ca_file}\n"
        f"    tls_cert_file: {node.client_cert_file}\n    tls_key_file: {node.client_key_file}\n"
    )
    store = await open_store(load_config(path))
    try:
        assert isinstance(store, CassandraStore)
        metadata = await store.init_cluster_metadata(ClusterMetadata("tls-test", 4))
        assert metadata == ClusterMetadata("tls-test", 4)
        await store.create_namespace(NamespaceRecord(id="ns-id", name="secure", data=b"\x01\x02"))
        record = await store.get_namespace_by_name("secure")
        assert record is not None and (record.id, record.data) == ("ns-id", b"\x01\x02")
        # The node itself reports this very connection as TLS.
        connection = store.session.cluster.control_connection._connection
        assert isinstance(connection._socket, ssl.SSLSocket)
        local_port = connection._socket.getsockname()[1]
        rows = store.session.execute(
            "SELECT port, ssl_enabled, ssl_protocol FROM system_views.clients WHERE address = %s",
            (connection._socket.getsockname()[0],),
        )
        mine = [row for row in rows if row["port"] == local_port]
        assert mine and mine[0]["ssl_enabled"] is True and mine[0]["ssl_protocol"].startswith("TLSv1.")
    finally:
        await store.close()


def test_a_node_certificate_from_another_ca_is_refused(
    node: testing.DevNodeTLS, keyspace: str, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    message = connect_error(tls_config(node, keyspace, tls_ca_file=str(other_ca)))
    assert "TLS: the node's certificate is not trusted" in message
    assert "certificate verify failed" in message and "tls_ca_file" in message


def test_a_certificate_for_another_name_is_refused_while_host_verification_is_on(
    node: testing.DevNodeTLS, keyspace: str
) -> None:
    message = connect_error(tls_config(node, keyspace, tls_server_name="cassandra.example.com"))
    assert "TLS: the node's certificate does not name the address connected to" in message
    assert "cassandra.example.com" in message and "tls_server_name" in message
    # The same connection is accepted once the expected name is one the certificate carries ...
    CassandraStore.connect_blocking(tls_config(node, keyspace, tls_server_name="localhost")).close_blocking()
    # ... or when host verification is turned off (the chain is still verified).
    CassandraStore.connect_blocking(
        tls_config(node, keyspace, tls_server_name="cassandra.example.com", tls_verify_hostname=False)
    ).close_blocking()


def test_the_client_certificate_is_presented_and_required(
    node: testing.DevNodeTLS, keyspace: str, tmp_path: Path
) -> None:
    # The dev client certificate opens the connection (the other tests); none at all is refused by the node.
    without = connect_error(tls_config(node, keyspace, tls_cert_file=None, tls_key_file=None))
    assert "TLS: the node refused the handshake" in without
    assert "it requires a client certificate: set tls_cert_file and tls_key_file" in without
    # A client certificate from a CA the node does not trust is refused too.
    stranger = trustme.CA().issue_cert("hourglass-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    stranger.cert_chain_pems[0].write_to_path(str(cert))
    stranger.private_key_pem.write_to_path(str(key))
    refused = connect_error(tls_config(node, keyspace, tls_cert_file=str(cert), tls_key_file=str(key)))
    assert "TLS: the node refused the handshake" in refused
    assert "it did not accept the client certificate (tls_cert_file)" in refused


def test_schema_version_cli_over_tls(node: testing.DevNodeTLS, keyspace: str) -> None:
    """The installed `hourglass` command, in its own process, as an operator runs it."""
    command = [sys.executable, "-m", "hourglass.cluster.cli", "schema", "version", "--keyspace", keyspace]
    result = subprocess.run(
        schema_cli(node, *command), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"keyspace {keyspace!r}: schema version {latest_version()}" in result.stdout
    assert "status: up to date" in result.stdout
    refused = subprocess.run(
        schema_cli(node, *command, client_cert=False),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert f"cannot connect to Cassandra at {node.host}:{node.port}: TLS: the node refused" in refused.stderr
    assert "it requires a client certificate" in refused.stderr
