"""New calls without a session on OPA: analysed on a deciding thread, OPA awaited on the event loop.

What must hold: the same decisions and the same audit records as through the blocking client, one
record per call, answered only once durable; no more OPA queries at once than deciding threads, nor
than AWAITED_QUERIES; a decision already under way is recorded even when its client hangs up; calls
of a session, and an engine that cannot be awaited, still go to the deciding threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from service_helpers import AGENT_TOKEN, ScriptedEngine

from gatekeeper.core import Gatekeeper
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.server.service import AWAITED_QUERIES


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


class SlowAwaitedEngine(ScriptedEngine):
    """The scripted engine, awaitable, taking ``delay_s`` per query and noting the most at once."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.running = 0
        self.most_at_once = 0
        self.can_evaluate_async = True

    async def evaluate_async(self, document: dict[str, Any]) -> Any:
        self.running += 1  # only ever touched on the event loop
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            return self.evaluate(document)
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        return None


COMMANDS = [
    "ls -la",
    "git status",
    "cp -r /models/llama /tmp/x",
    "python3 -m http.server 8000 &",
    "kill -9 1234",
    "grep -rn TODO src/ | wc -l",
    "echo Y3AgLXIgL21vZGVscyAvdG1w | base64 -d | sh",
    "tar czf /tmp/src.tgz src/",
]


def call(command: str, call_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "tool": "shell", "arguments": {"command": command}, "cwd": "/home/agent", **extra}


def essentials(decision: dict[str, Any]) -> tuple[Any, ...]:
    rules = sorted(violation["rule"] for violation in decision["violations"])
    return decision["decision"], decision["policy_decision"], rules, decision["policy_revision"]


@pytest.mark.opa
def test_new_calls_await_opa_and_decide_as_the_blocking_client_does(make_server, opa_server):
    engine = CountedOpaEngine(opa_server.url)
    served = make_server(engine=engine, core={"home": "/home/agent"})
    calls = [call(command, f"c{number}") for number, command in enumerate(COMMANDS * 4)]
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
def test_calls_of_a_session_still_ask_opa_from_a_deciding_thread(make_server, opa_server):
    engine = CountedOpaEngine(opa_server.url)
    served = make_server(engine=engine)
    for number in range(3):
        answer = served.agent.post("/v1/decide", json=call("ls", f"s{number}", session_id="run-1"))
        assert answer.status_code == 200
    assert (engine.awaited, engine.blocking) == (0, 3)


def test_no_more_queries_at_once_than_deciding_threads_or_the_limit(make_server):
    engine = SlowAwaitedEngine(delay_s=0.05)
    served = make_server(engine=engine, threads=3)
    with ThreadPoolExecutor(12) as pool:
        answers = list(
            pool.map(lambda n: served.agent.post("/v1/decide", json=call(f"echo {n}", f"q{n}")), range(36))
        )
    assert [answer.json()["decision"] for answer in answers] == ["allow"] * 36
    assert len(engine.documents) == 36
    assert 1 < engine.most_at_once <= 3
    assert len(served.audit_records()) == 36

    engine = SlowAwaitedEngine(delay_s=0.05)
    served = make_server(engine=engine, threads=16)
    with ThreadPoolExecutor(24) as pool:
        list(pool.map(lambda n: served.agent.post("/v1/decide", json=call(f"echo {n}", f"r{n}")), range(48)))
    assert len(engine.documents) == 48
    assert AWAITED_QUERIES < 16
    assert 1 < engine.most_at_once <= AWAITED_QUERIES


def test_a_decision_under_way_is_recorded_when_its_client_hangs_up(make_server):
    engine = SlowAwaitedEngine(delay_s=1.0)
    served = make_server(engine=engine)
    with (
        httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {AGENT_TOKEN}"}) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/v1/decide", json=call("rm -rf build #deny", "gone"), timeout=0.2)
    deadline = time.monotonic() + 10
    while not served.audit_records() and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = served.audit_records()
    assert (record["call_id"], record["decision"]) == ("gone", "deny")


def test_an_engine_that_cannot_be_awaited_decides_on_the_threads(make_server):
    engine = SlowAwaitedEngine(delay_s=0.0)
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
