#!/usr/bin/env bash
# Builds the Go SDK compat programs (tests/compat/go, a module requiring go.temporal.io/sdk, fetched through
# the Go module proxy and checked against go.sum) into build/gocompat/gocompat, which tests/compat/test_go_sdk.py
# runs against each server. Everything Go writes (GOPATH, module cache, build cache) goes to
# $HOURGLASS_GO_CACHE (default ~/.cache/hourglass/go, shared with tools/ui/build.sh), never the user's Go paths.
# `go build` is incremental: a second run with nothing changed takes a second.
# Exit status: 0 built; 3 Go is absent (the caller skips the Go SDK tests); other: failed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/build/gocompat/gocompat}"

if ! command -v go >/dev/null 2>&1; then
    echo "Go is not installed: the Go SDK compat programs are not built (install Go, then: make gocompat)" >&2
    exit 3
fi

# The module names the Go it needs (its dependencies' minimum); an older local Go cannot build it and may not
# download a newer one here (GOTOOLCHAIN=local): treated as Go being absent.
MODULE_DIR="$ROOT/tests/compat/go"
needed="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$MODULE_DIR/go.mod")"
have="$(GOTOOLCHAIN=local go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$needed" "$have" | sort -V | head -n1)" != "$needed" ]; then
    echo "Go $have is older than the $needed tests/compat/go needs: the Go SDK compat programs are not built" >&2
    exit 3
fi

# shellcheck source=tools/go-env.sh
. "$ROOT/tools/go-env.sh"
export GOFLAGS="$GOFLAGS -mod=readonly"
mkdir -p "$(dirname "$OUT")"

cd "$MODULE_DIR"
go build -o "$OUT" .
