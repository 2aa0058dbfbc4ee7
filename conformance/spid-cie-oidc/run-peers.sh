#!/usr/bin/env bash
# Start the Trust Anchor and the two OPs (SPID-like, CIE-like) on 127.0.0.1 in the
# background, wait until each one is healthy, and write pids and URLs to state/peers.env.
# Run ./setup.sh first. Already running peers are left alone.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || { echo "run ./setup.sh first" >&2; exit 1; }
STATE="${SIGESS_PEERS_STATE:-$HERE/state}"
mkdir -p "$STATE/logs" "$STATE/pids"

declare -A PORT=(
  [ta]="${SIGESS_TA_PORT:-18000}"
  [op_spid]="${SIGESS_OP_SPID_PORT:-18002}"
  [op_cie]="${SIGESS_OP_CIE_PORT:-18003}"
)
ROLES=(ta op_spid op_cie)

start_role() {
  local role="$1" port="${PORT[$1]}" pidf="$STATE/pids/$1.pid"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "$role already running (pid $(cat "$pidf"))"
    return
  fi
  echo "starting $role on 127.0.0.1:$port"
  PYTHONPATH="$HERE/peers" nohup nice -n 10 "$PY" "$HERE/peers/manage.py" runserver \
    "127.0.0.1:$port" --noreload --settings="sigess_peers.settings.$role" \
    >>"$STATE/logs/$role.log" 2>&1 &
  echo $! >"$pidf"
}

for r in "${ROLES[@]}"; do start_role "$r"; done

for r in "${ROLES[@]}"; do
  if ! "$PY" "$HERE/peers/waitfor.py" "http://127.0.0.1:${PORT[$r]}/sigess/health" 40; then
    echo "$r did not become healthy; last log lines:" >&2
    tail -n 30 "$STATE/logs/$r.log" >&2
    exit 1
  fi
done

{
  echo "SIGESS_TA_URL=http://127.0.0.1:${PORT[ta]}/"
  echo "SIGESS_OP_SPID_URL=http://127.0.0.1:${PORT[op_spid]}/oidc/op/"
  echo "SIGESS_OP_CIE_URL=http://127.0.0.1:${PORT[op_cie]}/oidc/op/"
  for r in "${ROLES[@]}"; do echo "SIGESS_PID_${r^^}=$(cat "$STATE/pids/$r.pid")"; done
} >"$STATE/peers.env"
echo "peers healthy; see $STATE/peers.env"
cat "$STATE/peers.env"
