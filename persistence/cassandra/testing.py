"""A real Cassandra for test suites: an existing cluster, or the development node started on demand.

- HOURGLASS_CASSANDRA_HOSTS="host[:port],..." : use that cluster (nothing is started or stopped).
- otherwise: `tools/cassandra/devserver.py up` starts the development node (fetching the jars from Maven
  Central the first time) unless it runs already; the last test session on the machine to finish stops
  it again, only if a test session started it (concurrent sessions share it, see _DevNodeUsers). Needs
  a source checkout (tools/ is not packaged), JDK 17 and Maven.
- HOURGLASS_CASSANDRA_CONTAINER=1 : a Cassandra 5 container started with testcontainers instead, where a
  Docker engine answers (see container.py); removed when the session's last user releases it.
- HOURGLASS_SKIP_CASSANDRA=1 : tests that need Cassandra are skipped instead (fixtures check it).
- HOURGLASS_CASSANDRA_TLS_DIR=DIR : the `tls/` directory of the node named by HOURGLASS_CASSANDRA_HOSTS,
  when that node was started from another checkout (`dev_node_tls` finds this checkout's own).

Every suite works in keyspaces of its own (`create_test_keyspace`, dropped by `drop_keyspace`), created
with the schema tool's code, so a shared cluster is never disturbed. No fake Cassandra exists here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hourglass.persistence.cassandra.config import HOSTS_ENV, CassandraConfig, parse_hosts
from hourglass.persistence.cassandra.container import container_requested, start_container
from hourglass.schema.migrate_cassandra import (
    DDL_TIMEOUT_S,
    apply_cassandra_schema,
    create_keyspace,
    validate_keyspace_name,
)

if TYPE_CHECKING:
    from cassandra.cluster import Session

SKIP_ENV = "HOURGLASS_SKIP_CASSANDRA"
TLS_DIR_ENV = "HOURGLASS_CASSANDRA_TLS_DIR"
# Tables the schema tool owns: a reset between tests keeps them.
SCHEMA_TABLES = frozenset({"schema_version", "schema_update_history"})

_lock = threading.Lock()
_users = 0
# The testcontainers Cassandra of this process and its contact point (HOURGLASS_CASSANDRA_CONTAINER=1).
_container: tuple[Any, CassandraConfig] | None = None


class CassandraUnavailableForTests(RuntimeError):
    """Neither an existing cluster nor the development node could be used."""


def skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() not in ("", "0", "false", "no")


def repo_root() -> Path:
    import hourglass.persistence

    return Path(hourglass.persistence.__file__).resolve().parent.parent


def devserver_script() -> Path:
    return repo_root() / "tools" / "cassandra" / "devserver.py"


@dataclass(frozen=True)
class DevNodeTLS:
    """The TLS files `devserver.py up` generated for a development node (see tools/cassandra/devserver.py).

    The node accepts plaintext and TLS on its CQL port; a TLS client must present `client_cert_file`.
    """

    host: str
    port: int
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path


def dev_node_tls(config: CassandraConfig) -> DevNodeTLS | None:
    """The TLS files of the development node `config` points at, or None (not a dev node of this checkout,
    started before it had TLS, or elsewhere: set HOURGLASS_CASSANDRA_TLS_DIR to its `tls/` directory)."""
    host, port = config.hosts[0], config.port
    override = os.environ.get(TLS_DIR_ENV, "").strip()
    if override:
        directory = Path(override)
    else:
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            return None
        devserver = devserver_module()
        if devserver is None:
            return None
        node = devserver.node_from_args(
            devserver.parse_args(["status", "--listen-address", host, "--port", str(port)])
        )
        if devserver.read_pid(node) is None:  # no node of this checkout runs there
            return None
        directory = node.tls.directory
    tls = DevNodeTLS(
        host=host,
        port=port,
        ca_file=directory / "ca.pem",
        client_cert_file=directory / "client.pem",
        client_key_file=directory / "client-key.pem",
    )
    files = (tls.ca_file, tls.client_cert_file, tls.client_key_file)
    return tls if all(f.is_file() for f in files) else None


def devserver_module() -> ModuleType | None:
    """tools/cassandra/devserver.py, imported from the source checkout (tools/ is not a package)."""
    script = devserver_script()
    if not script.exists():
        return None
    name = "hourglass_cassandra_devserver"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def acquire() -> CassandraConfig:
    """Contact points of a running Cassandra (starting the dev node if needed). Pair with `release`."""
    global _users
    with _lock:
        if os.environ.get(HOSTS_ENV, "").strip():
            hosts, port = parse_hosts(os.environ[HOSTS_ENV])
            _users += 1
            return CassandraConfig(hosts=hosts, port=port)
        if container_requested():
            return _acquire_container()
        if _users == 0:
            _DevNodeUsers().join()
        _users += 1
        return CassandraConfig(hosts=["127.0.0.1"], port=9042)


def release() -> None:
    """One user fewer. The last user of the dev node on this machine stops it, if a test session started it."""
    global _users
    with _lock:
        _users = max(_users - 1, 0)
        if _users == 0 and not os.environ.get(HOSTS_ENV, "").strip():
            if container_requested():
                _release_container()
            else:
                _DevNodeUsers().leave()


def _acquire_container() -> CassandraConfig:
    global _container, _users
    if _container is None:
        try:
            container, host, port = start_container()
        except RuntimeError as e:
            raise CassandraUnavailableForTests(str(e)) from None
        _container = (container, CassandraConfig(hosts=[host], port=port))
    _users += 1
    return _container[1]


def _release_container() -> None:
    global _container
    if _container is not None:
        (container, _), _container = _container, None
        container.stop()


class _DevNodeUsers:
    """Test sessions (processes) using the development node, so concurrent sessions share it safely.

    Each session registers its pid under build/cassandra/test-users/ while holding an exclusive file lock.
    The node is started by the first session that finds it down (which leaves a `started-by-tests` mark
    holding the node's pid) and stopped by the last session to leave, only if that very node still runs: a
    node an operator started with `make cassandra-up` is never stopped by tests. Sessions that died
    without leaving are pruned by pid.
    """

    def __init__(self) -> None:
        self.directory = repo_root() / "build" / "cassandra" / "test-users"
        self.mark = self.directory / "started-by-tests"

    def join(self) -> None:
        script = devserver_script()
        if not script.exists():
            raise CassandraUnavailableForTests(
                f"{script} not found (installed package?): set {HOSTS_ENV} to an existing cluster"
            )
        with self._locked():
            (self.directory / str(os.getpid())).touch()
            status = _devserver("status").returncode  # 0 running, 1 stopped, 2 starting
            if status != 0:
                result = _devserver("up")
                if result.returncode != 0 and _cql_answers("127.0.0.1", 9042):
                    # A Cassandra this checkout did not start (another checkout's dev node, a local install)
                    # already serves the port: tests make their own keyspaces, so use it and never stop it.
                    return
                if result.returncode != 0:
                    (self.directory / str(os.getpid())).unlink(missing_ok=True)
                    raise CassandraUnavailableForTests(
                        f"could not start the development Cassandra (`{script} up`, exit {result.returncode}):\n"
                        f"{result.stderr[-4000:]}"
                    )
                if status == 1:
                    self.mark.write_text(self._node_pid())

    def leave(self) -> None:
        with self._locked():
            (self.directory / str(os.getpid())).unlink(missing_ok=True)
            others = [p for p in self.directory.iterdir() if p.name.isdigit() and _alive(int(p.name))]
            for stale in {p for p in self.directory.iterdir() if p.name.isdigit()} - set(others):
                stale.unlink(missing_ok=True)
            if not others and self.mark.exists():
                # Only the very node a test session started: not one restarted by hand since.
                if self.mark.read_text() == self._node_pid():
                    _devserver("down")
                self.mark.unlink(missing_ok=True)

    def _node_pid(self) -> str:
        try:
            return (self.directory.parent / "node1" / "cassandra.pid").read_text().strip()
        except FileNotFoundError:
            return ""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory.parent / "test-users.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _cql_answers(host: str, port: int) -> bool:
    from cassandra.cluster import Cluster

    cluster = Cluster([host], port=port, connect_timeout=5, protocol_version=5)
    try:
        cluster.connect().execute("SELECT release_version FROM system.local")
        return True
    except Exception:
        return False
    finally:
        cluster.shutdown()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _devserver(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(devserver_script()), command], capture_output=True, text=True, timeout=600
    )


def new_keyspace_name(prefix: str) -> str:
    """Unique per call, so concurrent test runs on one cluster never share a keyspace."""
    return validate_keyspace_name(f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}")


def create_test_keyspace(session: Session, keyspace: str) -> int:
    """A keyspace (replication factor 1) at the latest schema version, made by the schema tool's code."""
    create_keyspace(session, keyspace, replication_factor=1)
    return apply_cassandra_schema(session, keyspace)


def drop_keyspace(session: Session, keyspace: str) -> None:
    validate_keyspace_name(keyspace)
    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=DDL_TIMEOUT_S)


@contextlib.contextmanager
def fresh_keyspace(prefix: str) -> Iterator[tuple[CassandraConfig, Session, str]]:
    """A fresh keyspace at the latest schema on the tests' Cassandra (acquired for the block, dropped and
    released after it): (config, session, keyspace)."""
    from hourglass.persistence.cassandra.config import build_cluster

    config = acquire()
    driver = build_cluster(CassandraConfig(hosts=config.hosts, port=config.port))
    try:
        session = driver.connect()
        keyspace = new_keyspace_name(prefix)
        create_test_keyspace(session, keyspace)
        try:
            yield config, session, keyspace
        finally:
            with contextlib.suppress(Exception):
                drop_keyspace(session, keyspace)
    finally:
        driver.shutdown()
        release()


class KeyspaceReset:
    """Empties a keyspace's tables between tests, much faster than TRUNCATE (which flushes every table).

    Every partition that exists is deleted. The session must not use client-side timestamps: the
    coordinator then stamps the deletes with its own clock, the same clock the next test's conditional
    writes (Paxos ballots) are stamped with, so a row re-created right after a reset is never shadowed.
    """

    def __init__(self, session: Session, keyspace: str) -> None:
        if session.use_client_timestamp:
            raise ValueError("KeyspaceReset needs a session with use_client_timestamp = False")
        self._session = session
        self._keyspace = validate_keyspace_name(keyspace)
        rows = session.execute(
            "SELECT table_name, column_name, position FROM system_schema.columns "
            "WHERE keyspace_name = %s AND kind = 'partition_key' ALLOW FILTERING",
            (keyspace,),
        )
        keys: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            table, column, position = _values(row, "table_name", "column_name", "position")
            if table not in SCHEMA_TABLES:
                keys.setdefault(table, []).append((position, column))
        self._tables = {table: [c for _, c in sorted(cols)] for table, cols in sorted(keys.items())}
        self._deletes = {
            table: session.prepare(
                f"DELETE FROM {keyspace}.{table} WHERE " + " AND ".join(f"{c} = ?" for c in columns)
            )
            for table, columns in self._tables.items()
        }

    def __call__(self) -> int:
        """Delete every partition of every table; returns how many partitions were deleted."""
        from cassandra.concurrent import execute_concurrent_with_args

        deleted = 0
        for table, columns in self._tables.items():
            rows = self._session.execute(
                f"SELECT DISTINCT {', '.join(columns)} FROM {self._keyspace}.{table}"
            )
            keys = [_values(row, *columns) for row in rows]
            if keys:
                execute_concurrent_with_args(
                    self._session, self._deletes[table], keys, raise_on_first_error=True
                )
                deleted += len(keys)
        return deleted


def _values(row: object, *names: str) -> tuple[object, ...]:
    if isinstance(row, dict):
        return tuple(row[name] for name in names)
    return tuple(getattr(row, name) for name in names)
