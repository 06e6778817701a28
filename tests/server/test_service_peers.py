"""The pieces ``--workers`` is built from, in one process: ownership, forwarding, failures, merging."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import ADMIN_TOKEN, AGENT_TOKEN

from gatekeeper.server.metrics import ServiceMetrics, merge_worker_metrics
from gatekeeper.server.peers import PeerError, UnixHttpClient
from gatekeeper.server.workers import WorkerPlan


def test_a_session_has_the_same_owner_in_every_process():
    plan = WorkerPlan(2, 0, "/run", "token")
    # CRC-32 is fixed, unlike hash(), which Python salts per process.
    assert [plan.owner_of(f"s{n}") for n in range(8)] == [
        WorkerPlan(2, 1, "/run", "token").owner_of(f"s{n}") for n in range(8)
    ]
    assert plan.owner_of("session-a") == __import__("zlib").crc32(b"session-a") % 2
    owners = [WorkerPlan(4, 0, "/run", "t").owner_of(f"session-{n}") for n in range(400)]
    assert all(owners.count(index) > 60 for index in range(4))  # spread, not all on one worker
    assert plan.for_worker(1).peers() == [0]
    assert plan.socket_path(1) == "/run/worker-1.sock"


def test_a_call_whose_owner_does_not_answer_is_denied_and_recorded(make_server, tmp_path: Path):
    # This process is worker 0 of 2; worker 1's socket does not exist.
    plan = WorkerPlan(2, 0, str(tmp_path), "peer-secret")
    served = make_server(plan=plan)
    elsewhere = next(f"s{n}" for n in range(100) if plan.owner_of(f"s{n}") == 1)
    here = next(f"s{n}" for n in range(100) if plan.owner_of(f"s{n}") == 0)
    agent = served.agent

    call = {"id": "c1", "tool": "shell", "arguments": {"command": "ls"}, "session_id": elsewhere}
    refused = agent.post("/v1/decide", json=call)
    assert refused.status_code == 503
    body = refused.json()
    assert body["code"] == "worker_unavailable"
    assert "worker 1" in body["message"] and elsewhere in body["message"]
    assert body["decision"]["decision"] == "deny"
    [record] = [r for r in served.audit_records() if r["decision_id"] == body["decision"]["decision_id"]]
    assert record["error"]["code"] == "worker_unavailable"
    assert record["input"]["call"]["session_id"] == elsewhere

    data = agent.post("/v1/data/gatekeeper/decision", json={"input": {**call, "id": "c2"}})
    assert data.status_code == 503
    assert agent.get(f"/v1/sessions/{elsewhere}").status_code == 503

    # An approval this worker does not keep may be the silent worker's: not a 404.
    unknown = agent.get("/v1/approvals/nope")
    assert unknown.status_code == 503
    assert unknown.json()["message"].startswith("no approval nope here, and not every worker answered")

    local = agent.post("/v1/decide", json={**call, "id": "c3", "session_id": here})
    assert local.status_code == 200
    assert local.json()["decision"] == "allow"
    assert agent.get(f"/v1/sessions/{here}").status_code == 200
    metrics = agent.get("/metrics").text
    # Worker 1 is missing from /metrics (logged), worker 0's samples carry its label.
    assert 'gatekeeper_forwarded_requests_total{owner="1",status="error",worker="0"} 2.0' in metrics


def test_internal_routes_answer_only_with_the_peer_token(make_server, tmp_path: Path):
    plan = WorkerPlan(2, 0, str(tmp_path), "peer-secret")
    served = make_server(plan=plan)
    admin = served.client(ADMIN_TOKEN)
    assert admin.get("/internal/metrics").status_code == 404
    assert admin.get("/internal/metrics", headers={"x-gatekeeper-peer": "peer-secreT"}).status_code == 404
    own = served.client(None).get("/internal/metrics", headers={"x-gatekeeper-peer": "peer-secret"})
    assert own.status_code == 200
    assert "gatekeeper_decisions" in own.text
    health = served.client(AGENT_TOKEN).get("/health").json()
    assert (health["worker"], health["workers"]) == (0, 2)


def test_merged_metrics_label_every_sample_with_its_worker():
    first, second = ServiceMetrics(), ServiceMetrics()
    first.requests.labels("/v1/decide", "200").inc(3)
    second.requests.labels("/v1/decide", "200").inc(2)
    second.latency.observe(0.002)
    merged = merge_worker_metrics({1: second.render().decode(), 0: first.render().decode()}).decode()
    families = {family.name: family for family in text_string_to_metric_families(merged)}
    requests = families["gatekeeper_http_requests"]
    assert requests.type == "counter"
    totals = {s.labels["worker"]: s.value for s in requests.samples if s.name.endswith("_total")}
    assert totals == {"0": 3.0, "1": 2.0}
    latency = families["gatekeeper_decision_duration_seconds"]
    assert latency.type == "histogram"
    counts = {s.labels["worker"]: s.value for s in latency.samples if s.name.endswith("_count")}
    assert counts == {"0": 0.0, "1": 1.0}
    assert merged.count("# TYPE gatekeeper_http_requests_total counter") == 1


async def _hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = b"hello " + scope["path"].encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def test_the_peer_client_survives_the_worker_closing_idle_connections(tmp_path: Path):
    path = str(tmp_path / "w.sock")
    server = uvicorn.Server(uvicorn.Config(_hello, uds=path, log_level="warning", timeout_keep_alive=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    async def exchange() -> list[bytes]:
        client = UnixHttpClient(path)
        answers = [(await client.request("GET", "/a", headers={}, timeout_s=5)).body]
        await asyncio.sleep(1.6)  # the server has closed the kept-alive connection by now
        answers.append((await client.request("GET", "/b", headers={}, timeout_s=5)).body)
        answers += [
            answer.body
            for answer in await asyncio.gather(
                *(client.request("GET", f"/c{n}", headers={}, timeout_s=5) for n in range(20))
            )
        ]
        client.close()
        return answers

    try:
        answers = asyncio.run(exchange())
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert answers[:2] == [b"hello /a", b"hello /b"]
    assert answers[2:] == [b"hello /c%d" % n for n in range(20)]

    async def unreachable() -> None:
        await UnixHttpClient(str(tmp_path / "none.sock")).request("GET", "/", headers={}, timeout_s=1)

    with pytest.raises(PeerError, match=r"FileNotFoundError|ConnectionRefusedError"):
        asyncio.run(unreachable())


def test_log_lines_of_several_processes_never_interleave(tmp_path: Path):
    # Workers share the service's stderr; a line written in two pieces (text, then newline) gets
    # another process's line spliced into it.
    code = (
        "import structlog; from gatekeeper.cli.serve import configure_logging; "
        "configure_logging(worker={w}); log = structlog.get_logger('t'); "
        "[log.info('event_' + 'x' * 300, n=n) for n in range(2000)]"
    )
    log_path = tmp_path / "shared.log"
    with log_path.open("wb") as shared:
        writers = [
            subprocess.Popen([sys.executable, "-c", code.format(w=w)], stderr=shared) for w in range(4)
        ]
        for writer in writers:
            assert writer.wait(timeout=60) == 0
    lines = log_path.read_text().splitlines()
    assert len(lines) == 8000
    assert sorted({json.loads(line)["worker"] for line in lines}) == [0, 1, 2, 3]
