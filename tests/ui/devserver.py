"""`hourglass server start-dev` as a subprocess for tests/ui: free ports, its log, the Web UI's child."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hourglass.cluster.webui import default_binary

READY_DEADLINE_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_ui_binary() -> Path:
    """The built UI server; tests skip only where Go is absent (nothing could build it)."""
    binary = default_binary()
    if not binary.exists():
        if shutil.which("go") is None:
            pytest.skip(f"Go is absent, so the Web UI server is not built ({binary})")
        pytest.fail(f"{binary} is missing: run `make ui`")
    return binary


@dataclass
class DevServer:
    proc: subprocess.Popen
    log: Path
    port: int
    ui_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The server's child processes (the Web UI server when it runs)."""
        return children(self.proc.pid)


def hourglass_exe() -> str:
    return str(Path(sys.executable).with_name("hourglass"))


def children(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def running_or_gone(pid: int) -> bool:
    """True while `pid` runs; a zombie waiting for its new parent to reap it has already died."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def wait_dead(pid: int, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while running_or_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def run_server(
    argv: list[str], log: Path, ready_line: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, Path]]:
    """A server subprocess (own session) until the block ends (SIGTERM, then SIGKILL), ready once its log
    shows `ready_line`."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while ready_line not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{' '.join(argv)} did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextlib.contextmanager
def start_dev(
    workdir: Path,
    *args: str,
    ready_line: str = "Hourglass listening on",
    env: dict[str, str] | None = None,
    ui_port: int | None = None,
) -> Iterator[DevServer]:
    """start-dev on free ports until the block ends, ready once its log shows `ready_line`. The Web UI
    port is passed as --ui-port."""
    port = free_port()
    ui_port = ui_port or free_port()
    log = workdir / f"start-dev-{port}.log"
    argv = [hourglass_exe(), "server", "start-dev", "--port", str(port), "--ui-port", str(ui_port), *args]
    with run_server(argv, log, ready_line, env) as (proc, _):
        yield DevServer(proc, log, port, ui_port)
