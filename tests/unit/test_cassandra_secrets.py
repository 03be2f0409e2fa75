"""Cassandra passwords and Astra tokens never need to be in YAML: files, environment variables, one source.

No Cassandra is needed: secrets are resolved (and refused) before any connection is made.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from hourglass.cluster.cli import main
from hourglass.cluster.config import ConfigError, cassandra_config, load_config
from hourglass.cluster.schema_cli import schema
from hourglass.persistence.cassandra.credentials import PASSWORD_ENV, TOKEN_ENV

SECRET = "s3cret-Pa55"


@pytest.fixture(autouse=True)
def _no_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def node_yaml(tmp_path: Path, cassandra: str) -> Path:
    path = tmp_path / "node.yaml"
    lines = "".join(f"    {line}\n" for line in cassandra.strip().splitlines())
    path.write_text(f"store:\n  kind: cassandra\n  cassandra:\n{lines}")
    return path


def resolved(tmp_path: Path, cassandra: str):
    return cassandra_config(load_config(node_yaml(tmp_path, cassandra)).store.cassandra)


def test_password_from_a_file_drops_one_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    config = resolved(tmp_path, f"username: hourglass\npassword_file: {secret}")
    assert config.username == "hourglass" and config.password == SECRET


def test_password_from_a_named_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DB_PASSWORD", SECRET)
    config = resolved(tmp_path, "username: hourglass\npassword_env: MY_DB_PASSWORD")
    assert config.password == SECRET


def test_password_from_the_default_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    assert resolved(tmp_path, "username: hourglass").password == SECRET


def test_an_inline_password_works_and_warns_to_move_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        config = resolved(tmp_path, f"username: hourglass\npassword: {SECRET}")
    assert config.password == SECRET
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "store.cassandra.password" in warning and "store.cassandra.password_file" in warning
    assert PASSWORD_ENV in warning and SECRET not in warning
    assert SECRET not in repr(config) and SECRET not in repr(load_config(tmp_path / "node.yaml"))


def test_two_sources_are_refused_naming_both_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(node_yaml(tmp_path, f"username: u\npassword: {SECRET}\npassword_file: /run/secrets/pw"))
    message = str(info.value)
    assert "store.cassandra" in message and "password and password_file are both given" in message
    assert SECRET not in message


def test_a_missing_password_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=rf"store\.cassandra\.password_file: cannot read {missing}"):
        resolved(tmp_path, f"username: u\npassword_file: {missing}")


def test_an_empty_password_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    empty = tmp_path / "password"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=rf"store\.cassandra\.password_file: {empty} is empty"):
        resolved(tmp_path, f"username: u\npassword_file: {empty}")


def test_an_unset_password_variable_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"store\.cassandra\.password_env: .*NOT_SET_ANYWHERE is not set"):
        resolved(tmp_path, "username: u\npassword_env: NOT_SET_ANYWHERE")


def test_a_password_without_a_username_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a password needs a username"):
        load_config(node_yaml(tmp_path, "password_env: X"))


def test_astra_token_from_a_file_or_the_default_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("AstraCS:abc\n")
    bundle = tmp_path / "bundle.zip"
    assert resolved(tmp_path, f"secure_connect_bundle: {bundle}\ntoken_file: {token}").token == "AstraCS:abc"
    monkeypatch.setenv(TOKEN_ENV, "AstraCS:from-env")
    assert resolved(tmp_path, f"secure_connect_bundle: {bundle}").token == "AstraCS:from-env"


def test_astra_without_any_token_is_an_error_naming_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"token_file / token_env: Astra DB needs .*{TOKEN_ENV}"):
        resolved(tmp_path, f"secure_connect_bundle: {tmp_path / 'bundle.zip'}")


def test_tls_options_are_checked_and_name_their_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert_file and tls_key_file go together"):
        load_config(node_yaml(tmp_path, "tls_cert_file: /x.pem"))
    with pytest.raises(ConfigError, match=r"not for Astra DB"):
        load_config(node_yaml(tmp_path, "secure_connect_bundle: /b.zip\ntls_ca_file: /ca.pem"))
    with pytest.raises(
        ConfigError, match=rf"store\.cassandra\.tls_ca_file: {tmp_path}/ca.pem does not exist"
    ):
        resolved(tmp_path, f"tls_ca_file: {tmp_path}/ca.pem")


def test_server_start_stops_before_connecting_when_the_password_file_is_missing(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing answers there, so only the secret check can produce this message.
    path = node_yaml(tmp_path, f"hosts: [127.0.0.1]\nport: 1\nusername: u\npassword_file: {tmp_path}/pw")
    result = CliRunner().invoke(main, ["server", "start", "--config", str(path), "--event-loop", "asyncio"])
    assert result.exit_code != 0
    assert f"store.cassandra.password_file: cannot read {tmp_path}/pw" in result.output


def test_schema_cli_reads_secrets_from_files_and_names_bad_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(
        schema, ["version", "--username", "u", "--password", "x", "--password-file", str(tmp_path / "pw")]
    )
    assert both.exit_code == 2 and "--password and --password-file are both given" in both.output
    missing = runner.invoke(schema, ["version", "--username", "u", "--password-file", str(tmp_path / "pw")])
    assert missing.exit_code == 2 and f"--password-file: cannot read {tmp_path / 'pw'}" in missing.output
    unset = runner.invoke(schema, ["version", "--username", "u", "--password-env", "NOT_SET_ANYWHERE"])
    assert (
        unset.exit_code == 2 and "--password-env: the environment variable NOT_SET_ANYWHERE" in unset.output
    )
    half = runner.invoke(schema, ["version", "--tls-cert-file", __file__])
    assert half.exit_code == 2 and "--tls-cert-file and --tls-key-file go together" in half.output


def test_the_driver_authenticates_with_the_secret_from_the_file(tmp_path: Path) -> None:
    from hourglass.persistence.cassandra.config import build_cluster

    secret = tmp_path / "password"
    secret.write_text(SECRET + "\n")
    cluster = build_cluster(resolved(tmp_path, f"username: hourglass\npassword_file: {secret}"))
    try:
        assert (cluster.auth_provider.username, cluster.auth_provider.password) == ("hourglass", SECRET)
    finally:
        cluster.shutdown()
