"""The files in examples/ work as documented: the config files load, the executor talks to a real server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from process_helpers import REPO
from service_helpers import ADMIN_TOKEN, AGENT_TOKEN

from gatekeeper.errors import InputError
from gatekeeper.models import Mode
from gatekeeper.server import load_service_config

EXAMPLES = REPO / "examples"


def load_executor():
    spec = importlib.util.spec_from_file_location("agent_executor", EXAMPLES / "agent_executor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_toml_example_loads_and_is_headless(monkeypatch):
    for variable in ("GATEKEEPER_AGENT_TOKENS", "GATEKEEPER_ADMIN_TOKENS", "GATEKEEPER_MODE"):
        monkeypatch.delenv(variable, raising=False)
    config = load_service_config(EXAMPLES / "gatekeeper.toml")
    config.check()
    assert config.core.mode is Mode.ENFORCE
    assert config.core.exec.timeout_s == 60
    assert config.server.port == 8700
    assert config.server.sessions.max_history == 64
    assert config.core.headless is True


def test_the_yaml_example_needs_an_admin_token_from_the_environment(monkeypatch):
    monkeypatch.delenv("GATEKEEPER_AGENT_TOKENS", raising=False)
    monkeypatch.delenv("GATEKEEPER_ADMIN_TOKENS", raising=False)
    with pytest.raises(InputError, match="admin token"):
        load_service_config(EXAMPLES / "gatekeeper.yaml").check()
    monkeypatch.setenv("GATEKEEPER_AGENT_TOKENS", AGENT_TOKEN)
    monkeypatch.setenv("GATEKEEPER_ADMIN_TOKENS", ADMIN_TOKEN)
    config = load_service_config(EXAMPLES / "gatekeeper.yaml")
    config.check()
    assert config.server.approvals.on_ask == "pending"
    assert config.server.sessions.max_history == 128
    assert config.core.headless is False


def test_the_executor_returns_output_or_the_refusal(served, tmp_path: Path):
    executor = load_executor()
    gateway = executor.Gateway(served.url, AGENT_TOKEN)
    ran = executor.run_shell(gateway, "echo hello from the agent", session_id="s1", cwd=str(tmp_path))
    assert ran.startswith("hello from the agent\n")
    assert "[exit code 0]" in ran

    marker = tmp_path / "marker"
    refused = executor.run_shell(gateway, f"touch {marker} #deny", session_id="s1", cwd=str(tmp_path))
    assert refused.startswith("[refused] blocked by policy weights.copy: copies model weights")
    assert "The command was not run." in refused
    assert not marker.exists()


def test_the_executor_reports_a_pending_approval(make_server, tmp_path: Path):
    served = make_server(approvals={"enabled": True, "on_ask": "pending"})
    executor = load_executor()
    answer = executor.run_shell(
        executor.Gateway(served.url, AGENT_TOKEN), "python3 serve.py #ask", session_id="s2", cwd=str(tmp_path)
    )
    assert answer.startswith("[waiting for approval]")
    assert "GET /v1/approvals/" in answer


def test_the_executor_raises_on_a_setup_problem(served, tmp_path: Path):
    executor = load_executor()
    with pytest.raises(RuntimeError, match="401: unauthorized"):
        executor.run_shell(executor.Gateway(served.url, "wrong"), "ls", session_id="s3", cwd=str(tmp_path))
