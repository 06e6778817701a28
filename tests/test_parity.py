"""Parity: the embedded engine (rego-cpp) and a real OPA decide every corpus case identically.

Every case of ``tests/corpus/*.jsonl`` (format in tests/corpus/README.md) and every step of the
paper's replication trace is decided twice by ``Gatekeeper.decide``, with the same configuration and
analysis, once on each engine. OPA serves the same pack as a bundle (``opa_server``). For every case
the two decisions must have the same ``decision``, ``policy_decision``, ``mode``, set of violated rule
ids (and the same violations, messages included, in any order), error code, and policy revision; and
both engines must have been given the very same input document.

Violation order is not compared: a Rego set has no order, and the two engines may list it differently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.models import Decision
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.loader import default_policy_dir, load_policy_source
from gatekeeper.policy.opa_server import OpaServerEngine

pytestmark = pytest.mark.opa

TESTS = Path(__file__).resolve().parent
CORPUS_DIR = TESTS / "corpus"
TRACE_FILE = TESTS.parent.parent / "shared" / "corpora" / "paper-qwen25-trace.jsonl"

# The corpus's default context (tests/corpus/README.md).
HOME = "/home/agent"
DEFAULT_CWD = "/home/agent"
AGENT_HOME = "/home/agent/WorkSpace/Agent"
# The paper's agent ran its shell in the workspace that holds its home.
TRACE_CWD = "/home/agent/WorkSpace"


@dataclass(frozen=True)
class Case:
    id: str
    call: dict[str, Any]
    agent_home: str


def corpus_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "call" in row:
                call = dict(row["call"])
            else:
                call = {"tool": "shell", "arguments": {"command": row["command"]}}
            call.setdefault("id", f"{path.stem}:{number}")
            call.setdefault("cwd", row.get("cwd", DEFAULT_CWD))
            cases.append(Case(f"{path.stem}: {row['note']}", call, row.get("agent_home", AGENT_HOME)))
    return cases


def trace_cases() -> list[Case]:
    if not TRACE_FILE.is_file():
        return []
    cases = []
    for line in TRACE_FILE.read_text(encoding="utf-8").splitlines():
        step = json.loads(line)
        call = {
            "id": f"step-{step['step']}",
            "tool": step.get("tool", "shell"),
            "arguments": {"command": step["command"]},
            "cwd": TRACE_CWD,
        }
        cases.append(Case(f"paper trace step {step['step']} ({step['label']})", call, AGENT_HOME))
    return cases


CORPUS = corpus_cases()
TRACE = trace_cases()


class Recording:
    """Wraps an engine and keeps the last input document it was asked about."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self.last_document: dict[str, Any] | None = None

    @property
    def revision(self) -> str | None:
        return self.engine.revision

    def evaluate(self, document: dict[str, Any]) -> Any:
        self.last_document = json.loads(json.dumps(document))
        return self.engine.evaluate(document)

    def close(self) -> None:
        self.engine.close()


class EnginePair:
    """Two Gatekeepers per agent home, identical but for the engine."""

    def __init__(self, embedded: Recording, opa: Recording) -> None:
        self.engines = {"embedded": embedded, "opa": opa}
        self._gatekeepers: dict[tuple[str, str], Gatekeeper] = {}

    def decide(self, engine: str, case: Case) -> tuple[Decision, dict[str, Any] | None]:
        key = (engine, case.agent_home)
        if key not in self._gatekeepers:
            config = Config(home=HOME, agent_home=case.agent_home)
            self._gatekeepers[key] = Gatekeeper(config, engine=self.engines[engine])
        recording = self.engines[engine]
        recording.last_document = None
        decision = self._gatekeepers[key].decide(case.call)
        return decision, recording.last_document


@pytest.fixture(scope="module")
def pair(opa_server) -> Iterator[EnginePair]:
    embedded = Recording(EmbeddedEngine(default_policy_dir()))
    # A generous timeout: a slow answer under a loaded machine is not a parity difference.
    opa = Recording(OpaServerEngine(opa_server.url, timeout_s=10.0))
    yield EnginePair(embedded, opa)
    embedded.close()
    opa.close()


def summary(decision: Decision) -> str:
    rules = sorted(v.rule for v in decision.violations)
    error = f" error={decision.error.code}: {decision.error.message[:200]}" if decision.error else ""
    return f"{decision.decision.value} (policy {decision.policy_decision}) rules={rules}{error}"


def comparable(decision: Decision) -> dict[str, Any]:
    return {
        "decision": decision.decision,
        "policy_decision": decision.policy_decision,
        "mode": decision.mode,
        "rules": sorted({v.rule for v in decision.violations}),
        "error": decision.error.code if decision.error else None,
    }


def assert_same(case: Case, pair: EnginePair) -> None:
    embedded, embedded_input = pair.decide("embedded", case)
    opa, opa_input = pair.decide("opa", case)
    where = f"{case.id}\n  call:     {json.dumps(case.call)}\n"
    answers = f"  embedded: {summary(embedded)}\n  opa:      {summary(opa)}"
    # A case that never reached an engine (the analyser failed) compares nothing: say so.
    assert embedded_input is not None and opa_input is not None, f"no engine decided {where}{answers}"
    assert embedded_input == opa_input, f"the engines were given different input for {where}"
    assert comparable(embedded) == comparable(opa), f"the engines disagree on {where}{answers}"
    violations = sorted(v.model_dump_json() for v in embedded.violations)
    assert violations == sorted(v.model_dump_json() for v in opa.violations), (
        f"same rules, different violations for {where}"
        f"  embedded: {embedded.violations}\n  opa:      {opa.violations}"
    )
    assert embedded.policy_revision == opa.policy_revision, f"different revisions for {where}"


def test_both_engines_run_the_same_policy_revision(pair, opa_server):
    revision = load_policy_source(default_policy_dir()).revision
    assert opa_server.revision == revision
    assert pair.engines["embedded"].revision == revision


def test_the_whole_corpus_is_compared():
    lines = sum(
        1
        for path in CORPUS_DIR.glob("*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    assert CORPUS, "tests/corpus/*.jsonl holds no cases"
    assert len(CORPUS) == lines
    assert len({case.id for case in CORPUS}) == len(CORPUS), "case ids (file: note) must be unique"


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_engines_agree_on_corpus_case(case, pair):
    assert_same(case, pair)


@pytest.mark.skipif(not TRACE, reason=f"the paper trace is not at {TRACE_FILE}")
@pytest.mark.parametrize("case", TRACE, ids=[case.id for case in TRACE])
def test_engines_agree_on_paper_trace_step(case, pair):
    assert_same(case, pair)
