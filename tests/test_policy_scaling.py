"""The policy pack's work grows linearly with the size of a call.

A call may hold thousands of commands (the analyser stops at 5,000). A rule that compares every
command with every other one makes such a call cost seconds, and did: partial rules looked up by
command index (OPA searched every command per lookup) and `find -exec` commands that took the
roots of every find in the call. Time is no measure on a shared machine, so this counts OPA's
expression evaluations (`opa eval --profile`), which are exact and repeatable: for each shape of
call, four times the commands must cost less than six times the evaluations (linear growth is
about four times, a rule over pairs of commands makes it nine to sixteen). Some growth beyond
linear is left in finding the earlier stages of a pipeline (for each xargs, ssh or cpio, every
command is walked); it shows at hundreds of pipelines, and docs/opa.md gives the times
(benchmarks/scaling.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall
from gatekeeper.policy.loader import default_policy_dir
from gatekeeper.testing import GROWING_COMMANDS, StaticEngine

SMALL, LARGE = 10, 40
# Linear growth gives a ratio just under LARGE / SMALL = 4.
MAX_RATIO = 6.0


@pytest.fixture(scope="module")
def policy_input() -> Callable[[str], dict[str, Any]]:
    """The document gatekeeper gives the policies for a shell command (through a recording engine)."""
    engine = StaticEngine({"decision": "allow", "violations": [], "mode": "enforce"})
    gatekeeper = Gatekeeper(engine=engine)

    def build(command: str) -> dict[str, Any]:
        gatekeeper.decide(ToolCall(tool="shell", arguments={"command": command}, cwd="/home/agent"))
        return engine.documents[-1]

    return build


def evaluations(opa: Path, document: dict[str, Any]) -> int:
    """How many expressions OPA evaluates to decide ``document`` with the pack."""
    completed = subprocess.run(
        [
            str(opa),
            "eval",
            "--data",
            str(default_policy_dir()),
            "--ignore",
            "*_test.rego",
            "--stdin-input",
            "--profile",
            "--profile-limit",
            "0",
            "--format",
            "json",
            "data.gatekeeper.decision",
        ],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    output = json.loads(completed.stdout)
    assert output["result"][0]["expressions"][0]["value"]["decision"] in ("allow", "deny", "ask", "warn")
    return sum(entry["num_eval"] for entry in output["profile"])


@pytest.mark.parametrize("shape", sorted(GROWING_COMMANDS))
def test_policy_work_grows_linearly_with_the_call(
    shape: str, opa_binary: Path, policy_input: Callable[[str], dict[str, Any]]
) -> None:
    small_input, large_input = (policy_input(GROWING_COMMANDS[shape](n)) for n in (SMALL, LARGE))
    # Each shape repeats a part (a command, an operand, a redirection, a python call) n times.
    assert len(json.dumps(large_input["facts"])) > 2 * len(json.dumps(small_input["facts"]))
    small, large = evaluations(opa_binary, small_input), evaluations(opa_binary, large_input)
    assert large / small < MAX_RATIO, (
        f"{shape}: {SMALL} → {LARGE} parts took {small} → {large} evaluations "
        f"(ratio {large / small:.1f}): a rule compares every part with every other"
    )
