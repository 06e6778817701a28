"""Sessions: history reaches the policies as input.session, bounded per session and in total.

The service tests run twice: with an engine decided on the deciding threads (the embedded engine's
path) and with one awaited on the event loop (OPA's path).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import AwaitedScriptedEngine, ScriptedEngine, Served, serve, shell

from gatekeeper.analysis import Command, Facts, analyse_call
from gatekeeper.models import Decision, Outcome, ToolCall
from gatekeeper.server.config import SessionSettings
from gatekeeper.server.sessions import SessionStore, history_entry


@pytest.fixture(params=["deciding threads", "awaited"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    engine = ScriptedEngine() if request.param == "deciding threads" else AwaitedScriptedEngine()
    with serve(tmp_path, engine=engine) as running:
        yield running


def test_a_later_call_sees_the_earlier_calls_of_its_session(served):
    agent = served.agent
    first = agent.post("/v1/decide", json=shell("cp -r ~/agent /tmp/copy", id="c1", session_id="s1")).json()
    agent.post("/v1/decide", json=shell("ls", id="other", session_id="s2"))
    agent.post("/v1/decide", json=shell("python3 /tmp/copy/start.py", id="c2", session_id="s1"))
    session = served.engine.documents[-1]["session"]
    assert session["id"] == "s1"
    [earlier] = session["history"]
    assert earlier["id"] == "c1"
    assert earlier["decision_id"] == first["decision_id"]
    assert earlier["decision"] == "allow"
    assert earlier["tool"] == "shell"
    assert isinstance(earlier["commands"], list)


def test_the_audit_record_names_the_earlier_calls_by_decision_id(served):
    agent = served.agent
    first = agent.post("/v1/decide", json=shell("cp -r ~/agent /tmp/copy", id="c1", session_id="s1")).json()
    second = agent.post("/v1/decide", json=shell("ls /tmp/copy", id="c2", session_id="s1")).json()
    records = {r["decision_id"]: r for r in served.audit_records() if r.get("msg") == "decision_made"}
    # The policies saw the whole entry; the record keeps its decision id, which names an earlier record.
    assert served.engine.documents[-1]["session"]["history"][0]["commands"]
    later = records[second["decision_id"]]
    assert later["input"]["session"] == {"id": "s1", "history": [first["decision_id"]]}
    assert later["masked"] == ["/input/session/history"]
    earlier = records[first["decision_id"]]
    assert earlier["input"]["call"]["arguments"]["command"] == "cp -r ~/agent /tmp/copy"
    assert "masked" not in earlier


def test_a_call_without_a_session_gets_an_empty_session(served):
    served.agent.post("/v1/decide", json=shell("ls"))
    assert served.engine.documents[-1]["session"] == {}


def test_session_route_shows_recent_calls(served):
    agent = served.agent
    agent.post("/v1/decide", json=shell("ls", id="a", session_id="s1"))
    agent.post("/v1/decide", json=shell("rm x #deny", id="b", session_id="s1"))
    body = agent.get("/v1/sessions/s1").json()
    assert body["id"] == "s1"
    assert body["calls"] == 2
    assert [(e["id"], e["decision"]) for e in body["history"]] == [("a", "allow"), ("b", "deny")]
    missing = agent.get("/v1/sessions/unknown")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_history_is_bounded_per_session(make_server):
    served = make_server(sessions={"max_history": 3})
    for number in range(5):
        served.agent.post("/v1/decide", json=shell("ls", id=str(number), session_id="s"))
    body = served.agent.get("/v1/sessions/s").json()
    assert body["calls"] == 5
    assert [e["id"] for e in body["history"]] == ["2", "3", "4"]


def test_least_recently_used_sessions_are_forgotten(make_server):
    served = make_server(sessions={"max_sessions": 2})
    for session in ("a", "b", "a", "c"):
        served.agent.post("/v1/decide", json=shell("ls", session_id=session))
    assert served.agent.get("/v1/sessions/b").status_code == 404
    assert served.agent.get("/v1/sessions/a").status_code == 200
    assert served.agent.get("/v1/sessions/c").status_code == 200


def test_concurrent_calls_of_one_session_are_decided_one_at_a_time(served):
    agent = served.agent
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: agent.post("/v1/decide", json=shell("ls", id=str(n), session_id="s")), range(40)
            )
        )
    lengths = sorted(len(d["session"]["history"]) for d in served.engine.documents)
    assert lengths == list(range(40))  # each call saw every call decided before it


def _decision(outcome: str = "allow") -> Decision:
    return Decision(decision_id="d", decision=Outcome(outcome))


def _facts(words: int = 1, size: int = 10) -> Facts:
    argv = ["x" * size for _ in range(words)]
    return Facts(tool="shell", commands=[Command(index=0, program="echo", name="echo", argv=argv, cwd="/")])


def test_history_entry_follows_the_facts_contract():
    entry = history_entry(ToolCall.shell("echo hi", id="c1"), _decision(), _facts(2, 3))
    assert entry == {
        "id": "c1",
        "decision_id": "d",
        "decision": "allow",
        "tool": "shell",
        "commands": [{"name": "echo", "argv": ["xxx", "xxx"], "paths": [], "cwd": "/"}],
        "writes": [],
    }


def test_history_entry_keeps_what_handed_a_command_its_files():
    # `find src | xargs cp -t /tmp/x`, as the analyser reports it.
    call = ToolCall.shell("find src | xargs cp -t /tmp/x", id="c2", cwd="/w")
    facts = analyse_call(call)
    entry = history_entry(call, _decision(), facts)
    by_name = {command["name"]: command for command in entry["commands"]}
    assert by_name["find"]["pipeline"] == {"id": 0, "position": 0, "length": 2}
    assert "via" not in by_name["find"]  # nothing to say: left out
    assert by_name["cp"]["via"] == [{"kind": "xargs", "name": "xargs", "command": 1}]
    assert entry["commands"][1]["name"] == "xargs"  # the index the layer names


def test_oversized_entries_are_capped_and_marked():
    entry = history_entry(ToolCall.shell("echo"), _decision(), _facts(words=500, size=10_000))
    [command] = entry["commands"]
    assert len(command["argv"]) == 64
    assert all(len(word) == 4096 for word in command["argv"])
    assert entry["truncated"] is True


def test_session_bytes_are_bounded_per_session_and_in_total():
    store = SessionStore(SessionSettings(max_session_bytes=4096, max_total_bytes=10_000, max_history=1000))
    call = ToolCall.shell("echo")
    for session in ("a", "b", "c", "d"):
        for _ in range(20):
            with store.hold(session) as held:
                held.record(call, _decision(), _facts(words=2, size=200))
    count, total = store.stats()
    assert total <= 10_000
    assert count < 4
    snapshot = store.snapshot("d")
    assert snapshot is not None
    assert snapshot["history_bytes"] <= 4096
    assert snapshot["calls"] == 20


def test_long_session_ids_count_against_the_total():
    # Ids are the caller's: 200 sessions with 100 KB ids would be 20 MB that no history bound saw.
    store = SessionStore(SessionSettings(max_total_bytes=1_000_000))
    for number in range(200):
        with store.hold(f"{number:03d}" + "x" * 100_000) as held:
            held.record(ToolCall.shell("ls"), _decision(), None)
    count, total = store.stats()
    assert total <= 1_000_000
    assert count <= 10
    assert store.snapshot("199" + "x" * 100_000) is not None  # the most recent is kept
    assert store.snapshot("000" + "x" * 100_000) is None


def test_idle_sessions_expire():
    store = SessionStore(SessionSettings(idle_ttl_s=0.01))
    with store.hold("a") as held:
        held.record(ToolCall.shell("ls"), _decision(), None)
    import time  # noqa: PLC0415

    time.sleep(0.05)
    assert store.snapshot("a") is None
    assert store.stats() == (0, 0)  # the history's bytes and the id's given back
