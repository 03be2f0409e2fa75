# Sourced by the repo's Go builds (tools/ui, tools/gocompat, tools/temporal): everything Go writes (GOPATH,
# module cache, build cache) goes to $HOURGLASS_GO_CACHE (default ~/.cache/hourglass/go), shared by them and
# outside the checkout, never the user's own Go paths; the local Go only (no toolchain download), no cgo.
export GOPATH="${HOURGLASS_GO_CACHE:-$HOME/.cache/hourglass/go}"
export GOMODCACHE="$GOPATH/pkg/mod"
export GOCACHE="$GOPATH/cache"
export GOFLAGS="-modcacherw -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
mkdir -p "$GOPATH"
