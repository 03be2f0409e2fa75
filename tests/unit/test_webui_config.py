"""The Web UI's settings: the `ui:` section of a node's YAML is checked before anything starts, and the
UI server is told the frontend's address and TLS the way its config file expects them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hourglass.cluster.config import ConfigError, TLSGroupSection, TLSServerSection, load_config
from hourglass.cluster.webui import WebUIError, default_port, frontend_dial_address, settings_for_frontend

MTLS_FRONTEND = """
tls:
  frontend:
    server: {cert_file: s.crt, key_file: s.key, client_ca_files: [ca.pem], require_client_auth: true}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text("store:\n  kind: sqlite\n" + text)
    return path


def test_ui_section_defaults_to_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.ui.enabled is False


def test_ui_section_is_read(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "ui:\n  enabled: true\n  port: 9233\n  ip: 0.0.0.0\n  binary: /opt/ui\n")
    )
    assert (config.ui.enabled, config.ui.port, config.ui.ip, config.ui.binary) == (
        True,
        9233,
        "0.0.0.0",
        "/opt/ui",
    )


def test_a_mutual_tls_frontend_needs_a_client_certificate_for_the_ui(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ui.client_cert_file and ui.client_key_file"):
        load_config(write(tmp_path, MTLS_FRONTEND + "ui:\n  enabled: true\n"))
    ok = MTLS_FRONTEND + "ui:\n  enabled: true\n  client_cert_file: ui.crt\n  client_key_file: ui.key\n"
    assert load_config(write(tmp_path, ok)).ui.client_cert_file == "ui.crt"


def test_ui_port_clash_and_half_a_key_pair_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ui.port must differ from node.port"):
        load_config(write(tmp_path, "node:\n  port: 7233\nui:\n  enabled: true\n  port: 7233\n"))
    with pytest.raises(ConfigError, match="ui.client_cert_file and ui.client_key_file go together"):
        load_config(write(tmp_path, "ui:\n  enabled: true\n  client_cert_file: ui.crt\n"))
    with pytest.raises(ConfigError, match=r"ui\.port"):
        load_config(write(tmp_path, "ui:\n  port: 70000\n"))


def test_default_port_is_the_frontends_plus_1000() -> None:
    assert default_port(7233) == 8233
    assert 0 < default_port(0) < 65536 and default_port(0) != 1000
    assert default_port(65000) != 66000


def test_plaintext_settings_mirror_the_reference_cli() -> None:
    s = settings_for_frontend(
        binary=Path("ui"), ip="127.0.0.1", port=8233, frontend_ip="0.0.0.0", frontend_port=7233
    )
    cfg = s.config()
    assert cfg["temporalGrpcAddress"] == "127.0.0.1:7233"
    assert (cfg["host"], cfg["port"], cfg["enableUi"], cfg["hideLogs"]) == ("127.0.0.1", 8233, True, True)
    assert cfg["cors"] == {"cookieInsecure": True}
    assert "tls" not in cfg and "uiServerTLS" not in cfg
    assert s.url == "http://127.0.0.1:8233"
    assert frontend_dial_address("::", 7233) == "[::1]:7233"


def test_tls_settings_serve_https_and_require_client_certificates_as_the_frontend() -> None:
    server = TLSServerSection(cert_file="s.crt", key_file="s.key")
    s = settings_for_frontend(
        binary=Path("ui"),
        ip="127.0.0.1",
        port=8233,
        frontend_ip="127.0.0.1",
        frontend_port=7233,
        frontend_tls=TLSGroupSection(server=server),
    )
    cfg = s.config()
    assert cfg["tls"] == {"enableHostVerification": True, "caFile": "s.crt"}
    assert cfg["uiServerTLS"] == {"certFile": "s.crt", "keyFile": "s.key"}
    assert cfg["cors"] == {"cookieInsecure": False}
    assert s.url == "https://127.0.0.1:8233"

    mtls = TLSGroupSection(
        server=TLSServerSection(
            cert_file="s.crt", key_file="s.key", client_ca_files=["ca.pem"], require_client_auth=True
        )
    )
    with pytest.raises(WebUIError, match="needs one of its own"):
        settings_for_frontend(
            binary=Path("ui"),
            ip="127.0.0.1",
            port=8233,
            frontend_ip="127.0.0.1",
            frontend_port=7233,
            frontend_tls=mtls,
        )
    s = settings_for_frontend(
        binary=Path("ui"),
        ip="127.0.0.1",
        port=8233,
        frontend_ip="127.0.0.1",
        frontend_port=7233,
        frontend_tls=mtls,
        client_cert_file="ui.crt",
        client_key_file="ui.key",
    )
    cfg = s.config()
    assert cfg["tls"]["certFile"] == "ui.crt" and cfg["tls"]["keyFile"] == "ui.key"
    assert cfg["uiServerTLS"]["mTLS"] == {"caFile": "client-ca.pem", "clientAuth": "requireAndVerify"}
    assert s.serve_client_ca_files == ("ca.pem",)
