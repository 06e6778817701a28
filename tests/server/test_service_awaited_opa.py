"""New calls on OPA: analysed on the event loop when short (else on a deciding thread), OPA awaited
on the event loop.

What must hold: the same decisions and the same audit records as through the blocking client, one
record per call, answered only once durable; no more OPA queries at once than deciding threads, nor
than AWAITED_QUERIES; a decision already under way is recorded even when its client hangs up; calls
of a session are decided one at a time, each seeing the ones before it, while sessions go side by
side, and a call of a busy session waits on a deciding thread; an engine that cannot be awaited
still decides on the deciding threads.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from service_helpers import MIXED_COMMANDS, AwaitedScriptedEngine

from gatekeeper.core import Gatekeeper
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.server.service import AWAITED_QUERIES, INLINE_ANALYSIS_CHARS


class CountedOpaEngine(OpaServerEngine):
    """The real OPA engine, counting which of its two clients each query went through."""

    def __init__(self, url: str) -> None:
        super().__init__(url, timeout_s=5.0)
        self.blocking = 0
        self.awaited = 0

    def evaluate(self, document: dict[str, Any]) -> Any:
        self.blocking += 1
        return super().evaluate(document)

    async def evaluate_async(self, document: dict[str, Any]) -> Any:
        self.awaited += 1
        return await super().evaluate_async(document)


def call(command: str, call_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "tool": "shell", "arguments": {"command": command}, "cwd": "/home/agent", **extra}


def hang_up_while_deciding(served: Any, body: dict[str, Any]) -> None:
    """Post ``body`` and give up before the (slow) engine answers, as a client that hangs up."""
    with pytest.raises(httpx.ReadTimeout):
        served.agent.post("/v1/decide", json=body, timeout=0.2)


def essentials(decision: dict[str, Any]) -> tuple[Any, ...]:
    rules = sorted(violation["rule"] for violation in decision["violations"])
    return decision["decision"], decision["policy_decision"], rules, decision["policy_revision"]


@pytest.mark.opa
def test_new_calls_await_opa_and_decide_as_the_blocking_client_does(make_server, opa_server):
    engine = CountedOpaEngine(opa_server.url)
    served = make_server(engine=engine, core={"home": "/home/agent"})
    calls = [call(command, f"c{number}") for number, command in enumerate(MIXED_COMMANDS * 4)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: served.agent.post("/v1/decide", json=body), calls))
    assert [answer.status_code for answer in answers] == [200] * len(calls)
    assert (engine.awaited, engine.blocking) == (len(calls), 0)

    # The same calls through the blocking client, outside the service.
    reference = Gatekeeper(served.service.config, engine=OpaServerEngine(opa_server.url, timeout_s=5.0))
    for body, answer in zip(calls, answers, strict=True):
        expected = reference.decide(body).model_dump(mode="json")
        assert essentials(answer.json()) == essentials(expected), body["arguments"]["command"]
    assert {essentials(answer.json())[0] for answer in answers} == {"allow", "deny"}

    records = served.audit_records()
    assert sorted(record["call_id"] for record in records) == sorted(body["id"] for body in calls)
    by_call = {record["call_id"]: record for record in records}
    for body, answer in zip(calls, answers, strict=True):
        decided = answer.json()
        assert by_call[body["id"]]["decision_id"] == decided["decision_id"]
        assert by_call[body["id"]]["decision"] == decided["decision"]
        assert by_call[body["id"]]["input"]["facts"]["commands"], "the record keeps the facts"


@pytest.mark.opa
def test_calls_of_a_session_await_opa_and_see_the_earlier_calls(make_server, opa_server):
    engine = CountedOpaEngine(opa_server.url)
    served = make_server(engine=engine, core={"home": "/home/agent"})
    launch = "cd /tmp/zz && python3 start.py --port 8003"
    copied = served.agent.post("/v1/decide", json=call("cp -r /home/agent /tmp/zz", "s1", session_id="run-1"))
    after_copy = served.agent.post("/v1/decide", json=call(launch, "s2", session_id="run-1")).json()
    elsewhere = served.agent.post("/v1/decide", json=call(launch, "s3", session_id="run-2")).json()
    assert (engine.awaited, engine.blocking) == (3, 0)

    assert copied.status_code == 200
    [launch_copy] = [v for v in after_copy["violations"] if v["rule"] == "replication.launch_copy"]
    assert "an earlier call of this session copied the agent home" in launch_copy["message"]
    assert after_copy["decision"] == "deny"
    assert "replication.launch_copy" not in {v["rule"] for v in elsewhere["violations"]}

    history = served.agent.get("/v1/sessions/run-1").json()["history"]
    assert [(entry["id"], entry["decision_id"]) for entry in history] == [
        ("s1", copied.json()["decision_id"]),
        ("s2", after_copy["decision_id"]),
    ]
    records = {record["call_id"]: record for record in served.audit_records()}
    assert records["s2"]["input"]["session"] == {"id": "run-1", "history": [copied.json()["decision_id"]]}


def test_calls_of_one_session_are_decided_one_at_a_time_and_sessions_side_by_side(make_server):
    engine = AwaitedScriptedEngine(delay_s=0.02)
    served = make_server(engine=engine, threads=8)
    bodies = [call("ls", f"{session}-{n}", session_id=session) for n in range(10) for session in "abcd"]
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda body: served.agent.post("/v1/decide", json=body), bodies))
    assert [answer.json()["decision"] for answer in answers] == ["allow"] * len(bodies)
    for session in "abcd":
        seen = [d["session"] for d in engine.documents if d["session"]["id"] == session]
        # each call saw every call of its session decided before it, and no call saw another's
        assert sorted(len(s["history"]) for s in seen) == list(range(10))
    assert 1 < engine.most_at_once <= 4  # one query per session at a time, sessions side by side
    assert len(served.audit_records()) == len(bodies)


def test_a_session_call_whose_client_hangs_up_is_recorded_and_lets_the_next_one_go(make_server):
    engine = AwaitedScriptedEngine(delay_s=1.0)
    served = make_server(engine=engine)
    hang_up_while_deciding(served, call("rm -rf build #deny", "gone", session_id="s"))
    engine.delay_s = 0.0
    # Sent while the first is still being decided: it waits for it, then sees it.
    answer = served.agent.post("/v1/decide", json=call("ls", "next", session_id="s"))
    assert answer.json()["decision"] == "allow"
    [earlier] = engine.documents[-1]["session"]["history"]
    assert (earlier["id"], earlier["decision"]) == ("gone", "deny")
    assert [record["call_id"] for record in served.audit_records()] == ["gone", "next"]


def test_no_more_queries_at_once_than_deciding_threads_or_the_limit(make_server):
    engine = AwaitedScriptedEngine(delay_s=0.05)
    served = make_server(engine=engine, threads=3)
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda n: served.agent.post("/v1/decide", json=call(f"echo {n}", f"q{n}")), range(36))
        )
    assert [answer.json()["decision"] for answer in answers] == ["allow"] * 36
    assert len(engine.documents) == 36
    assert 1 < engine.most_at_once <= 3
    assert len(served.audit_records()) == 36

    engine = AwaitedScriptedEngine(delay_s=0.05)
    served = make_server(engine=engine, threads=16)
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(lambda n: served.agent.post("/v1/decide", json=call(f"echo {n}", f"r{n}")), range(48)))
    assert len(engine.documents) == 48
    assert AWAITED_QUERIES < 16
    assert 1 < engine.most_at_once <= AWAITED_QUERIES


def test_a_decision_under_way_is_recorded_when_its_client_hangs_up(make_server):
    engine = AwaitedScriptedEngine(delay_s=1.0)
    served = make_server(engine=engine)
    hang_up_while_deciding(served, call("rm -rf build #deny", "gone"))
    deadline = time.monotonic() + 10
    while not served.audit_records() and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = served.audit_records()
    assert (record["call_id"], record["decision"]) == ("gone", "deny")


def test_an_engine_that_cannot_be_awaited_decides_on_the_threads(make_server):
    engine = AwaitedScriptedEngine(delay_s=0.0)
    engine.can_evaluate_async = False  # as the OPA engine says for a remote OPA
    threads_seen: set[str] = set()
    evaluate = engine.evaluate

    def noted(document: dict[str, Any]) -> Any:
        threads_seen.add(threading.current_thread().name)
        return evaluate(document)

    engine.evaluate = noted  # type: ignore[method-assign]
    served = make_server(engine=engine)
    assert served.agent.post("/v1/decide", json=call("ls", "t1")).json()["decision"] == "allow"
    assert len(threads_seen) == 1 and next(iter(threads_seen)).startswith("gk-decide")


@pytest.mark.opa
def test_awkward_text_in_a_session_call_is_decided_and_recorded(make_server, opa_server):
    engine = CountedOpaEngine(opa_server.url)
    served = make_server(engine=engine)
    # A lone surrogate (valid JSON text, not valid UTF-8), a quote, a backslash and a newline.
    session = 's\udfff"\\'
    first = {**call('echo "\udfff\\\n"', "w1"), "session_id": session}
    later = {**call("ls", "w2"), "session_id": session}
    answers = [
        served.agent.post(
            "/v1/decide", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        for body in (first, later)
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    # Text that is not UTF-8 cannot be analysed: the pack denies it, by rule, not by error.
    assert answers[0].json()["decision"] == "deny"
    assert [v["rule"] for v in answers[0].json()["violations"]] == ["evasion.unanalysable"]
    assert (answers[1].json()["decision"], answers[1].json()["error"]) == ("allow", None)
    assert engine.awaited == 2
    [record] = [r for r in served.audit_records() if r["call_id"] == "w2"]
    assert record["session_id"] == session
    assert record["input"]["session"]["history"] == [answers[0].json()["decision_id"]]


def analysing_threads(served: Any) -> dict[str, str]:
    """Which thread analysed each call (by call id), noted as the service starts its decisions."""
    seen: dict[str, str] = {}
    start = served.service.gatekeeper.start

    def noted(call: Any, **fields: Any) -> Any:
        seen[call.id] = threading.current_thread().name
        return start(call, **fields)

    served.service.gatekeeper.start = noted
    return seen


def test_short_calls_are_analysed_on_the_event_loop_and_long_ones_on_a_deciding_thread(make_server):
    engine = AwaitedScriptedEngine()
    served = make_server(engine=engine)
    seen = analysing_threads(served)
    long_command = "echo " + "x" * INLINE_ANALYSIS_CHARS
    # Text nested in an MCP call's arguments counts too.
    steps = [{"cmd": "y" * (INLINE_ANALYSIS_CHARS // 2)}] * 3
    nested = {"server": "s", "name": "run", "arguments": {"steps": steps}}
    bodies = [
        call("ls -la", "short"),
        call(long_command, "long"),
        {"id": "nested", "tool": "mcp", "arguments": nested},
        call("ls", "free", session_id="s"),
    ]
    for body in bodies:
        assert served.agent.post("/v1/decide", json=body).status_code == 200
    assert seen["long"].startswith("gk-decide")
    assert seen["nested"].startswith("gk-decide")
    assert not seen["short"].startswith("gk-decide")
    assert not seen["free"].startswith("gk-decide")  # its session was free: taken on the loop
    assert len(served.audit_records()) == 4


def test_a_call_of_a_busy_session_waits_on_a_deciding_thread(make_server):
    engine = AwaitedScriptedEngine(delay_s=0.5)
    served = make_server(engine=engine)
    seen = analysing_threads(served)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(served.agent.post, "/v1/decide", json=call("ls", "first", session_id="s"))
        deadline = time.monotonic() + 10
        while engine.running == 0 and time.monotonic() < deadline:  # the first holds its session
            time.sleep(0.01)
        second = pool.submit(served.agent.post, "/v1/decide", json=call("pwd", "second", session_id="s"))
        answers = [first.result(), second.result()]
    assert [answer.json()["decision"] for answer in answers] == ["allow", "allow"]
    assert not seen["first"].startswith("gk-decide")
    assert seen["second"].startswith("gk-decide")
    [earlier] = engine.documents[-1]["session"]["history"]
    assert earlier["id"] == "first"
