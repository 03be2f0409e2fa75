#!/bin/sh
# Installs Prometheus (the server and promtool) from Debian for tests/ops, which run a real Prometheus
# against a node. Skipped when both are on PATH. The package's own service is never started: the tests run
# the binary themselves with a temporary config and storage, on a free port.
set -eu

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "tools/prometheus/install.sh: no apt-get here; install Prometheus 2.x (prometheus and promtool on PATH) to run tests/ops" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "tools/prometheus/install.sh: not root and no sudo; install the Debian package prometheus to run tests/ops" >&2
        exit 0
    fi
fi

# invoke-rc.d asks policy-rc.d whether a package may start its service: 101 means no. Docker images ship
# one already; elsewhere one is put in place for the install only.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ADDED_POLICY=1
fi
cleanup() { if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus >/dev/null
# systemd hosts start units without invoke-rc.d: make sure the packaged service is not left running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
