"""The real Temporal server on the local Cassandra, for `make bench-cassandra` to measure next to Hourglass.

Built from the Go module proxy by tools/temporal/build.sh (pinned version) into build/temporal/<version>/.
Each run gets its own keyspace, set up with Temporal's own schema tool and versioned schema (from the
module's source in the Go module cache), and dropped afterwards; the server runs as one process (all four
services) with the same history shard count as Hourglass, LOCAL_QUORUM writes and LOCAL_SERIAL
conditions, and its visibility in in-memory SQLite (no Elasticsearch here), as the issue's measurement.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client

from hourglass.loadtest.servers import HOST, ManagedServer, ServerStartError, free_port

VERSION = "v1.32.1"
ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "tools" / "temporal" / "build.sh"
# The namespace registry of each service re-reads namespaces every 10 s by default.
NAMESPACE_SETTLE_S = 11.0


def binaries(version: str = VERSION) -> tuple[Path, Path]:
    """(temporal-server, temporal-cassandra-tool), built first if absent (minutes, at nice 10)."""
    out = ROOT / "build" / "temporal" / version
    server, tool = out / "temporal-server", out / "temporal-cassandra-tool"
    if not (server.exists() and tool.exists()):
        done = subprocess.run(
            [str(BUILD_SCRIPT)], env={**os.environ, "TEMPORAL_SERVER_VERSION": version}, timeout=3600
        )
        if done.returncode != 0:
            raise ServerStartError(f"building the Temporal server {version} failed ({BUILD_SCRIPT})")
    return server, tool


def schema_dir(version: str = VERSION) -> Path:
    """Temporal's versioned Cassandra schema, from the module source the build downloaded."""
    gopath = Path(os.environ.get("HOURGLASS_GO_CACHE", Path.home() / ".cache" / "hourglass" / "go"))
    path = (
        gopath / "pkg" / "mod" / "go.temporal.io" / f"server@{version}" / "schema" / "cassandra" / "temporal"
    )
    if not (path / "versioned").is_dir():
        raise ServerStartError(f"Temporal's Cassandra schema is not at {path} (run {BUILD_SCRIPT})")
    return path / "versioned"


def setup_keyspace(tool: Path, hosts: list[str], port: int, keyspace: str, version: str = VERSION) -> None:
    """A fresh keyspace (replication factor 1) holding Temporal's schema at its latest version."""
    base = [str(tool), "--ep", ",".join(hosts), "--port", str(port), "--keyspace", keyspace]
    for args in (
        ["create-keyspace", "--keyspace", keyspace, "--replication-factor", "1"],
        ["setup-schema", "--version", "0.0"],
        ["update-schema", "--schema-dir", str(schema_dir(version))],
    ):
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ServerStartError(f"temporal-cassandra-tool {args[0]} failed: {done.stderr[-2000:]}")


def _config(hosts: list[str], port: int, keyspace: str, shards: int, ports: dict[str, int]) -> str:
    services = "".join(
        f"  {name}:\n    rpc:\n      grpcPort: {ports[name]}\n      membershipPort: {ports[name + '_m']}\n"
        f"      bindOnLocalHost: true\n"
        + (f"      httpPort: {ports['http']}\n" if name == "frontend" else "")
        for name in ("frontend", "history", "matching", "worker")
    )
    return f"""log:
  stdout: true
  level: error
persistence:
  defaultStore: cass-default
  visibilityStore: sqlite-visibility
  numHistoryShards: {shards}
  datastores:
    cass-default:
      cassandra:
        hosts: "{",".join(hosts)}"
        port: {port}
        keyspace: "{keyspace}"
        consistency:
          default:
            consistency: "local_quorum"
            serialConsistency: "local_serial"
    sqlite-visibility:
      sql:
        pluginName: "sqlite"
        databaseName: "visibility"
        connectAddr: "localhost"
        connectProtocol: "tcp"
        connectAttributes:
          mode: "memory"
          cache: "private"
        maxConns: 1
        maxIdleConns: 1
        maxConnLifetime: "1h"
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: "{HOST}"
  metrics:
    prometheus:
      framework: "tally"
      timerType: "histogram"
      listenAddress: "{HOST}:{ports["metrics"]}"
services:
{services}clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: "active"
  currentClusterName: "active"
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: "frontend"
      rpcAddress: "{HOST}:{ports["frontend"]}"
dcRedirectionPolicy:
  policy: "noop"
"""


class TemporalCassandraServer(ManagedServer):
    """The Temporal server process; once healthy, the `default` namespace is registered and given time to
    reach every service's namespace cache."""

    async def start(self) -> None:
        await super().start()
        try:
            client = await Client.connect(self.address)
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(
                    namespace="default", workflow_execution_retention_period=Duration(seconds=86400)
                ),
                timeout=timedelta(seconds=30),
            )
            await asyncio.sleep(NAMESPACE_SETTLE_S)
        except BaseException:
            self.stop()
            raise


def temporal_cassandra_server(
    workdir: Path, server: Path, hosts: list[str], port: int, keyspace: str, *, shards: int
) -> ManagedServer:
    """The Temporal server on `keyspace` (set up by `setup_keyspace`), with its Prometheus endpoint."""
    ports = {name: free_port() for name in ("frontend", "history", "matching", "worker", "http", "metrics")}
    ports |= {f"{name}_m": free_port() for name in ("frontend", "history", "matching", "worker")}
    config_dir = workdir / f"temporal-{keyspace}"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "development.yaml").write_text(_config(hosts, port, keyspace, shards, ports))
    argv = [
        str(server), "--root", str(workdir), "--config", config_dir.name, "--env", "development",
        "--allow-no-auth", "start",
    ]  # fmt: skip
    return TemporalCassandraServer(
        f"temporal {VERSION}", ports["frontend"], ports["metrics"], argv, workdir / f"temporal-{keyspace}.log"
    )
