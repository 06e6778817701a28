"""The decision cache in front of every engine the service runs: what a hit skips, what it must not hide.

A hit skips the analysis and the evaluation, so it must be keyed on everything either of them sees
and must never outlive what it was computed under: a new policy revision, a session history that
grew, or (for OPA, which reports its revision only with an answer) an engine that stopped answering.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import EngineUnavailable
from gatekeeper.models import Outcome
from gatekeeper.policy.cache import DecisionCache
from gatekeeper.policy.opa_server import OpaServerEngine
from gatekeeper.testing import StaticEngine, shell_call

ALLOW = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}


class FakeOpa(StaticEngine):
    """Answers like a remote engine: cached only while it keeps answering."""

    name = "opa"


def cached_gatekeeper(
    engine: StaticEngine, config: Config | None = None, max_age_s: float = 60.0
) -> Gatekeeper:
    """A Gatekeeper whose OPA answers are cached, as ``gatekeeper serve --opa-cache-max-age`` sets up."""
    return Gatekeeper(config or Config(), engine=engine, remote_cache_max_age_s=max_age_s)


def test_a_hit_skips_analysis_and_evaluation_and_keeps_the_facts(monkeypatch: pytest.MonkeyPatch):
    engine = FakeOpa(ALLOW)
    gatekeeper = cached_gatekeeper(engine)
    analysed: list[Any] = []
    import gatekeeper.core as core  # noqa: PLC0415 - the one module whose analyser call is counted

    real = core.analyse_call
    monkeypatch.setattr(core, "analyse_call", lambda *a: analysed.append(a) or real(*a))
    first, first_facts = gatekeeper.decide_with_facts(shell_call("cp -r src /tmp/x", id="a"))
    second, second_facts = gatekeeper.decide_with_facts(shell_call("cp -r src /tmp/x", id="b"))
    assert (len(analysed), len(engine.documents)) == (1, 1)
    assert (first.id, second.id) == ("a", "b") and first.decision_id != second.decision_id
    assert second_facts == first_facts and second_facts is not None and second_facts.commands
    assert set(second.timings_ms) == {"cache"}
    assert (gatekeeper.cache.hits, gatekeeper.cache.misses) == (1, 1)


def test_the_key_covers_the_working_directory_the_session_and_the_context():
    engine = FakeOpa(ALLOW)
    gatekeeper = cached_gatekeeper(engine)
    gatekeeper.decide(shell_call("ls", cwd="/a"))
    gatekeeper.decide(shell_call("ls", cwd="/b"))
    gatekeeper.decide(shell_call("ls", cwd="/b"), session={"id": "s", "history": []})
    gatekeeper.decide(shell_call("ls", cwd="/b"), session={"id": "s", "history": [{"id": "x"}]})
    headless = cached_gatekeeper(engine, Config(headless=True))
    headless.decide(shell_call("ls", cwd="/a"))
    assert len(engine.documents) == 5


def test_calls_with_a_session_history_are_neither_looked_up_nor_stored():
    # The history names earlier decisions by id, so such an input never repeats; storing it would
    # only evict answers that can be used again.
    engine = FakeOpa(ALLOW)
    gatekeeper = cached_gatekeeper(engine)
    history = {"id": "s", "history": [{"id": "x", "decision_id": "d-1", "commands": []}]}
    gatekeeper.decide(shell_call("ls"), session=history)
    gatekeeper.decide(shell_call("ls"), session=history)
    assert len(engine.documents) == 2
    assert (len(gatekeeper.cache), gatekeeper.cache.hits, gatekeeper.cache.misses) == (0, 0, 0)
    gatekeeper.decide(shell_call("ls"), session={"id": "s", "history": []})
    gatekeeper.decide(shell_call("ls"), session={"id": "s", "history": []})
    assert len(engine.documents) == 3  # a session without history yet is cached as before
    assert len(gatekeeper.cache) == 1


def test_a_remote_engine_is_asked_again_once_its_answers_are_older_than_max_age():
    engine = FakeOpa(ALLOW)
    gatekeeper = cached_gatekeeper(engine, max_age_s=0.2)
    gatekeeper.decide(shell_call("ls"))
    gatekeeper.decide(shell_call("ls"))
    assert len(engine.documents) == 1
    time.sleep(0.3)
    gatekeeper.decide(shell_call("ls"))  # stale: reaches the engine, which confirms it is still there
    gatekeeper.decide(shell_call("ls"))
    assert len(engine.documents) == 2


def test_an_engine_that_stops_answering_is_not_hidden_by_the_cache():
    engine = FakeOpa(ALLOW)
    gatekeeper = cached_gatekeeper(engine, max_age_s=0.2)
    assert gatekeeper.decide(shell_call("ls")).decision is Outcome.ALLOW
    time.sleep(0.3)
    engine.answer = EngineUnavailable("OPA is down")
    # Every call now reaches the engine and fails closed, the cached allow notwithstanding.
    for _ in range(3):
        decision = gatekeeper.decide(shell_call("ls"))
        assert decision.decision is Outcome.DENY
        assert decision.error is not None and decision.error.code == "engine_unavailable"
    assert len(engine.documents) == 4


def test_an_answer_is_filed_under_the_revision_the_engine_reported_with_it():
    class Reloading(FakeOpa):
        def evaluate(self, document: dict[str, Any]) -> Any:
            self._revision = "r2"  # OPA reports its new revision with this answer
            return super().evaluate(document)

    engine = Reloading(ALLOW, revision="r1")
    gatekeeper = cached_gatekeeper(engine)
    first = gatekeeper.decide(shell_call("ls"))
    second = gatekeeper.decide(shell_call("ls"))
    assert (first.policy_revision, second.policy_revision) == ("r2", "r2")
    assert len(engine.documents) == 1


def test_opa_is_cached_only_when_asked_for_and_other_engines_never():
    assert DecisionCache.for_engine("opa", 4096).size == 0  # fail closed at the very next call
    assert DecisionCache.for_engine("opa", 4096, remote_max_age_s=1.0).max_age_s == 1.0
    assert DecisionCache.for_engine("embedded", 4096).max_age_s is None
    assert DecisionCache.for_engine("static", 4096, remote_max_age_s=1.0).size == 0


def test_the_service_passes_its_opa_cache_setting_on(tmp_path):
    from gatekeeper.server import Service, load_service_config  # noqa: PLC0415

    for max_age, size in ((None, 0), (0.5, 4096)):
        overrides = {"opa_cache_max_age_s": max_age} if max_age is not None else {}
        config = load_service_config(
            None, core_overrides={"audit_log": str(tmp_path / "audit.jsonl")}, server_overrides=overrides
        )
        service = Service(config, engine=FakeOpa(ALLOW))
        try:
            assert service.gatekeeper.cache.size == size
            assert service.gatekeeper.cache.max_age_s == max_age
        finally:
            service.close()


@pytest.mark.opa
def test_real_opa_answers_are_cached_and_carry_its_revision(opa_server):
    engine = OpaServerEngine(opa_server.url, timeout_s=5.0)
    gatekeeper = cached_gatekeeper(engine)
    try:
        first = gatekeeper.decide(shell_call("cp -r /models/llama /tmp/x"))
        second = gatekeeper.decide(shell_call("cp -r /models/llama /tmp/x"))
    finally:
        gatekeeper.close()
    assert first.decision is Outcome.DENY and first.error is None
    assert second.model_dump(exclude={"decision_id", "timings_ms"}) == first.model_dump(
        exclude={"decision_id", "timings_ms"}
    )
    assert first.policy_revision is not None and first.policy_revision == second.policy_revision
    assert "evaluate" in first.timings_ms and set(second.timings_ms) == {"cache"}
