#!/bin/sh
# A stand-in for bash while fuzzing /v1/execute: set `exec.shell` to this file and nothing runs.
# gatekeeper calls it as `recording-shell.sh -c COMMAND`; it keeps COMMAND, byte for byte, in a new
# file under $TMPDIR/gatekeeper-recorded/, prints it and exits 3 (so a result is easy to spot).
dir="${TMPDIR:-/tmp}/gatekeeper-recorded"
mkdir -p "$dir" || exit 97
record=$(mktemp "$dir/run.XXXXXX") || exit 97
printf '%s' "$2" > "$record"
printf '%s' "$2"
exit 3
