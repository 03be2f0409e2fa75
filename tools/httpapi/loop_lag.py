"""How late a node's event loop runs while clients read a large history (a 1.5 MB start input) through
the HTTP API, compared with the same reads over gRPC.

    .venv/bin/python tools/httpapi/loop_lag.py thread   # HTTP API as shipped: big JSON made in a thread
    .venv/bin/python tools/httpapi/loop_lag.py loop     # HTTP API with every conversion on the loop
    .venv/bin/python tools/httpapi/loop_lag.py grpc     # the same reads over gRPC, for a baseline

Two readers in their own processes (curl, or a gRPC stub in a thread, which releases the GIL) for
`--seconds`; the loop's lag is sampled every 10 ms on the node's loop and printed as p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import threading
import time

import grpc
import httpx
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest, service_pb2_grpc

import hourglass.cluster.httpapi.server as http_server
from hourglass.cluster.node import Node, NodeConfig
from hourglass.persistence.sqlite.store import SQLiteStore

READERS = 2


def _read_http(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, timeout=60
        )
        assert out.stdout == b"200", out


def _read_grpc(address: str, stop: threading.Event) -> None:
    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 27)])
    stub = service_pb2_grpc.WorkflowServiceStub(channel)
    request = GetWorkflowExecutionHistoryRequest(namespace="default")
    request.execution.workflow_id = "big"
    while not stop.is_set():
        stub.GetWorkflowExecutionHistory(request, timeout=60)
    channel.close()


async def main(mode: str, seconds: float) -> None:
    if mode == "loop":
        http_server.OFF_LOOP_BYTES = 1 << 40
    node = Node(NodeConfig(port=0, http_port=0), await SQLiteStore.open(None))
    await node.start()
    base = f"http://127.0.0.1:{node.http_api.bound_port}/api/v1/namespaces/default"
    big = [{"k": "v" * 40, "n": i} for i in range(25000)]
    async with httpx.AsyncClient(timeout=60) as client:
        start = {"workflowType": {"name": "W"}, "taskQueue": {"name": "q"}, "input": [big]}
        answer = await client.post(f"{base}/workflows/big", json=start)
        assert answer.status_code == 200, answer.text
    stop = threading.Event()
    if mode == "grpc":
        target, args = _read_grpc, (f"127.0.0.1:{node.bound_port}", stop)
    else:
        target, args = _read_http, (f"{base}/workflows/big/history", stop)
    readers = [threading.Thread(target=target, args=args) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    lags = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append(time.monotonic() - before - 0.01)
    stop.set()
    for reader in readers:
        await asyncio.to_thread(reader.join)
    await node.stop()
    lags.sort()
    print(
        f"{mode}: samples={len(lags)} p50={lags[len(lags) // 2] * 1000:.1f}ms "
        f"p99={lags[int(len(lags) * 0.99)] * 1000:.1f}ms max={lags[-1] * 1000:.1f}ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["thread", "loop", "grpc"])
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()
    asyncio.run(main(options.mode, options.seconds))
