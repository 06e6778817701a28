#!/usr/bin/env bash
# Run every check: lint, types, the policy pack (opa fmt / check --strict / test), and pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k audit).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "error: run scripts/setup.sh first" >&2; exit 2; }
export PATH="$PWD/.venv/bin:$PATH"
opa=${GATEKEEPER_OPA:-.tools/bin/opa}

echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
if [ -x "$opa" ]; then
  export GATEKEEPER_OPA="$PWD/${opa#"$PWD"/}"
  echo "== opa fmt";   "$opa" fmt --fail --list policies
  echo "== opa check"; "$opa" check --strict policies
  echo "== opa test";  "$opa" test policies --fail-on-empty
  coverage=$("$opa" test policies --coverage | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["coverage"])')
  echo "policy coverage: ${coverage}%"
  .venv/bin/python -c "import sys; sys.exit(0 if float('${coverage}') >= 90 else 'error: policy coverage below 90%')"
elif [ "${CI:-}" = "true" ]; then
  echo "error: opa not found at $opa; under CI=true policy tests must run (scripts/setup.sh installs it)" >&2
  exit 1
else
  echo "== opa: not installed, policy checks skipped (run scripts/install-opa.sh; needs Go)"
fi
echo "== pytest"; pytest "$@"
