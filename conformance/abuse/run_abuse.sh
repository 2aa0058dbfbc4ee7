#!/usr/bin/env bash
# Abuse cases against a real `sigess up`, on loopback only, every loop bounded:
#
#  1. a hub with real data (no --demo) prints no caller token, and refuses at its edge a
#     token from `sigess token` (401, reason hub_token_not_accepted);
#  2. `--demo` refuses to start on a store holding data it did not seed;
#  3. a registered system client: a purpose longer than 200 characters or with control
#     characters is a 400 naming `purpose`; a purpose other than its registered one is a 403;
#  4. 40 requests with invented HTTP methods add no metric label (they count as "other");
#  5. the SQLite file, its WAL and ./data are owner-only (0600 / 0700);
#  6. 300 parallel token requests with bad credentials leave the hub's peak RSS bounded
#     (secret checks are capped and rate-limited before hashing), and a good client from
#     another loopback address still gets a token.
#
# Usage: SIGESS_BIN=target/debug/sigess conformance/abuse/run_abuse.sh
# Needs curl and python3 (for free ports and URL encoding); nothing leaves 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SIGESS_BIN="${SIGESS_BIN:-$ROOT/target/debug/sigess}"
[ -x "$SIGESS_BIN" ] || { echo "no sigess binary at $SIGESS_BIN: cargo build -p gateway --bin sigess" >&2; exit 1; }

TMP="$(mktemp -d)"
HUB=""
cleanup() {
  if [ -n "$HUB" ]; then kill "$HUB" 2>/dev/null || true; wait "$HUB" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

FAILS=0
ok() { echo "ok   - $1"; }
ko() { echo "FAIL - $1" >&2; FAILS=$((FAILS + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else ko "$1: expected $3, got $2"; fi; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
BASE="http://127.0.0.1:$HTTP_PORT"
DATA="$TMP/data"
DB="sqlite://$DATA/sigess.db"
KEY="$DATA/hub-signing-key.pem"

# A registered client first: the store then holds real (non-demo) data.
"$SIGESS_BIN" client add --edge-database-url "sqlite://$DATA/edge.db" --name "App Municipio I" --ufficio M01 \
  --roles operatore --purpose "gestione della cartella" --secret >"$TMP/client.txt"
CLIENT_ID="$(sed -n 's/^client_id: //p' "$TMP/client.txt")"
CLIENT_SECRET="$(sed -n 's/^client_secret: //p' "$TMP/client.txt")"

(umask 022; exec "$SIGESS_BIN" up --database-url "$DB" --signing-key "$KEY" \
  --grpc-addr "127.0.0.1:$GRPC_PORT" --http-addr "127.0.0.1:$HTTP_PORT" >"$TMP/up.out" 2>"$TMP/up.err") &
HUB=$!
for _ in $(seq 1 60); do
  if ! kill -0 "$HUB" 2>/dev/null; then echo "sigess up exited early:" >&2; cat "$TMP/up.err" >&2; exit 1; fi
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$BASE/healthz" >/dev/null || { echo "sigess up did not answer in 30 s" >&2; exit 1; }

# 1. No token printed; a hub token is refused at the edge.
if grep -q 'eyJ' "$TMP/up.out"; then ko "no caller token printed without --demo"; else ok "no caller token printed without --demo"; fi
HUB_TOKEN="$("$SIGESS_BIN" token --signing-key "$KEY" --ufficio M01 --ttl 300)"
code="$(curl -s -o "$TMP/r.json" -w '%{http_code}' -H "authorization: Bearer $HUB_TOKEN" "$BASE/api/v1/persone/search?cognome=ROSSI")"
check "hub token refused at the REST edge" "$code" 401
grep -q '"hub_token_not_accepted"' "$TMP/r.json" && ok "refusal reason hub_token_not_accepted" || ko "refusal reason: $(cat "$TMP/r.json")"

# 3. Purpose bounds and the registered purpose, with a real client-credentials token.
AT="$(curl -s -d grant_type=client_credentials -d "client_id=$CLIENT_ID" --data-urlencode "client_secret=$CLIENT_SECRET" "$BASE/oauth/token" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
search() { curl -s -o "$TMP/r.json" -w '%{http_code}' -H "authorization: Bearer $AT" "$BASE/api/v1/persone/search?cognome=ROSSI&purpose=$1"; }
check "the registered purpose is accepted" "$(search "$(enc 'gestione della cartella')")" 200
check "no purpose: the registered one stands" "$(search '')" 200
check "a purpose of 201 characters is a 400" "$(search "$(python3 -c 'print("x" * 201)')")" 400
grep -q 'purpose' "$TMP/r.json" && ok "the 400 names purpose" || ko "the 400 names purpose: $(cat "$TMP/r.json")"
check "a purpose with a line break is a 400" "$(search 'riga%0Afalsa')" 400
check "another purpose than the registered one is a 403" "$(search "$(enc 'marketing')")" 403

# 4. Invented methods are no metric labels (40 requests, bounded).
for i in $(seq 1 40); do curl -s -o /dev/null -X "FROB$i" "$BASE/healthz" || true; done
curl -s "$BASE/metrics" >"$TMP/metrics.txt"
if grep -q 'FROB' "$TMP/metrics.txt"; then ko "invented methods kept out of /metrics"; else ok "invented methods kept out of /metrics"; fi
grep -q 'method="other"' "$TMP/metrics.txt" && ok 'invented methods counted as method="other"' || ko 'no method="other" series'

# 5. Owner-only files, although the hub ran with umask 022.
mode() { stat -c '%a' "$1"; }
check "./data is 0700" "$(mode "$DATA")" 700
check "the SQLite file is 0600" "$(mode "$DATA/sigess.db")" 600
[ -e "$DATA/sigess.db-wal" ] && check "its WAL is 0600" "$(mode "$DATA/sigess.db-wal")" 600
check "the signing key is 0600" "$(mode "$KEY")" 600

# 6. A credential flood on /oauth/token: 300 requests at once, unknown client ids.
hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$HUB/status"; }
HWM_BEFORE="$(hwm)"
python3 - "$BASE" >"$TMP/flood.txt" <<'PY'
import collections, concurrent.futures, sys, urllib.error, urllib.request
base = sys.argv[1]
def one(i):
    req = urllib.request.Request(base + "/oauth/token", method="POST",
        data=f"grant_type=client_credentials&client_id=flood-{i}&client_secret=wrong".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return "error"
with concurrent.futures.ThreadPoolExecutor(max_workers=300) as pool:
    codes = collections.Counter(pool.map(one, range(300)))
print(" ".join(f"{k}:{v}" for k, v in sorted(codes.items(), key=str)))
PY
HWM_AFTER="$(hwm)"
GROWTH_MIB=$(( (HWM_AFTER - HWM_BEFORE) / 1024 ))
echo "     flood answers: $(cat "$TMP/flood.txt"); peak RSS grew by ${GROWTH_MIB} MiB"
if [ "$GROWTH_MIB" -lt 200 ]; then ok "peak RSS bounded under a credential flood (+${GROWTH_MIB} MiB)"; else ko "peak RSS grew by ${GROWTH_MIB} MiB under 300 bad token requests"; fi
if grep -q '200:' "$TMP/flood.txt"; then ko "a bad credential got a token"; else ok "no bad credential got a token"; fi
grep -Eq '(429|503):' "$TMP/flood.txt" && ok "the flood is answered 429/503" || ko "no 429/503 in the flood: $(cat "$TMP/flood.txt")"
code="$(curl -s --interface 127.0.0.2 -o "$TMP/r.json" -w '%{http_code}' -d grant_type=client_credentials -d "client_id=$CLIENT_ID" \
  --data-urlencode "client_secret=$CLIENT_SECRET" "$BASE/oauth/token")"
check "a good client from another address still gets a token" "$code" 200

# A fake person (computed check character), so the store holds records --demo did not seed.
PERSONA="$(python3 - <<'PY'
import json
ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]
body = "BSACSO80A01H501"
total = sum(ODD[int(c) if c.isdigit() else ord(c) - 65] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65) for i, c in enumerate(body))
print(json.dumps({"codice_fiscale": body + chr(65 + total % 26), "cognome": "Abuso", "nome": "Caso", "sesso": "SESSO_MASCHIO",
                  "data_nascita": "1980-01-01", "luogo_nascita": "H501", "cittadinanza": "380",
                  "residenza": {"codice_nazione": "380", "codice_regione": "12", "codice_comune": "058091"}}))
PY
)"
code="$(curl -s -o "$TMP/r.json" -w '%{http_code}' -H "authorization: Bearer $AT" -H 'content-type: application/json' -d "$PERSONA" "$BASE/api/v1/persone")"
check "the client registers a (fake) person" "$code" 201

kill "$HUB"; wait "$HUB" 2>/dev/null || true; HUB=""

# 2. --demo refuses this store (it holds data --demo did not seed).
if timeout 60 "$SIGESS_BIN" up --demo --demo-size 1 --database-url "$DB" --signing-key "$KEY" \
     --grpc-addr "127.0.0.1:$GRPC_PORT" --http-addr "127.0.0.1:$HTTP_PORT" >"$TMP/demo.out" 2>&1; then
  ko "--demo refused on a store with other data (it started)"
else
  if grep -q 'eyJ' "$TMP/demo.out"; then ko "--demo printed a token on a store with other data"; else ok "--demo refused on a store with other data"; fi
fi

if [ "$FAILS" -gt 0 ]; then echo "$FAILS abuse case(s) failed" >&2; exit 1; fi
echo "all abuse cases passed"
