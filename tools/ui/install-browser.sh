#!/usr/bin/env bash
# Installs the browser tests/ui drive through Playwright: Debian's chromium (Playwright's own browser
# download is not used: only package registries are reachable). Skipped when it is already there.
# Needs root (as CI and the dev machines here are); otherwise it says what to run and fails.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "tests/ui needs Debian's chromium: run 'sudo apt-get install -y chromium'" >&2
    exit 1
fi
echo "Installing Debian's chromium for tests/ui" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends chromium >/dev/null
