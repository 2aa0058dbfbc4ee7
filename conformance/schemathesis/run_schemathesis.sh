#!/usr/bin/env bash
# Schemathesis against the REST API of a real `sigess up`: every operation of
# /api/v1/openapi.json is called with generated valid and invalid input, and the answers are
# checked against the same document (status codes, content types, headers, response schemas;
# no 5xx; schema-invalid input refused; operations refuse missing credentials and
# unsupported methods).
#
# Excluded: positive_data_acceptance. The schema describes the shape of the JSON (fields,
# types, enum names, integer ranges); the domain rules — codice fiscale check character and
# coherence with birth date and sex, Belfiore/ISTAT/ISO codes, coherent dates, INPS rules of
# prestazioni, opaque page tokens — are core's, and a schema-valid request that breaks one is
# rightly answered 400 with invalid_params. That check would report each of those as a
# failure.
#
# Needs SIGESS_BIN (the built binary; this script builds nothing) and `schemathesis` on PATH
# or in SCHEMATHESIS. Exits non-zero on any failure. Bounded: 20 examples per operation.
set -euo pipefail

: "${SIGESS_BIN:?set SIGESS_BIN to the sigess binary}"
SCHEMATHESIS="${SCHEMATHESIS:-schemathesis}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
SEED="${SCHEMATHESIS_SEED:-20261123}"

TMP="$(mktemp -d)"
HUB=""
cleanup() {
  if [ -n "$HUB" ] && kill -0 "$HUB" 2>/dev/null; then
    kill "$HUB" 2>/dev/null || true
    wait "$HUB" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
BASE="http://127.0.0.1:$HTTP_PORT"

"$SIGESS_BIN" up \
  --database-url "sqlite://$TMP/sigess.db" \
  --grpc-addr "127.0.0.1:$GRPC_PORT" \
  --http-addr "127.0.0.1:$HTTP_PORT" \
  --signing-key "$TMP/k.pem" --accept-hub-tokens >"$TMP/hub.log" 2>&1 &
HUB=$!

# Ready when the REST document answers; give up if the hub exits or 30 s pass.
for _ in $(seq 1 60); do
  if ! kill -0 "$HUB" 2>/dev/null; then
    echo "sigess up exited early:" >&2
    cat "$TMP/hub.log" >&2
    exit 1
  fi
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('$BASE/api/v1/openapi.json', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done

# The hub created the key on start; the token is an operatore of Municipio I.
TOKEN="$("$SIGESS_BIN" token --signing-key "$TMP/k.pem" --ufficio M01)"

# `timeout` bounds a run that hangs; the examples bound keeps a normal one well under it.
status=0
timeout 170 "$SCHEMATHESIS" run "$BASE/api/v1/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --request-timeout 10 || status=$?

# A panic or an internal error in the hub log fails the run even if every answer looked fine.
if grep -Eq 'panicked|internal error' "$TMP/hub.log"; then
  echo "the hub logged a panic or an internal error:" >&2
  grep -E 'panicked|internal error' "$TMP/hub.log" | head -20 >&2
  status=1
fi
exit "$status"
