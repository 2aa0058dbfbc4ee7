#!/usr/bin/env bash
# The test suite of the hub: Rust unit and integration tests (SQLite and PostgreSQL), then
# the conformance suites that drive the real binary from outside (Python gRPC client).
# Under CI=true, tests that need PostgreSQL or an external tool fail when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Tools the suites call besides cargo: found here, installed when this shell may (root with
# apt-get), or named exactly before anything starts.
missing_pkgs=()
command -v xmllint >/dev/null 2>&1 || missing_pkgs+=(libxml2-utils)  # SIUSS flows against INPS's XSDs
command -v python3 >/dev/null 2>&1 || missing_pkgs+=(python3)        # the Python and SPID/CIE suites
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing_pkgs+=(python3-venv)
if [ "${#missing_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
  else
    echo "missing before the tests can run: ${missing_pkgs[*]}" >&2
    echo "install them with:  sudo apt-get install -y ${missing_pkgs[*]}" >&2
    exit 1
  fi
fi

echo "== FHIR R4 test peer (Medplum, npm ci): the Regione Lazio adapter's tests deliver to it"
conformance/fhir/setup.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked

echo "== build sigess"
cargo build --locked -p gateway --bin sigess
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export SIGESS_BIN="$TARGET/debug/sigess"

echo "== Python gRPC client (grpcio-tools stubs generated from proto/)"
VENV="$TARGET/conformance-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r conformance/python/requirements.txt
"$VENV/bin/python" -m pytest -q conformance/python

echo "== schemathesis against the REST API (OpenAPI from /api/v1/openapi.json)"
ST_VENV="$TARGET/schemathesis-venv"
if [ ! -x "$ST_VENV/bin/python" ]; then
  python3 -m venv "$ST_VENV"
fi
"$ST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r conformance/schemathesis/requirements.txt
SCHEMATHESIS="$ST_VENV/bin/schemathesis" conformance/schemathesis/run_schemathesis.sh

echo "== SIUSS: xmllint on every flow (ledger tests, demo data via GET /waas/v1/flussi, portal export); schemathesis with INPS's api-comuni.yaml"
SCHEMATHESIS="$ST_VENV/bin/schemathesis" conformance/siuss/run_siuss.sh

echo "== record linkage: sigess linkage against splink (DuckDB) on fake exports of the 26 offices"
conformance/linkage/run_linkage.sh

echo "== abuse cases against a real sigess up"
conformance/abuse/run_abuse.sh

echo "== web console in headless Chromium with axe-core on every page (demo login, dead letter retried, INPS rejection, clients and operators, statistics and CSV, registro degli accessi)"
conformance/console/run_console.sh

echo "== Regione Lazio FHIR: adapter against Medplum, every Bundle and resource through fhir.resources"
conformance/fhir/run_fhir.sh

echo "== SPID/CIE login against the reference implementation (spid-cie-oidc: Trust Anchor, SPID and CIE OPs)"
conformance/spid-cie-oidc/setup.sh
conformance/spid-cie-oidc/.venv/bin/python -m pytest -q conformance/spid-cie-oidc/tests
