"""The CLI contract, exercised as a user would: real processes, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gatekeeper.audit import verify_log


@pytest.fixture
def audit_path(tmp_path):
    return tmp_path / "audit.jsonl"


def gatekeeper(*args: str, audit_path, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GATEKEEPER_AUDIT_LOG": str(audit_path), "HOME": "/home/agent"}
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_check_blocks_copying_weights_with_a_readable_reason(audit_path):
    run = gatekeeper("check", "cp -r /models/llama /tmp/x", audit_path=audit_path)
    assert run.returncode == 1, run.stderr
    decision = json.loads(run.stdout)
    assert decision["decision"] == "deny"
    weights = [v for v in decision["violations"] if v["family"] == "weights"]
    assert weights, decision
    assert "/models/llama" in weights[0]["message"]
    assert decision["policy_revision"].startswith("sha256:")
    assert set(decision["timings_ms"]) >= {"analyse", "evaluate"}


def test_check_allows_git_status(audit_path):
    run = gatekeeper("check", "git status", audit_path=audit_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["decision"] == "allow"


def test_every_check_is_audited_and_the_log_verifies(audit_path):
    gatekeeper("check", "ls", audit_path=audit_path)
    gatekeeper("check", "pkill -f agent", audit_path=audit_path)
    verify = gatekeeper("audit", "verify", str(audit_path), audit_path=audit_path)
    assert verify.returncode == 0, verify.stderr
    assert "2 records" in verify.stdout
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["allow", "deny"]
    assert records[1]["input"]["call"]["arguments"]["command"] == "pkill -f agent"
    assert records[1]["bundles"]["gatekeeper"]["revision"].startswith("sha256:")


def test_parallel_batch_keeps_input_order_and_audits_every_call(tmp_path, audit_path):
    commands = ["ls -la", "pkill -f agent", "git status", "cp -r /models/llama /tmp/x", "{broken"]
    lines = [
        line if line.startswith("{broken") else json.dumps({"id": f"c{i}", "command": line})
        for i, line in enumerate(commands * 30)
    ]
    calls = tmp_path / "calls.jsonl"
    calls.write_text("\n".join(lines) + "\n")
    output = tmp_path / "decisions.jsonl"
    run = gatekeeper(
        "check",
        "--jobs",
        "4",
        "--input",
        str(calls),
        "--output",
        str(output),
        audit_path=audit_path,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    decisions = [json.loads(line) for line in output.read_text().splitlines()]
    expected_ids = [f"c{i}" if i % 5 != 4 else f"line-{i + 1}" for i in range(len(lines))]
    assert [d["id"] for d in decisions] == expected_ids
    expected = {"ls -la": "allow", "pkill -f agent": "deny", "git status": "allow"}
    for i, decision in enumerate(decisions):
        assert decision["decision"] == expected.get(commands[i % 5], "deny"), (i, decision)
    assert verify_log(audit_path).records == len(lines)


def test_batch_decides_every_line_in_order_and_survives_bad_lines(tmp_path, audit_path):
    calls = tmp_path / "calls.jsonl"
    lines = [
        json.dumps({"id": "a", "tool": "shell", "arguments": {"command": "ls -la"}}),
        "{not json",
        json.dumps({"id": "b", "tool": "shell", "arguments": {"command": "pkill -f agent"}}),
        json.dumps({"id": "c", "tool": "teleport", "arguments": {}}),
        "",
        json.dumps({"id": "d", "tool": "shell"}),
        json.dumps({"command": "git status"}),
        json.dumps(["not", "an", "object"]),
    ]
    calls.write_text("\n".join(lines) + "\n")
    output = tmp_path / "decisions.jsonl"
    run = gatekeeper("check", "--input", str(calls), "--output", str(output), audit_path=audit_path)
    assert run.returncode == 1, run.stderr
    decisions = [json.loads(line) for line in output.read_text().splitlines()]
    assert [d["id"] for d in decisions] == ["a", "line-2", "b", "c", "d", "line-7", "line-8"]
    assert [d["decision"] for d in decisions] == ["allow", "deny", "deny", "deny", "deny", "allow", "deny"]
    assert "not valid JSON" in decisions[1]["error"]["message"]
    assert "arguments.command" in decisions[4]["error"]["message"]
    assert "decided 7 calls: 2 allowed, 5 blocked" in run.stderr
    assert verify_log(audit_path).records == 7


def test_batch_reads_stdin_and_writes_stdout(audit_path):
    env = {**os.environ, "GATEKEEPER_AUDIT_LOG": str(audit_path)}
    run = subprocess.run(
        # Several deciding threads: none of them may touch stdout while compiling its policy copy.
        [sys.executable, "-m", "gatekeeper", "check", "--jobs", "4", "--input", "-"],
        input='{"command": "ls"}\n{"command": "echo hi"}\n' * 20,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["decision"] for line in run.stdout.splitlines()] == ["allow"] * 40


def test_batch_reads_stdin_as_utf8_whatever_the_locale(audit_path):
    # JSON is UTF-8; an ASCII locale must not turn a non-ASCII line into a crash.
    env = {**os.environ, "GATEKEEPER_AUDIT_LOG": str(audit_path), "PYTHONIOENCODING": "ascii"}
    lines = '{"id": "café", "command": "ls"}\n'.encode() + b'{"id": "bytes", "command": "echo \xff"}\n'
    run = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "check", "--input", "-"],
        input=lines,
        capture_output=True,
        env=env,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    decisions = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(d["id"], d["decision"]) for d in decisions] == [("café", "allow"), ("bytes", "deny")]
    assert b"caf\\u00e9" in run.stdout  # stdout is ASCII: escaped


def test_exec_runs_an_allowed_command_and_returns_its_exit_code(tmp_path, audit_path):
    run = gatekeeper("exec", "--", "echo hello; echo oops >&2; exit 3", audit_path=audit_path, cwd=tmp_path)
    assert run.returncode == 3
    assert run.stdout == "hello\n"
    assert "oops" in run.stderr
    records = [json.loads(line) for line in audit_path.read_text().splitlines()]
    assert records[0]["decision"] == "allow"
    assert records[1]["msg"] == "execution_finished"
    assert records[1]["exit_code"] == 3
    assert records[1]["decision_id"] == records[0]["decision_id"]


def test_exec_does_not_run_a_blocked_command(tmp_path, audit_path):
    marker = tmp_path / "ran"
    command = f"touch {marker}; pkill -f some-agent"
    run = gatekeeper("exec", "--", command, audit_path=audit_path, cwd=tmp_path)
    assert run.returncode == 1
    assert not marker.exists()
    assert "blocked by policy processes." in run.stderr


def test_exec_timeout_kills_the_command(tmp_path, audit_path):
    run = gatekeeper("exec", "--timeout", "0.5", "--", "sleep 20", audit_path=audit_path, cwd=tmp_path)
    assert run.returncode == 124
    assert "timeout" in run.stderr


def test_exec_caps_output(tmp_path, audit_path):
    run = gatekeeper("exec", "--max-output", "100", "--", "seq 1 100000", audit_path=audit_path, cwd=tmp_path)
    assert run.returncode == 0
    assert len(run.stdout) == 100
    assert "truncated" in run.stderr


def test_missing_policies_is_an_error_and_still_a_deny(tmp_path, audit_path):
    run = gatekeeper("check", "--policies", str(tmp_path / "none"), "ls", audit_path=audit_path)
    assert run.returncode == 2
    assert json.loads(run.stdout)["decision"] == "deny"
    assert "does not exist" in run.stderr


def test_usage_error_exits_2(audit_path):
    run = gatekeeper("check", audit_path=audit_path)
    assert run.returncode == 2
    assert "either a COMMAND or --input" in run.stderr


def test_audit_verify_reports_tampering(audit_path):
    gatekeeper("check", "ls", audit_path=audit_path)
    gatekeeper("check", "ls -l", audit_path=audit_path)
    text = audit_path.read_text().replace('"decision":"allow"', '"decision":"deny"', 1)
    audit_path.write_text(text)
    run = gatekeeper("audit", "verify", str(audit_path), audit_path=audit_path)
    assert run.returncode == 1
    assert "line 1" in run.stderr
    assert "altered" in run.stderr


def test_analyse_prints_facts(audit_path):
    run = gatekeeper("analyse", "sudo pkill -f agent", audit_path=audit_path)
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert [c["name"] for c in facts["commands"]] == ["sudo", "pkill"]
