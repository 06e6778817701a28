"""Deciding threads compile their copy of the policies before they are needed.

The embedded engine keeps one compiled copy of the policies per thread. Compiled lazily, the copy
cost the first call each deciding thread took about half a second after start-up and after every
reload. The service now has each thread compile at start-up, before the first request is taken,
and again in the background after a reload to a new revision.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from service_helpers import ScriptedEngine, shell
from structlog.testing import capture_logs

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.policy import embedded
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.server.headless import HeadlessAskEngine
from gatekeeper.testing import shell_call


class PreparingEngine(ScriptedEngine):
    """A scripted engine that, like the embedded one, gets each thread ready for its revision."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__()
        self.prepared: list[tuple[str, str]] = []  # (thread name, revision)
        self.fail = fail
        self._revision = "scripted-1"

    @property
    def revision(self) -> str | None:
        return self._revision

    def prepare(self) -> None:
        with self._lock:
            self.prepared.append((threading.current_thread().name, self._revision))
        if self.fail:
            raise RuntimeError("no compiler today")

    def reload(self) -> None:
        self._revision = "scripted-2"


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


def test_every_deciding_thread_is_prepared_before_the_first_request(make_server):
    engine = PreparingEngine()
    served = make_server(engine=engine, threads=3)
    # No request sent yet: start-up itself prepared each of the three threads, once.
    threads = [name for name, _revision in engine.prepared]
    assert len(threads) == 3 and len(set(threads)) == 3
    assert all(name.startswith("gk-decide") for name in threads)

    assert served.agent.post("/v1/decide", json=shell("git status")).json()["decision"] == "allow"
    assert len(engine.prepared) == 3


def test_a_reload_to_a_new_revision_prepares_every_thread_again(make_server):
    engine = PreparingEngine()
    served = make_server(engine=engine, threads=2)
    answer = served.admin.post("/v1/admin/reload")
    assert answer.status_code == 200, answer.text
    wait_for(lambda: len(engine.prepared) == 4)
    again = {name for name, revision in engine.prepared if revision == "scripted-2"}
    assert len(again) == 2

    # The same revision again: nothing to compile, nothing prepared.
    assert served.admin.post("/v1/admin/reload").status_code == 200
    time.sleep(0.2)
    assert len(engine.prepared) == 4


def test_a_thread_that_fails_to_prepare_is_logged_and_the_service_still_decides(make_server):
    engine = PreparingEngine(fail=True)
    with capture_logs() as logs:
        served = make_server(engine=engine, threads=2)
    failures = [entry for entry in logs if entry["event"] == "deciding_thread_not_prepared"]
    assert len(failures) == 2 and "no compiler today" in failures[0]["error"]
    assert served.agent.post("/v1/decide", json=shell("ls #deny")).json()["decision"] == "deny"


def test_an_engine_that_compiles_nothing_per_thread_is_left_alone(served):
    assert not served.service.engine.can_prepare
    assert served.service.prepare_deciding_threads() == []
    assert served.agent.post("/v1/decide", json=shell("ls")).json()["decision"] == "allow"


def test_the_embedded_engine_compiles_a_prepared_thread_once(monkeypatch: pytest.MonkeyPatch):
    compiled_in: list[str] = []
    real = embedded._Compiled

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            compiled_in.append(threading.current_thread().name)

    monkeypatch.setattr(embedded, "_Compiled", Counted)
    engine = HeadlessAskEngine(EmbeddedEngine(), headless=True)
    assert engine.can_prepare
    gatekeeper = Gatekeeper(Config(home="/home/agent"), engine=engine)
    outcomes: list[str] = []

    def prepare_then_decide() -> None:
        engine.prepare()
        for command in ("git status", "ls -la", "cp -r /models/llama /tmp/x"):
            outcomes.append(gatekeeper.decide(shell_call(command, cwd="/home/agent")).decision.value)

    worker = threading.Thread(target=prepare_then_decide, name="deciding")
    worker.start()
    worker.join(60)
    # One compile at construction (on this thread), one by prepare(); deciding compiles nothing.
    assert compiled_in == [threading.current_thread().name, "deciding"]
    assert outcomes == ["allow", "allow", "deny"]
    gatekeeper.close()
