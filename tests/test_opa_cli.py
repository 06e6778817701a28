"""`gatekeeper check --engine opa --opa-url URL` prints the embedded engine's Decision JSON, from real OPA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.opa

GATEKEEPER = str(Path(sys.executable).parent / "gatekeeper")
COMMANDS = [
    "ls -la /home/agent",
    "cp -r /models/llama /tmp/llama",
    "python3 deploy_api_server_qwen25_72b.py --port 8760",
]


def check(*args: str, audit: Path) -> tuple[int, str, str]:
    result = subprocess.run(
        [
            GATEKEEPER,
            "check",
            "--compact",
            "--audit-log",
            str(audit),
            "--agent-home",
            "/home/agent/WorkSpace/Agent",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": "/home/agent"},
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def opa_flags(opa_server) -> list[str]:
    # A generous timeout: these tests compare answers; timeouts have their own tests.
    return ["--engine", "opa", "--opa-url", opa_server.url, "--opa-timeout", "5"]


def comparable(line: str) -> dict:
    decision = json.loads(line)
    decision.pop("decision_id")
    decision.pop("timings_ms")
    decision["violations"] = sorted(decision["violations"], key=json.dumps)
    return decision


@pytest.mark.parametrize("command", COMMANDS)
def test_check_with_opa_prints_the_embedded_decision(command, opa_server, tmp_path):
    audit = tmp_path / "audit.jsonl"
    opa_code, opa_out, opa_err = check(*opa_flags(opa_server), command, audit=audit)
    embedded_code, embedded_out, _ = check("--engine", "embedded", command, audit=audit)
    assert opa_code in (0, 1), opa_err
    assert json.loads(opa_out).get("error") is None, opa_out
    assert comparable(opa_out) == comparable(embedded_out)
    assert opa_code == embedded_code
    first = json.loads(audit.read_text().splitlines()[0])
    assert first["labels"]["engine"] == "opa"
    assert first["bundles"]["gatekeeper"]["revision"] == opa_server.revision


def test_batch_check_with_opa_matches_the_embedded_engine(opa_server, tmp_path):
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        "".join(json.dumps({"id": f"c{i}", "command": c}) + "\n" for i, c in enumerate(COMMANDS))
    )
    outputs = {}
    for engine in ("opa", "embedded"):
        out = tmp_path / f"{engine}.jsonl"
        code, _, err = check(
            "--engine",
            engine,
            "--opa-url",
            opa_server.url,
            "--input",
            str(calls),
            "--output",
            str(out),
            audit=tmp_path / "audit.jsonl",
        )
        assert code in (0, 1), err
        outputs[engine] = [comparable(line) for line in out.read_text().splitlines()]
    assert outputs["opa"] == outputs["embedded"]
    assert [d["id"] for d in outputs["opa"]] == ["c0", "c1", "c2"]


def test_check_with_opa_down_is_blocked_with_the_reason(loopback_port, tmp_path):
    code, out, _ = check(
        "--engine",
        "opa",
        "--opa-url",
        f"http://127.0.0.1:{loopback_port}",
        "--opa-timeout",
        "0.2",
        "ls",
        audit=tmp_path / "audit.jsonl",
    )
    assert code == 1
    decision = json.loads(out)
    assert decision["decision"] == "deny"
    assert decision["error"]["code"] == "engine_unavailable"
    assert "connection refused" in decision["error"]["message"]
