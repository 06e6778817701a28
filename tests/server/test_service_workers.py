"""``gatekeeper serve --workers 2``: real processes on one port, sessions kept whole, one audit chain.

Every request here opens its own connection, so the kernel spreads them over both workers
(``SO_REUSEPORT`` hashes each connection): calls of one session arrive at either worker and must
still be decided by the one that keeps the session, with its whole history.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from process_helpers import allow_all_policies, audit_verify, serve_process
from prometheus_client.parser import text_string_to_metric_families
from test_service_fault import Load, wait_for

from gatekeeper.policy.loader import default_policy_dir
from gatekeeper.server.workers import WorkerPlan

pytestmark = pytest.mark.slow

AGENT = "agent-token-w"
ADMIN = "admin-token-w"


def write_config(directory: Path, workers: int = 2) -> Path:
    path = directory / "gatekeeper.toml"
    path.write_text(
        f'[server]\nworkers = {workers}\nagent_tokens = ["{AGENT}"]\nadmin_tokens = ["{ADMIN}"]\n'
    )
    return path


def fresh(url: str, method: str, path: str, token: str = AGENT, **kwargs) -> httpx.Response:
    """One request on a connection of its own (so either worker may take it)."""
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, url + path, headers=headers, timeout=30.0, **kwargs)


def worker_pids(log_path: Path) -> dict[int, int]:
    """The latest pid of each worker, from the supervisor's ``worker_started`` lines."""
    pids: dict[int, int] = {}
    for line in log_path.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "worker_started":
                pids[event["worker"]] = event["pid"]
    return pids


def metric_total(text: str, sample_name: str, **labels: str) -> dict[str, float]:
    """Sum of a sample over everything but ``worker``, per worker."""
    per_worker: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                worker = sample.labels["worker"]
                per_worker[worker] = per_worker.get(worker, 0.0) + sample.value
    return per_worker


def sessions_for_each_worker(count: int = 2) -> list[str]:
    """Two session ids per worker, so both owners are exercised."""
    plan = WorkerPlan(count, 0, "/unused", "unused")
    chosen: dict[int, list[str]] = {index: [] for index in range(count)}
    number = 0
    while any(len(ids) < 2 for ids in chosen.values()):
        session_id = f"agent-run-{number}"
        owner = plan.owner_of(session_id)
        if len(chosen[owner]) < 2:
            chosen[owner].append(session_id)
        number += 1
    return [session_id for ids in chosen.values() for session_id in ids]


def test_sequence_rules_see_the_whole_session_whichever_worker_takes_the_call(tmp_path: Path):
    audit_log = tmp_path / "audit.jsonl"
    config = write_config(tmp_path)
    sessions = sessions_for_each_worker()
    calls = [
        "ls -la",
        "cp -r /home/agent/WorkSpace/Agent /tmp/agent-copy",
        "cd /tmp/agent-copy && python3 agent.py",
    ]
    with serve_process(tmp_path, audit_log, default_policy_dir(), "--config", str(config)) as server:
        answered_by = {fresh(server.url, "GET", "/health").json()["worker"] for _ in range(24)}
        assert answered_by == {0, 1}, "connections should reach both workers"

        last: dict[str, dict] = {}
        for command in calls:
            for session_id in sessions:
                call = {"tool": "shell", "arguments": {"command": command}, "session_id": session_id}
                response = fresh(server.url, "POST", "/v1/decide", json=call)
                assert response.status_code == 200, response.text
                last[session_id] = response.json()
        for session_id in sessions:
            # Launching the copy is replication only because the copy came earlier in the session.
            assert last[session_id]["decision"] == "deny"
            assert [v["rule"] for v in last[session_id]["violations"]] == ["replication.launch_copy"]
            for _ in range(4):
                history = fresh(server.url, "GET", f"/v1/sessions/{session_id}").json()["history"]
                assert [entry["commands"][0]["name"] for entry in history] == ["ls", "cp", "cd"]

        metrics = fresh(server.url, "GET", "/metrics").text
        decided = metric_total(metrics, "gatekeeper_decisions_total")
        assert set(decided) == {"0", "1"}
        assert sum(decided.values()) == len(calls) * len(sessions)
        forwarded = metric_total(metrics, "gatekeeper_forwarded_requests_total", status="200")
        assert sum(forwarded.values()) > 0, "some calls should have reached the worker not owning them"

    verify = audit_verify(audit_log)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    decisions = [r for r in records if r["msg"] == "decision_made"]
    assert len(decisions) == len(calls) * len(sessions)  # forwarded calls are recorded once, by the owner
    assert len({r["labels"]["id"] for r in decisions}) == 2  # both workers wrote to the one chain


def test_internal_routes_are_not_reachable_without_the_peer_token(tmp_path: Path):
    policies = allow_all_policies(tmp_path / "policies")
    config = write_config(tmp_path)
    with serve_process(tmp_path, tmp_path / "audit.jsonl", policies, "--config", str(config)) as server:
        for _ in range(6):
            plain = fresh(server.url, "GET", "/internal/metrics", token=ADMIN)
            assert plain.status_code == 404
            forged = httpx.get(server.url + "/internal/metrics", headers={"x-gatekeeper-peer": "guess"})
            assert forged.status_code == 404
            reload = httpx.post(server.url + "/internal/reload", headers={"x-gatekeeper-peer": ""})
            assert reload.status_code == 404
        assert "/internal" not in json.dumps(fresh(server.url, "GET", "/openapi.json").json()["paths"])


def test_admin_reload_reaches_every_worker(tmp_path: Path):
    policies = allow_all_policies(tmp_path / "policies")
    config = write_config(tmp_path)
    extra = ("--config", str(config), "--no-watch-policies")
    with serve_process(tmp_path, tmp_path / "audit.jsonl", policies, *extra) as server:
        # Both workers must have compiled the first revision before it changes on disk.
        wait_for(lambda: _answers_from(server.url) == {0, 1})
        before = fresh(server.url, "GET", "/health").json()["policy_revision"]
        main = policies / "gatekeeper" / "main.rego"
        main.write_text(main.read_text() + "\n# a new revision\n")

        response = fresh(server.url, "POST", "/v1/admin/reload", token=ADMIN)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["changed"] is True, body
        assert [worker["worker"] for worker in body["workers"]] == [0, 1]
        assert {worker["revision"] for worker in body["workers"]} == {body["revision"]}
        assert body["revision"] != before
        for _ in range(12):
            assert fresh(server.url, "GET", "/health").json()["policy_revision"] == body["revision"]

        main.write_text("package gatekeeper\n\ndecision := {")  # does not compile: nothing changes
        refused = fresh(server.url, "POST", "/v1/admin/reload", token=ADMIN)
        assert refused.status_code == 422
        for _ in range(6):
            assert fresh(server.url, "GET", "/health").json()["policy_revision"] == body["revision"]


ASK_POLICY = """package gatekeeper

decision := {
	"decision": "ask", "policy_decision": "ask", "mode": "enforce",
	"violations": [
		{"rule": "servers.listen", "family": "servers", "action": "ask", "message": "opens a port"},
	],
}
"""


def test_an_approval_reaches_the_worker_waiting_for_it(tmp_path: Path):
    policies = tmp_path / "policies"
    (policies / "gatekeeper").mkdir(parents=True)
    (policies / "gatekeeper" / "main.rego").write_text(ASK_POLICY)
    config = write_config(tmp_path)
    config.write_text(
        config.read_text() + '[server.approvals]\nenabled = true\non_ask = "wait"\nwait_s = 60\n'
    )
    audit_log = tmp_path / "audit.jsonl"
    with serve_process(tmp_path, audit_log, policies, "--config", str(config)) as server:
        executed: dict[str, httpx.Response] = {}
        call = {"tool": "shell", "arguments": {"command": "echo approved-run"}, "session_id": "run-1"}
        waiting = threading.Thread(
            target=lambda: executed.setdefault("answer", fresh(server.url, "POST", "/v1/execute", json=call))
        )
        waiting.start()

        def pending() -> list[dict]:
            return fresh(server.url, "GET", "/v1/approvals?status=pending", token=ADMIN).json()["approvals"]

        wait_for(lambda: len(pending()) == 1)
        for _ in range(8):  # whichever worker answers, it lists the approval the other may hold
            [approval] = pending()
            seen = fresh(server.url, "GET", f"/v1/approvals/{approval['id']}")
            assert seen.status_code == 200 and seen.json()["status"] == "pending"

        verdict = {"action": "approve", "reason": "checked"}
        approved = fresh(server.url, "POST", f"/v1/approvals/{approval['id']}", token=ADMIN, json=verdict)
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        waiting.join(timeout=60)
        answer = executed["answer"]
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"]["stdout"] == "approved-run\n"

        again = fresh(server.url, "POST", f"/v1/approvals/{approval['id']}", token=ADMIN, json=verdict)
        assert again.status_code == 409  # found on its worker, already resolved
        for _ in range(4):
            unknown = fresh(server.url, "POST", "/v1/approvals/no-such-id", token=ADMIN, json=verdict)
            assert unknown.status_code == 404
            assert fresh(server.url, "GET", "/v1/approvals/no-such-id").status_code == 404

    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    events = [r["msg"] for r in records if r.get("decision_id") == approval["id"]]
    assert events == ["decision_made", "approval_resolved", "execution_finished"]
    assert audit_verify(audit_log).returncode == 0


def test_a_worker_killed_mid_load_is_replaced_and_no_answered_decision_is_lost(tmp_path: Path):
    audit_log = tmp_path / "audit.jsonl"
    policies = allow_all_policies(tmp_path / "policies")
    with serve_process(tmp_path, audit_log, policies, "--workers", "2") as server:
        wait_for(lambda: len(worker_pids(server.log_path)) == 2)
        victim = worker_pids(server.log_path)[1]
        load = Load(server.url, "before").start()
        wait_for(lambda: load.answered() >= 150)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: worker_pids(server.log_path)[1] != victim)
        load.join()
        # The replacement answers on the shared port like the first one did.
        wait_for(lambda: _answers_from(server.url) == {0, 1}, timeout_s=60.0)
        again = Load(server.url, "after").start()
        wait_for(lambda: again.answered() >= 100)
        again.join()
        pids = worker_pids(server.log_path)
    for pid in pids.values():
        wait_for(lambda pid=pid: not _alive(pid), timeout_s=30.0)  # stopped with the supervisor

    verify = audit_verify(audit_log)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    recorded = {r["decision_id"]: r for r in records if r["msg"] == "decision_made"}
    for call_id, decision_id in {**load.received, **again.received}.items():
        assert decision_id in recorded, f"{call_id} was answered but is not in the audit log"
        assert recorded[decision_id]["call_id"] == call_id
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_policies_that_do_not_compile_stop_the_service_instead_of_restarting_workers(tmp_path: Path):
    broken = tmp_path / "policies" / "gatekeeper"
    broken.mkdir(parents=True)
    (broken / "main.rego").write_text("package gatekeeper\n\ndecision := {")
    command = [
        sys.executable, "-m", "gatekeeper", "serve", "--port", "0", "--workers", "2",
        "--policies", str(broken.parent), "--audit-log", str(tmp_path / "audit.jsonl"),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    assert run.returncode == 1
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    [cannot] = [e for e in events if e["event"] == "worker_cannot_start"][:1]
    assert "do not compile" in cannot["error"]
    assert sum(e["event"] == "worker_started" for e in events) == 2  # no restarts
    assert events[-1]["event"] == "server_stopped"


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path):
    policies = allow_all_policies(tmp_path / "policies")
    with serve_process(tmp_path, tmp_path / "audit.jsonl", policies, "--workers", "2") as server:
        wait_for(lambda: len(worker_pids(server.log_path)) == 2)
        pids = list(worker_pids(server.log_path).values())
        server.kill_hard()
    for pid in pids:
        wait_for(lambda pid=pid: not _alive(pid), timeout_s=30.0)


def _answers_from(url: str) -> set[int]:
    workers: set[int] = set()
    for _ in range(16):
        try:
            workers.add(httpx.get(url + "/health", timeout=5.0).json()["worker"])
        except httpx.HTTPError:
            time.sleep(0.1)
    return workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has stopped; only its parent (gone, or the test's process) would still reap it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
