#!/usr/bin/env python3
"""What TLS costs on the frontend (a figure, not a test): plaintext vs TLS vs mutual TLS.

    python tools/security/bench_tls.py [--rounds 5 --workflows 500 --concurrency 50 --driver raw]

Starts three `hourglass server start-dev` (in-memory SQLite) on free ports: plaintext, `--tls-cert/--tls-key`,
and with `--tls-client-ca` too, with development certificates (`hourglass cluster dev-certs`) in a temporary
directory. Then runs the same `hourglass loadtest run` (one-activity, closed loop) against each, alternating,
`--rounds` times, so that the machine's background load falls on the three alike. Server CPU per workflow is
read from /proc around each run. Writes loadtest/RESULTS-security.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOURGLASS = str(Path(sys.executable).with_name("hourglass"))
MODES = ("plaintext", "TLS", "mTLS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_listening(log: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while "Hourglass listening on" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start: {log.read_text(errors='replace')}")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workflows", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--driver", default="raw", choices=["raw", "sdk"])
    parser.add_argument("--out", default=str(ROOT / "loadtest" / "RESULTS-security.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hg-tls-bench-"))
    certs = work / "certs"
    subprocess.run([HOURGLASS, "cluster", "dev-certs", "--out", str(certs), "--hosts", "127.0.0.1"], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    server_tls = ["--tls-cert", str(certs / "127.0.0.1.crt"), "--tls-key", str(certs / "127.0.0.1.key")]
    client_ca = ["--tls-ca-path", str(certs / "ca.pem")]
    client_cert = ["--tls-cert-path", str(certs / "client.crt"), "--tls-key-path", str(certs / "client.key")]
    setups = {
        "plaintext": ([], []),
        "TLS": (server_tls, client_ca),
        "mTLS": ([*server_tls, "--tls-client-ca", str(certs / "ca.pem")], [*client_ca, *client_cert]),
    }
    load = ["--scenario", "one-activity", "--workflows", str(args.workflows), "--concurrency", str(args.concurrency),
            "--warmup", "50", "--driver", args.driver, "--history-sample", "0", "--quiet"]  # fmt: skip
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    try:
        for mode, (server_args, _) in setups.items():
            port = free_port()
            log = work / f"{mode}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [HOURGLASS, "server", "start-dev", "--headless", "--port", str(port), *server_args],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            procs[mode] = (proc, port)
            wait_listening(log, proc)
        for r in range(args.rounds):
            for mode in MODES:
                proc, port = procs[mode]
                out = work / f"{mode}-{r}.json"
                cpu0 = cpu_s(proc.pid)
                subprocess.run(
                    [HOURGLASS, "loadtest", "run", "--address", f"127.0.0.1:{port}", *load, *setups[mode][1],
                     "--out", str(out)],
                    check=True, capture_output=True, timeout=900,
                )  # fmt: skip
                cpu = cpu_s(proc.pid) - cpu0
                figures = json.loads(out.read_text())["figures"]
                figures["server_cpu_ms_per_workflow_proc"] = (
                    1000 * cpu / max(1, figures["workflows_completed"] + 50)
                )
                results[mode].append(figures)
                print(f"round {r + 1} {mode}: {figures['workflows_per_s']:.1f} wf/s", flush=True)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    write(args, results, load_before, os.getloadavg(), setups, load)
    return 0


def write(args, results, load_before, load_after, setups, load) -> None:
    def med(mode: str, key: str) -> float:
        return statistics.median(f[key] for f in results[mode] if f.get(key) is not None)

    rows = [
        ("workflows/s (median of rounds)", "workflows_per_s", "{:.1f}"),
        ("workflow latency p50 (ms)", "latency_p50_ms", "{:.0f}"),
        ("workflow latency p99 (ms)", "latency_p99_ms", "{:.0f}"),
        ("server CPU ms/workflow", "server_cpu_ms_per_workflow_proc", "{:.1f}"),
    ]
    base = med("plaintext", "workflows_per_s")
    lines = [
        "# What TLS costs on the frontend: plaintext vs TLS vs mutual TLS",
        "",
        f"Written by `python tools/security/bench_tls.py --rounds {args.rounds} --workflows {args.workflows} "
        f"--concurrency {args.concurrency} --driver {args.driver}` on "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Three `hourglass server start-dev` "
        "(in-memory SQLite) run side by side, started as:",
        "",
        "```sh",
        "hourglass cluster dev-certs --out certs --hosts 127.0.0.1",
        "hourglass server start-dev --port P1",
        "hourglass server start-dev --port P2 --tls-cert certs/127.0.0.1.crt --tls-key certs/127.0.0.1.key",
        "hourglass server start-dev --port P3 --tls-cert certs/127.0.0.1.crt --tls-key certs/127.0.0.1.key "
        "--tls-client-ca certs/ca.pem",
        "```",
        "",
        "and each round runs, one after the other (plaintext, TLS, mTLS):",
        "",
        "```sh",
        f"hourglass loadtest run --address 127.0.0.1:P1 {' '.join(load)}",
        f"hourglass loadtest run --address 127.0.0.1:P2 {' '.join(load)} --tls-ca-path certs/ca.pem",
        f"hourglass loadtest run --address 127.0.0.1:P3 {' '.join(load)} --tls-ca-path certs/ca.pem "
        "--tls-cert-path certs/client.crt --tls-key-path certs/client.key",
        "```",
        "",
        "The SDK client (Rust core, rustls) keeps its connection open: TLS costs a handshake per connection "
        "and symmetric encryption per message, not a handshake per call. Server CPU is the server process's "
        "user+system time from /proc over the run (warm-up included) divided by the workflows it ran.",
        "",
        "| figure | plaintext | TLS | mTLS |",
        "|---|---:|---:|---:|",
    ]
    for label, key, fmt in rows:
        lines.append(f"| {label} | " + " | ".join(fmt.format(med(m, key)) for m in MODES) + " |")
    lines.append(
        "| throughput vs plaintext | 1.00 | "
        + " | ".join(f"{med(m, 'workflows_per_s') / base:.2f}" for m in MODES[1:])
        + " |"
    )
    failed = {m: sum(f["workflows_failed"] for f in results[m]) for m in MODES}
    lines.append("| workflows failed (all rounds) | " + " | ".join(str(failed[m]) for m in MODES) + " |")
    lines += [
        "",
        "Every round (workflows/s):",
        "",
        "| round | plaintext | TLS | mTLS |",
        "|---:|---:|---:|---:|",
    ]
    for r in range(args.rounds):
        lines.append(
            f"| {r + 1} | " + " | ".join(f"{results[m][r]['workflows_per_s']:.1f}" for m in MODES) + " |"
        )
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    lines += [
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| cpus (nproc) | {os.cpu_count()} |",
        f"| os | {platform.system()} {platform.release()} |",
        f"| python | {platform.python_version()} |",
        f"| commit | {commit} |",
        f"| load average at start (1/5/15 min) | {' '.join(f'{x:.2f}' for x in load_before)} |",
        f"| load average at end (1/5/15 min) | {' '.join(f'{x:.2f}' for x in load_after)} |",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
