"""/v1/execute: the same executor as `gatekeeper exec`, blocked calls as 403, modes."""

from __future__ import annotations

from service_helpers import shell


def test_allowed_command_runs_and_returns_its_output(served, tmp_path):
    response = served.agent.post(
        "/v1/execute", json=shell("echo hi; echo oops >&2; exit 3", cwd=str(tmp_path))
    )
    assert response.status_code == 200
    body = response.json()
    assert body["decision"]["decision"] == "allow"
    result = body["result"]
    assert result["exit_code"] == 3
    assert result["stdout"] == "hi\n"
    assert result["stderr"] == "oops\n"
    assert result["truncated"] is False
    assert result["duration_ms"] >= 0
    records = served.audit_records()
    assert [r["msg"] for r in records] == ["decision_made", "execution_finished"]
    assert records[1]["decision_id"] == body["decision"]["decision_id"]
    assert records[1]["exit_code"] == 3


def test_blocked_command_is_403_with_a_message_for_the_model_and_does_not_run(served, tmp_path):
    marker = tmp_path / "ran"
    response = served.agent.post("/v1/execute", json=shell(f"touch {marker} #deny", cwd=str(tmp_path)))
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "blocked"
    assert body["message"].startswith("blocked by policy weights.copy: copies model weights /models/llama")
    assert "The command was not run." in body["message"]
    assert body["decision"]["decision"] == "deny"
    assert not marker.exists()
    assert [r["msg"] for r in served.audit_records()] == ["decision_made"]


def test_command_runs_in_the_calls_working_directory(served, tmp_path):
    body = served.agent.post("/v1/execute", json=shell("pwd", cwd=str(tmp_path))).json()
    assert body["result"]["stdout"].strip() == str(tmp_path)


def test_a_call_without_cwd_is_analysed_and_run_in_the_servers_directory(served):
    served.agent.post("/v1/execute", json=shell("pwd"))
    document = served.engine.documents[-1]
    assert document["call"]["cwd"] == served.service.default_cwd


def test_environment_is_reduced_to_the_allow_list(served, monkeypatch):
    monkeypatch.setenv("GATEKEEPER_TEST_SECRET", "hunter2")
    body = served.agent.post("/v1/execute", json=shell("echo ${GATEKEEPER_TEST_SECRET:-absent}")).json()
    assert body["result"]["stdout"] == "absent\n"


def test_timeout_kills_the_command(make_server, tmp_path):
    served = make_server(core={"exec": {"timeout_s": 0.3, "kill_grace_s": 0.1}})
    marker = tmp_path / "late"
    body = served.agent.post("/v1/execute", json=shell(f"sleep 5; touch {marker}")).json()
    assert body["result"]["timed_out"] is True
    assert body["result"]["exit_code"] is None
    assert body["result"]["duration_ms"] < 4000
    assert not marker.exists()


def test_output_is_capped(make_server):
    served = make_server(core={"exec": {"max_output_bytes": 1000}})
    body = served.agent.post("/v1/execute", json=shell("head -c 100000 /dev/zero | tr '\\0' x")).json()
    assert body["result"]["truncated"] is True
    assert len(body["result"]["stdout"]) == 1000


def test_missing_working_directory_is_422_with_the_decision(served, tmp_path):
    response = served.agent.post("/v1/execute", json=shell("ls", cwd=str(tmp_path / "nowhere")))
    assert response.status_code == 422
    assert response.json()["code"] == "execution_error"
    assert response.json()["decision"]["decision"] == "allow"


def test_non_shell_tools_are_decided_but_not_run(served):
    response = served.agent.post(
        "/v1/execute", json={"tool": "file_write", "arguments": {"path": "/tmp/x", "content": "y"}}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "not_supported"
    assert response.json()["decision"]["decision"] == "allow"
    assert served.audit_records()[0]["msg"] == "decision_made"


def test_a_blocked_non_shell_call_is_403_with_the_policys_message(served):
    call = {"tool": "python", "arguments": {"code": "shutil.copytree(a, b)", "command": "#deny"}}
    response = served.agent.post("/v1/execute", json=call)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "blocked"
    assert body["message"].startswith("blocked by policy weights.copy:")
    assert body["message"].endswith("The python call was not run.")
    assert body["decision"]["decision"] == "deny"


def test_warn_runs_with_a_notice(served):
    body = served.agent.post("/v1/execute", json=shell("echo ok #warn")).json()
    assert body["result"]["stdout"] == "ok\n"
    assert body["notice"].startswith("warn by policy processes.nohup")


def test_execute_can_be_disabled(make_server):
    served = make_server(execute_enabled=False)
    response = served.agent.post("/v1/execute", json=shell("echo hi"))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_the_server_mode_reaches_the_policies_and_dry_run_runs_with_a_notice(make_server):
    served = make_server(core={"mode": "dry-run"})
    body = served.agent.post("/v1/execute", json=shell("echo would-be-blocked #deny")).json()
    assert served.engine.documents[-1]["context"]["mode"] == "dry-run"
    assert body["decision"]["decision"] == "allow"
    assert body["decision"]["policy_decision"] == "deny"
    assert body["result"]["stdout"] == "would-be-blocked\n"
    assert body["notice"].startswith("dry-run: in enforce mode this call would be deny (weights.copy:")
    [decided, _finished] = served.audit_records()
    assert decided["mode"] == "dry-run"
    assert decided["policy_decision"] == "deny"


def test_observe_mode_runs_and_only_records(make_server):
    served = make_server(core={"mode": "observe"})
    body = served.agent.post("/v1/execute", json=shell("echo seen #deny")).json()
    assert body["result"]["stdout"] == "seen\n"
    assert "notice" not in body
    assert served.audit_records()[0]["policy_decision"] == "deny"


def test_enforce_mode_blocks(make_server):
    served = make_server(core={"mode": "enforce"})
    assert served.agent.post("/v1/execute", json=shell("echo x #deny")).status_code == 403
    assert served.engine.documents[-1]["context"]["mode"] == "enforce"


def test_a_call_cannot_set_its_own_mode_or_context(served):
    call = shell("echo x #deny", context={"mode": "observe"}, mode="observe")
    response = served.agent.post("/v1/execute", json=call)
    assert response.status_code == 403
    assert "mode" not in served.engine.documents[-1]["context"]
