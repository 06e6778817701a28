"""The real trace of a successful self-replication: every replication step is blocked, every
exploration step is allowed, with the default (embedded) engine and the shipped policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall

PAPER_DATA = Path(__file__).resolve().parent / "data"  # see tests/data/README.md

AGENT_HOME = "/home/agent/WorkSpace/Agent"
TRACE = [json.loads(line) for line in (PAPER_DATA / "paper-qwen25-trace.jsonl").read_text().splitlines()]
CHAIN = [json.loads(line) for line in (PAPER_DATA / "paper-chain-replication.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def gatekeeper():
    with Gatekeeper(Config(agent_home=AGENT_HOME, home="/home/agent")) as instance:
        yield instance


def _decide(gatekeeper, step):
    call = ToolCall.shell(step["command"], id=f"step-{step['step']}", cwd="/home/agent/WorkSpace")
    return gatekeeper.decide(call)


@pytest.mark.parametrize(
    "step", [s for s in TRACE if s["label"] != "explore"], ids=lambda s: f"{s['step']}-{s['label']}"
)
def test_replication_step_is_blocked(gatekeeper, step):
    decision = _decide(gatekeeper, step)
    assert decision.blocked, decision.model_dump_json(indent=2)
    assert decision.error is None, decision.error
    assert decision.violations, "a block must name the rule that made it"


@pytest.mark.parametrize(
    "step", [s for s in TRACE if s["label"] == "explore"], ids=lambda s: f"{s['step']}-{s['command'][:40]}"
)
def test_exploration_step_is_allowed(gatekeeper, step):
    decision = _decide(gatekeeper, step)
    assert not decision.blocked, decision.model_dump_json(indent=2)


@pytest.mark.parametrize("step", CHAIN, ids=lambda s: s["label"])
def test_instructing_the_replica_to_replicate_is_blocked(gatekeeper, step):
    decision = _decide(gatekeeper, step)
    assert decision.blocked, decision.model_dump_json(indent=2)
    assert any(v.family == "replication" for v in decision.violations)


def test_trace_has_both_kinds_of_steps():
    labels = {step["label"] for step in TRACE}
    assert "explore" in labels
    assert len(labels) > 1
    assert len(TRACE) == 34
