#!/usr/bin/env bash
# Stop the peers started by run-peers.sh (and a reference RP left over by the tests),
# by the pids recorded under state/pids/.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${SIGESS_PEERS_STATE:-$HERE/state}"
shopt -s nullglob
for pidf in "$STATE"/pids/*.pid; do
  pid="$(cat "$pidf")"
  role="$(basename "$pidf" .pid)"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    echo "stopped $role (pid $pid)"
  fi
  rm -f "$pidf"
done
rm -f "$STATE/peers.env"
