"""gRPC TLS credentials built from the `tls:` config sections.

Server credentials re-read their certificate, key and client CAs when the files change (checked at most
every `tls.refresh_interval_s`, on new connections), so certificates rotate without a restart. Client
credentials do the same for the member certificate internode channels present. Every file is checked at
start and a problem is reported with the config key that names it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

log = logging.getLogger(__name__)


class TLSConfigError(ValueError):
    """A certificate, key or CA file is missing, unreadable, not PEM, or the key does not match."""


def _read(path: str, key: str) -> bytes:
    try:
        data = open(path, "rb").read()  # noqa: SIM115 - short read, closed by refcount
    except OSError as e:
        raise TLSConfigError(f"{key}: cannot read {path}: {e.strerror}") from None
    if not data.strip():
        raise TLSConfigError(f"{key}: {path} is empty")
    return data


def _certs(data: bytes, path: str, key: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSConfigError(f"{key}: {path} holds no PEM certificate") from None
    return certs


def _private_key(data: bytes, path: str, key: str):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError(f"{key}: {path} is not an unencrypted PEM private key ({e})") from None


def _public_bytes(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


@dataclass(frozen=True)
class KeyPair:
    """A certificate chain and its private key, as PEM bytes, checked to belong together."""

    cert_chain: bytes
    private_key: bytes


def load_key_pair(
    cert_file: str, key_file: str, prefix: str, names: tuple[str, str] | None = None
) -> KeyPair:
    """Read and check a certificate/key pair; messages name `<prefix>.cert_file` / `<prefix>.key_file`,
    or the two `names` given (e.g. command-line options)."""
    cert_name, key_name = names or (f"{prefix}.cert_file", f"{prefix}.key_file")
    cert_pem = _read(cert_file, cert_name)
    key_pem = _read(key_file, key_name)
    leaf = _certs(cert_pem, cert_file, cert_name)[0]
    key = _private_key(key_pem, key_file, key_name)
    if not isinstance(key, _KEY_TYPES) or _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
        raise TLSConfigError(
            f"{key_name}: {key_file} is not the private key of the certificate in {cert_file} ({cert_name})"
        )
    return KeyPair(cert_pem, key_pem)


def load_ca_bundle(files: Sequence[str], key: str) -> bytes | None:
    """The concatenated PEM of CA files (each checked to hold a certificate); None if there are none."""
    if not files:
        return None
    parts = []
    for path in files:
        data = _read(path, key)
        _certs(data, path, key)
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    return b"".join(parts)


class _Watched:
    """Files whose content is re-read when any of their mtimes changes, checked at most every `interval`."""

    def __init__(self, files: Sequence[str], interval_s: float) -> None:
        self.files = [f for f in files if f]
        self.interval_s = interval_s
        self._checked = time.monotonic()
        self._stamps = self._stat()
        self._lock = threading.Lock()

    def _stat(self) -> tuple:
        stamps = []
        for f in self.files:
            try:
                st = os.stat(f)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def changed(self) -> bool:
        """True once after any file changed (and the throttle allowed a look)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.interval_s:
                return False
            self._checked = now
            stamps = self._stat()
            if stamps == self._stamps:
                return False
            self._stamps = stamps
            return True


def server_credentials(section, refresh_interval_s: float, prefix: str) -> grpc.ServerCredentials:
    """Credentials for a port from a `TLSServerSection`: its certificate, and with `client_ca_files` the
    client certificates it accepts (required when `require_client_auth`). Files are re-read when they
    change; a bad new file is logged and the previous certificate kept."""
    if section.require_client_auth and not section.client_ca_files:
        raise TLSConfigError(f"{prefix}.require_client_auth needs {prefix}.client_ca_files")

    def load() -> grpc.ServerCertificateConfiguration:
        pair = load_key_pair(section.cert_file, section.key_file, prefix)
        cas = load_ca_bundle(section.client_ca_files, f"{prefix}.client_ca_files")
        return grpc.ssl_server_certificate_configuration([(pair.private_key, pair.cert_chain)], cas)

    initial = load()
    watched = _Watched([section.cert_file, section.key_file, *section.client_ca_files], refresh_interval_s)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        if not watched.changed():
            return None
        try:
            config = load()
        except TLSConfigError as e:
            log.error("TLS files changed but cannot be used (keeping the previous certificate): %s", e)
            return None
        log.info("%s: certificate files changed; new connections use the new certificate", prefix)
        return config

    return grpc.dynamic_ssl_server_credentials(
        initial, fetch, require_client_authentication=section.require_client_auth
    )


@dataclass(frozen=True)
class ClientTLS:
    """What a client needs to connect over TLS: CA bundle (None: system roots), optional client pair, and
    the name to check in the server's certificate instead of the address's host."""

    root_ca: bytes | None = None
    key_pair: KeyPair | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_ca,
            private_key=self.key_pair.private_key if self.key_pair else None,
            certificate_chain=self.key_pair.cert_chain if self.key_pair else None,
        )

    def channel_options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def secure_channel(self, address: str, options: Sequence[tuple] = ()) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            address, self.credentials(), options=[*options, *self.channel_options()]
        )


def load_client_tls(
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_name: str | None = None,
    prefix: str = "--tls",
) -> ClientTLS:
    """A tool's TLS from file paths (`--tls-ca-path`, `--tls-cert-path`, `--tls-key-path`)."""
    names = (f"{prefix}-cert-path", f"{prefix}-key-path")
    if bool(cert_file) != bool(key_file):
        raise TLSConfigError(f"{names[0]} and {names[1]} go together")
    pair = load_key_pair(cert_file, key_file, prefix, names) if cert_file else None
    root = load_ca_bundle([ca_file] if ca_file else [], f"{prefix}-ca-path")
    return ClientTLS(root, pair, server_name or None)


class InternodeClientTLS:
    """Client side of internode mTLS: the member's own certificate (the `tls.internode.server` pair) as its
    client certificate, the cluster CA (`client.root_ca_files`, else the server's `client_ca_files`) to
    check the other members. Re-read when the files change; `current()` then returns new credentials."""

    def __init__(self, group, refresh_interval_s: float, prefix: str = "tls.internode") -> None:
        self.group = group
        self.prefix = prefix
        server, client = group.server, group.client
        if client.root_ca_files:
            self._ca_files, self._ca_key = list(client.root_ca_files), f"{prefix}.client.root_ca_files"
        else:
            self._ca_files, self._ca_key = list(server.client_ca_files), f"{prefix}.server.client_ca_files"
        self._watched = _Watched([server.cert_file, server.key_file, *self._ca_files], refresh_interval_s)
        self._tls = self._load()
        self.generation = 0

    def _load(self) -> ClientTLS:
        server = self.group.server
        pair = load_key_pair(server.cert_file, server.key_file, f"{self.prefix}.server")
        ca = load_ca_bundle(self._ca_files, self._ca_key)
        return ClientTLS(ca, pair, self.group.client.server_name or None)

    def current(self) -> ClientTLS:
        if self._watched.changed():
            try:
                self._tls = self._load()
                self.generation += 1
            except TLSConfigError as e:
                log.error("internode TLS files changed but cannot be used (keeping the previous): %s", e)
        return self._tls


def group_credentials(group, refresh_interval_s: float, prefix: str) -> grpc.ServerCredentials | None:
    """Server credentials of a `TLSGroupSection` (None: plaintext), built, and so checked, up front."""
    return None if group is None else server_credentials(group.server, refresh_interval_s, f"{prefix}.server")


def listen(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """Add a port to `server`: TLS with `credentials`, plaintext without. Returns the bound port."""
    if credentials is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, credentials)
