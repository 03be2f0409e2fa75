"""A real 3-node Hourglass cluster on 127.0.0.1-3 over a real Cassandra, as subprocesses of the test.

Each node is `hourglass server start --config` in its own process group, on the same free ports of its
own loopback address, with its log in the test's directory. Every test stops what it started.

Secure as production is asked to be: gossip sealed with a keyring, members on mutual TLS, and (unless
`secure_frontend=False`) the public port on mutual TLS with the default JWT authorizer: clients connect
through `connect()` / `cli_flags()` with a tests' certificate and a token whose permissions they name.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import trustme
from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime

from hourglass.cluster.membership.keyring import generate_key
from hourglass.cluster.rpc import internal_pb2 as pb
from hourglass.cluster.security.tls import load_client_tls
from hourglass.cluster.status import fetch_status
from hourglass.sdk.admin import AdminClient

IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
# Addresses of members a test adds later (`LocalCluster.add_node`); their ports are free too.
SPARE_IPS = ("127.0.0.4",)
SHARDS = 16
# Fast failure detection for tests: suspect after ~0.5 s of silence, dead 2.5 s later.
TIMINGS = {
    "probe_interval_s": 0.5,
    "probe_timeout_s": 0.3,
    "suspicion_timeout_s": 2.5,
    "sync_interval_s": 2.0,
    "join_timeout_s": 3.0,
}


def _free_on_all(kind: int) -> int:
    """A port free on every test address (TCP or UDP)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((IPS[0], 0))
            port = s.getsockname()[1]
        ok = True
        for ip in IPS + SPARE_IPS:
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no free port on all test addresses")


class _Tokens:
    """An ES256 key the nodes trust (its public half in `jwt.pem`) and the JWTs the tests sign with it."""

    def __init__(self, workdir: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_file = workdir / "jwt.pem"
        self.public_key_file.write_bytes(
            self._key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(self, *permissions: str) -> str:
        import jwt

        now = int(time.time())
        claims = {"sub": "cluster-tests", "permissions": list(permissions), "iat": now, "exp": now + 3600}
        return jwt.encode(claims, self._key, algorithm="ES256")


def _member_certs(workdir: Path) -> Path:
    """The cluster's CA and one certificate per member (its IP as the name), plus one for the tests'
    own calls to the internal port: `certs/ca.pem`, `certs/<ip>.crt|key`, `certs/tests.crt|key`."""
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    for name, hosts in [*((ip, (ip,)) for ip in IPS + SPARE_IPS), ("tests", ("hourglass-tests",))]:
        cert = ca.issue_cert(*hosts)
        cert.cert_chain_pems[0].write_to_path(str(certs / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(certs / f"{name}.key"))
    return certs


@dataclass
class Node:
    ip: str
    config: Path
    log: Path
    port: int
    rpc_port: int
    gossip_port: int
    # The node's HTTP port (/metrics, /cluster, /api/v1/cluster); None: not served.
    http_port: int | None = None
    # The node's HTTP API (node.http_port: Temporal's JSON routes), served by every member.
    api_port: int | None = None
    proc: subprocess.Popen | None = None
    stopped: bool = False
    # The `hourglass` executable to run (None: this interpreter's); a benchmark compares two builds.
    exe: Path | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def member_id(self) -> str:
        return f"{self.ip}:{self.gossip_port}"

    def start(self) -> None:
        exe = self.exe or Path(sys.executable).with_name("hourglass")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), "server", "start", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.stopped = False

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (a clean leave), SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class LocalCluster:
    workdir: Path
    hosts: list[str]
    cassandra_port: int
    keyspace: str
    nodes: list[Node] = field(default_factory=list)
    secure_frontend: bool = True
    tokens: _Tokens | None = None
    exe: Path | None = None  # the nodes' `hourglass` executable (None: this interpreter's)
    # frontend, internal RPC, gossip, HTTP (None: not served), HTTP API: the same on every member
    _ports: tuple[int, int, int, int | None, int] = (0, 0, 0, None, 0)

    @classmethod
    def create(
        cls,
        workdir: Path,
        hosts: list[str],
        cassandra_port: int,
        keyspace: str,
        secure_frontend: bool = True,
        http: bool = False,
        exe: Path | None = None,
    ) -> LocalCluster:
        """`http`: every node also serves its HTTP port (node.metrics_port), the same port on each IP.
        `exe`: the `hourglass` executable the nodes run (None: this interpreter's)."""
        port, rpc_port, gossip_port = _free_on_all(socket.SOCK_STREAM), 0, 0
        while rpc_port in (0, port):
            rpc_port = _free_on_all(socket.SOCK_STREAM)
        http_port = None
        while http and http_port in (None, port, rpc_port):
            http_port = _free_on_all(socket.SOCK_STREAM)
        api_port = 0
        while api_port in (0, port, rpc_port, http_port):
            api_port = _free_on_all(socket.SOCK_STREAM)
        gossip_port = _free_on_all(socket.SOCK_DGRAM)
        cluster = cls(workdir, hosts, cassandra_port, keyspace, secure_frontend=secure_frontend, exe=exe)
        cluster._ports = (port, rpc_port, gossip_port, http_port, api_port)
        keyring = workdir / "gossip.keyring"  # one cluster key, generated per test run
        keyring.write_text(generate_key() + "\n")
        keyring.chmod(0o600)
        _member_certs(workdir)
        if secure_frontend:
            cluster.tokens = _Tokens(workdir)
        for ip in IPS:
            cluster._add(ip)
        return cluster

    def add_node(self) -> Node:
        """A new member on the next spare address (same ports, the first three as seeds); not started."""
        return self._add(SPARE_IPS[len(self.nodes) - len(IPS)])

    def _add(self, ip: str) -> Node:
        port, rpc_port, gossip_port, http_port, api_port = self._ports
        certs = self.workdir / "certs"
        seeds = ", ".join(f"{seed}:{gossip_port}" for seed in IPS)
        timings = "\n".join(f"  {k}: {v}" for k, v in TIMINGS.items())
        authorization = ""
        if self.tokens is not None:
            authorization = (
                "authorization: {authorizer: default, claim_mapper: default, "
                f"jwt_key_provider: {{key_source_uris: [{self.tokens.public_key_file.as_uri()}]}}}}\n"
            )
        i = len(self.nodes) + 1
        config = self.workdir / f"node{i}.yaml"
        config.write_text(
            f"history_shards: {SHARDS}\n"
            "log_level: info\n"
            # PauseWorkflowExecution is off by default (as on the reference); tests/cluster/test_workers.py
            # pauses through one node and unpauses through another.
            # tests/cluster/test_nexus.py attaches completion callbacks to a receiver of its own on 127.0.0.1.
            'dynamic_config: {"frontend.WorkflowPauseEnabled": true, '
            '"callback.allowedAddresses": [{Pattern: "127.0.0.1:*", AllowInsecure: true}]}\n'
            f"node: {{ip: {ip}, port: {port}, http_port: {api_port}"
            + (f", metrics_port: {http_port}" if http_port else "")
            + "}\n"
            f"store: {{kind: cassandra, cassandra: {{hosts: [{', '.join(self.hosts)}], port: {self.cassandra_port}, "
            f"keyspace: {self.keyspace}}}}}\n"
            f"cluster:\n  gossip_port: {gossip_port}\n  rpc_port: {rpc_port}\n  seeds: [{seeds}]\n{timings}\n"
            f"  gossip_keyring_file: {self.workdir / 'gossip.keyring'}\n"
            "  test_hooks: true\n"
            f"tls:\n  internode:\n    server: {{cert_file: {certs / ip}.crt, key_file: {certs / ip}.key, "
            f"client_ca_files: [{certs / 'ca.pem'}], require_client_auth: true}}\n"
            + (
                f"  frontend:\n    server: {{cert_file: {certs / ip}.crt, key_file: {certs / ip}.key, "
                f"client_ca_files: [{certs / 'ca.pem'}], require_client_auth: true}}\n"
                if self.secure_frontend
                else ""
            )
            + authorization
        )
        node = Node(
            ip,
            config,
            self.workdir / f"node{i}.log",
            port,
            rpc_port,
            gossip_port,
            http_port,
            api_port,
            exe=self.exe,
        )
        self.nodes.append(node)
        return node

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def internal_channel(self, node: Node) -> grpc.aio.Channel:
        """A channel to a node's internal port with the tests' member certificate (the cluster's CA)."""
        certs = self.workdir / "certs"
        tls = load_client_tls(str(certs / "ca.pem"), str(certs / "tests.crt"), str(certs / "tests.key"))
        return tls.secure_channel(f"{node.ip}:{node.rpc_port}")

    def logs(self) -> str:
        return "\n".join(f"==== {n.ip} ====\n{n.log_tail()}" for n in self.nodes)

    def _client_paths(self) -> tuple[Path, Path, Path]:
        certs = self.workdir / "certs"
        return certs / "ca.pem", certs / "tests.crt", certs / "tests.key"

    def admin_token(self) -> str | None:
        return self.tokens.token("temporal-system:admin") if self.tokens is not None else None

    async def connect(
        self, node: Node, *permissions: str, namespace: str = "default", runtime: Runtime | None = None
    ) -> Client:
        """An SDK client of `node`'s frontend: over mutual TLS with a token granting `permissions`
        (default: write on `namespace`) when the frontend is secure, plaintext otherwise. `runtime`: the
        SDK runtime its workers use (e.g. one heartbeating every second)."""
        if not self.secure_frontend:
            return await Client.connect(node.address, namespace=namespace, runtime=runtime)
        ca, cert, key = self._client_paths()
        return await Client.connect(
            node.address,
            namespace=namespace,
            runtime=runtime,
            tls=TLSConfig(
                server_root_ca_cert=ca.read_bytes(),
                client_cert=cert.read_bytes(),
                client_private_key=key.read_bytes(),
            ),
            api_key=self.tokens.token(*(permissions or (f"{namespace}:write",))),
        )

    def cli_flags(self, node: Node, *permissions: str) -> list[str]:
        """`--address` and, for a secure frontend, the TLS and `--api-key` flags of the `temporal` CLI
        (and of `hourglass cluster status`, which takes the same names)."""
        flags = ["--address", node.address]
        if self.secure_frontend:
            ca, cert, key = self._client_paths()
            flags += ["--tls-ca-path", str(ca), "--tls-cert-path", str(cert), "--tls-key-path", str(key)]
            flags += ["--api-key", self.tokens.token(*(permissions or ("default:write",)))]
        return flags

    async def admin(self, node: Node) -> AdminClient:
        """A hourglass.sdk.admin client of `node`'s frontend (mutual TLS and an admin token when secure)."""
        if not self.secure_frontend:
            return await AdminClient.connect(node.address)
        ca, cert, key = self._client_paths()
        tls = TLSConfig(
            server_root_ca_cert=ca.read_bytes(),
            client_cert=cert.read_bytes(),
            client_private_key=key.read_bytes(),
        )
        return await AdminClient.connect(node.address, tls=tls, api_key=self.admin_token())

    async def status(self, node: Node, shards: bool = True) -> pb.ClusterStatusResponse:
        if not self.secure_frontend:
            return await fetch_status(node.address, shards, timeout=5.0)
        ca, cert, key = self._client_paths()
        tls = load_client_tls(str(ca), str(cert), str(key))
        return await fetch_status(node.address, shards, timeout=5.0, tls=tls, api_key=self.admin_token())

    async def wait_converged(self, alive: list[Node], timeout: float = 60.0) -> pb.ClusterStatusResponse:
        """Until every live node sees exactly `alive` as alive members and every shard is held by exactly
        one of them."""
        deadline = time.monotonic() + timeout
        want = sorted(n.member_id for n in alive)
        last = None
        while time.monotonic() < deadline:
            try:
                views = [await self.status(n) for n in alive]
            except Exception as e:  # a node still starting
                last = e
                await asyncio.sleep(0.3)
                continue
            ok = True
            for view in views:
                live = sorted(m.id for m in view.members if m.state == "alive")
                owners = {}
                for s in view.shards:
                    owners.setdefault(s.shard_id, []).append(s.member_id)
                if live != want or sorted(owners) != list(range(SHARDS)):
                    ok = False
                elif any(len(o) != 1 or o[0] not in want for o in owners.values()):
                    ok = False
                last = view
            if ok:
                return views[0]
            await asyncio.sleep(0.3)
        raise AssertionError(f"cluster did not converge on {want}; last view: {last}\n{self.logs()}")
