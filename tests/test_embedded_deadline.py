"""The embedded engine's evaluation deadline: past it a call is denied, and overdue work is bounded.

rego-cpp cannot be interrupted, so an evaluation past its deadline keeps running on its helper
thread. These tests use a policy whose work is the number in the command
(``gatekeeper.testing.SLOW_POLICY``), and check what is observable without timing anything: the deny
and its reason, the evaluations still running (``overdue``), and that later calls decide again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper, build_engine
from gatekeeper.errors import ErrorCode
from gatekeeper.models import Outcome
from gatekeeper.policy.embedded import DEFAULT_TIMEOUT_S, MAX_OVERDUE, EmbeddedEngine
from gatekeeper.testing import (
    FAST_COMMAND,
    MINUTE_COMMAND,
    SLOW_COMMAND,
    shell_call,
    wait_until_nothing_overdue,
    write_slow_policy,
)


@pytest.fixture
def slow_policy(tmp_path: Path) -> Path:
    return write_slow_policy(tmp_path / "policies")


def test_a_call_past_the_deadline_is_denied_and_the_next_one_decides(slow_policy):
    engine = EmbeddedEngine(slow_policy, timeout_s=0.1)
    gatekeeper = Gatekeeper(engine=engine)

    late = gatekeeper.decide(shell_call(SLOW_COMMAND))
    assert late.decision is Outcome.DENY
    assert late.error is not None
    assert late.error.code == ErrorCode.ENGINE_TIMEOUT
    assert "did not decide within 0.1s" in late.error.message
    assert engine.overdue == 1  # answered while the query still ran

    # The same thread at once, while its old interpreter is busy: a fresh one decides.
    assert gatekeeper.decide(shell_call(FAST_COMMAND)).decision is Outcome.ALLOW
    assert wait_until_nothing_overdue(engine) == 0
    assert gatekeeper.decide(shell_call(FAST_COMMAND)).decision is Outcome.ALLOW
    engine.close()


def test_overdue_evaluations_are_bounded(slow_policy):
    engine = EmbeddedEngine(slow_policy, timeout_s=0.1)
    gatekeeper = Gatekeeper(engine=engine, config=Config(decision_cache_size=0))
    for number in range(MAX_OVERDUE):
        decision = gatekeeper.decide(shell_call(f"{int(SLOW_COMMAND) + number}"))
        assert decision.error is not None and decision.error.code == ErrorCode.ENGINE_TIMEOUT
    assert engine.overdue == MAX_OVERDUE

    refused = gatekeeper.decide(shell_call(FAST_COMMAND))
    assert refused.decision is Outcome.DENY
    assert refused.error is not None
    assert refused.error.code == ErrorCode.ENGINE_TIMEOUT
    assert f"still runs {MAX_OVERDUE} evaluations past their 0.1s deadline" in refused.error.message

    assert wait_until_nothing_overdue(engine) == 0
    assert gatekeeper.decide(shell_call(FAST_COMMAND)).decision is Outcome.ALLOW
    engine.close()


def test_without_a_deadline_a_slow_call_is_waited_for(slow_policy):
    engine = EmbeddedEngine(slow_policy, timeout_s=None)
    decision = Gatekeeper(engine=engine).decide(shell_call(SLOW_COMMAND))
    assert decision.decision is Outcome.ALLOW, decision.error
    assert engine.overdue == 0


def test_the_deadline_comes_from_the_config():
    assert Config().embedded_timeout_s == DEFAULT_TIMEOUT_S
    engine = build_engine(Config(embedded_timeout_s=2.5))
    assert isinstance(engine, EmbeddedEngine)
    assert engine.timeout_s == 2.5
    with pytest.raises(ValueError, match="positive"):
        EmbeddedEngine(timeout_s=0)


def test_check_denies_a_call_past_the_embedded_timeout_and_exits(slow_policy, tmp_path):
    # A query of about a minute: `check` answers at the deadline and exits without waiting for it.
    env = {**os.environ, "GATEKEEPER_AUDIT_LOG": str(tmp_path / "audit.jsonl")}
    command = [sys.executable, "-m", "gatekeeper", "check", "--policies", str(slow_policy)]
    run = subprocess.run(
        [*command, "--embedded-timeout", "0.1", MINUTE_COMMAND],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    decision = json.loads(run.stdout)
    assert (decision["decision"], decision["error"]["code"]) == ("deny", "engine_timeout")
    [record] = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert (record["decision"], record["error"]["code"]) == ("deny", "engine_timeout")


def test_close_ends_the_runner_threads(slow_policy):
    def runners() -> int:
        return sum(thread.name == "gk-rego" for thread in threading.enumerate())

    before = runners()
    engine = EmbeddedEngine(slow_policy, timeout_s=5.0)
    gatekeeper = Gatekeeper(engine=engine, config=Config(decision_cache_size=0))
    with ThreadPoolExecutor(3, thread_name_prefix="caller") as callers:
        decisions = list(callers.map(lambda n: gatekeeper.decide(shell_call(str(n))), range(1, 10)))
    assert {decision.decision for decision in decisions} == {Outcome.ALLOW}
    assert runners() > before  # one per calling thread
    engine.close()
    deadline = time.monotonic() + 10
    while runners() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runners() <= before
