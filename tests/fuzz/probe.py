"""A light RPC in a process of its own: GetSystemInfo every few ms, one line per call on stdout.

Run beside the fuzzer so that what it measures is the server's responsiveness, not the fuzzing process's
own CPU (hypothesis generating messages). Each line: `<target> <monotonic start> <latency s> <status>`,
target `node` (the server under test) or `control`.

The control is an idle gRPC health server in a third process (`--serve-control PORT`), called the same way
in alternation: on a loaded machine (2 cores shared by many test runs) both see the same scheduling delays,
so the node's latency minus the control's is what the node itself adds.
It stops by itself after `--max-seconds`, or when killed by the fixture that started it.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc

SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def serve_control(port: int, max_seconds: float) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination(timeout=max_seconds)


def probe(address: str, control: str | None, interval: float, max_seconds: float) -> None:
    targets = [("node", grpc.insecure_channel(address).unary_unary(SYSTEM_INFO))]
    if control:
        targets.append(("control", grpc.insecure_channel(control).unary_unary(HEALTH_CHECK)))
    stop_at = time.monotonic() + max_seconds
    while time.monotonic() < stop_at:
        for name, call in targets:
            start = time.monotonic()
            try:
                call(b"", timeout=10)
                status = "OK"
            except grpc.RpcError as e:
                status = e.code().name
            sys.stdout.write(f"{name} {start:.6f} {time.monotonic() - start:.6f} {status}\n")
            sys.stdout.flush()
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address", nargs="?")
    parser.add_argument("--control", help="address of a control server started with --serve-control")
    parser.add_argument("--serve-control", type=int, metavar="PORT")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    if args.serve_control:
        serve_control(args.serve_control, args.max_seconds)
    else:
        probe(args.address, args.control, args.interval, args.max_seconds)


if __name__ == "__main__":
    main()
