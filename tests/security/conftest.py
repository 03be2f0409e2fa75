"""Certificates (trustme, in the test's tmp dir) and server subprocesses for the security tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from .jwt_helpers import JWTKeys, make_keys

READY_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Pair:
    cert: Path
    key: Path


@dataclass
class PKI:
    """A CA with a server certificate for 127.0.0.1/localhost and a client certificate, and a second,
    unrelated CA with its own client certificate (what an outsider could make)."""

    ca: Path
    server: Pair
    client: Pair
    other_ca: Path
    other_client: Pair
    ca_obj: trustme.CA
    dir: Path

    def issue(self, name: str, *hosts: str, ca: trustme.CA | None = None) -> Pair:
        cert = (ca or self.ca_obj).issue_cert(*(hosts or ("127.0.0.1",)))
        pair = Pair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(str(pair.cert))
        cert.private_key_pem.write_to_path(str(pair.key))
        return pair


def make_pki(directory: Path) -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    pki = PKI(directory / "ca.pem", None, None, directory / "other-ca.pem", None, ca, directory)  # type: ignore[arg-type]
    pki.server = pki.issue("server", "127.0.0.1", "localhost")
    pki.client = pki.issue("client", "client.example")
    pki.other_client = pki.issue("other-client", "client.example", ca=other)
    return pki


def write_keyring(directory: Path) -> Path:
    """A one-key gossip keyring (mode 0600), as `hourglass cluster gossip-key` makes it."""
    from hourglass.cluster.membership.keyring import generate_key

    path = directory / "gossip.keyring"
    path.write_text(generate_key() + "\n")
    path.chmod(0o600)
    return path


def internode_tls(pki: PKI, member: Pair):
    """The `tls:` section of a member whose internal port takes only certificates of `pki`'s CA."""
    from hourglass.cluster.config import TLSGroupSection, TLSSection, TLSServerSection

    server = TLSServerSection(
        cert_file=str(member.cert),
        key_file=str(member.key),
        client_ca_files=[str(pki.ca)],
        require_client_auth=True,
    )
    return TLSSection(internode=TLSGroupSection(server=server))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JWTKeys]:
    """Signing keys and a JWKS endpoint serving them, for the module's tokens."""
    k = make_keys(tmp_path_factory.mktemp("jwt-keys"))
    yield k
    k.jwks.stop()


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path / "pki")


def hourglass_exe() -> str:
    return str(Path(sys.executable).with_name("hourglass"))


@contextlib.contextmanager
def running(
    argv: list[str], log: Path, ready_line: str = "Hourglass listening on"
) -> Iterator[subprocess.Popen]:
    """Run a server subprocess (own process group) until the block ends; ready once its log shows
    `ready_line`. SIGTERM at the end, SIGKILL if it lingers."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while ready_line not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(argv)} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
