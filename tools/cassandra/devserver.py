#!/usr/bin/env python3
"""A real Apache Cassandra 5.0 node for development and tests, without Docker.

    python tools/cassandra/devserver.py fetch     # jars from Maven Central into build/cassandra/lib (cached)
    python tools/cassandra/devserver.py up        # start a node on 127.0.0.1:9042, wait until CQL answers
    python tools/cassandra/devserver.py status    # exit 0 when the node runs and answers CQL
    python tools/cassandra/devserver.py down      # stop it (SIGTERM, then SIGKILL), by its pid file only

`fetch` resolves org.apache.cassandra:cassandra-all (version pinned in tools/cassandra/pom.xml) with its
dependencies through `mvn dependency:copy-dependencies`. `up` renders tools/cassandra/cassandra.yaml.in into
the node's directory (default build/cassandra/node<N> for listen address 127.0.0.<N>) and runs
`java ... org.apache.cassandra.service.CassandraDaemon` in the background on JDK 17, with the JVM module
flags of Cassandra's conf/jvm17-server.options. The node's directory holds its yaml, data, commit log,
`cassandra.log` (the node's stdout) and `cassandra.pid`.

    python tools/cassandra/devserver.py down --wipe   # ... and delete the node's directory (all its data)

The commit log is synced every 10 s (`periodic`, Cassandra's default): a write is acknowledged before it is
on disk, and even a crash of the process alone (kill -9) loses the last acknowledged writes. A node that is
crashed on purpose (tests/faults) starts with `up --commitlog-sync batch`: each write is fsynced before it
is acknowledged, slower, but nothing acknowledged is lost.

A 3-node cluster on one machine: `up --listen-address 127.0.0.N --seeds 127.0.0.1 --initial-token T_N` for
N = 1, 2, 3 with T = -9223372036854775808, -3074457345618258603, 3074457345618258602 (each node gets its
own directory and JMX port 7199 + N - 1; CQL stays on port 9042 of its own address). Start them from empty
directories: a node remembers its peers, so after a multi-node experiment `down --wipe` every node before
going back to a single one.

TLS for clients: on `up`, a certificate for the node (SAN: its listen address and `localhost`) and a client
certificate are issued with `cryptography` into the node's `tls/` directory (kept across restarts, removed
by `down --wipe`, never committed) by a development CA that every node of this checkout shares
(build/cassandra/dev-ca/, made on first use). The node accepts plaintext and TLS on the
same CQL port (`client_encryption_options.optional`); a TLS client must present a certificate signed by the
dev CA (`require_client_auth`: Cassandra 5.0 has no "optional" client authentication). `status` prints
where the files are:

    ca.pem               the dev CA: a client's tls_ca_file
    client.pem           a client certificate and its key (client-key.pem): tls_cert_file / tls_key_file
    node.pem             the node's key and certificate chain (Cassandra's PEM keystore)

Cold start of one node on a 2-core box: 13-22 s (JVM start and class loading dominate); `down` takes ~5 s
(Cassandra drains and announces its shutdown).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TOOLS_DIR.parent.parent
BUILD_DIR = REPO_ROOT / "build" / "cassandra"
LIB_DIR = BUILD_DIR / "lib"
POM = TOOLS_DIR / "pom.xml"
YAML_TEMPLATE = TOOLS_DIR / "cassandra.yaml.in"
LOGBACK = TOOLS_DIR / "logback.xml"

MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
# Extra JVM options for `up` (e.g. GC logging), split like a shell would.
JVM_OPTS_ENV = "HOURGLASS_CASSANDRA_JVM_OPTS"
READY_LINE = "Starting listening for CQL clients"

# From Cassandra's conf/jvm17-server.options (5.0): JDK 17 hides these internals unless exported/opened.
JDK17_MODULE_FLAGS = [
    *(
        f"--add-exports={m}=ALL-UNNAMED"
        for m in (
            "java.base/jdk.internal.misc",
            "java.base/jdk.internal.ref",
            "java.base/sun.nio.ch",
            "java.base/java.lang.ref",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "jdk.unsupported/sun.misc",
            "jdk.attach/sun.tools.attach",
            "jdk.compiler/com.sun.tools.javac.file",
        )
    ),
    *(
        f"--add-opens={m}=ALL-UNNAMED"
        for m in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang",
            "java.base/java.lang.reflect",
            "java.base/java.util",
            "java.base/java.nio",
            "jdk.management/com.sun.management.internal",
            "jdk.compiler/com.sun.tools.javac",
        )
    ),
]

# conf/jvm-server.options + jvm17-server.options GC settings, sized for a 1 GiB heap on a small box.
JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:+UseThreadPriorities",
    "-XX:+PerfDisableSharedMem",
    "-XX:+HeapDumpOnOutOfMemoryError",
    "-XX:+CrashOnOutOfMemoryError",
    "-Xss256k",
    "-Djava.net.preferIPv4Stack=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
    "-Djdk.attach.allowAttachSelf=true",
]


class DevServerError(RuntimeError):
    """Something the user must fix (or read the log for); printed without a traceback."""


@dataclass(frozen=True)
class Node:
    """One local Cassandra node: where it lives and how it is reached."""

    data_dir: Path
    listen_address: str
    port: int
    storage_port: int
    jmx_port: int
    seeds: str
    initial_token: str | None
    heap: str
    cluster_name: str
    commitlog_sync: str = "periodic"

    @property
    def yaml_path(self) -> Path:
        return self.data_dir / "cassandra.yaml"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "cassandra.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "cassandra.log"

    @property
    def contact_point(self) -> str:
        return f"{self.listen_address}:{self.port}"

    @property
    def tls(self) -> TLSMaterial:
        return TLSMaterial(self.data_dir / "tls")


@dataclass(frozen=True)
class TLSMaterial:
    """The development CA and the certificates `up` generates in a node's `tls/` directory."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def node_keystore(self) -> Path:
        return self.directory / "node.pem"

    @property
    def client_cert_file(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.directory / "client-key.pem"

    def complete(self) -> bool:
        files = (self.ca_file, self.node_keystore, self.client_cert_file, self.client_key_file)
        return all(f.exists() for f in files)


# ---- fetch ---------------------------------------------------------------------------------------------


def cassandra_version() -> str:
    match = re.search(r"<cassandra\.version>([^<]+)</cassandra\.version>", POM.read_text())
    if not match:
        raise DevServerError(f"{POM}: no <cassandra.version> property")
    return match.group(1).strip()


def fetch(quiet: bool = False) -> Path:
    """Copy cassandra-all and its runtime dependencies into LIB_DIR; a no-op when that version is there."""
    version = cassandra_version()
    marker = LIB_DIR / f"cassandra-all-{version}.jar"
    if marker.exists():
        if not quiet:
            print(f"cassandra {version}: jars already in {LIB_DIR}", file=sys.stderr)
        return LIB_DIR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevServerError("mvn (Apache Maven) is not on PATH; it fetches Cassandra from Maven Central")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Download next to LIB_DIR and swap it in whole, so an interrupted fetch never looks cached.
    staging = Path(tempfile.mkdtemp(prefix="lib.", dir=BUILD_DIR))
    print(f"fetching cassandra-all {version} and its dependencies from Maven Central ...", file=sys.stderr)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not (staging / marker.name).exists():
            raise DevServerError(
                f"`{' '.join(command)}` failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )
        if LIB_DIR.exists():
            shutil.rmtree(LIB_DIR)  # another version's jars
        staging.rename(LIB_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"cassandra {version}: {len(list(LIB_DIR.glob('*.jar')))} jars in {LIB_DIR}", file=sys.stderr)
    return LIB_DIR


# ---- process bookkeeping -------------------------------------------------------------------------------


def read_pid(node: Node) -> int | None:
    """The pid in the node's pid file if that process is alive and is this node's Cassandra, else None.

    The command line is checked so a pid reused by an unrelated process is never mistaken (or signalled).
    """
    try:
        pid = int(node.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_our_cassandra(pid, node) else None


def _is_our_cassandra(pid: int, node: Node) -> bool:
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False  # exited, not yet reaped
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        args = [a.decode(errors="replace") for a in cmdline]
        return MAIN_CLASS in args and f"-Dcassandra.config=file://{node.yaml_path}" in args
    if sys.platform.startswith("linux"):
        return False
    try:  # no /proc (macOS): best effort
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.exists() or sys.platform.startswith("linux"):
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def log_tail(node: Node, lines: int = 60) -> str:
    try:
        return "\n".join(node.log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def cql_answers(node: Node, timeout: float = 5.0) -> bool:
    """A cassandra-driver session can connect and read system.local."""
    from cassandra.cluster import Cluster  # lazy: `fetch`/`down` work without the driver

    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    cluster = Cluster(
        [node.listen_address],
        port=node.port,
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        protocol_version=5,
    )
    try:
        session = cluster.connect()
        session.execute("SELECT release_version FROM system.local", timeout=timeout)
        return True
    except Exception:
        return False
    finally:
        cluster.shutdown()


def _port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# ---- TLS material --------------------------------------------------------------------------------------

TLS_VALID_DAYS = 825
# The dev CA, shared by every node this checkout starts, so a multi-node dev cluster's certificates all
# chain to one CA (a client trusts every node with one file). Its key stays here, for the next node.
DEV_CA_DIR = BUILD_DIR / "dev-ca"


def ensure_tls_material(node: Node) -> TLSMaterial:
    """The node's TLS files, (re)issued unless present, from the current dev CA, naming the node's
    address and valid for at least another day."""
    ca_cert, ca_key = _dev_ca()
    material = node.tls
    if material.complete() and _current(material, ca_cert, node.listen_address):
        return material
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    node_cert, node_key = _issue(
        ca_cert,
        ca_key,
        f"cassandra {node.listen_address}",
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [x509.IPAddress(ipaddress.ip_address(node.listen_address)), x509.DNSName("localhost")],
    )
    client_cert, client_key = _issue(
        ca_cert, ca_key, "hourglass-dev-client", [ExtendedKeyUsageOID.CLIENT_AUTH], None
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    material.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(material.directory, 0o700)
    _write(material.ca_file, ca_pem, 0o644)
    # Cassandra's PEM keystore: the unencrypted PKCS#8 key, then the certificate chain.
    _write(material.node_keystore, node_key + node_cert + ca_pem, 0o600)
    _write(material.client_cert_file, client_cert, 0o644)
    _write(material.client_key_file, client_key, 0o600)
    print(f"issued TLS certificates from the dev CA into {material.directory}", file=sys.stderr)
    return material


def _dev_ca():  # -> (x509.Certificate, EllipticCurvePrivateKey); cryptography is imported lazily
    """The checkout's dev CA, created on first use and again when it is about to expire."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path = DEV_CA_DIR / "ca.pem", DEV_CA_DIR / "ca-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if _valid_for_a_day(cert):
            return cert, key
    except (FileNotFoundError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity()
    name = _name("Hourglass dev CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    DEV_CA_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(DEV_CA_DIR, 0o700)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    print(f"generated a dev CA in {DEV_CA_DIR}", file=sys.stderr)
    return cert, key


def _issue(ca_cert, ca_key, common_name: str, usages: list, sans: list | None) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the dev CA, and its new key, both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(end, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _name(common_name: str):  # -> x509.Name
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hourglass development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity():  # -> (datetime, datetime)
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=TLS_VALID_DAYS)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Written to a new file created with `mode`, then renamed over `path`: never briefly world-readable."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temporary.replace(path)


def _valid_for_a_day(cert) -> bool:
    import datetime

    return cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)


def _current(material: TLSMaterial, ca_cert, address: str) -> bool:
    """The node's files come from this CA, are valid for another day and name this address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        if material.ca_file.read_bytes() != ca_cert.public_bytes(serialization.Encoding.PEM):
            return False
        node_cert = x509.load_pem_x509_certificates(material.node_keystore.read_bytes())[0]
        client_cert = x509.load_pem_x509_certificate(material.client_cert_file.read_bytes())
        sans = node_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (FileNotFoundError, ValueError, IndexError, x509.ExtensionNotFound):
        return False
    return (
        _valid_for_a_day(node_cert)
        and _valid_for_a_day(client_cert)
        and ipaddress.ip_address(address) in sans.get_values_for_type(x509.IPAddress)
    )


# ---- up / down / status --------------------------------------------------------------------------------


# The commit-log sync section of the yaml, by mode (Cassandra refuses a sync period in batch mode).
COMMITLOG_SYNC = {
    "periodic": "commitlog_sync: periodic\ncommitlog_sync_period: 10000ms",
    "batch": "commitlog_sync: batch",
}


def render_config(node: Node) -> None:
    node.data_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"):
        (node.data_dir / sub).mkdir(exist_ok=True)
    initial_token = f"initial_token: {node.initial_token}" if node.initial_token is not None else ""
    text = string.Template(YAML_TEMPLATE.read_text()).substitute(
        cluster_name=node.cluster_name,
        initial_token_line=initial_token,
        seeds=node.seeds,
        listen_address=node.listen_address,
        storage_port=node.storage_port,
        native_port=node.port,
        data_dir=node.data_dir,
        commitlog_sync=COMMITLOG_SYNC[node.commitlog_sync],
        tls_keystore=node.tls.node_keystore,
        tls_truststore=node.tls.ca_file,
    )
    node.yaml_path.write_text(text)


def java_command(node: Node) -> list[str]:
    java_home = os.environ.get("JAVA_HOME")
    java = shutil.which("java", path=str(Path(java_home) / "bin")) if java_home else None
    java = java or shutil.which("java")
    if java is None:
        raise DevServerError("java (JDK 17) is not on PATH and JAVA_HOME is not set")
    jamm = sorted(LIB_DIR.glob("jamm-*.jar"))
    if not jamm:
        raise DevServerError(f"no jamm jar in {LIB_DIR}; run `devserver.py fetch`")
    classpath = str(LIB_DIR / "*")
    return [
        java,
        f"-Xms{node.heap}",
        f"-Xmx{node.heap}",
        f"-javaagent:{jamm[-1]}",
        *JVM_FLAGS,
        *shlex.split(os.environ.get(JVM_OPTS_ENV, "")),
        *JDK17_MODULE_FLAGS,
        "-Dcassandra-foreground=yes",
        f"-Dcassandra.config=file://{node.yaml_path}",
        f"-Dcassandra.storagedir={node.data_dir}",
        f"-Dcassandra.logdir={node.data_dir}",
        f"-Dlogback.configurationFile=file://{LOGBACK}",
        f"-Dcassandra.jmx.local.port={node.jmx_port}",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=100",
        "-cp",
        classpath,
        MAIN_CLASS,
    ]


def up(node: Node, timeout: float) -> int:
    pid = read_pid(node)
    if pid is not None:
        print(f"cassandra already running (pid {pid}); waiting until it answers CQL", file=sys.stderr)
        _wait_ready(node, pid, timeout, started=None)
        if node.tls.complete():
            _print_tls(node)
        print(node.contact_point)
        return 0
    if _port_open(node.listen_address, node.port):
        raise DevServerError(
            f"{node.contact_point} is already in use by a process this tool did not start "
            f"(no live pid in {node.pid_path}); stop it or choose --port/--listen-address"
        )
    fetch(quiet=True)
    ensure_tls_material(node)
    render_config(node)
    command = java_command(node)
    started = time.monotonic()
    with open(node.log_path, "ab") as log:
        log.write(f"\n==== devserver up {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
        log.flush()
        process = subprocess.Popen(
            command,
            cwd=node.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the caller's terminal does not reach the node
        )
    node.pid_path.write_text(f"{process.pid}\n")
    print(f"cassandra starting (pid {process.pid}), log: {node.log_path}", file=sys.stderr)
    try:
        _wait_ready(node, process.pid, timeout, started)
    except DevServerError:
        _stop(node, process.pid, grace=10)
        raise
    _print_tls(node)
    print(node.contact_point)
    return 0


def _print_tls(node: Node) -> None:
    t = node.tls
    print(
        f"TLS (optional; client certificate required): CA {t.ca_file}, "
        f"client certificate {t.client_cert_file}, key {t.client_key_file}",
        file=sys.stderr,
    )


def _log_offset(node: Node) -> int:
    try:
        text = node.log_path.read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return text.rfind("==== devserver up ")


def _wait_ready(node: Node, pid: int, timeout: float, started: float | None) -> None:
    """Until the log of the current run says CQL listens and a driver session connects."""
    deadline = time.monotonic() + timeout
    since = max(_log_offset(node), 0)
    while True:
        if not _alive(pid):
            node.pid_path.unlink(missing_ok=True)
            raise DevServerError(f"cassandra (pid {pid}) exited during start-up; log tail:\n{log_tail(node)}")
        try:
            log_text = node.log_path.read_text(errors="replace")[since:]
        except FileNotFoundError:
            log_text = ""
        if READY_LINE in log_text and cql_answers(node):
            if started is not None:
                print(f"cassandra ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
            return
        if time.monotonic() > deadline:
            raise DevServerError(
                f"cassandra did not answer CQL on {node.contact_point} within {timeout:.0f} s; "
                f"log tail:\n{log_tail(node)}"
            )
        time.sleep(0.5)


def _stop(node: Node, pid: int, grace: float) -> None:
    """SIGTERM (Cassandra drains and flushes), then SIGKILL after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        print(f"cassandra (pid {pid}) still running after {grace:.0f} s; sending SIGKILL", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    node.pid_path.unlink(missing_ok=True)


def down(node: Node, grace: float, wipe: bool = False) -> int:
    pid = read_pid(node)
    if pid is None:
        node.pid_path.unlink(missing_ok=True)
        print(f"cassandra is not running ({node.data_dir})", file=sys.stderr)
    else:
        started = time.monotonic()
        _stop(node, pid, grace)
        print(f"cassandra (pid {pid}) stopped in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if wipe and node.data_dir.exists():
        shutil.rmtree(node.data_dir)
        print(f"removed {node.data_dir} (data, log, yaml)", file=sys.stderr)
    return 0


def status(node: Node) -> int:
    pid = read_pid(node)
    if pid is None:
        print(f"stopped ({node.data_dir})")
        return 1
    tls = f" tls_ca={node.tls.ca_file}" if node.tls.complete() else ""
    if cql_answers(node):
        print(f"running pid={pid} cql={node.contact_point} dir={node.data_dir}{tls}")
        return 0
    print(f"starting pid={pid} cql={node.contact_point} (not answering CQL yet) dir={node.data_dir}{tls}")
    return 2


# ---- command line --------------------------------------------------------------------------------------


def _node_number(listen_address: str) -> int:
    """127.0.0.N -> N, so each local node of a multi-node cluster gets its own directory and JMX port."""
    address = ipaddress.ip_address(listen_address)
    if address.is_loopback and address.version == 4:
        return max(int(str(address).rsplit(".", 1)[1]), 1)
    return 1


def default_data_dir(listen_address: str) -> Path:
    """build/cassandra/node<N> for 127.0.0.N (node1 otherwise): where `up` keeps a node without --data-dir."""
    return BUILD_DIR / f"node{_node_number(listen_address)}"


def node_from_args(args: argparse.Namespace) -> Node:
    number = _node_number(args.listen_address)
    data_dir = Path(args.data_dir).resolve() if args.data_dir else default_data_dir(args.listen_address)
    return Node(
        data_dir=data_dir,
        listen_address=args.listen_address,
        port=args.port,
        storage_port=args.storage_port,
        jmx_port=args.jmx_port or 7199 + number - 1,
        seeds=args.seeds or args.listen_address,
        initial_token=args.initial_token,
        heap=args.heap,
        cluster_name=args.cluster_name,
        commitlog_sync=args.commitlog_sync,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="devserver.py", description="Run a real Apache Cassandra 5.0 node for development and tests."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch the Cassandra jars from Maven Central (cached)")
    for name, help_text in (
        ("up", "start a node and wait until it answers CQL (no-op if it runs)"),
        ("down", "stop the node started by `up` (by its pid file)"),
        ("status", "exit 0 if the node runs and answers CQL, 1 if stopped, 2 if still starting"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument(
            "--data-dir", help="node directory (yaml, data, log, pid); default build/cassandra/node<N>"
        )
        command.add_argument("--port", type=int, default=9042, help="CQL port (default 9042)")
        command.add_argument(
            "--listen-address", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
        )
        if name == "up":
            command.add_argument("--storage-port", type=int, default=7000, help="inter-node port")
            command.add_argument("--jmx-port", type=int, default=0, help="default 7199 + N - 1 for 127.0.0.N")
            command.add_argument("--seeds", default=None, help="comma-separated seeds (default: itself)")
            command.add_argument("--initial-token", default=None, help="token of this node (multi-node)")
            command.add_argument("--heap", default="1G", help="JVM heap, -Xms and -Xmx (default 1G)")
            command.add_argument("--cluster-name", default="hourglass-dev")
            command.add_argument(
                "--commitlog-sync",
                choices=sorted(COMMITLOG_SYNC),
                default="periodic",
                help="periodic (default: fast, a crash loses the last writes) or batch (fsync per write)",
            )
            command.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for CQL")
        if name == "down":
            command.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")
            command.add_argument(
                "--wipe", action="store_true", help="also delete the node's directory (all its data)"
            )
    args = parser.parse_args(argv)
    for attr, default in (
        ("storage_port", 7000),
        ("jmx_port", 0),
        ("seeds", None),
        ("initial_token", None),
        ("heap", "1G"),
        ("cluster_name", "hourglass-dev"),
        ("commitlog_sync", "periodic"),
    ):
        if not hasattr(args, attr):
            setattr(args, attr, default)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "fetch":
            fetch()
            return 0
        node = node_from_args(args)
        if args.command == "up":
            return up(node, args.timeout)
        if args.command == "down":
            return down(node, args.timeout, args.wipe)
        return status(node)
    except DevServerError as e:
        print(f"devserver: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
