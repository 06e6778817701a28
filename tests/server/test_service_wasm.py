"""The service on the wasm engine: calls evaluated on the event loop within a budget, and again on a
deciding thread when they need more.

What must hold: the same decisions as the engine gives outside the service, one audit record per
call; short calls analysed and evaluated on the loop, long ones analysed and evaluated on a deciding
thread; a call past the budget evaluated again on a deciding thread (and counted),
a call past the deadline an audited ``engine_timeout`` deny; sessions see their earlier calls.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from service_helpers import MIXED_COMMANDS, serve

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.policy.loader import default_policy_dir
from gatekeeper.policy.wasm import WasmEngine
from gatekeeper.server.service import INLINE_ANALYSIS_CHARS
from gatekeeper.testing import FAST_COMMAND, SLOW_COMMAND, write_slow_policy

pytestmark = pytest.mark.opa  # the engine compiles the pack with opa


@pytest.fixture(autouse=True)
def _needs_opa(opa_binary):
    """Skipped without opa, except under CI=true (see conftest)."""


class ThreadRecordingWasm(WasmEngine):
    """The real wasm engine, noting which thread ran each evaluation, and how."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.evaluations: list[tuple[str, str]] = []

    def evaluate(self, document: dict[str, Any]) -> Any:
        self.evaluations.append(("whole deadline", threading.current_thread().name))
        return super().evaluate(document)

    def evaluate_briefly(self, document: dict[str, Any], budget_s: float) -> Any:
        self.evaluations.append(("budget", threading.current_thread().name))
        return super().evaluate_briefly(document, budget_s)


COMMANDS = [
    *MIXED_COMMANDS,
    "grep -rn TODO src/ | wc -l  # " + "x" * INLINE_ANALYSIS_CHARS,  # analysed on a thread
]


def test_the_pack_on_wasm_decides_in_the_service_as_outside_it(tmp_path):
    engine = ThreadRecordingWasm(default_policy_dir())
    outside = Gatekeeper(Config(decision_cache_size=0), engine=WasmEngine(default_policy_dir()))
    with serve(tmp_path, engine=engine, core={"decision_cache_size": 0}) as served:
        loop_thread = served.thread.name
        answers = [
            served.agent.post(
                "/v1/decide", json={"id": f"c{n}", "tool": "shell", "arguments": {"command": command}}
            ).json()
            for n, command in enumerate(COMMANDS)
        ]
        records = served.audit_records()
    for command, answer in zip(COMMANDS, answers, strict=True):
        expected = outside.decide({"tool": "shell", "arguments": {"command": command}})
        assert answer["decision"] == expected.decision.value, command
        assert sorted(v["rule"] for v in answer["violations"]) == sorted(v.rule for v in expected.violations)
    assert [a["decision"] for a in answers].count("deny") >= 4
    assert sorted(r["call_id"] for r in records) == sorted(f"c{n}" for n in range(len(COMMANDS)))
    # The short calls evaluated on the loop within the budget, the long one on a deciding thread.
    *short, (kind, thread) = engine.evaluations
    assert short == [("budget", loop_thread)] * (len(COMMANDS) - 1)
    assert kind == "whole deadline" and thread.startswith("gk-decide")
    outside.close()


def test_a_call_past_the_budget_is_evaluated_again_on_a_deciding_thread(tmp_path):
    engine = ThreadRecordingWasm(write_slow_policy(tmp_path / "policies"))
    with serve(tmp_path, engine=engine, core={"decision_cache_size": 0}) as served:
        slow = served.agent.post(
            "/v1/decide", json={"id": "slow", "tool": "shell", "arguments": {"command": SLOW_COMMAND}}
        )
        fast = served.agent.post(
            "/v1/decide", json={"id": "fast", "tool": "shell", "arguments": {"command": FAST_COMMAND}}
        )
        metrics = served.agent.get("/metrics").text
        records = {record["call_id"]: record for record in served.audit_records()}
        loop_thread = served.thread.name
    assert slow.json()["decision"] == "allow"  # decided, with the engine's own deadline
    assert fast.json()["decision"] == "allow"
    assert records["slow"]["result"]["work"] == int(SLOW_COMMAND)
    (kind, first), (kind_again, second), (fast_kind, third) = engine.evaluations
    assert (kind, first) == ("budget", loop_thread)
    assert kind_again == "whole deadline" and second.startswith("gk-decide")
    assert (fast_kind, third) == ("budget", loop_thread)
    assert "gatekeeper_inline_budget_exceeded_total 1.0" in metrics


def test_a_call_past_the_deadline_is_an_audited_timeout(tmp_path):
    engine = WasmEngine(write_slow_policy(tmp_path / "policies"), timeout_s=0.1)
    with serve(tmp_path, engine=engine, core={"decision_cache_size": 0}) as served:
        slow = served.agent.post(
            "/v1/decide", json={"id": "slow", "tool": "shell", "arguments": {"command": SLOW_COMMAND}}
        )
        fast = served.agent.post(
            "/v1/decide", json={"id": "fast", "tool": "shell", "arguments": {"command": FAST_COMMAND}}
        )
        records = {record["call_id"]: record for record in served.audit_records()}
    assert (slow.json()["decision"], slow.json()["error"]["code"]) == ("deny", "engine_timeout")
    assert records["slow"]["error"]["code"] == "engine_timeout"
    assert fast.json()["decision"] == "allow"


def test_a_session_on_wasm_sees_its_earlier_copy(tmp_path):
    agent_home = "/home/agent/WorkSpace/Agent"
    core = {"decision_cache_size": 0, "agent_home": agent_home, "home": "/home/agent"}
    with serve(tmp_path, engine=WasmEngine(default_policy_dir()), core=core) as served:
        steps = [f"cp -r {agent_home} /tmp/replica", "cd /tmp/replica && python3 main.py"]
        answers = [
            served.agent.post(
                "/v1/decide",
                json={"id": f"s{n}", "tool": "shell", "arguments": {"command": c}, "session_id": "run-1"},
            ).json()
            for n, c in enumerate(steps)
        ]
        elsewhere = served.agent.post(
            "/v1/decide",
            json={"id": "other", "tool": "shell", "arguments": {"command": steps[1]}, "session_id": "run-2"},
        ).json()
    launch_rules = {v["rule"] for v in answers[1]["violations"]}
    assert answers[1]["decision"] == "deny"
    assert any(
        v["rule"].startswith("replication.") and "earlier call of this session" in v["message"]
        for v in answers[1]["violations"]
    ), launch_rules
    assert not any("earlier call of this session" in v["message"] for v in elsewhere["violations"])
