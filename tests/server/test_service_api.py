"""The HTTP API against a real uvicorn server: every route, errors as {code, message}, audit records."""

from __future__ import annotations

import json
import time

import httpx
from service_helpers import ADMIN_TOKEN, AGENT_TOKEN, shell

from gatekeeper.audit import verify_log


def test_health_is_open_and_names_the_policies(served):
    response = served.client(token=None).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["engine"] == "scripted"
    assert body["policy_revision"] == "scripted-1"
    assert body["headless"] is True


def test_decide_returns_the_decision_and_audits_it(served):
    response = served.agent.post("/v1/decide", json=shell("ls -la", id="c1", session_id="s1"))
    assert response.status_code == 200
    decision = response.json()
    assert decision["id"] == "c1"
    assert decision["decision"] == "allow"
    [record] = served.audit_records()
    assert record["decision_id"] == decision["decision_id"]
    assert record["input"]["call"]["arguments"]["command"] == "ls -la"
    assert verify_log(served.audit_path).ok


def test_decide_of_a_denied_call_is_200_with_the_deny(served):
    response = served.agent.post("/v1/decide", json=shell("cp -r /models/llama /tmp/x #deny"))
    assert response.status_code == 200
    assert response.json()["decision"] == "deny"
    assert response.json()["violations"][0]["rule"] == "weights.copy"


def test_invalid_tool_call_is_400_with_code_and_an_audited_deny(served):
    response = served.agent.post("/v1/decide", json={"arguments": {"command": "ls"}})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert "tool" in body["message"]
    assert body["decision"]["decision"] == "deny"
    [record] = served.audit_records()
    assert record["decision_id"] == body["decision"]["decision_id"]
    assert record["error"]["code"] == "invalid_input"


def test_malformed_json_is_400_and_audited(served):
    response = served.agent.post(
        "/v1/decide", content=b'{"tool": "shell", "arguments": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert "not valid JSON" in body["message"]
    [record] = served.audit_records()
    assert record["decision"] == "deny"
    assert record["input"]["call"]["request"]["body"].startswith('{"tool"')


def test_body_that_is_not_utf8_is_400(served):
    response = served.agent.post("/v1/decide", content=b"\xff\xfe\x00garbage")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_lone_surrogates_go_back_as_json_escapes_not_a_500(served):
    # "\ud800" is valid JSON but no UTF-8 text can hold it: answers escape it, as it came.
    call = shell("echo \udc80", id="\ud800", session_id="odd-text")
    for path in ("/v1/decide", "/v1/data/gatekeeper/decision"):
        body = json.dumps({"input": call} if "data" in path else call).encode()  # ensure_ascii
        response = served.agent.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200
        decision = response.json()["result"] if "data" in path else response.json()
        assert decision["id"] == "\ud800"
        assert "\\ud800" in response.text
    session = served.agent.get("/v1/sessions/odd-text")
    assert session.status_code == 200
    assert session.json()["calls"] == 2
    assert verify_log(served.audit_path).ok
    assert served.audit_records()[0]["input"]["call"]["id"] == "\ud800"


def test_json_that_is_not_an_object_is_400(served):
    response = served.agent.post("/v1/decide", json=["ls"])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert len(served.audit_records()) == 1


def test_oversize_body_is_413_and_audited(make_server):
    served = make_server(max_body_bytes=4096)
    response = served.agent.post("/v1/decide", json=shell("echo " + "A" * 10_000))
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "payload_too_large"
    assert "4096" in body["message"]
    [record] = served.audit_records()
    assert record["error"]["code"] == "payload_too_large"
    assert record["decision_id"] == body["decision"]["decision_id"]


def test_oversize_streamed_body_without_length_is_413(make_server):
    served = make_server(max_body_bytes=4096)

    def chunks():
        for _ in range(10):
            yield b"A" * 1024

    response = served.agent.post("/v1/decide", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    # The server still answers afterwards.
    assert served.agent.post("/v1/decide", json=shell("ls")).status_code == 200


def test_unknown_route_and_wrong_method_are_4xx_with_code(served):
    missing = served.agent.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = served.agent.get("/v1/decide")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


def test_data_api_answers_in_opa_shape(served):
    response = served.agent.post("/v1/data/gatekeeper/decision", json={"input": shell("ls #deny", id="c9")})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"result", "decision_id"}
    assert body["result"]["decision"] == "deny"
    assert body["result"]["id"] == "c9"
    assert body["decision_id"] == body["result"]["decision_id"]
    assert served.audit_records()[0]["decision_id"] == body["decision_id"]


def test_data_api_without_input_is_a_deny_result(served):
    response = served.agent.post("/v1/data/gatekeeper/decision", json={})
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["decision"] == "deny"
    assert result["error"]["code"] == "invalid_input"


def test_data_api_with_a_non_object_body_is_400(served):
    response = served.agent.post("/v1/data/gatekeeper/decision", json=[1, 2])
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"


def test_metrics_count_decisions_by_outcome_and_family(served):
    agent = served.agent
    agent.post("/v1/decide", json=shell("ls"))
    agent.post("/v1/decide", json=shell("cp #deny"))
    agent.post("/v1/decide", json=shell("cp again #deny"))
    agent.post("/v1/decide", json={"tool": ""})
    response = served.client(token=None).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'gatekeeper_decisions_total{family="none",outcome="allow"} 1.0' in text
    assert 'gatekeeper_decisions_total{family="weights",outcome="deny"} 2.0' in text
    assert 'gatekeeper_decisions_total{family="error",outcome="deny"} 1.0' in text
    assert 'gatekeeper_engine_errors_total{code="invalid_input"} 1.0' in text
    assert 'gatekeeper_violations_total{action="deny",family="weights",rule="weights.copy"} 2.0' in text
    assert "gatekeeper_decision_duration_seconds_bucket" in text
    assert "gatekeeper_decision_duration_seconds_count 4.0" in text
    assert 'gatekeeper_http_requests_total{route="/v1/decide",status="200"} 3.0' in text
    assert 'gatekeeper_policy_info{engine="scripted",revision="scripted-1"} 1.0' in text


def test_metrics_can_require_a_token(make_server):
    served = make_server(metrics_require_token=True)
    assert served.client(token=None).get("/metrics").status_code == 401
    assert served.agent.get("/metrics").status_code == 200


def test_openapi_document_lists_the_routes(served):
    paths = served.client(token=None).get("/openapi.json").json()["paths"]
    for route in ("/v1/decide", "/v1/execute", "/v1/data/gatekeeper/decision", "/v1/approvals/{approval_id}"):
        assert route in paths
    schema = paths["/v1/decide"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "tool" in schema["properties"]


def test_many_concurrent_requests_give_one_verified_record_each(served):
    import concurrent.futures  # noqa: PLC0415

    client = served.client(AGENT_TOKEN, limits=httpx.Limits(max_connections=16))

    def one(number: int) -> str:
        response = client.post("/v1/decide", json=shell(f"echo {number}", id=str(number)))
        assert response.status_code == 200
        return str(response.json()["decision_id"])

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(one, range(200)))
    records = served.audit_records()
    report = verify_log(served.audit_path)
    assert report.ok, report.describe()
    assert report.records == 200
    assert sorted(r["decision_id"] for r in records) == sorted(ids)


def _request_log_lines(capfd, count: int) -> list[dict]:
    lines: list[dict] = []
    deadline = time.monotonic() + 5
    while len(lines) < count and time.monotonic() < deadline:  # logged just after the answer is sent
        time.sleep(0.02)
        lines += [
            json.loads(line) for line in capfd.readouterr().err.splitlines() if '"request_handled"' in line
        ]
    return lines


def test_a_client_cannot_rename_itself_in_the_request_log(make_server, capfd):
    served = make_server(access_log=True)
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    answer = served.agent.post("/v1/decide", json=shell("ls"), headers=forged)
    assert answer.status_code == 200
    [line] = _request_log_lines(capfd, 1)
    assert line["client"].startswith("127.0.0.1:")


def test_request_log_is_structured_json(make_server, capfd):
    served = make_server(access_log=True)
    served.agent.post("/v1/decide", json=shell("ls"))
    served.client("wrong").post("/v1/decide", json=shell("ls"))
    lines = _request_log_lines(capfd, 2)
    assert [(line["route"], line["status"]) for line in lines] == [("/v1/decide", 200), ("/v1/decide", 401)]
    assert lines[0]["principal"] == "agent#1"
    assert lines[0]["decision_id"]
    assert ADMIN_TOKEN not in json.dumps(lines) and AGENT_TOKEN not in json.dumps(lines)
