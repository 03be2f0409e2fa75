#!/usr/bin/env bash
# Builds the official Temporal Web UI server (Go module github.com/temporalio/ui-server/v2, which embeds the
# built UI in ui/assets) into build/ui-server/<version>/ui-server, the binary `hourglass server start-dev`
# runs. Pinned version, cached: a second run with the binary present does nothing. Everything Go writes
# (GOPATH, module cache, build cache) goes to one folder of its own, $HOURGLASS_GO_CACHE (default
# ~/.cache/hourglass/go), never the user's Go paths; kept outside the checkout so that a fresh clone on the
# same machine (CI's) reuses the downloaded modules and compiled packages instead of spending minutes on
# them again.
#
# Two adjustments, both in the module's go.mod only (no source is changed):
# - go.temporal.io/api is replaced by v1.64.1: the module proxy refuses v1.64.0, which v2.58.1 requires;
# - the `go` line is lowered to the installed toolchain when that is older than the one the module names
#   (a patch release: no language change), because downloading another toolchain is not possible here.
# Exit status: 0 built or already there; 3 Go is absent (the caller says the UI is off); other: failed.
set -euo pipefail

VERSION="${UI_SERVER_VERSION:-v2.58.1}"
# The module zip's h1: hash (as in go.sum), checked before anything is built from it.
ZIP_SUM_v2_58_1="h1:v2ZM/IJa3rGRncEUslPhL6W7RcnSnK/hb+z7+cq6+OE="
API_REPLACEMENT="go.temporal.io/api@v1.64.1"
MODULE="github.com/temporalio/ui-server/v2"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT_DIR="$ROOT/build/ui-server/$VERSION"
BINARY="$OUT_DIR/ui-server"

if [ -x "$BINARY" ]; then
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "Go is not installed: the Web UI server is not built, start-dev runs headless (install Go, then: make ui)" >&2
    exit 3
fi

# shellcheck source=tools/go-env.sh
. "$ROOT/tools/go-env.sh"
mkdir -p "$OUT_DIR"

echo "Building the Temporal Web UI server $VERSION into $BINARY" >&2
# `go mod download` fetches and verifies the zip against the checksum database, then complains that the
# module names a newer Go: the zip is what is needed, so that complaint is tolerated and the hash is
# checked again below against the pinned one.
go mod download -json "$MODULE@$VERSION" >"$GOPATH/download.json" 2>&1 || true
CACHE="$GOMODCACHE/cache/download/$MODULE/@v"
ZIP="$CACHE/$VERSION.zip"
if [ ! -f "$ZIP" ]; then
    echo "could not download $MODULE@$VERSION:" >&2
    cat "$GOPATH/download.json" >&2
    exit 1
fi
pinned_var="ZIP_SUM_$(echo "$VERSION" | tr '.' '_')"
expected="${!pinned_var:-}"
actual="$(cat "$CACHE/$VERSION.ziphash")"
if [ -z "$expected" ] || [ "$actual" != "$expected" ]; then
    echo "$MODULE@$VERSION: zip hash $actual is not the pinned ${expected:-<none pinned>}" >&2
    exit 1
fi

SRC="$OUT_DIR/src"
rm -rf "$SRC"
mkdir -p "$SRC"
python3 - "$ZIP" "$SRC" "$MODULE@$VERSION/" <<'EOF'
import sys, zipfile
zip_path, dest, prefix = sys.argv[1:]
import os
with zipfile.ZipFile(zip_path) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = os.path.join(dest, info.filename[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
EOF

cd "$SRC"
local_go="$(go env GOVERSION | sed 's/^go//')"
module_go="$(go mod edit -json | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
if [ "$(printf '%s\n%s\n' "$local_go" "$module_go" | sort -V | head -1)" != "$module_go" ]; then
    echo "the module names go $module_go; building with the installed go $local_go" >&2
    go mod edit -go="$local_go"
fi
go mod edit -replace "go.temporal.io/api=$API_REPLACEMENT"
go mod download
go build -mod=mod -trimpath -ldflags="-s -w" -o "$BINARY.tmp" ./cmd/server
mv "$BINARY.tmp" "$BINARY"
rm -rf "$SRC"
echo "Built $BINARY" >&2
