"""Approvals for ask: wait (approve, deny, timeout), pending (202 then poll), headless ask is deny, CLI."""

from __future__ import annotations

import concurrent.futures
import time

import pytest
from service_helpers import ADMIN_TOKEN, shell
from typer.testing import CliRunner

from gatekeeper.cli import app as cli_app

APPROVALS_WAIT = {"enabled": True, "on_ask": "wait", "wait_s": 10}


def _pending(served, count=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = served.admin.get("/v1/approvals", params={"status": "pending"}).json()["approvals"]
        if len(pending) >= count:
            return pending
        time.sleep(0.02)
    raise AssertionError("no pending approval appeared")


def test_headless_ask_is_deny(served, tmp_path):
    marker = tmp_path / "ran"
    response = served.agent.post("/v1/execute", json=shell(f"touch {marker} #ask"))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "blocked"
    assert body["decision"]["decision"] == "deny"
    rules = [v["rule"] for v in body["decision"]["violations"]]
    assert rules == ["servers.listen", "gatekeeper.headless_ask"]
    assert "no approver is configured" in body["message"]
    assert not marker.exists()
    assert served.audit_records()[0]["decision"] == "deny"
    # /v1/decide says the same.
    assert served.agent.post("/v1/decide", json=shell("x #ask")).json()["decision"] == "deny"


def test_the_policies_are_told_whether_a_human_can_approve(served, make_server):
    served.agent.post("/v1/decide", json=shell("ls"))
    assert served.engine.documents[-1]["context"]["headless"] is True
    with_approver = make_server(approvals=APPROVALS_WAIT)
    with_approver.agent.post("/v1/decide", json=shell("ls"))
    assert with_approver.engine.documents[-1]["context"]["headless"] is False


def test_approved_ask_runs_and_returns_the_result(make_server, tmp_path):
    served = make_server(approvals=APPROVALS_WAIT)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            served.agent.post,
            "/v1/execute",
            json=shell("echo approved #ask", session_id="s1", cwd=str(tmp_path)),
        )
        [approval] = _pending(served)
        assert approval["call"]["arguments"]["command"] == "echo approved #ask"
        assert approval["decision"]["decision"] == "ask"
        verdict = served.admin.post(
            f"/v1/approvals/{approval['id']}", json={"action": "approve", "reason": "ok"}
        )
        assert verdict.status_code == 200
        assert verdict.json()["status"] == "approved"
        assert verdict.json()["resolved_by"] == "admin#1"
        response = waiting.result(timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["result"]["stdout"] == "approved\n"
    assert body["approval"]["status"] == "approved"
    records = served.audit_records()
    assert [r["msg"] for r in records] == ["decision_made", "approval_resolved", "execution_finished"]
    assert {r["decision_id"] for r in records} == {approval["id"]}
    assert records[1]["status"] == "approved"
    assert records[1]["by"] == "admin#1"


def test_denied_ask_is_403_and_does_not_run(make_server, tmp_path):
    served = make_server(approvals=APPROVALS_WAIT)
    marker = tmp_path / "ran"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(served.agent.post, "/v1/execute", json=shell(f"touch {marker} #ask"))
        [approval] = _pending(served)
        served.admin.post(f"/v1/approvals/{approval['id']}", json={"action": "deny", "reason": "not today"})
        response = waiting.result(timeout=10)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "approval_denied"
    assert "approval denied: not today" in body["message"]
    assert not marker.exists()
    assert [r["msg"] for r in served.audit_records()] == ["decision_made", "approval_resolved"]


def test_unanswered_ask_times_out_and_cannot_be_approved_later(make_server, tmp_path):
    served = make_server(approvals={**APPROVALS_WAIT, "wait_s": 0.3})
    marker = tmp_path / "ran"
    started = time.monotonic()
    response = served.agent.post("/v1/execute", json=shell(f"touch {marker} #ask"))
    assert 0.25 < time.monotonic() - started < 5
    assert response.status_code == 403
    assert response.json()["code"] == "approval_expired"
    approval_id = response.json()["approval"]["id"]
    late = served.admin.post(f"/v1/approvals/{approval_id}", json={"action": "approve"})
    assert late.status_code == 409
    assert late.json()["code"] == "approval_conflict"
    assert not marker.exists()
    assert served.audit_records()[-1]["status"] == "expired"


def test_pending_mode_answers_202_and_runs_once_approved(make_server, tmp_path):
    served = make_server(approvals={"enabled": True, "on_ask": "pending"})
    response = served.agent.post("/v1/execute", json=shell("echo later #ask", cwd=str(tmp_path)))
    assert response.status_code == 202
    body = response.json()
    assert body["code"] == "approval_pending"
    approval_id = body["approval"]["id"]
    assert approval_id == body["decision"]["decision_id"]
    assert served.agent.get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"
    served.admin.post(f"/v1/approvals/{approval_id}", json={"action": "approve"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        polled = served.agent.get(f"/v1/approvals/{approval_id}").json()
        if (polled.get("execution") or {}).get("state") == "finished":
            break
        time.sleep(0.02)
    assert polled["status"] == "approved"
    assert polled["execution"]["result"]["stdout"] == "later\n"
    assert "resolved_by" not in polled  # the agent's view


def test_pending_approvals_are_bounded(make_server):
    served = make_server(approvals={"enabled": True, "on_ask": "pending", "max_pending": 2})
    codes = [served.agent.post("/v1/execute", json=shell(f"echo {n} #ask")).status_code for n in range(3)]
    assert codes == [202, 202, 403]


def test_verdict_errors(make_server):
    served = make_server(approvals=APPROVALS_WAIT)
    admin = served.admin
    assert admin.post("/v1/approvals/nope", json={"action": "approve"}).status_code == 404
    bad = admin.post("/v1/approvals/nope", json={"action": "maybe"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_input"
    assert admin.post("/v1/approvals/nope", content=b"{").json()["code"] == "invalid_input"
    assert admin.get("/v1/approvals", params={"status": "weird"}).status_code == 400
    assert served.agent.get("/v1/approvals/nope").status_code == 404


@pytest.mark.parametrize("verdict", ["approve", "deny"])
def test_approvals_cli(make_server, verdict):
    served = make_server(approvals=APPROVALS_WAIT)
    runner = CliRunner()
    env = {"GATEKEEPER_URL": served.url, "GATEKEEPER_ADMIN_TOKEN": ADMIN_TOKEN}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(served.agent.post, "/v1/execute", json=shell("echo cli #ask", session_id="s7"))
        [approval] = _pending(served)
        listed = runner.invoke(cli_app, ["approvals", "list"], env=env)
        assert listed.exit_code == 0, listed.output
        assert approval["id"] in listed.output
        assert "session=s7" in listed.output
        assert "servers.listen" in listed.output
        answered = runner.invoke(cli_app, ["approvals", verdict, approval["id"], "--reason", "cli"], env=env)
        assert answered.exit_code == 0, answered.output
        response = waiting.result(timeout=10)
    assert response.status_code == (200 if verdict == "approve" else 403), response.text
    again = runner.invoke(cli_app, ["approvals", verdict, approval["id"]], env=env)
    assert again.exit_code == 1
    assert "already" in again.output


def test_approvals_cli_reports_auth_failures(served):
    result = CliRunner().invoke(
        cli_app, ["approvals", "list"], env={"GATEKEEPER_URL": served.url, "GATEKEEPER_ADMIN_TOKEN": "wrong"}
    )
    assert result.exit_code == 2
    assert "401 unauthorized" in result.output
