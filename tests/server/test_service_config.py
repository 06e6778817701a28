"""The config file (YAML, TOML) with its server section, reload, and `gatekeeper serve` refusals."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gatekeeper.cli import app as cli_app
from gatekeeper.errors import InputError
from gatekeeper.server.config import deciding_threads, load_service_config

TINY_POLICY = """package gatekeeper

decision := {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}
"""


def test_yaml_config_with_a_server_section(tmp_path):
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(
        "mode: dry-run\n"
        "exec:\n  timeout_s: 5\n"
        "server:\n"
        "  port: 9999\n"
        "  agent_tokens: [a]\n"
        "  admin_tokens: [b]\n"
        "  approvals: {enabled: true, on_ask: pending}\n"
        "  sessions: {max_history: 8}\n"
    )
    config = load_service_config(path)
    assert config.core.mode is not None and config.core.mode.value == "dry-run"
    assert config.core.exec.timeout_s == 5
    assert config.server.port == 9999
    assert config.server.approvals.on_ask == "pending"
    assert config.server.sessions.max_history == 8
    assert config.server.approver_configured
    assert "server" not in (config.core.model_extra or {})


def test_toml_config_and_overrides(tmp_path):
    path = tmp_path / "gatekeeper.toml"
    path.write_text('[gatekeeper]\nmode = "observe"\n[gatekeeper.server]\nhost = "127.0.0.1"\nport = 9000\n')
    config = load_service_config(path, server_overrides={"port": 9001, "host": None})
    assert config.core.mode is not None and config.core.mode.value == "observe"
    assert config.server.port == 9001
    assert config.server.host == "127.0.0.1"


def test_unknown_server_keys_are_refused(tmp_path):
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("server:\n  prot: 1\n")
    with pytest.raises(InputError, match="prot"):
        load_service_config(path)


def test_serve_refuses_a_public_address_without_tokens(monkeypatch):
    monkeypatch.delenv("GATEKEEPER_AGENT_TOKENS", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_admin_reload_picks_up_a_changed_policy(make_server, tmp_path):
    from gatekeeper.policy.embedded import EmbeddedEngine  # noqa: PLC0415

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "main.rego").write_text(TINY_POLICY)
    served = make_server(engine=EmbeddedEngine(policies))
    before = served.client(token=None).get("/health").json()["policy_revision"]
    unchanged = served.admin.post("/v1/admin/reload").json()
    assert unchanged == {"previous_revision": before, "revision": before, "changed": False}
    (policies / "main.rego").write_text(
        TINY_POLICY.replace('"allow", "policy', '"warn", "policy').replace(
            '"policy_decision": "allow"', '"policy_decision": "warn"'
        )
    )
    reloaded = served.admin.post("/v1/admin/reload").json()
    assert reloaded["changed"] is True
    assert served.client(token=None).get("/health").json()["policy_revision"] == reloaded["revision"]
    (policies / "main.rego").write_text("package gatekeeper\n\ndecision := {")
    broken = served.admin.post("/v1/admin/reload")
    assert broken.status_code == 422
    assert broken.json()["code"] == "policy_load_error"
    assert served.client(token=None).get("/health").json()["policy_revision"] == reloaded["revision"]
    assert served.agent.post("/v1/admin/reload").status_code == 403
    assert [r["msg"] for r in served.audit_records()].count("policy_reloaded") == 2


def test_reload_of_an_engine_without_reload_is_409(served):
    response = served.admin.post("/v1/admin/reload")
    assert response.status_code == 409
    assert response.json()["code"] == "not_supported"


def test_deciding_threads_follow_the_engine_unless_set(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    assert deciding_threads(None, "embedded") == 4  # rego-cpp evaluations compete for cores
    assert deciding_threads(None, "opa") == 16  # threads mostly wait for OPA's answer
    assert deciding_threads(3, "embedded") == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0}, raising=False)
    assert deciding_threads(None, "embedded") == 2
