"""A light RPC in a process of its own: GetSystemInfo every few ms, one line per call on stdout.

Run beside the fuzzer so that what it measures is the server's responsiveness, not the fuzzing process's
own CPU (hypothesis generating messages). Each line: `<monotonic start> <latency s> <status name>`.
It stops by itself after `--max-seconds`, or when killed by the fixture that started it.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc

SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args()
    channel = grpc.insecure_channel(args.address)
    call = channel.unary_unary(SYSTEM_INFO)
    stop_at = time.monotonic() + args.max_seconds
    while time.monotonic() < stop_at:
        start = time.monotonic()
        try:
            call(b"", timeout=10)
            status = "OK"
        except grpc.RpcError as e:
            status = e.code().name
        sys.stdout.write(f"{start:.6f} {time.monotonic() - start:.6f} {status}\n")
        sys.stdout.flush()
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
