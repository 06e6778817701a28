"""Turning engine answers into Decisions: every way it can go wrong is a deny with a named reason."""

from __future__ import annotations

import uuid

import pytest

from gatekeeper.core import Gatekeeper
from gatekeeper.errors import EngineTimeout, EngineUnavailable, ErrorCode, PolicyLoadError
from gatekeeper.models import Mode, Outcome
from gatekeeper.policy.embedded import EmbeddedEngine
from gatekeeper.policy.engine import UNDEFINED, decision_from_result, new_decision_id
from gatekeeper.testing import StaticEngine, capture_audit, shell_call

GOOD = {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}


def decide(answer):
    return decision_from_result(answer, call_id="c1", revision="r1")


def test_clean_allow_is_allowed():
    decision = decide(GOOD)
    assert decision.decision is Outcome.ALLOW
    assert decision.error is None
    assert decision.policy_revision == "r1"


def test_undefined_result_is_denied():
    decision = decide(UNDEFINED)
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.UNDEFINED_RESULT


@pytest.mark.parametrize(
    "answer",
    [
        None,
        True,
        "allow",
        [GOOD],
        {},
        {"decision": "maybe", "violations": []},
        {"decision": "allow", "violations": "none"},
        {"decision": "allow", "violations": [{"rule": "x"}]},
        {"decision": "allow", "mode": "relaxed", "violations": []},
        {"decision": "allow", "policy_decision": "deny", "mode": "enforce", "violations": []},
    ],
    ids=[
        "null",
        "bool",
        "string",
        "array",
        "empty",
        "unknown-outcome",
        "violations-not-array",
        "violation-missing-fields",
        "unknown-mode",
        "enforce-mode-disagreement",
    ],
)
def test_malformed_result_is_denied(answer):
    decision = decide(answer)
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.MALFORMED_RESULT


def test_engine_timeout_is_denied():
    decision = decide(EngineTimeout("OPA did not answer within 0.5s"))
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.ENGINE_TIMEOUT
    assert "0.5s" in decision.error.message


def test_engine_unavailable_is_denied():
    decision = decide(EngineUnavailable("connection refused"))
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.ENGINE_UNAVAILABLE


def test_dry_run_allows_but_keeps_the_policy_outcome():
    answer = {
        "decision": "allow",
        "policy_decision": "deny",
        "mode": "dry-run",
        "violations": [{"rule": "weights.copy", "family": "weights", "action": "deny", "message": "m"}],
    }
    decision = decide(answer)
    assert decision.decision is Outcome.ALLOW
    assert decision.policy_decision is Outcome.DENY
    assert decision.mode is Mode.DRY_RUN
    assert decision.violations[0].rule == "weights.copy"


def violation(rule, action, mode):
    return {"rule": rule, "family": rule.split(".")[0], "action": action, "message": "m", "mode": mode}


def test_a_rule_in_dry_run_relaxes_only_itself_in_enforce_mode():
    relaxed = violation("servers.generic_listener", "deny", "dry-run")
    answer = {"decision": "allow", "policy_decision": "deny", "mode": "enforce", "violations": [relaxed]}
    decision = decide(answer)
    assert decision.decision is Outcome.ALLOW
    assert decision.error is None

    enforced = violation("weights.copy", "ask", "enforce")
    both = [relaxed, enforced]
    answer = {"decision": "ask", "policy_decision": "deny", "mode": "enforce", "violations": both}
    assert decide(answer).decision is Outcome.ASK


def test_enforce_mode_answer_that_ignores_an_enforced_violation_is_denied():
    enforced = violation("weights.copy", "deny", "enforce")
    answer = {"decision": "allow", "policy_decision": "deny", "mode": "enforce", "violations": [enforced]}
    decision = decide(answer)
    assert decision.decision is Outcome.DENY
    assert decision.error is not None
    assert decision.error.code == ErrorCode.MALFORMED_RESULT


def test_no_policy_loaded_fails_at_start(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(PolicyLoadError, match=r"no \.rego policy modules"):
        EmbeddedEngine(tmp_path)


def test_policy_that_does_not_compile_is_rejected_with_its_location(tmp_path):
    (tmp_path / "gatekeeper").mkdir()
    (tmp_path / "gatekeeper" / "main.rego").write_text("package gatekeeper\n\ndecision if { input.a = }\n")
    with pytest.raises(PolicyLoadError, match=r"main\.rego"):
        EmbeddedEngine(tmp_path)


def test_engine_exception_inside_decide_is_a_denial_and_is_audited():
    gatekeeper = Gatekeeper(engine=StaticEngine(EngineUnavailable("OPA at 127.0.0.1:1 refused")))
    with capture_audit(gatekeeper) as records:
        decision = gatekeeper.decide(shell_call("ls", id="c9"))
    assert decision.decision is Outcome.DENY
    assert decision.id == "c9"
    assert records[0]["error"]["code"] == "engine_unavailable"
    assert records[0]["decision"] == "deny"


def test_unexpected_engine_failure_is_a_denial():
    gatekeeper = Gatekeeper(engine=StaticEngine(RuntimeError("segfault-ish")))
    decision = gatekeeper.decide(shell_call("ls"))
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.INTERNAL_ERROR


@pytest.mark.parametrize(
    "raw",
    [{}, {"tool": ""}, {"tool": "shell", "arguments": "ls"}, {"tool": 5}, "not an object", None],
    ids=["empty", "empty-tool", "arguments-not-object", "tool-not-string", "string", "null"],
)
def test_invalid_tool_call_is_denied_with_a_clear_message(raw):
    gatekeeper = Gatekeeper(engine=StaticEngine(GOOD))
    decision = gatekeeper.decide(raw)
    assert decision.decision is Outcome.DENY
    assert decision.error.code == ErrorCode.INVALID_INPUT
    assert decision.error.message.startswith("invalid tool call")


def test_builtin_failing_at_evaluation_is_a_denial_naming_it(tmp_path):
    # to_number of a word is an evaluation-time error in rego-cpp (undefined-with-error in OPA).
    (tmp_path / "gatekeeper").mkdir()
    (tmp_path / "gatekeeper" / "main.rego").write_text(
        "package gatekeeper\n\n"
        'decision := {"decision": "allow", "violations": [], "n": to_number(input.call.arguments.command)}\n'
    )
    gatekeeper = Gatekeeper(engine=EmbeddedEngine(tmp_path))
    decision = gatekeeper.decide(shell_call("not-a-number"))
    assert decision.decision is Outcome.DENY
    assert decision.error is not None
    assert decision.error.code == ErrorCode.ENGINE_ERROR
    assert "Not a term" in decision.error.message


def test_quotes_backslashes_and_newlines_survive_the_embedded_engine(tmp_path):
    (tmp_path / "gatekeeper").mkdir()
    (tmp_path / "gatekeeper" / "main.rego").write_text(
        "package gatekeeper\n\n"
        'decision := {"decision": "warn", "violations": [{"rule": "t.echo", "family": "t",\n'
        '  "action": "warn", "message": input.call.arguments.command}]}\n'
    )
    command = 'echo "a\\"b" \\\\ c\n\tdone é'
    decision = Gatekeeper(engine=EmbeddedEngine(tmp_path)).decide(shell_call(command))
    assert decision.error is None, decision.error
    assert decision.violations[0].message == command


def test_glob_match_on_a_stray_backslash_fails_closed_on_the_embedded_engine():
    # rego-cpp cannot glob.match a string holding `\x` (not a JSON escape). The query fails, so the
    # call is denied (docs/opa.md lists the difference; OPA denies this one by rule, as persistence).
    command = "sed -i 's/a/b/' '/etc/rc\\xEF.d/x'"
    decision = Gatekeeper(engine=EmbeddedEngine()).decide(shell_call(command, cwd="/home/agent"))
    assert decision.decision is Outcome.DENY
    assert decision.error is not None
    assert decision.error.code == ErrorCode.ENGINE_ERROR
    assert "Invalid escape sequence" in decision.error.message


def test_a_path_no_pattern_can_match_never_reaches_glob_match():
    # The sed script taken as a file operand starts with no protected or persistence location, so
    # it is not glob-matched: the embedded engine allows the call, as OPA does.
    command = "find . -type f -exec sed '1s/^\\xEF\\xBB\\xBF//' -i.bak {} \\; -exec rm {}.bak \\;"
    decision = Gatekeeper(engine=EmbeddedEngine()).decide(shell_call(command, cwd="/home/agent"))
    assert decision.error is None, decision.error
    assert decision.decision is Outcome.ALLOW


def test_a_rego_cpp_failure_without_a_reason_says_so():
    from gatekeeper.policy.embedded import _rego_error_message  # noqa: PLC0415 - private helper

    # The whole answer rego-cpp gives for some very large calls (400 operands of one cp).
    assert "without giving a reason" in _rego_error_message("<error>")
    report = "(error (errormsg 23:Invalid escape sequence) (errorast x))"
    assert _rego_error_message(report) == "Invalid escape sequence"


def test_decision_ids_are_random_uuids_written_as_uuid_writes_them():
    ids = {new_decision_id() for _ in range(2000)}
    assert len(ids) == 2000
    for text in list(ids)[:200]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
