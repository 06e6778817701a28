"""The embedded engine's decision cache: same revision and input → stored answer; anything else
asks the engine."""

from __future__ import annotations

import json
import shutil

from gatekeeper.audit import AuditLog, verify_log
from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import EngineUnavailable
from gatekeeper.models import Outcome
from gatekeeper.policy.cache import MAX_CACHED_COMMANDS, MAX_KEYED_CHARS, DecisionCache
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.loader import default_policy_dir
from gatekeeper.testing import StaticEngine, shell_call

ALLOW = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}


class CountingEmbedded(StaticEngine):
    name = "embedded"  # the cache is only used for the embedded engine


def test_identical_inputs_are_answered_once_and_ids_do_not_matter():
    engine = CountingEmbedded(ALLOW)
    gatekeeper = Gatekeeper(Config(), engine=engine)
    ls = {"tool": "shell", "arguments": {"command": "ls"}}
    first = gatekeeper.decide({"id": "a", "session_id": "s1", **ls})
    second = gatekeeper.decide({"id": "b", "session_id": "s2", **ls})
    assert len(engine.documents) == 1
    assert (first.id, second.id) == ("a", "b")
    assert first.decision_id != second.decision_id
    gatekeeper.decide(shell_call("ls -la"))
    gatekeeper.decide(shell_call("ls"), session={"id": "s", "history": [{"id": "x", "commands": []}]})
    assert len(engine.documents) == 3
    assert gatekeeper.cache.hits == 1


def test_a_hit_is_recorded_with_the_facts_the_miss_was_decided_on(tmp_path):
    audit = tmp_path / "audit.jsonl"
    gatekeeper = Gatekeeper(Config(), engine=CountingEmbedded(ALLOW), audit=AuditLog(audit))
    for number in range(3):  # a miss, then hits: the first makes the facts' text, the next reuse it
        gatekeeper.decide(shell_call("cat notes.txt | grep todo", id=f"c{number}"))
    gatekeeper.close()
    assert gatekeeper.cache.hits == 2
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["input"]["call"]["id"] for r in records] == ["c0", "c1", "c2"]
    assert records[1]["input"]["facts"] == records[2]["input"]["facts"] == records[0]["input"]["facts"]
    assert verify_log(audit).ok


def test_errors_are_never_cached():
    engine = CountingEmbedded(EngineUnavailable("down"))
    gatekeeper = Gatekeeper(Config(), engine=engine)
    assert gatekeeper.decide(shell_call("ls")).decision is Outcome.DENY
    engine.answer = ALLOW
    assert gatekeeper.decide(shell_call("ls")).decision is Outcome.ALLOW
    assert len(engine.documents) == 2


def test_other_engines_are_not_cached():
    engine = StaticEngine(ALLOW)
    gatekeeper = Gatekeeper(Config(), engine=engine)
    gatekeeper.decide(shell_call("ls"))
    gatekeeper.decide(shell_call("ls"))
    assert len(engine.documents) == 2


def test_size_zero_turns_it_off():
    engine = CountingEmbedded(ALLOW)
    gatekeeper = Gatekeeper(Config(decision_cache_size=0), engine=engine)
    gatekeeper.decide(shell_call("ls"))
    gatekeeper.decide(shell_call("ls"))
    assert len(engine.documents) == 2


def test_long_calls_and_calls_of_many_commands_are_not_kept():
    engine = CountingEmbedded(ALLOW)
    gatekeeper = Gatekeeper(Config(), engine=engine)
    many = ";".join(["ls"] * (MAX_CACHED_COMMANDS + 1))  # short text, too many commands
    long = "echo " + "x" * MAX_KEYED_CHARS  # one command, too long
    just_right = ";".join(["ls"] * MAX_CACHED_COMMANDS)
    for command in (many, long, just_right):
        gatekeeper.decide(shell_call(command))
        gatekeeper.decide(shell_call(command))
    assert len(engine.documents) == 5  # twice each for the first two, once for the last
    assert len(gatekeeper.cache) == 1


def test_least_recently_used_entries_are_dropped():
    cache = DecisionCache(2)
    keys = [cache.key("r1", {"call": {"arguments": {"command": c}}}) for c in ("a", "b", "c")]
    cache.put(keys[0], ALLOW)
    cache.put(keys[1], ALLOW)
    assert cache.get(keys[0]) is not None
    cache.put(keys[2], ALLOW)
    assert len(cache) == 2
    assert cache.get(keys[1]) is None
    assert cache.key("r1", {"x": 1}) != cache.key("r2", {"x": 1})
    assert cache.key(None, {"x": 1}) is None


def test_a_policy_reload_is_never_answered_from_the_old_revision(tmp_path):
    policies = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), policies)
    engine = EmbeddedEngine(policies)
    gatekeeper = Gatekeeper(Config(), engine=engine)
    assert gatekeeper.decide(shell_call("git status")).decision is Outcome.ALLOW
    (policies / "data.json").write_text(
        (policies / "data.json").read_text().replace('"mode": "enforce"', '"mode": "dry-run"', 1)
    )
    engine.reload()
    decision = gatekeeper.decide(shell_call("git status"))
    assert decision.mode.value == "dry-run"
    assert decision.policy_revision == engine.revision
