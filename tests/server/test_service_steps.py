"""New calls on the event loop take each step together: every ready call is analysed, then each is
evaluated, then each is recorded (the code of one step stays in the processor's caches); a call of
a session, which holds its session meanwhile, goes straight through."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from service_helpers import ScriptedEngine

from gatekeeper.audit import AuditLog
from gatekeeper.config import Config
from gatekeeper.server import ServerSettings, Service, ServiceConfig


class InlineEngine(ScriptedEngine):
    """The scripted engine, evaluated on the loop as the wasm engine is; it logs each evaluation."""

    can_evaluate_inline = True

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__()
        self.log = log

    def evaluate_briefly(self, document: dict[str, Any], budget_s: float) -> Any:
        self.log.append(("evaluate", document["call"]["id"]))
        return self.evaluate(document)


def _logged_service(tmp_path: Path) -> tuple[Service, list[tuple[str, str]]]:
    log: list[tuple[str, str]] = []
    config = ServiceConfig(core=Config(audit_log=tmp_path / "audit.jsonl"), server=ServerSettings())
    service = Service(config, engine=InlineEngine(log), audit=AuditLog(tmp_path / "audit.jsonl"))
    start, append = service.gatekeeper.start, service.audit.append

    def logged_start(call: Any, **options: Any) -> Any:
        log.append(("analyse", call.id))
        return start(call, **options)

    def logged_append(fields: dict[str, Any], **options: Any) -> Any:
        log.append(("record", fields["call_id"]))
        return append(fields, **options)

    service.gatekeeper.start = logged_start  # type: ignore[method-assign]
    service.audit.append = logged_append  # type: ignore[method-assign]
    return service, log


def _decide_at_once(service: Service, calls: list[dict[str, Any]]) -> list[Any]:
    async def all_at_once() -> list[Any]:
        return await asyncio.gather(*(service.decide_async(call) for call in calls))

    return asyncio.run(all_at_once())


def _call(number: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"c{number}", "tool": "shell", "arguments": {"command": f"ls dir{number}"}, **extra}


def test_ready_calls_are_analysed_then_evaluated_then_recorded_together(tmp_path):
    service, log = _logged_service(tmp_path)
    try:
        decided = _decide_at_once(service, [_call(n) for n in range(4)])
    finally:
        service.close()
    assert [d.decision.decision.value for d in decided] == ["allow"] * 4
    ids = [f"c{n}" for n in range(4)]
    assert log == [(step, i) for step in ("analyse", "evaluate", "record") for i in ids]


def test_a_call_of_a_session_goes_straight_through(tmp_path):
    service, log = _logged_service(tmp_path)
    try:
        _decide_at_once(service, [_call(0, session_id="s0"), _call(1, session_id="s1")])
    finally:
        service.close()
    steps = ["analyse", "evaluate", "record"]
    assert log == [(step, "c0") for step in steps] + [(step, "c1") for step in steps]
