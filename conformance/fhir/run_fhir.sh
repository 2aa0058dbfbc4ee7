#!/usr/bin/env bash
# FHIR conformance of the Regione Lazio adapter against real peers:
#  1. installs the Medplum FHIR R4 server (npm ci) and fhir.resources (venv under target/);
#  2. runs the adapter's integration tests (adapters/regione-lazio/tests/fhir_server.rs),
#     which start the Node server themselves, deliver cartelle to it and check the resources,
#     their links, idempotency, updates, Medplum's validateResource, rejection and outage
#     handling; under CI=true a missing server fails instead of skipping;
#  3. runs the inbound protected-discharge tests (gateway/tests/dimissione.rs): messages
#     POSTed to the gateway's `$process-message` with a PDND voucher and a ModI signature,
#     writing the response messages and OperationOutcomes the hub answered with;
#  4. validates every Bundle sent, every resource read back and every answer to an inbound
#     message (written by the tests to a temporary directory) with the independent Python
#     validator.
# Exits non-zero on any failure, including when the tests wrote nothing to validate.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
export FHIR_VENV="${FHIR_VENV:-$TARGET/fhir-venv}"
"$HERE/setup.sh" --python

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
export CI=true
export FHIR_BUNDLE_DIR="$OUT"
(cd "$ROOT" && cargo test -p regione-lazio --test fhir_server -- --test-threads=1)
(cd "$ROOT" && cargo test -p gateway --test dimissione)
ls "$OUT"/dimissione-*.json >/dev/null || { echo "run_fhir.sh: the inbound tests wrote no answer to validate" >&2; exit 1; }
"$FHIR_VENV/bin/python" "$HERE/validate.py" "$OUT"
