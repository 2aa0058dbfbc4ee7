#!/usr/bin/env bash
# The test suite of the hub: Rust unit and integration tests (SQLite and PostgreSQL), then
# the conformance suites that drive the real binary from outside (Python gRPC client).
# Under CI=true, tests that need PostgreSQL or an external tool fail when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "== FHIR R4 test peer (Medplum, npm ci): the Regione Lazio adapter's tests deliver to it"
conformance/fhir/setup.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked

echo "== build sigess"
cargo build --locked -p gateway --bin sigess
export SIGESS_BIN="$ROOT/target/debug/sigess"

echo "== Python gRPC client (grpcio-tools stubs generated from proto/)"
VENV="$ROOT/target/conformance-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r conformance/python/requirements.txt
"$VENV/bin/python" -m pytest -q conformance/python

echo "== schemathesis against the REST API (OpenAPI from /api/v1/openapi.json)"
ST_VENV="$ROOT/target/schemathesis-venv"
if [ ! -x "$ST_VENV/bin/python" ]; then
  python3 -m venv "$ST_VENV"
fi
"$ST_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r conformance/schemathesis/requirements.txt
SCHEMATHESIS="$ST_VENV/bin/schemathesis" conformance/schemathesis/run_schemathesis.sh

echo "== SIUSS: xmllint on every flow (ledger tests, demo data via GET /waas/v1/flussi, portal export); schemathesis with INPS's api-comuni.yaml"
SCHEMATHESIS="$ST_VENV/bin/schemathesis" conformance/siuss/run_siuss.sh

echo "== abuse cases (issue 13) against a real sigess up"
conformance/abuse/run_abuse.sh

echo "== Regione Lazio FHIR: adapter against Medplum, every Bundle and resource through fhir.resources"
conformance/fhir/run_fhir.sh

echo "== SPID/CIE login against the reference implementation (spid-cie-oidc: Trust Anchor, SPID and CIE OPs)"
conformance/spid-cie-oidc/setup.sh
conformance/spid-cie-oidc/.venv/bin/python -m pytest -q conformance/spid-cie-oidc/tests
