"""`gatekeeper serve` picks up policy edits by itself: a good edit changes the decisions and their
revision, a broken one is refused and the last good policy keeps deciding."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from process_helpers import serve_process

POLICY = """package gatekeeper

decision := {{
  "decision": "{outcome}", "policy_decision": "{outcome}", "mode": "enforce", "violations": {violations},
}}
"""
DENY_VIOLATIONS = '[{"rule": "t.all", "family": "t", "action": "deny", "message": "everything is denied"}]'


def write_policy(policies: Path, outcome: str) -> None:
    violations = DENY_VIOLATIONS if outcome == "deny" else "[]"
    (policies / "gatekeeper" / "main.rego").write_text(POLICY.format(outcome=outcome, violations=violations))


def decide(url: str) -> dict:
    response = httpx.post(
        url + "/v1/decide", json={"tool": "shell", "arguments": {"command": "ls"}}, timeout=30
    )
    return response.json()


def wait_for(url: str, predicate, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = decide(url)
        if predicate(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_serve_reloads_edited_policies_without_restart(tmp_path):
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    write_policy(policies, "allow")
    with serve_process(tmp_path, tmp_path / "audit.jsonl", policies) as served:
        first = decide(served.url)
        assert first["decision"] == "allow"

        write_policy(policies, "deny")
        second = wait_for(served.url, lambda answer: answer["decision"] == "deny")
        assert second["decision"] == "deny"
        assert second["policy_revision"] != first["policy_revision"]

        (policies / "gatekeeper" / "main.rego").write_text("package gatekeeper\n\ndecision := {\n")
        time.sleep(2.0)  # several watch periods: the broken edit must not take over
        third = decide(served.url)
        assert third["decision"] == "deny"
        assert third["policy_revision"] == second["policy_revision"]
        assert third["error"] is None
    log = served.log_path.read_text()
    assert "policy_reloaded" in log
    assert "policy_reload_rejected" in log
