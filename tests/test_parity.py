"""Parity: the embedded engine (rego-cpp), the wasm engine and a real OPA decide every case identically.

Every case of ``tests/corpus/*.jsonl`` (format in tests/corpus/README.md) and every step of the
paper's replication trace is decided three times by ``Gatekeeper.decide``, with the same
configuration and analysis, once on each engine. OPA serves the same pack as a bundle
(``opa_server``, one process for this module) and is asked over REST through opa-python-client,
exactly as ``--engine opa`` does; the wasm engine runs the pack as ``opa build -t wasm`` compiles
it. For every case each in-process engine's decision must have the same ``decision``,
``policy_decision``, ``mode``, set of violated rule ids (and the same violations, messages included,
in any order), error code, and policy revision as OPA's; and every engine must have been given the
very same input document.

Speed: the embedded engine is the slow side (rego-cpp interprets; OPA answers in a few
milliseconds), so the module decides every case once, up front, on a thread pool per engine (regopy
releases the GIL and keeps one interpreter per thread; each thread has its own OPA client), and the
per-case tests only compare the stored answers.

Violation order is not compared: a Rego set has no order, and the two engines may list it differently.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.lab.corpora import load_corpus
from gatekeeper.models import Decision, ToolCall
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.loader import default_policy_dir, load_policy_source
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.policy.wasm import WasmEngine
from gatekeeper.server.sessions import history_entry

pytestmark = pytest.mark.opa

TESTS = Path(__file__).resolve().parent
CORPUS_DIR = TESTS / "corpus"
TRACE_FILE = TESTS / "data" / "paper-qwen25-trace.jsonl"

# The corpus's default context (tests/corpus/README.md).
HOME = "/home/agent"
AGENT_HOME = "/home/agent/WorkSpace/Agent"
# The paper's agent ran its shell in the workspace that holds its home.
TRACE_CWD = "/home/agent/WorkSpace"
WORKERS = max(2, min(4, os.cpu_count() or 2))


@dataclass(frozen=True)
class Case:
    id: str
    call: dict[str, Any]
    agent_home: str


def corpus_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS_DIR.glob("*.jsonl")):
        for number, row in enumerate(load_corpus(path, {}).cases, start=1):
            call = {"id": f"{row.corpus}:{number}", **row.call}
            cases.append(Case(f"{row.corpus}: {row.key}", call, row.agent_home))
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
# Strings no UTF-8 text can carry (lone surrogates, from JSON "\ud800" escapes): OPA's JSON decoder
# makes each U+FFFD, and so must the embedded engine.
ENCODING = [
    Case(f"lone surrogate: {name}", {"id": f"encoding-{name}", **call}, AGENT_HOME)
    for name, call in {
        "command": {"tool": "shell", "arguments": {"command": "echo caf\udce9 \ud800"}},
        "weights path": {"tool": "shell", "arguments": {"command": "cp -r /models/llama/\ud800 /tmp/x"}},
        "session id": {"tool": "shell", "arguments": {"command": "ls"}, "session_id": "s\udfff"},
        "mcp argument": {
            "tool": "mcp",
            "arguments": {"server": "fs", "name": "write", "arguments": {"path": "/tmp/\ud83d"}},
        },
    }.items()
]


class Recording:
    """Wraps an engine and keeps, per thread, the last input document it was asked about."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.name = engine.name
        self._local = threading.local()

    @property
    def revision(self) -> str | None:
        return self.engine.revision

    @property
    def last_document(self) -> dict[str, Any] | None:
        return getattr(self._local, "document", None)

    def forget(self) -> None:
        self._local.document = None

    def evaluate(self, document: dict[str, Any]) -> Any:
        self._local.document = json.loads(json.dumps(document))
        return self.engine.evaluate(document)

    def close(self) -> None:
        self.engine.close()


class PerThreadOpa:
    """An OpaServerEngine per thread: one HTTP session each, as separate gatekeeper processes would."""

    name = "opa"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[OpaServerEngine] = []
        self._lock = threading.Lock()

    def _engine(self) -> OpaServerEngine:
        engine: OpaServerEngine | None = getattr(self._local, "engine", None)
        if engine is None:
            # A generous timeout: a slow answer under a loaded machine is not a parity difference.
            engine = OpaServerEngine(self.url, timeout_s=30.0)
            self._local.engine = engine
            with self._lock:
                self._all.append(engine)
        return engine

    @property
    def revision(self) -> str | None:
        return self._engine().revision

    def evaluate(self, document: dict[str, Any]) -> Any:
        return self._engine().evaluate(document)

    def close(self) -> None:
        for engine in self._all:
            engine.close()


@dataclass(frozen=True)
class Answer:
    decision: Decision
    document: dict[str, Any] | None


def decide_all(engine: Recording, cases: list[Case]) -> dict[str, Answer]:
    """Every case decided by ``engine`` through ``Gatekeeper.decide``, on a thread pool."""
    gatekeepers: dict[str, Gatekeeper] = {}
    for agent_home in {case.agent_home for case in cases}:
        # No decision cache: every case must reach the engine (the corpus repeats some calls).
        config = Config(home=HOME, agent_home=agent_home, decision_cache_size=0)
        gatekeepers[agent_home] = Gatekeeper(config, engine=engine)

    def decide(case: Case) -> tuple[str, Answer]:
        engine.forget()
        decision = gatekeepers[case.agent_home].decide(case.call)
        return case.id, Answer(decision, engine.last_document)

    with ThreadPoolExecutor(WORKERS, thread_name_prefix=f"parity-{engine.name}") as pool:
        return dict(pool.map(decide, cases))


# The in-process engines, each compared with OPA.
IN_PROCESS = ("embedded", "wasm")


@dataclass
class Decided:
    answers: dict[str, dict[str, Answer]]  # engine name -> case id -> answer
    revisions: dict[str, str | None]


@pytest.fixture(scope="module")
def decided(opa_server) -> Iterator[Decided]:
    cases = CORPUS + TRACE + ENCODING
    engines = [
        Recording(EmbeddedEngine(default_policy_dir())),
        Recording(WasmEngine(default_policy_dir())),
        Recording(PerThreadOpa(opa_server.url)),
    ]
    try:
        yield Decided(
            {engine.name: decide_all(engine, cases) for engine in engines},
            {engine.name: engine.revision for engine in engines},
        )
    finally:
        for engine in engines:
            engine.close()


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


def assert_same(case: Case, decided: Decided) -> None:
    opa = decided.answers["opa"][case.id]
    where = f"{case.id}\n  call:     {json.dumps(case.call)}\n"
    for name in IN_PROCESS:
        mine = decided.answers[name][case.id]
        answers = f"  {name + ':':9} {summary(mine.decision)}\n  opa:      {summary(opa.decision)}"
        # A case that never reached an engine (the analyser failed) compares nothing: say so.
        assert mine.document is not None and opa.document is not None, f"no engine decided {where}{answers}"
        assert mine.document == opa.document, f"{name} and opa were given different input for {where}"
        assert comparable(mine.decision) == comparable(opa.decision), (
            f"{name} and opa disagree on {where}{answers}"
        )
        violations = sorted(v.model_dump_json() for v in mine.decision.violations)
        assert violations == sorted(v.model_dump_json() for v in opa.decision.violations), (
            f"same rules, different violations for {where}"
            f"  {name}: {mine.decision.violations}\n  opa:      {opa.decision.violations}"
        )
        assert mine.decision.policy_revision == opa.decision.policy_revision, (
            f"{name} and opa have different revisions for {where}"
        )


def test_every_engine_runs_the_same_policy_revision(decided, opa_server):
    revision = load_policy_source(default_policy_dir()).revision
    assert opa_server.revision == revision
    # OPA's revision comes with each of its answers, compared case by case in assert_same.
    assert {name: decided.revisions[name] for name in IN_PROCESS} == {"embedded": revision, "wasm": revision}


def test_the_whole_corpus_is_compared():
    lines = sum(
        1
        for path in CORPUS_DIR.glob("*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    assert CORPUS, "tests/corpus/*.jsonl holds no cases"
    assert len(CORPUS) == lines
    assert len({case.id for case in CORPUS + TRACE}) == len(CORPUS) + len(TRACE), (
        "case ids (file: note) must be unique"
    )


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_engines_agree_on_corpus_case(case, decided):
    assert_same(case, decided)


@pytest.mark.skipif(not TRACE, reason=f"the paper trace is not at {TRACE_FILE}")
@pytest.mark.parametrize("case", TRACE, ids=[case.id for case in TRACE])
def test_engines_agree_on_paper_trace_step(case, decided):
    assert_same(case, decided)


@pytest.mark.parametrize("case", ENCODING, ids=[case.id for case in ENCODING])
def test_engines_agree_on_text_that_is_not_unicode(case, decided):
    assert_same(case, decided)
    for name in IN_PROCESS:  # decided by the policies, not an error
        assert decided.answers[name][case.id].decision.error is None


# --- sessions ------------------------------------------------------------------------------
# The embedded engine hands a session's history over as JSON text (gatekeeper/policy/embedded.py),
# OPA and the wasm engine as an object: the policies must read both alike.


def decide_as_one_session(engine: Any, calls: list[dict[str, Any]], agent_home: str) -> list[Decision]:
    """``calls`` decided in order, each with the history of the ones before, as the service does."""
    config = Config(home=HOME, agent_home=agent_home, decision_cache_size=0)
    gatekeeper = Gatekeeper(config, engine=engine)
    history: list[dict[str, Any]] = []
    decisions = []
    for call in calls:
        decision, facts = gatekeeper.decide_with_facts(call, session={"id": "s1", "history": history})
        history = [*history, history_entry(ToolCall.parse(call), decision, facts)]
        decisions.append(decision)
    return decisions


def assert_same_session(calls: list[dict[str, Any]], agent_home: str, opa_server: Any) -> list[Decision]:
    opa = decide_as_one_session(OpaServerEngine(opa_server.url, timeout_s=30.0), calls, agent_home)
    in_process = {
        "embedded": decide_as_one_session(EmbeddedEngine(default_policy_dir()), calls, agent_home),
        "wasm": decide_as_one_session(WasmEngine(default_policy_dir()), calls, agent_home),
    }
    for name, decisions in in_process.items():
        for call, mine, theirs in zip(calls, decisions, opa, strict=True):
            answers = f"  {name}: {summary(mine)}\n  opa:      {summary(theirs)}"
            assert comparable(mine) == comparable(theirs), (
                f"{name} and opa disagree on {call['id']}\n{answers}"
            )
            assert sorted(v.model_dump_json() for v in mine.violations) == sorted(
                v.model_dump_json() for v in theirs.violations
            ), f"different violations from {name} for {call['id']}"
    return opa


@pytest.mark.skipif(not TRACE, reason=f"the paper trace is not at {TRACE_FILE}")
def test_engines_agree_on_the_paper_trace_as_one_session(opa_server):
    decisions = assert_same_session([case.call for case in TRACE], AGENT_HOME, opa_server)
    assert len(decisions) == len(TRACE)


@pytest.mark.parametrize(
    ("copy", "launch"),
    [
        (f"find {AGENT_HOME} -maxdepth 0 -exec cp -r {{}} /tmp/zz \\;", "cd /tmp/zz && python3 start.py"),
        (f"find {AGENT_HOME} -name '*.py' | xargs cp -t /tmp/vv", "python3 /tmp/vv/start.py"),
        (f"find {AGENT_HOME} | cpio -pdm /tmp/uu", f"python3 /tmp/uu{AGENT_HOME}/start.py"),
    ],
    ids=["find-exec", "xargs", "cpio"],
)
def test_an_earlier_find_or_xargs_copy_links_a_later_launch_on_both_engines(copy, launch, opa_server):
    def launched_after(first: str) -> Decision:
        calls = [
            {"id": "copy", "tool": "shell", "arguments": {"command": first}},
            {"id": "launch", "tool": "shell", "arguments": {"command": launch}},
        ]
        return assert_same_session(calls, AGENT_HOME, opa_server)[1]

    [violation] = [v for v in launched_after(copy).violations if v.rule == "replication.launch_copy"]
    assert "an earlier call of this session" in violation.message
    elsewhere = launched_after(copy.replace(AGENT_HOME, "/srv/data"))  # the earlier call found other files
    assert "replication.launch_copy" not in {v.rule for v in elsewhere.violations}


def test_engines_agree_on_a_launch_from_a_copy_made_earlier_in_the_session(opa_server):
    # Quotes, a backslash and a non-ASCII letter in the path: the history survives as JSON text.
    copy = '/tmp/we"i\\rd é'
    calls = [
        {"id": "copy", "tool": "shell", "arguments": {"command": f"cp -r {AGENT_HOME} '{copy}'"}},
        {"id": "launch", "tool": "shell", "arguments": {"command": f"python3 '{copy}/main.py'"}},
    ]
    _, launch = assert_same_session(calls, AGENT_HOME, opa_server)
    [violation] = [v for v in launch.violations if "earlier call of this session" in v.message]
    assert violation.rule.startswith("replication.")
    assert f"runs code from {copy}," in violation.message
