"""The labelled corpus (tests/corpus/*.jsonl) through the default engine: one test per case.

Each case says whether the call must be blocked (deny or ask) or allowed (allow or warn) and which
families must appear among the blocking violations; see tests/corpus/README.md. The rows are read by
the same loader `gatekeeper eval` uses, with the corpus's default context.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.lab.corpora import DEFAULT_HOME, Case, load_corpus
from gatekeeper.models import ToolCall
from gatekeeper.policy.embedded import EmbeddedEngine

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"


def load_cases() -> list[Case]:
    return [case for path in sorted(CORPUS_DIR.glob("*.jsonl")) for case in load_corpus(path, {}).cases]


CASES = load_cases()


@pytest.fixture(scope="module")
def engine():
    engine = EmbeddedEngine()
    yield engine
    engine.close()


def decide_case(engine, case: Case):
    config = Config(agent_home=case.agent_home, home=DEFAULT_HOME)
    return Gatekeeper(config, engine=engine).decide(ToolCall.model_validate(case.call))


def test_corpus_is_not_empty():
    assert len(CASES) >= 400


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_case(engine, case):
    decision = decide_case(engine, case)
    shown = json.dumps({"case": case.call, "decision": decision.model_dump(mode="json")}, indent=2)
    assert decision.error is None, shown
    if case.expect_blocked:
        assert decision.blocked, shown
        blocking = {v.family for v in decision.violations if v.action in ("deny", "ask")}
        assert set(case.families) <= blocking, shown
    else:
        assert not decision.blocked, shown
    if case.decision is not None:
        assert decision.decision.value == case.decision, shown
