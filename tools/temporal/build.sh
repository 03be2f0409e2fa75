#!/usr/bin/env bash
# Builds the real Temporal server and its Cassandra schema tool (Go modules, pinned version) into
# build/temporal/<version>/{temporal-server,temporal-cassandra-tool}, for `make bench-cassandra` to run the
# reference on the same local Cassandra as Hourglass. Cached: a second run with both binaries present does
# nothing. Go's paths (GOPATH, module cache, build cache) are $HOURGLASS_GO_CACHE (default
# ~/.cache/hourglass/go), as tools/ui/build.sh: outside the checkout, never the user's own.
# The build is heavy (several minutes of two cores): it runs at `nice -n 10`.
# Exit status: 0 built or already there; 3 Go is absent; other: failed.
set -euo pipefail

VERSION="${TEMPORAL_SERVER_VERSION:-v1.32.1}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT_DIR="$ROOT/build/temporal/$VERSION"

if [ -x "$OUT_DIR/temporal-server" ] && [ -x "$OUT_DIR/temporal-cassandra-tool" ]; then
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "Go is not installed: the Temporal server cannot be built (install Go)" >&2
    exit 3
fi

# shellcheck source=tools/go-env.sh
. "$ROOT/tools/go-env.sh"
mkdir -p "$OUT_DIR"

BIN_TMP="$OUT_DIR/.gobin"
rm -rf "$BIN_TMP"
mkdir -p "$BIN_TMP"
echo "Building Temporal server $VERSION and its Cassandra tool into $OUT_DIR (nice -n 10)" >&2
GOBIN="$BIN_TMP" nice -n 10 go install -trimpath -ldflags="-s -w" \
    "go.temporal.io/server/cmd/server@$VERSION" \
    "go.temporal.io/server/cmd/tools/cassandra@$VERSION"
mv "$BIN_TMP/server" "$OUT_DIR/temporal-server"
mv "$BIN_TMP/cassandra" "$OUT_DIR/temporal-cassandra-tool"
rm -rf "$BIN_TMP"
echo "Built $OUT_DIR/temporal-server and $OUT_DIR/temporal-cassandra-tool" >&2
