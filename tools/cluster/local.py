#!/usr/bin/env python3
"""A local 3-node Hourglass cluster on 127.0.0.1, 127.0.0.2 and 127.0.0.3 over the local Cassandra.

    python tools/cluster/local.py up      # Cassandra (started if not running), schema, 3 nodes; waits
                                          # until they agree on membership and every shard is owned
    python tools/cluster/local.py down    # SIGTERM each node by its pid file (a clean leave)

Configs: config/cluster/node{1,2,3}.yaml (frontend on port 7233 of each address, gossip 7946/udp,
internal RPC 7234, over mutual TLS). Logs, pid files, the gossip keyring (generated if absent) and the
development certificates (written by `hourglass cluster dev-certs` on the first `up`): build/cluster/.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "build" / "cluster"
KEYRING = STATE / "gossip.keyring"  # the configs' cluster.gossip_keyring_file, relative to ROOT
CERTS = STATE / "certs"
CONFIGS = [ROOT / "config" / "cluster" / f"node{i}.yaml" for i in (1, 2, 3)]
KEYSPACE = "hourglass_cluster"
BIN = Path(sys.executable).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _pid(i: int) -> int | None:
    f = STATE / f"node{i}.pid"
    if not f.exists():
        return None
    pid = int(f.read_text())
    return pid if _alive(pid) else None


def _cql_port_open() -> bool:
    """A Cassandra (ours or anyone's) already serves 127.0.0.1:9042: use it."""
    try:
        socket.create_connection(("127.0.0.1", 9042), timeout=2).close()
    except OSError:
        return False
    return True


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def up(timeout: float) -> int:
    from hourglass.cluster.config import load_config

    if not _cql_port_open():
        print("starting Cassandra (tools/cassandra/devserver.py up)...", flush=True)
        started = _run(sys.executable, str(ROOT / "tools/cassandra/devserver.py"), "up")
        if started.returncode != 0:
            print(started.stdout + started.stderr, file=sys.stderr)
            return 1
    version = _run(
        str(BIN / "hourglass"), "schema", "version", "--hosts", "127.0.0.1", "--keyspace", KEYSPACE
    )
    command = "update" if version.returncode == 0 else "setup"
    schema = _run(
        str(BIN / "hourglass"),
        "schema",
        command,
        "--hosts",
        "127.0.0.1",
        "--keyspace",
        KEYSPACE,
        *(["--replication-factor", "1"] if command == "setup" else []),
    )
    if schema.returncode != 0:
        print(schema.stdout + schema.stderr, file=sys.stderr)
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    _ensure_keyring()
    if not (CERTS / "ca.pem").exists():
        certs = _run(str(BIN / "hourglass"), "cluster", "dev-certs", "--out", str(CERTS))
        if certs.returncode != 0:
            print(certs.stdout + certs.stderr, file=sys.stderr)
            return 1
    for i, config in enumerate(CONFIGS, 1):
        if _pid(i) is not None:
            print(f"node {i} already runs (pid {_pid(i)})")
            continue
        with open(STATE / f"node{i}.log", "ab") as log:
            proc = subprocess.Popen(
                [str(BIN / "hourglass"), "server", "start", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,  # the configs name the certificates relative to the repo root
            )
        (STATE / f"node{i}.pid").write_text(str(proc.pid))
    configs = [load_config(c) for c in CONFIGS]
    if not asyncio.run(_wait_converged(configs, timeout)):
        print(f"the cluster did not converge in {timeout:.0f} s; see {STATE}/node*.log", file=sys.stderr)
        return 1
    for i, c in enumerate(configs, 1):
        print(
            f"node {i}: frontend {c.node.ip}:{c.node.port}  gossip {c.node.ip}:{c.cluster.gossip_port}/udp  "
            f"internal RPC {c.node.ip}:{c.cluster.rpc_port}  log {STATE}/node{i}.log"
        )
    print(f"store: Cassandra 127.0.0.1:9042, keyspace {KEYSPACE}")
    print("status: hourglass cluster status --address 127.0.0.1:7233 --shards")
    print(
        f"internal port: hourglass cluster status --address 127.0.0.1:7234 --tls-ca-path {CERTS}/ca.pem "
        f"--tls-cert-path {CERTS}/client.crt --tls-key-path {CERTS}/client.key"
    )
    return 0


def _ensure_keyring() -> None:
    """The local cluster's gossip key: made once, readable by this user only, kept across restarts."""
    from hourglass.cluster.membership.keyring import generate_key

    if not KEYRING.exists():
        fd = os.open(KEYRING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# gossip keyring of the local cluster (tools/cluster/local.py)\n{generate_key()}\n")
        print(f"gossip keyring: {KEYRING} (new)")


async def _wait_converged(configs, timeout: float) -> bool:
    from hourglass.cluster.status import fetch_status

    deadline = time.monotonic() + timeout
    shards = configs[0].history_shards
    while time.monotonic() < deadline:
        try:
            view = await fetch_status(f"{configs[0].node.ip}:{configs[0].node.port}", True, timeout=5)
            alive = [m for m in view.members if m.state == "alive"]
            owned = sorted(s.shard_id for s in view.shards if s.member_id)
            if len(alive) == len(configs) and owned == list(range(shards)):
                return True
        except Exception:
            pass
        await asyncio.sleep(0.5)
    return False


def down(grace: float) -> int:
    pids = {i: _pid(i) for i in (1, 2, 3)}
    for pid in pids.values():
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for i, pid in pids.items():
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        (STATE / f"node{i}.pid").unlink(missing_ok=True)
        print(f"node {i}: {'stopped' if pid else 'not running'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    return up(args.timeout) if args.command == "up" else down(15.0)


if __name__ == "__main__":
    sys.exit(main())
