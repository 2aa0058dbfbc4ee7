#!/usr/bin/env bash
# Installs the FHIR R4 test peer of conformance/fhir: Medplum's FHIR router, core and R4
# definitions from npm, exactly as package-lock.json pins them (node_modules/ here), and,
# with --python, the independent Python validator (fhir.resources) in a venv under target/.
# Needs node >= 20 and npm; python3 for --python. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
command -v node >/dev/null || { echo "setup.sh: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup.sh: npm is required" >&2; exit 1; }
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
if [ "${1:-}" = "--python" ]; then
  VENV="${FHIR_VENV:-${CARGO_TARGET_DIR:-$ROOT/target}/fhir-venv}"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
fi
