#!/usr/bin/env bash
# Set everything up on a fresh machine, then make a first decision with the embedded engine.
#   virtual environment (.venv) + gatekeeper with its `gatekeeper` command + the pinned OPA binary.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
scripts/install-opa.sh

echo
echo "gatekeeper is installed: .venv/bin/gatekeeper (activate with: source .venv/bin/activate)"
echo "first decisions, embedded engine:"
echo "\$ gatekeeper check 'cp -r /models/llama /tmp/x'"
status=0
.venv/bin/gatekeeper check "cp -r /models/llama /tmp/x" || status=$?
echo "exit code ${status} (1 = blocked)"
echo "\$ gatekeeper check --compact 'git status'"
.venv/bin/gatekeeper check --compact "git status"
echo "exit code 0 (allowed)"
