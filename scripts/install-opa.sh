#!/usr/bin/env bash
# Install the pinned OPA (version in ./OPA_VERSION) into .tools/bin with `go install`.
# Reuses a matching binary already there or in $(go env GOPATH)/bin; Go's module and build caches make
# a reinstall fast on machines that keep them. Without Go: explain, and fail only under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(tr -d '[:space:]' < OPA_VERSION)
target=.tools/bin/opa

# Read the whole output before matching: `opa version | grep -q` under pipefail fails whenever grep exits
# before opa finishes writing and opa dies of SIGPIPE.
has_version() {
  local printed
  [ -x "$1" ] && printed=$("$1" version 2>/dev/null) && grep -qx "Version: ${version#v}" <<<"$printed"
}

if has_version "$target"; then
  echo "opa ${version} already installed at ${target}"
  exit 0
fi
if command -v go >/dev/null 2>&1; then
  gopath_bin="$(go env GOPATH)/bin/opa"
  if has_version "$gopath_bin"; then
    mkdir -p .tools/bin && cp "$gopath_bin" "$target"
    echo "opa ${version} copied from ${gopath_bin}"
    exit 0
  fi
  echo "installing opa ${version} with go install (a few minutes the first time)..."
  mkdir -p .tools/bin
  GOBIN="$PWD/.tools/bin" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@${version}"
  has_version "$target" || { echo "error: go install did not produce opa ${version}" >&2; exit 1; }
  echo "opa ${version} installed at ${target}"
  exit 0
fi
message="Go is not installed, so OPA ${version} was not installed. Install Go (https://go.dev/dl/) and rerun scripts/setup.sh, or put an opa ${version} binary at ${target} (or set GATEKEEPER_OPA). Tests that need OPA will be skipped."
if [ "${CI:-}" = "true" ]; then
  echo "error: ${message}" >&2
  exit 1
fi
echo "warning: ${message}" >&2
