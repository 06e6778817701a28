"""The service with the embedded engine's deadline: a call past it is an audited deny, and the
next call decides (tests/test_embedded_deadline.py covers the engine itself)."""

from __future__ import annotations

from service_helpers import serve

from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.testing import (
    FAST_COMMAND,
    SLOW_COMMAND,
    wait_until_nothing_overdue,
    write_slow_policy,
)


def test_the_service_denies_a_call_past_the_embedded_deadline_and_records_it(tmp_path):
    engine = EmbeddedEngine(write_slow_policy(tmp_path / "policies"), timeout_s=0.1)
    with serve(tmp_path, engine=engine) as served:
        answer = served.agent.post(
            "/v1/decide", json={"tool": "shell", "arguments": {"command": SLOW_COMMAND}, "id": "big"}
        )
        fast = served.agent.post(
            "/v1/decide", json={"tool": "shell", "arguments": {"command": FAST_COMMAND}, "id": "small"}
        )
        records = {record["call_id"]: record for record in served.audit_records()}
        running = engine.overdue
        metrics = served.agent.get("/metrics").text
        running_after = engine.overdue
        wait_until_nothing_overdue(engine)
        metrics_after = served.agent.get("/metrics").text
    assert answer.status_code == 200
    assert (answer.json()["decision"], answer.json()["error"]["code"]) == ("deny", "engine_timeout")
    assert fast.json()["decision"] == "allow"
    assert records["big"]["error"]["code"] == "engine_timeout"
    assert records["small"]["decision"] == "allow"
    assert 'gatekeeper_engine_errors_total{code="engine_timeout"} 1.0' in metrics
    # Scraped while the overdue query still ran (it takes over a second), and once it had ended.
    assert running == running_after == 1
    assert "gatekeeper_engine_overdue_evaluations 1.0" in metrics
    assert engine.overdue == 0
    assert "gatekeeper_engine_overdue_evaluations 0.0" in metrics_after
