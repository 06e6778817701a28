"""The load benchmark at a small bound: concurrency never loses, duplicates or mixes up a decision.

Runs ``benchmarks/load.py`` as a user would (it starts ``gatekeeper serve`` on a loopback port),
then checks the figures it reports: no errors, and exactly one verified audit record per request,
carrying the decision id the client received. Throughput is printed by the script, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from process_helpers import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("workers", "engine"),
    [(1, "embedded"), (2, "embedded"), pytest.param(2, "wasm", marks=pytest.mark.opa)],
)
def test_load_gives_one_verified_record_per_request(
    tmp_path: Path, workers: int, engine: str, request: pytest.FixtureRequest
):
    if engine == "wasm":
        request.getfixturevalue("opa_binary")  # the engine compiles with opa: skipped without it
    # Calls spread over a few sessions: per-session ordering and history are under load too (with
    # two workers, calls reaching the worker that does not keep their session are forwarded).
    clients, requests, sessions = 8, 400, 4
    figures_path = tmp_path / "load.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "load.py"), "--clients", str(clients),
        "--requests", str(requests), "--sessions", str(sessions), "--policy", "constant",
        "--json", str(figures_path), "--workers", str(workers), "--engine", engine,
    ]  # fmt: skip
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(figures_path.read_text())
    assert figures["errors"] == 0
    assert figures["answered"] == requests
    assert figures["outcomes"] == {"allow": requests}
    audit = figures["audit"]
    assert audit["verify_exit"] == 0
    assert audit["decision_records"] == requests
    assert audit["calls_recorded"] == requests
    assert audit["duplicated"] == 0
    assert audit["mismatched"] == 0
    assert figures["p50_ms"] <= figures["p99_ms"]
