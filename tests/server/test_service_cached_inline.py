"""Cached calls decided on the event loop: same decision, same record, answered only once durable.

A call without a session whose answer is cached is decided and recorded on the service's event loop;
only the fsync leaves it (``DurableWaits``, one hand-off per group commit). What must not change: a
cached answer is recorded once and answered only after its record is fsync'd, an fsync that fails
turns it into a deny, and everything else still goes to the deciding threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from service_helpers import AGENT_TOKEN, ScriptedEngine

from gatekeeper.audit import AuditLog
from gatekeeper.config import Config
from gatekeeper.core import CacheMiss, Gatekeeper
from gatekeeper.errors import AuditError
from gatekeeper.models import ToolCall
from gatekeeper.server.durability import DurableWaits


class CachedScriptedEngine(ScriptedEngine):
    """The scripted engine under the embedded engine's name, so the decision cache is on."""

    name = "embedded"


def call(command: str, call_id: str, **extra: str) -> dict:
    return {"id": call_id, "tool": "shell", "arguments": {"command": command}, **extra}


def test_decide_if_cached_answers_only_from_the_cache(tmp_path: Path):
    engine = CachedScriptedEngine()
    audit = AuditLog(tmp_path / "audit.jsonl")
    gatekeeper = Gatekeeper(Config(), engine=engine, audit=audit)
    first = ToolCall.parse(call("ls -la", "a"))
    assert isinstance(gatekeeper.decide_if_cached(first), CacheMiss)  # nothing evaluated or recorded
    assert (len(engine.documents), gatekeeper.cache.misses) == (0, 0)
    assert not (tmp_path / "audit.jsonl").read_text()

    decided, _facts = gatekeeper.decide_with_facts(first)
    cached = gatekeeper.decide_if_cached(ToolCall.parse(call("ls -la", "b")))
    assert cached is not None
    decision, seq = cached
    assert (decision.id, decision.decision) == ("b", decided.decision)
    assert set(decision.timings_ms) == {"cache"}
    assert len(engine.documents) == 1
    assert (gatekeeper.cache.hits, gatekeeper.cache.misses) == (1, 1)
    audit.sync_through(seq)
    records = audit.path.read_text().splitlines()
    assert len(records) == 2 and f'"seq":{seq}' in records[1] and decision.decision_id in records[1]
    gatekeeper.close()


def test_a_miss_spares_deciding_the_call_the_lookup_it_made(tmp_path: Path, monkeypatch):
    engine = CachedScriptedEngine()
    gatekeeper = Gatekeeper(Config(), engine=engine, audit=AuditLog(tmp_path / "audit.jsonl"))
    keyed: list[str | None] = []
    key = gatekeeper.cache.key

    def counted_key(*args):
        keyed.append(key(*args))
        return keyed[-1]

    monkeypatch.setattr(gatekeeper.cache, "key", counted_key)
    first = ToolCall.parse(call("ls -la", "a"))
    miss = gatekeeper.decide_if_cached(first)
    assert isinstance(miss, CacheMiss) and len(keyed) == 1
    pending = gatekeeper.start(first, miss=miss, durable=True)
    recorded = pending.finish(engine.evaluate(pending.document))
    assert len(keyed) == 1 and len(engine.documents) == 1  # decided without keying the call again
    assert engine.documents[0]["call"] == first.model_dump(mode="json", exclude_none=True)
    assert isinstance(recorded, tuple) and recorded[0].id == "a"
    # Answered from the cache under the key the miss carried.
    hit = gatekeeper.decide_if_cached(ToolCall.parse(call("ls -la", "b")))
    assert not isinstance(hit, CacheMiss) and hit[0].decision == recorded[0].decision

    # A miss for another call, or from an older revision, is worked out again.
    other = ToolCall.parse(call("pwd", "c"))
    stale = CacheMiss(other, {"tool": "shell", "arguments": {"command": "ls"}}, "sha256:old", "stale-key")
    pending = gatekeeper.start(other, miss=stale, durable=True)
    pending.finish(engine.evaluate(pending.document))
    assert engine.documents[-1]["call"]["arguments"] == {"command": "pwd"}
    assert keyed[-1] != "stale-key" and gatekeeper.cache.get(keyed[-1]) is not None
    gatekeeper.close()


def test_a_cached_call_is_answered_only_after_its_record_is_durable(make_server):
    served = make_server(engine=CachedScriptedEngine())
    agent = served.agent
    assert agent.post("/v1/decide", json=call("git status", "first")).status_code == 200

    release = threading.Event()
    real_sync = served.service.audit.sync_through

    def slow_sync(seq: int) -> None:
        release.wait(10)
        real_sync(seq)

    served.service.audit.sync_through = slow_sync  # type: ignore[method-assign]
    answers: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(agent.post("/v1/decide", json=call("git status", "second")))
    )
    sender.start()
    time.sleep(0.5)
    assert answers == [], "answered before the record was fsync'd"
    release.set()
    sender.join(10)
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["timings_ms"].keys() == {"cache"}
    assert len(served.engine.documents) == 1  # the second call came from the cache
    assert [r["call_id"] for r in served.audit_records()] == ["first", "second"]


def test_a_cached_call_whose_fsync_fails_is_denied(make_server):
    served = make_server(engine=CachedScriptedEngine())
    agent = served.agent
    assert agent.post("/v1/decide", json=call("git status", "first")).json()["decision"] == "allow"

    def failing_sync(_seq: int) -> None:
        raise AuditError("cannot fsync audit log: disk gone")

    served.service.audit.sync_through = failing_sync  # type: ignore[method-assign]
    answer = agent.post("/v1/decide", json=call("git status", "second")).json()
    assert answer["decision"] == "deny"
    assert answer["error"]["code"] == "audit_error"
    assert "disk gone" in answer["error"]["message"]


def test_calls_of_a_session_and_bad_input_still_go_to_the_deciding_threads(make_server):
    served = make_server(engine=CachedScriptedEngine())
    client = served.client(AGENT_TOKEN)
    for number in range(2):
        answer = client.post("/v1/decide", json=call("ls", f"s{number}", session_id="run-1"))
        assert answer.status_code == 200
    assert len(served.engine.documents) == 2  # the history grew: never the same input twice
    bad = client.post("/v1/decide", json={"tool": "shell", "arguments": "not an object"})
    assert bad.status_code == 400
    assert bad.json()["decision"]["decision"] == "deny"
    assert served.audit_records()[-1]["error"]["code"] == "invalid_input"


def test_waits_that_arrive_together_share_one_fsync(tmp_path: Path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    syncs: list[int] = []
    real_sync = audit.sync_through

    def counted(seq: int) -> None:
        syncs.append(seq)
        time.sleep(0.05)  # a slow disk: the other waits pile up behind this one
        real_sync(seq)

    audit.sync_through = counted  # type: ignore[method-assign]

    async def main() -> None:
        waits = DurableWaits(audit, ThreadPoolExecutor(2))
        seqs = [int(audit.append({"n": n}, durable=False)["seq"]) for n in range(50)]
        await asyncio.gather(*(waits.wait(seq) for seq in seqs))

    asyncio.run(main())
    assert syncs == [50]  # every wait was for a record written before the first fsync began
    audit.close()
