"""How the OPA engine's HTTP clients talk to OPA: connections kept per thread, environment on loopback.

A small OPA stand-in (stdlib HTTP/1.1 server on a loopback port) answers the Data API and records what
each request carried and from which connection.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from loopback_http import loopback_http_server

from gatekeeper.analysis import analyse_call
from gatekeeper.jsonout import PreEncoded, canonical_json
from gatekeeper.models import Decision, Outcome, ToolCall
from gatekeeper.policy.opa_server import OpaServerEngine, input_body
from gatekeeper.server.config import SessionSettings
from gatekeeper.server.sessions import SessionStore

ANSWER = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}


@dataclass
class Seen:
    authorizations: list[str | None] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    connections: set[int] = field(default_factory=set)
    bodies: list[tuple[str | None, bytes]] = field(default_factory=list)  # content type, body
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def opa_stand_in() -> Iterator[tuple[str, Seen]]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as OPA

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with seen.lock:
                seen.bodies.append((self.headers.get("Content-Type"), body))
                seen.authorizations.append(self.headers.get("Authorization"))
                seen.targets.append(self.path)
                seen.connections.add(self.client_address[1])
            body = json.dumps({"result": ANSWER}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return None

    with loopback_http_server(Handler) as url:
        yield url, seen


def test_each_deciding_thread_keeps_its_connection(opa_stand_in):
    url, seen = opa_stand_in
    engine = OpaServerEngine(url, timeout_s=5.0)
    threads = 16  # the service's default for the OPA engine
    with ThreadPoolExecutor(threads) as pool:
        for _round in range(5):
            barrier = threading.Barrier(threads)

            def query(_index: int, barrier: threading.Barrier = barrier) -> object:
                barrier.wait(timeout=10)  # all threads hold a connection at once
                return engine.evaluate({"call": {}})

            assert list(pool.map(query, range(threads))) == [ANSWER] * threads
    engine.close()
    assert len(seen.targets) == 5 * threads
    # A pool of ten connections closed six after every round, and opened six new ones the next.
    assert len(seen.connections) <= threads


def test_a_netrc_login_is_not_sent_to_a_local_opa(opa_stand_in, tmp_path: Path, monkeypatch):
    url, seen = opa_stand_in
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    assert OpaServerEngine(url, timeout_s=5.0).evaluate({}) == ANSWER
    assert OpaServerEngine(url, timeout_s=5.0, token="opa-token").evaluate({}) == ANSWER  # noqa: S106
    assert seen.authorizations == [None, "Bearer opa-token"]


def test_proxy_variables_do_not_apply_to_a_local_opa(opa_stand_in, monkeypatch):
    url, _seen = opa_stand_in
    # A proxy nobody listens on: a client that used it could not reach OPA.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert OpaServerEngine(url, timeout_s=5.0).evaluate({}) == ANSWER


def test_proxy_variables_still_apply_to_a_remote_opa(opa_stand_in, monkeypatch):
    proxy_url, seen = opa_stand_in
    # The stand-in plays the proxy: the query for the remote OPA arrives at it with the full URL.
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    for name in ("http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert OpaServerEngine("http://opa.example.invalid:8181", timeout_s=5.0).evaluate({}) == ANSWER
    assert seen.targets == ["http://opa.example.invalid:8181/v1/data/gatekeeper/decision?provenance=True"]


# -- the asynchronous client (the service awaits OPA on its event loop) ----------------------------


def evaluate_awaited(engine: OpaServerEngine, documents: list[dict]) -> list[object]:
    async def run() -> list[object]:
        try:
            return [await engine.evaluate_async(document) for document in documents]
        finally:
            await engine.aclose()

    return asyncio.run(run())


def test_the_awaited_client_asks_for_the_decision_with_the_token_over_one_connection(opa_stand_in):
    url, seen = opa_stand_in
    engine = OpaServerEngine(url, timeout_s=5.0, token="opa-token")  # noqa: S106
    assert engine.can_evaluate_async
    assert evaluate_awaited(engine, [{"call": {"id": str(n)}} for n in range(5)]) == [ANSWER] * 5
    assert seen.targets == ["/v1/data/gatekeeper/decision?provenance=True"] * 5
    assert seen.authorizations == ["Bearer opa-token"] * 5
    assert len(seen.connections) == 1


def test_the_awaited_client_ignores_proxy_variables_and_is_offered_for_loopback_only(
    opa_stand_in, monkeypatch
):
    url, _seen = opa_stand_in
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    assert evaluate_awaited(OpaServerEngine(url, timeout_s=5.0), [{}]) == [ANSWER]
    # A remote OPA may need a proxy from the environment, which only the blocking client reads.
    assert not OpaServerEngine("http://opa.example.invalid:8181").can_evaluate_async


# Quotes, a backslash, a newline, a non-ASCII letter and a lone surrogate.
AWKWARD = 'a"b\\c\nd é \udfff'


def recorded_history(store: SessionStore, session_id: str, commands: list[str]) -> dict[str, Any]:
    """``input.session`` after ``commands`` were recorded in ``session_id``, as the service builds it."""
    for number, command in enumerate(commands):
        call = ToolCall.shell(command, id=f"h{number}", cwd="/home/agent")
        with store.hold(session_id) as session:
            session.record(
                call, Decision(decision_id=f"d{number}", decision=Outcome.ALLOW), analyse_call(call)
            )
    with store.hold(session_id) as session:
        return session.policy_input


def test_a_session_history_is_spliced_into_the_request_as_it_was_encoded():
    store = SessionStore(SessionSettings())
    session = recorded_history(store, AWKWARD, [f"echo {AWKWARD}", "find . | xargs cp -t /tmp/x", "ls"])
    assert isinstance(session["history"], PreEncoded)
    plain = {**session, "history": list(session["history"])}
    documents = [
        {"call": {"id": AWKWARD}, "session": session, "context": {"home": AWKWARD}},
        {"session": session},
        {"call": {}, "session": {"history": session["history"]}},
    ]
    for document in documents:
        expected = {"input": {**document, "session": {**document["session"], "history": plain["history"]}}}
        assert json.loads(input_body(document)) == expected
        input_body(document).decode("ascii")  # every string escaped, the lone surrogate too
    # Without a pre-encoded history, the input is in canonical form (what its audit record holds).
    assert (
        input_body({"call": {}, "session": plain})
        == b'{"input": ' + canonical_json({"call": {}, "session": plain}).encode() + b"}"
    )


def test_the_awaited_client_sends_the_history_it_was_given(opa_stand_in):
    url, seen = opa_stand_in
    session = recorded_history(SessionStore(SessionSettings()), "s1", ["cp -r /a /b", f"echo {AWKWARD}"])
    document = {"call": {"id": "c9"}, "session": session}
    assert evaluate_awaited(OpaServerEngine(url, timeout_s=5.0), [document]) == [ANSWER]
    [(content_type, body)] = seen.bodies
    assert content_type == "application/json"
    assert json.loads(body)["input"]["session"]["history"] == list(session["history"])
