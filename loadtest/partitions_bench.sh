#!/usr/bin/env bash
# p99 with 4 task-queue partitions vs 1 on one start-dev node, alternating rounds in one run:
#   loadtest/partitions_bench.sh [ROUNDS] [WORKFLOWS] [DRIVER]   (figures in $OUT, default build/partitions-bench)
set -euo pipefail
ROUNDS=${1:-3}; WORKFLOWS=${2:-500}; DRIVER=${3:-raw}
HG=${HG:-$(dirname "$0")/../.venv/bin/hourglass}
OUT=${OUT:-build/partitions-bench}
mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for round in $(seq 1 "$ROUNDS"); do
  for parts in 1 4; do
    port=$(free_port)
    "$HG" server start-dev --port "$port" --headless \
      --dynamic-config-value "matching.numTaskqueueReadPartitions=$parts" \
      --dynamic-config-value "matching.numTaskqueueWritePartitions=$parts" >"$OUT/server-$parts-$round.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    "$HG" loadtest run --address "127.0.0.1:$port" --scenario one-activity --driver "$DRIVER" \
      --workflows "$WORKFLOWS" --concurrency 20 --warmup 50 --history-sample 0 \
      --out "$OUT/p$parts-r$round.json" >"$OUT/p$parts-r$round.txt" 2>&1 || echo "round $round p$parts failed"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for parts in (1, 4):
    runs = [json.load(open(f"{out}/p{parts}-r{r}.json"))["figures"] for r in range(1, rounds + 1)]
    p99 = [f["latency_p99_ms"] for f in runs]
    p50 = [f["latency_p50_ms"] for f in runs]
    rate = [f["workflows_per_s"] for f in runs]
    med[parts] = statistics.median(p99)
    print(f"{parts} partition(s): p99 ms {[round(x) for x in p99]} median {med[parts]:.0f}; "
          f"p50 median {statistics.median(p50):.0f}; wf/s median {statistics.median(rate):.1f}")
print(f"p99 ratio 4/1 (medians of rounds): {med[4] / med[1]:.2f}")
pooled = {}
for parts in (1, 4):
    lat = sorted(x for r in range(1, rounds + 1) for x in json.load(open(f"{out}/p{parts}-r{r}.json"))["latencies_ms"])
    pooled[parts] = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(f"{parts} partition(s): p99 ms over all {len(lat)} workflows {pooled[parts]:.0f}")
print(f"p99 ratio 4/1 (all rounds pooled): {pooled[4] / pooled[1]:.2f}")
PY
