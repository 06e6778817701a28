"""Bad input of every kind: a clear error and a deny for that call, never a crash or an allow, on
each in-process engine."""

from __future__ import annotations

import pytest

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.models import ToolCall
from gatekeeper.testing import capture_audit


@pytest.fixture(scope="module", params=["embedded", pytest.param("wasm", marks=pytest.mark.opa)])
def gatekeeper(request):
    if request.param == "wasm":
        request.getfixturevalue("opa_binary")  # the engine compiles with opa: skipped without it
    with Gatekeeper(Config(home="/home/agent", engine=request.param)) as instance:
        yield instance


def nested_substitutions(depth: int) -> str:
    return "echo " + "$(" * depth + "kill 1" + ")" * depth


BAD_COMMANDS = {
    "one-megabyte": "echo " + "a" * (1 << 20),
    "deep-substitutions": nested_substitutions(2000),
    "deep-subshells": "(" * 3000 + "pkill -f agent" + ")" * 3000,
    "invalid-utf8": "echo caf\udce9 && rm -rf /",
    "nul-byte": "ls\x00; kill 1",
    "unterminated-quote": "echo 'unterminated; pkill -f agent",
}


@pytest.mark.parametrize("command", list(BAD_COMMANDS.values()), ids=list(BAD_COMMANDS))
def test_bad_command_is_not_allowed_and_is_audited(gatekeeper, command):
    with capture_audit(gatekeeper) as records:
        decision = gatekeeper.decide(ToolCall.shell(command, id="bad"))
    assert decision.decision.value == "deny", decision.model_dump_json(indent=2)
    assert decision.violations or decision.error, "a refusal must say why"
    assert len(records) == 1
    assert records[0]["decision"] == decision.decision.value


@pytest.mark.parametrize(
    "call",
    [
        {"tool": "shell", "arguments": {"command": "echo \ud800 && ls"}},
        {"tool": "shell", "arguments": {"command": "ls"}, "id": "\udc80"},
        {"tool": "python", "arguments": {"code": "print('\udfff')"}},
    ],
    ids=["command", "call-id", "python-code"],
)
def test_text_that_is_not_unicode_is_denied_by_the_policies_not_by_an_internal_error(gatekeeper, call):
    # A lone surrogate (a JSON "\ud800" escape) cannot be written as UTF-8, which rego-cpp reads.
    decision = gatekeeper.decide(call)
    assert decision.error is None, decision.error
    if call["arguments"].get("command") == "ls":
        assert decision.decision.value == "allow"  # only the id is odd, and ids are not policy
    else:
        assert decision.decision.value == "deny"
        assert "evasion.unanalysable" in {v.rule for v in decision.violations}


def test_unknown_tool_is_denied(gatekeeper):
    decision = gatekeeper.decide({"tool": "teleport", "arguments": {"to": "mars"}, "id": "u1"})
    assert decision.decision.value == "deny"
    assert decision.violations
    assert decision.id == "u1"


@pytest.mark.parametrize(
    "arguments",
    [{}, {"command": 5}, {"command": None}, {"command": ["ls"]}, {"command": ""}, {"command": "  \n\t "}],
    ids=["missing-command", "number", "null", "list", "empty", "whitespace"],
)
def test_shell_call_without_a_command_is_denied_with_a_clear_error(gatekeeper, arguments):
    with capture_audit(gatekeeper) as records:
        decision = gatekeeper.decide({"tool": "shell", "arguments": arguments})
    assert decision.decision.value == "deny"
    assert decision.error.code == "invalid_input"
    assert "arguments.command" in decision.error.message
    assert records[0]["error"]["code"] == "invalid_input"
