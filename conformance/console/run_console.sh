#!/usr/bin/env bash
# The web console in headless Chromium (Selenium) against a real `sigess up --demo`, with
# axe-core on every page. Installs what it needs when it may: Debian's chromium and
# chromium-driver (apt-get, as root), axe-core from gateway/console's package-lock.json
# (npm ci), selenium and pytest in a venv under the target folder.
#
# Usage: SIGESS_BIN=target/debug/sigess conformance/console/run_console.sh
#        SCREENSHOTS=gateway/console/screenshots ... (also saves each page as PNG)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export SIGESS_BIN="${SIGESS_BIN:-$TARGET/debug/sigess}"
[ -x "$SIGESS_BIN" ] || { echo "no sigess binary at $SIGESS_BIN: cargo build -p gateway --bin sigess" >&2; exit 1; }

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "the console tests need Chromium and its driver: sudo apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
fi

if [ ! -f gateway/console/node_modules/axe-core/axe.min.js ]; then
  (cd gateway/console && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

VENV="$TARGET/console-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r conformance/console/requirements.txt
export CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
export CHROMEDRIVER="${CHROMEDRIVER:-$(command -v chromedriver)}"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider conformance/console
