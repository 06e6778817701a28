"""Bearer tokens: agent and admin roles, failures as 401/403 with {code, message}, loopback rule."""

from __future__ import annotations

import pytest
from service_helpers import ADMIN_TOKEN, AGENT_TOKEN, shell

from gatekeeper.config import Config
from gatekeeper.errors import InputError
from gatekeeper.server import ServerSettings, ServiceConfig
from gatekeeper.server.config import load_service_config


def test_missing_token_is_401_with_a_bearer_challenge(served):
    response = served.client(token=None).post("/v1/decide", json=shell("ls"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "code": "unauthorized",
        "message": "missing bearer token (Authorization: Bearer <token>)",
    }
    assert not served.audit_path.exists() or served.audit_records() == []


def test_wrong_token_and_wrong_scheme_are_401(served):
    assert served.client("nope").post("/v1/decide", json=shell("ls")).status_code == 401
    basic = served.client(token=None, headers={"Authorization": f"Basic {AGENT_TOKEN}"})
    assert basic.post("/v1/decide", json=shell("ls")).json()["code"] == "unauthorized"


def test_agent_token_cannot_use_admin_routes(served):
    agent = served.agent
    for method, path in (
        ("GET", "/v1/approvals"),
        ("POST", "/v1/approvals/some-id"),
        ("POST", "/v1/admin/reload"),
    ):
        response = agent.request(method, path, json={"action": "approve"})
        assert response.status_code == 403, path
        assert response.json()["code"] == "forbidden"


def test_admin_token_may_use_agent_routes(served):
    assert served.admin.post("/v1/decide", json=shell("ls")).status_code == 200


def test_admin_routes_are_disabled_without_an_admin_token(make_server):
    served = make_server(admin_tokens=[])
    response = served.client("anything").get("/v1/approvals")
    assert response.status_code == 403
    assert "admin API is disabled" in response.json()["message"]


def test_without_agent_tokens_loopback_agents_need_none(make_server):
    served = make_server(agent_tokens=[])
    assert served.client(token=None).post("/v1/decide", json=shell("ls")).status_code == 200
    # A token that is presented must still be a valid one.
    assert served.client("made-up").post("/v1/decide", json=shell("ls")).status_code == 401


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.org"])
def test_refuses_a_non_loopback_address_without_agent_tokens(host):
    config = ServiceConfig(core=Config(), server=ServerSettings(host=host))
    with pytest.raises(InputError, match="refusing to listen"):
        config.check()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_token(host):
    ServiceConfig(core=Config(), server=ServerSettings(host=host)).check()


def test_non_loopback_is_allowed_with_an_agent_token():
    ServiceConfig(core=Config(), server=ServerSettings(host="0.0.0.0", agent_tokens=["t"])).check()


def test_approvals_without_an_admin_token_are_refused():
    server = ServerSettings(approvals={"enabled": True})
    with pytest.raises(InputError, match="admin token"):
        ServiceConfig(core=Config(), server=server).check()


def test_a_token_cannot_be_both_agent_and_admin():
    server = ServerSettings(agent_tokens=["same"], admin_tokens=["same"])
    with pytest.raises(InputError, match="must not also be an admin token"):
        ServiceConfig(core=Config(), server=server).check()


def test_tokens_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GATEKEEPER_AGENT_TOKENS", "a1, a2")
    monkeypatch.setenv("GATEKEEPER_ADMIN_TOKENS", ADMIN_TOKEN)
    config = load_service_config()
    assert config.server.agent_tokens == ["a1", "a2"]
    assert config.server.admin_tokens == [ADMIN_TOKEN]
