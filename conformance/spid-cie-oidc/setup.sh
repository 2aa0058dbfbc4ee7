#!/usr/bin/env bash
# Prepare the SPID/CIE OIDC federation peers: venv, spid-cie-oidc 1.6.3, databases,
# freshly generated keys, Trust Anchor + OPs configuration, fake test user.
# Idempotent: a second run keeps the keys and refreshes configuration.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1; then PYTHON="$c"; break; fi
  done
fi
[ -n "$PYTHON" ] || { echo "python3 not found" >&2; exit 1; }

VENV="$HERE/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating venv in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
want="$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== pip install -r requirements.txt"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
  echo "$want" > "$stamp"
fi

mkdir -p state
chmod 700 state
echo "== bootstrapping the federation (state in $HERE/state)"
nice -n 10 "$VENV/bin/python" peers/bootstrap.py
