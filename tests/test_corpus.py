"""The labelled corpus (tests/corpus/*.jsonl) through the default engine: one test per case.

Each case says whether the call must be blocked (deny or ask) or allowed (allow or warn) and which
families must appear among the blocking violations; see tests/corpus/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall
from gatekeeper.policy.embedded import EmbeddedEngine

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
DEFAULTS = {"cwd": "/home/agent", "home": "/home/agent", "agent_home": "/home/agent/WorkSpace/Agent"}


def load_cases() -> list[dict]:
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                cases.append(json.loads(line))
    return cases


CASES = load_cases()


@pytest.fixture(scope="module")
def engine():
    engine = EmbeddedEngine()
    yield engine
    engine.close()


def case_call(case: dict) -> ToolCall:
    if "call" in case:
        call = dict(case["call"])
        call.setdefault("cwd", case.get("cwd", DEFAULTS["cwd"]))
        return ToolCall.model_validate(call)
    return ToolCall.shell(case["command"], cwd=case.get("cwd", DEFAULTS["cwd"]))


def decide_case(engine, case: dict):
    config = Config(agent_home=case.get("agent_home", DEFAULTS["agent_home"]), home=DEFAULTS["home"])
    return Gatekeeper(config, engine=engine).decide(case_call(case))


def test_corpus_is_not_empty():
    assert len(CASES) >= 400


@pytest.mark.parametrize("case", CASES, ids=[c["note"] for c in CASES])
def test_case(engine, case):
    decision = decide_case(engine, case)
    shown = json.dumps({"case": case, "decision": decision.model_dump(mode="json")}, indent=2)
    assert decision.error is None, shown
    if case["expect"] == "blocked":
        assert decision.blocked, shown
        blocking = {v.family for v in decision.violations if v.action in ("deny", "ask")}
        assert set(case["families"]) <= blocking, shown
    else:
        assert not decision.blocked, shown
    if "decision" in case:
        assert decision.decision.value == case["decision"], shown
