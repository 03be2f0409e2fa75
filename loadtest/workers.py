"""Worker OS processes: K processes, each with its own event loop and client, answering a run's tasks.

Processes are spawned (not forked): the SDK's Rust runtime and grpc threads do not survive a fork. Each
child signals `ready` once it polls and stops when `stop` is set, or by itself at its hard deadline, so
a pool never outlives its run even if the parent dies. The parent kills any child that does not stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import multiprocessing.synchronize
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from hourglass.loadtest.connect import TLSPaths, split_addresses
from hourglass.loadtest.scenarios import ScenarioRef

READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs, picklable."""

    driver: str  # "sdk" or "raw"
    address: str
    namespace: str
    task_queue: str
    scenario: ScenarioRef
    deadline_s: float  # a child exits by itself this long after it started, whatever happens
    pollers: int | None = None  # per task kind and process; None: the driver's default
    sandbox: bool = False  # sdk driver: run workflows in the SDK's sandbox (what most users do)
    api_key: str | None = None  # sent as `authorization: Bearer <key>`
    tls: TLSPaths | None = None  # None: plaintext


class WorkerPoolError(RuntimeError):
    """A worker process failed to start or died."""


def _child_main(spec: WorkerSpec, ready: Any, stop: Any) -> None:
    if spec.driver == "sdk":
        from hourglass.loadtest.driver_sdk import serve
    else:
        from hourglass.loadtest.driver_raw import serve
    code = 0
    try:
        asyncio.run(_serve_until_stopped(serve, spec, ready, stop))
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        # Skip interpreter finalization: grpc's and the SDK's native threads can abort it
        # ("PyGILState_Release ... must be current"), and a worker has nothing left to clean up.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def _serve_until_stopped(serve: Any, spec: WorkerSpec, ready: Any, stop: Any) -> None:
    deadline = time.monotonic() + spec.deadline_s
    stopping = asyncio.Event()

    async def watch() -> None:
        # `stop` is a multiprocessing Event, which cannot be awaited: poll it.
        while not stop.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stopping.set()

    watcher = asyncio.create_task(watch())
    try:
        await serve(spec, ready.set, stopping)
    finally:
        watcher.cancel()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, from /proc (None where that is not available)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class WorkerPool:
    """K worker processes for one run; use as `with WorkerPool(spec, k) as pool:` (stops them on exit)."""

    def __init__(self, spec: WorkerSpec, processes: int) -> None:
        self.spec = spec
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._procs: list[Any] = []
        self._readies: list[Any] = []
        self.count = processes

    def __enter__(self) -> WorkerPool:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        addresses = split_addresses(self.spec.address)
        for n in range(self.count):
            ready = self._ctx.Event()
            # Several frontends: process n polls the n-th (round robin), one client each.
            spec = dataclasses.replace(self.spec, address=addresses[n % len(addresses)])
            proc = self._ctx.Process(
                target=_child_main,
                args=(spec, ready, self._stop),
                name=f"loadtest-{self.spec.driver}-worker-{n}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)
            self._readies.append(ready)

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(r.is_set() for r in self._readies):
            self.check_alive()
            if time.monotonic() > deadline:
                raise WorkerPoolError(f"worker processes not ready within {timeout_s:.0f}s")
            await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        for proc in self._procs:
            if proc.exitcode is not None:
                raise WorkerPoolError(f"worker process {proc.name} exited with code {proc.exitcode}")

    def cpu_seconds(self) -> float | None:
        """CPU time the worker processes have used so far (None where /proc is not available)."""
        values = [cpu_seconds(p.pid) for p in self._procs if p.pid is not None]
        if not values or any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    def stop(self) -> None:
        """Ask every child to stop, wait a grace period, then kill what is left."""
        self._stop.set()
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self._procs.clear()
        self._readies.clear()
