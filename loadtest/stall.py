"""Does one heavy request stall the node? p99 latency of GetSystemInfo under heavy reads (a benchmark).

    python -m hourglass.loadtest.stall [--before-pythonpath DIR] [--duration 20] [--out loadtest/RESULTS-stall.md]

Starts the reference (`temporal server start-dev`) and Hourglass start-dev (and, with --before-pythonpath,
an older Hourglass checkout: a directory holding `hourglass` -> that checkout), one after the other, each
on free 127.0.0.1 ports. On each it builds a ~3 MB workflow history (signals of 128 KiB), then probes
GetSystemInfo every 20 ms, first idle, then in three phases: while one task repeats a ListWorkflowExecutions
with a 1.9 MB `WorkflowId IN (...)` query, while 8 tasks repeat full reads of that history, and both. The probe runs in its own
process with its own connection, so what it measures is the server, not this tool's event loop.
Not a test: figures depend on the machine; the table says what ran where.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    GetSystemInfoRequest,
    GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.api.workflowservice.v1.service_pb2_grpc import WorkflowServiceStub

from hourglass.loadtest.servers import ManagedServer, hourglass_server, reference_server
from hourglass.loadtest.stats import percentile

PROBE_INTERVAL_S = 0.02
IN_VALUES = 150_000  # 'wf-00000000' x 150k: a 1.9 MB query
SIGNALS = 24
SIGNAL_BYTES = 128 * 1024
HISTORY_READERS = 8


def heavy_query() -> str:
    return "WorkflowId IN (" + ",".join(f"'wf-{i:08d}'" for i in range(IN_VALUES)) + ")"


# ---- the probe (a child process) ------------------------------------------------------------------------
async def probe(address: str, duration_s: float) -> list[tuple[float, float]]:
    """(wall-clock start, latency) of each GetSystemInfo, on a plain gRPC channel of its own, for
    `duration_s` or until a line "stop" arrives on stdin."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_stop() -> None:
        if sys.stdin.readline().strip() == "stop":
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = WorkflowServiceStub(channel)
        await stub.GetSystemInfo(GetSystemInfoRequest(), timeout=60)
        print("ready", flush=True)
        samples: list[tuple[float, float]] = []
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline and not stop.is_set():
            wall, started = time.time(), time.perf_counter()
            await stub.GetSystemInfo(GetSystemInfoRequest(), timeout=60)
            samples.append((wall, time.perf_counter() - started))
            await asyncio.sleep(max(0.0, PROBE_INTERVAL_S - (time.perf_counter() - started)))
        return samples


async def start_probe(address: str, duration_s: float) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hourglass.loadtest.stall", "--probe", address, "--duration", str(duration_s),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    if line.strip() != b"ready":
        raise RuntimeError(f"the probe did not start: {line!r}")
    return proc


# ---- the load -------------------------------------------------------------------------------------------
@dataclass
class Row:
    server: str
    load: str
    idle: list[float]
    loaded: list[float]
    queries: int
    history_reads: int
    errors: list[str]
    lag_max: str


async def build_history(stub: WorkflowServiceStub) -> WorkflowExecution:
    workflow_id = f"stall-{uuid.uuid4().hex[:8]}"
    started = await stub.StartWorkflowExecution(
        StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Stall"),
            task_queue=TaskQueue(name="stall-nobody-polls"),
            request_id=str(uuid.uuid4()),
        ),
        timeout=60,
    )
    execution = WorkflowExecution(workflow_id=workflow_id, run_id=started.run_id)
    blob = Payloads(payloads=[Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(SIGNAL_BYTES))])
    for _ in range(SIGNALS):
        await stub.SignalWorkflowExecution(
            SignalWorkflowExecutionRequest(
                namespace="default", workflow_execution=execution, signal_name="blob", input=blob
            ),
            timeout=60,
        )
    return execution


async def read_history(stub: WorkflowServiceStub, execution: WorkflowExecution) -> None:
    token = b""
    while True:
        page = await stub.GetWorkflowExecutionHistory(
            GetWorkflowExecutionHistoryRequest(
                namespace="default", execution=execution, next_page_token=token
            ),
            timeout=120,
        )
        token = page.next_page_token
        if not token:
            return


PHASES = {
    "1.9 MB IN query": (True, 0),
    f"{HISTORY_READERS} history reads": (False, HISTORY_READERS),
    "both": (True, HISTORY_READERS),
}


async def measure(server: ManagedServer, duration_s: float, idle_s: float = 3.0) -> list[Row]:
    """One row per load phase (the query alone, the history reads alone, both), each `duration_s` long."""
    channels = [grpc.aio.insecure_channel(server.address, options=_BIG) for _ in range(HISTORY_READERS + 1)]
    stubs = [WorkflowServiceStub(c) for c in channels]
    execution = await build_history(stubs[0])
    request = ListWorkflowExecutionsRequest(namespace="default", query=heavy_query())
    # Told to stop after the last phase: a phase ends when its last heavy request has answered, which on a
    # busy machine may take long after its measured window.
    probe_proc = await start_probe(server.address, idle_s + (duration_s + 2.0) * len(PHASES) + 900.0)
    await asyncio.sleep(idle_s)
    windows: list[tuple[str, float, float, dict[str, int], list[str]]] = []
    for name, (query, readers) in PHASES.items():
        counts = {"queries": 0, "history_reads": 0}
        errors: list[str] = []
        stop = asyncio.Event()

        async def repeat(kind: str, step, counts=counts, errors=errors, stop=stop) -> None:
            while not stop.is_set():
                try:
                    await step()
                    counts[kind] += 1
                except grpc.aio.AioRpcError as e:  # a failing heavy request is a figure too
                    errors.append(f"{kind}: {e.code().name}: {(e.details() or '')[:100]}")
                    await asyncio.sleep(0.5)

        start = time.time()
        tasks = []
        if query:
            tasks.append(
                asyncio.create_task(
                    repeat("queries", lambda: stubs[0].ListWorkflowExecutions(request, timeout=120))
                )
            )
        for stub in stubs[1 : 1 + readers]:
            tasks.append(
                asyncio.create_task(repeat("history_reads", lambda s=stub: read_history(s, execution)))
            )
        await asyncio.sleep(duration_s)
        end = time.time()
        stop.set()
        await asyncio.wait(tasks, timeout=120)
        for task in tasks:
            task.cancel()
        windows.append((name, start, end, counts, errors))
        await asyncio.sleep(2.0)  # let the last heavy requests drain before the next phase
    out, _ = await asyncio.wait_for(probe_proc.communicate(b"stop\n"), 300)
    for channel in channels:
        await channel.close()
    samples = json.loads(out)
    first_load = windows[0][1]
    rows = []
    for name, start, end, counts, errors in windows:
        rows.append(
            Row(
                server.kind,
                name,
                [lat for wall, lat in samples if wall < first_load],
                [lat for wall, lat in samples if start <= wall <= end],
                counts["queries"],
                counts["history_reads"],
                sorted(set(errors))[:3],
                "",
            )
        )
    lag = _lag(server)
    for row in rows:
        row.lag_max = lag
    return rows


# The load's own channels take whole histories of the old code (one message up to the server's limit).
_BIG = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
]


def _lag(server: ManagedServer) -> str:
    """The largest bucket bound the loop-lag histogram reached, if the server exports it."""
    if server.metrics_url is None:
        return "n/a"
    try:
        text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    except OSError:
        return "n/a"
    buckets = []
    for line in text.splitlines():
        if line.startswith("hourglass_event_loop_lag_seconds_bucket"):
            bound = line.split('le="')[1].split('"')[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    if not buckets:
        return "n/a"
    total = buckets[-1][1]
    below = [bound for bound, count in buckets if count >= total]
    return f"<= {below[0] * 1000:g} ms" if below and below[0] != float("inf") else "> 10 s"


# ---- the run and its table ------------------------------------------------------------------------------
def _ms(values: list[float], q: float) -> str:
    value = percentile(sorted(values), q)  # q in percent
    return "n/a" if value is None else f"{value * 1000:.1f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| server | load | idle p50 / p99 (ms) | loaded p50 / p99 / max (ms) | probes | heavy queries "
        "| history reads | loop lag max (whole run) | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.server} | {r.load} | {_ms(r.idle, 50)} / {_ms(r.idle, 99)} | {_ms(r.loaded, 50)} / "
            f"{_ms(r.loaded, 99)} / {_ms(r.loaded, 100)} | {len(r.loaded)} | {r.queries} | {r.history_reads} "
            f"| {r.lag_max} | {'; '.join(r.errors) or '-'} |"
        )
    return "\n".join(lines)


def _before_server(workdir: Path, pythonpath: str) -> ManagedServer:
    server = hourglass_server(workdir)
    server.kind = "hourglass (before)"
    server.argv = ["env", f"PYTHONPATH={pythonpath}", *server.argv]
    # An older checkout may predate the Web UI and its --headless (it then serves none anyway).
    help_text = subprocess.run(
        [*server.argv[: server.argv.index("start-dev") + 1], "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    if "--headless" not in help_text:
        server.argv.remove("--headless")
    server.log_path = workdir / "hourglass-before.log"
    return server


async def run(args: argparse.Namespace) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="hourglass-stall-"))
    servers = [reference_server(workdir)]
    if args.before_pythonpath:
        servers.append(_before_server(workdir, args.before_pythonpath))
    servers.append(hourglass_server(workdir))
    rows = []
    for server in servers:
        await server.start()
        try:
            rows += await measure(server, args.duration)
        finally:
            server.stop()
        print(table(rows), flush=True)
    return table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hourglass.loadtest.stall", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of loaded probing per server")
    parser.add_argument("--before-pythonpath", help="a directory whose `hourglass` is an older checkout")
    parser.add_argument(
        "--out", type=Path, help="append the table, with the command and machine, to this file"
    )
    parser.add_argument("--probe", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(asyncio.run(probe(args.probe, args.duration))))
        return
    # The `temporal` CLI that `make install-test` puts beside this interpreter, if none is on PATH.
    os.environ["PATH"] = f"{os.environ.get('PATH', '')}{os.pathsep}{Path(sys.executable).parent}"
    result = asyncio.run(run(args))
    if args.out:
        command = "python -m hourglass.loadtest.stall " + " ".join(sys.argv[1:])
        with args.out.open("a") as out:
            out.write(
                f"\n## {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, {os.cpu_count()} cores\n\n"
                f"`{command}`\n\n{result}\n"
            )


if __name__ == "__main__":
    main()
