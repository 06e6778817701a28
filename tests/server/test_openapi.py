"""The OpenAPI document describes the answers the server really gives: every status, every body.

Each scenario asks a running server something and checks the answer against ``/openapi.json``: the
status is documented for the operation, and the body validates against the documented schema. The
last test checks that the scenarios reached every documented operation, so a new route needs one.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from service_helpers import ADMIN_TOKEN, AGENT_TOKEN, conforms, shell

checked: set[tuple[str, str]] = set()


@pytest.fixture(scope="module")
def document_and_server(tmp_path_factory):
    from service_helpers import serve  # noqa: PLC0415

    settings = {
        "approvals": {"enabled": True, "on_ask": "pending"},
        "metrics_require_token": True,
        "max_body_bytes": 4096,
    }
    with serve(tmp_path_factory.mktemp("openapi"), **settings) as served:
        document = httpx.get(f"{served.url}/openapi.json").json()
        yield document, served


@pytest.fixture
def answer(document_and_server):
    """``answer(method, template, token=..., path=..., **httpx kwargs)``: the checked response."""
    document, served = document_and_server

    def ask(method: str, template: str, *, token: str | None = AGENT_TOKEN, path: str | None = None, **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = served.url + (path or template)
        response = httpx.request(method, url, headers=headers, timeout=30, **kw)
        conforms(document, method.lower(), template, response)
        checked.add((method.lower(), template))
        return response

    return ask


def test_service_routes(answer):
    assert answer("GET", "/health", token=None).json()["status"] == "ok"
    assert "gatekeeper_decisions_total" in answer("GET", "/metrics").text
    assert answer("GET", "/metrics", token=None).status_code == 401


def test_decide(answer):
    assert answer("POST", "/v1/decide", json=shell("ls", id=7)).json()["decision"] == "allow"
    assert answer("POST", "/v1/decide", json=shell("cp a b #deny")).json()["decision"] == "deny"
    assert answer("POST", "/v1/decide", content=b"{not json").status_code == 400
    assert answer("POST", "/v1/decide", json={"arguments": {}}).status_code == 400
    assert answer("POST", "/v1/decide", json=shell("ls"), token=None).status_code == 401
    assert answer("POST", "/v1/decide", json=shell("x" * 5000)).status_code == 413


def test_data_api(answer):
    path = "/v1/data/gatekeeper/decision"
    assert answer("POST", path, json={"input": shell("ls")}).json()["result"]["decision"] == "allow"
    assert answer("POST", path, json={"input": {"tool": ""}}).json()["result"]["decision"] == "deny"
    assert answer("POST", path, json=[1, 2]).status_code == 400


def test_execute(answer):
    ran = answer("POST", "/v1/execute", json=shell("echo hello"))
    assert ran.status_code == 200
    assert ran.json()["result"]["stdout"] == "hello\n"
    assert "notice" in answer("POST", "/v1/execute", json=shell("echo warned #warn")).json()
    assert answer("POST", "/v1/execute", json=shell("cp a b #deny")).status_code == 403
    assert answer("POST", "/v1/execute", json=shell("echo asked #ask")).status_code == 202
    python = {"tool": "python", "arguments": {"code": "print(1)"}}
    assert answer("POST", "/v1/execute", json=python).status_code == 422
    assert answer("POST", "/v1/execute", content=b"[").status_code == 400


def test_sessions(answer):
    answer("POST", "/v1/decide", json=shell("ls", session_id="openapi-session"))
    template = "/v1/sessions/{session_id}"
    assert answer("GET", template, path="/v1/sessions/openapi-session").json()["calls"] == 1
    assert answer("GET", template, path="/v1/sessions/never-seen").status_code == 404


def test_approvals(answer):
    pending = answer("POST", "/v1/execute", json=shell("echo approved #ask")).json()["approval"]
    template = "/v1/approvals/{approval_id}"
    one = f"/v1/approvals/{pending['id']}"
    assert answer("GET", template, path=one).json()["status"] == "pending"
    assert answer("GET", template, path="/v1/approvals/nope").status_code == 404
    listed = answer("GET", "/v1/approvals", token=ADMIN_TOKEN, params={"status": "pending"}).json()
    assert pending["id"] in [approval["id"] for approval in listed["approvals"]]
    assert answer("GET", "/v1/approvals", token=ADMIN_TOKEN, params={"status": "maybe"}).status_code == 400
    assert answer("GET", "/v1/approvals").status_code == 403
    verdict = {"action": "approve", "reason": "checked"}
    approved = answer("POST", template, path=one, token=ADMIN_TOKEN, json=verdict)
    assert approved.json()["resolved_by"]
    assert answer("POST", template, path=one, token=ADMIN_TOKEN, json=verdict).status_code == 409
    unknown = answer("POST", template, path="/v1/approvals/nope", token=ADMIN_TOKEN, json=verdict)
    assert unknown.status_code == 404
    assert answer("POST", template, path=one, token=ADMIN_TOKEN, json={"action": "maybe"}).status_code == 400


def test_the_links_of_a_pending_answer_lead_to_its_approval(document_and_server, answer):
    document, _served = document_and_server
    pending = answer("POST", "/v1/execute", json=shell("echo linked #ask"))
    links = document["paths"]["/v1/execute"]["post"]["responses"]["202"]["links"]
    assert set(links) == {"PollApproval", "ResolveApproval"}
    for link in links.values():
        # "#/paths/~1v1~1approvals~1{approval_id}/get" → the operation it names
        _, _, escaped, method = link["operationRef"].split("/")
        template = escaped.replace("~1", "/")
        assert method in document["paths"][template]
        expression = link["parameters"]["approval_id"]
        assert expression.startswith("$response.body#/")
        value: Any = pending.json()
        for key in expression.removeprefix("$response.body#/").split("/"):
            value = value[key]
        path = template.replace("{approval_id}", value)
        if method == "get":
            assert answer("GET", template, path=path).json()["status"] == "pending"
        else:
            verdict = {"action": "deny", "reason": "followed a link"}
            assert answer("POST", template, path=path, token=ADMIN_TOKEN, json=verdict).status_code == 200


def request_media(document: dict[str, Any], method: str, template: str) -> dict[str, Any]:
    media: dict[str, Any] = document["paths"][template][method]["requestBody"]["content"]["application/json"]
    return media


def request_schema(document: dict[str, Any], method: str, template: str) -> Draft202012Validator:
    schema = request_media(document, method, template)["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


def test_request_schemas_accept_what_the_server_accepts(document_and_server, answer):
    document, _served = document_and_server
    # A verdict may carry a null reason: documented, and taken.
    verdict = {"action": "approve", "reason": None}
    assert request_schema(document, "post", "/v1/approvals/{approval_id}").is_valid(verdict)
    pending = answer("POST", "/v1/execute", json=shell("echo no reason #ask")).json()["approval"]
    path = f"/v1/approvals/{pending['id']}"
    template = "/v1/approvals/{approval_id}"
    assert answer("POST", template, path=path, token=ADMIN_TOKEN, json=verdict).status_code == 200
    # /v1/execute documents shell calls only; another tool's call is decided, never run (2xx).
    execute = request_schema(document, "post", "/v1/execute")
    python = {"tool": "python", "arguments": {"code": "print(1)"}}
    assert not execute.is_valid(python)
    assert execute.is_valid(shell("ls"))
    assert answer("POST", "/v1/execute", json=python).status_code == 422


def test_reload(answer):
    # The scripted test engine cannot be reloaded by gatekeeper, as with an OPA server.
    assert answer("POST", "/v1/admin/reload", token=ADMIN_TOKEN).status_code == 409
    assert answer("POST", "/v1/admin/reload").status_code == 403


def test_a_method_a_path_does_not_answer_gets_405_naming_every_method_it_does(document_and_server):
    _document, served = document_and_server
    response = httpx.request("PUT", f"{served.url}/v1/approvals/any")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["code"] == "method_not_allowed"


def test_request_examples_are_calls_the_server_decides(document_and_server, answer):
    document, _served = document_and_server
    seen: dict[str, set[str]] = {}
    for path in ("/v1/decide", "/v1/execute", "/v1/data/gatekeeper/decision"):
        validator = request_schema(document, "post", path)
        for name, example in request_media(document, "post", path)["examples"].items():
            validator.validate(example["value"])
            call = example["value"].get("input", example["value"])
            seen.setdefault(path, set()).add(call["tool"])
            # Decided, never run: the execute examples name real commands.
            assert answer("POST", "/v1/decide", json=call).status_code == 200, name
    assert seen["/v1/decide"] == {"shell", "python", "file_write", "file_read", "http", "mcp"}
    assert seen["/v1/execute"] == {"shell"}
    assert seen["/v1/data/gatekeeper/decision"] == seen["/v1/decide"]


def test_validation_errors_are_documented_as_400_not_fastapis_422(document_and_server):
    document, _served = document_and_server
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path in document["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"] or "ErrorAnswer" in str(operation["responses"]["422"])


def test_every_documented_operation_was_checked(document_and_server):
    # Runs last in this module (pytest keeps file order).
    document, _served = document_and_server
    operations = {(method, path) for path, item in document["paths"].items() for method in item}
    assert operations - checked == set()
