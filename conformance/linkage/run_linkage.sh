#!/usr/bin/env bash
# Record linkage against splink: fake exports of the 26 offices, `sigess linkage`
# and splink (DuckDB) on them, precision/recall/F1 side by side; fails when the hub's F1
# is below splink's. SIGESS_BIN names the binary; LINKAGE_PERSONS the size (CI: 2000).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
SIGESS_BIN="${SIGESS_BIN:-$TARGET/debug/sigess}"
VENV="$TARGET/linkage-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
python3 "$HERE/compare.py" --sigess "$SIGESS_BIN" --splink-python "$VENV/bin/python" --persons "${LINKAGE_PERSONS:-2000}" "$@"
