"""/v1/execute under random input: the shell receives exactly the analysed string, or nothing runs.

The server's shell is ``examples/recording-shell.sh`` (``exec.shell``), so random commands are
never run for real. Each request's answer must be documented in the OpenAPI document; a 200 must
mean the shell got the call's exact command once, and any other answer that it got nothing.
Afterwards the audit log's chain is intact and holds one decision per request and one execution
record per run.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_helpers import Served, conforms

from gatekeeper.audit import verify_log

# The documented stand-in for bash while fuzzing: it records its command under
# $TMPDIR/gatekeeper-recorded/ instead of running it.
RECORDING_SHELL = Path(__file__).resolve().parents[2] / "examples" / "recording-shell.sh"

# fmt: off
FRAGMENTS = [
    "ls -la", "echo hi", " ", ";", "&&", "||", "|", "&", "$(", ")", "`", "'", '"', "\\", "\n", "#",
    " #deny", " #ask", " #warn", "cp -r /models/llama /tmp/x", "$HOME", "${X:-y}", "<<EOF\nx\nEOF",
    "> /dev/null", "2>&1", "{ a; }", "((1+1))", "[[ -f x ]]", "é", "日本", "\x00", "\x7f", "\t",
    "\ud800", "\udc80", "\U0001f600", "%s", "\\x41",
]
# fmt: on


def random_command(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 80)))
    return "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(1, 12)))


def random_body(rng: random.Random) -> bytes:
    """Mostly shell calls; also other tools, wrong types, broken JSON and oversize bodies."""
    kind = rng.randrange(10)
    call: Any
    if kind < 6:
        call = {"tool": "shell", "arguments": {"command": random_command(rng)}}
        if rng.random() < 0.3:
            call["session_id"] = rng.choice(["s1", "s2", 7])
    elif kind == 6:
        tool = rng.choice(["python", "file_write", "http", "mcp", "teleport", ""])
        call = {"tool": tool, "arguments": {"code": random_command(rng), "command": random_command(rng)}}
    elif kind == 7:
        call = rng.choice([{"tool": "shell", "arguments": {"command": 5}}, {"tool": "shell"}, [], "ls", None])
    elif kind == 8:
        return json.dumps({"tool": "shell", "arguments": {"command": random_command(rng)}}).encode()[:-2]
    else:
        return json.dumps({"tool": "shell", "arguments": {"command": "x" * 70_000}}).encode()
    # ensure_ascii keeps lone surrogates as \\ud800 escapes: valid JSON the server must cope with.
    return json.dumps(call, ensure_ascii=True).encode()


def sent_command(body: bytes) -> str | None:
    try:
        call = json.loads(body)
        return call["arguments"]["command"] if call["tool"] == "shell" else None
    except (ValueError, KeyError, TypeError):
        return None


@pytest.mark.parametrize(
    ("core", "server", "seed"),
    [
        ({}, {"approvals": {"enabled": True, "on_ask": "pending"}}, 1),
        ({"mode": "dry-run"}, {}, 2),
    ],
    ids=["enforce-approvals", "dry-run-headless"],
)
def test_random_execute_requests_run_exactly_what_was_decided(
    make_server, tmp_path, monkeypatch, core, server, seed
):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # TMPDIR is on the executor's environment allow-list
    runs = tmp_path / "gatekeeper-recorded"
    runs.mkdir()
    core = {**core, "exec": {"shell": str(RECORDING_SHELL), "timeout_s": 10}}
    served: Served = make_server(core=core, max_body_bytes=65_536, **server)
    document = httpx.get(f"{served.url}/openapi.json").json()
    client = served.client(headers={"content-type": "application/json"})
    rng = random.Random(seed)  # noqa: S311 - reproducible test input, not cryptography
    statuses: dict[int, int] = {}
    requests = 300
    for _ in range(requests):
        body = random_body(rng)
        before = set(runs.iterdir())
        response = client.post("/v1/execute", content=body)
        conforms(document, "post", "/v1/execute", response)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        new_runs = set(runs.iterdir()) - before
        if response.status_code == 200:
            command = sent_command(body)
            assert command is not None
            assert len(new_runs) == 1, body
            recorded = new_runs.pop().read_bytes()
            assert recorded == command.encode("utf-8", "surrogateescape"), body
            assert response.json()["result"]["exit_code"] == 3
        else:
            assert new_runs == set(), (response.status_code, body)
            assert response.json()["message"]

    assert statuses.get(200, 0) > requests // 4, statuses  # the executor was really reached
    assert set(statuses) <= {200, 202, 400, 403, 413, 422}
    report = verify_log(served.audit_path)
    assert report.ok, report.describe()
    events = [record["msg"] for record in served.audit_records()]
    assert events.count("decision_made") == requests
    assert events.count("execution_finished") == statuses[200]
