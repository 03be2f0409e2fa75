"""The dev Cassandra's TLS files (tools/cassandra/devserver.py): one CA per checkout, private keys private.

No Cassandra is started: only the files `up` writes before starting a node are checked here; the node
using them is tests/security/test_cassandra_tls.py.
"""

from __future__ import annotations

import ssl
import stat
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509

from hourglass.persistence.cassandra import testing


@pytest.fixture
def devserver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = testing.devserver_module()
    if module is None:
        pytest.skip("tools/cassandra/devserver.py is not in this checkout")
    monkeypatch.setattr(module, "DEV_CA_DIR", tmp_path / "dev-ca")
    return module


def node(devserver: ModuleType, tmp_path: Path, address: str):
    args = devserver.parse_args(["up", "--listen-address", address, "--data-dir", str(tmp_path / address)])
    return devserver.node_from_args(args)


def test_nodes_share_one_ca_and_each_certificate_names_its_node(
    devserver: ModuleType, tmp_path: Path
) -> None:
    first = devserver.ensure_tls_material(node(devserver, tmp_path, "127.0.0.2"))
    second = devserver.ensure_tls_material(node(devserver, tmp_path, "127.0.0.3"))
    assert first.ca_file.read_bytes() == second.ca_file.read_bytes()
    for material, address in ((first, "127.0.0.2"), (second, "127.0.0.3")):
        node_cert = x509.load_pem_x509_certificates(material.node_keystore.read_bytes())[0]
        sans = node_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [address]
        # The client files load as a client identity that trusts the CA (what a test or a user passes).
        context = ssl.create_default_context(cafile=str(material.ca_file))
        context.load_cert_chain(str(material.client_cert_file), str(material.client_key_file))
        for private in (
            material.node_keystore,
            material.client_key_file,
            devserver.DEV_CA_DIR / "ca-key.pem",
        ):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private


def test_files_are_kept_across_restarts_and_reissued_for_a_new_address(
    devserver: ModuleType, tmp_path: Path
) -> None:
    material = devserver.ensure_tls_material(node(devserver, tmp_path, "127.0.0.2"))
    before = material.node_keystore.read_bytes()
    assert (
        devserver.ensure_tls_material(node(devserver, tmp_path, "127.0.0.2")).node_keystore.read_bytes()
        == before
    )
    moved = devserver.node_from_args(
        devserver.parse_args(
            ["up", "--listen-address", "127.0.0.4", "--data-dir", str(tmp_path / "127.0.0.2")]
        )
    )
    assert devserver.ensure_tls_material(moved).node_keystore.read_bytes() != before
