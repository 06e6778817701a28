package gatekeeper_test

import data.gatekeeper
import data.gatekeeper.testing as t

copy := [t.cmd(["cp", "-r", "/models/llama", "/tmp/x"])]

decision_for(cmds, context) := d if {
	d := gatekeeper.decision with input as t.with_context(t.shell(cmds), context)
}

test_no_violation_is_allow if {
	d := decision_for([t.cmd(["git", "status"])], {})
	d.decision == "allow"
	d.policy_decision == "allow"
	d.mode == "enforce"
	count(d.violations) == 0
}

test_a_deny_violation_denies_and_is_tagged_with_its_mode if {
	d := decision_for(copy, {})
	d.decision == "deny"
	d.policy_decision == "deny"
	some v in d.violations
	v.rule == "weights.copy"
	v.mode == "enforce"
}

test_deny_wins_over_ask_and_warn if {
	gatekeeper.outcome({{"action": "ask"}, {"action": "deny"}, {"action": "warn"}}) == "deny"
	gatekeeper.outcome({{"action": "ask"}, {"action": "warn"}}) == "ask"
	gatekeeper.outcome({{"action": "warn"}}) == "warn"
	gatekeeper.outcome(set()) == "allow"
}

test_dry_run_allows_and_keeps_what_would_have_happened if {
	d := decision_for(copy, {"mode": "dry-run"})
	d.decision == "allow"
	d.policy_decision == "deny"
	d.mode == "dry-run"
	some v in d.violations
	v.mode == "dry-run"
}

test_observe_allows_and_keeps_what_would_have_happened if {
	d := decision_for(copy, {"mode": "observe"})
	d.decision == "allow"
	d.policy_decision == "deny"
	d.mode == "observe"
}

test_mode_from_data_when_the_context_has_none if {
	d := decision_for(copy, {}) with data.gatekeeper.mode as "dry-run"
	d.decision == "allow"
	d.mode == "dry-run"
}

test_unknown_mode_falls_back_to_enforce if {
	d := decision_for(copy, {"mode": "lenient"}) with data.gatekeeper.mode as "whatever"
	d.decision == "deny"
	d.mode == "enforce"
}

test_rule_mode_relaxes_one_rule_only if {
	kill := t.cmd(["pkill", "-f", "agent"])
	d := decision_for(array.concat(copy, [kill]), {}) with data.gatekeeper.rule_modes as {"weights.copy": "dry-run"}
	d.decision == "deny"
	relaxed := {v.rule | some v in d.violations; v.mode == "dry-run"}
	relaxed == {"weights.copy"}

	only_copy := decision_for(copy, {}) with data.gatekeeper.rule_modes as {"weights.copy": "dry-run"}
	only_copy.decision == "allow"
	only_copy.policy_decision == "deny"
}

test_rule_mode_enforces_one_rule_in_a_dry_run if {
	d := decision_for(copy, {"mode": "dry-run"}) with data.gatekeeper.rule_modes as {"weights.copy": "enforce"}
	d.decision == "deny"
	d.mode == "dry-run"
}

test_rule_actions_turn_a_deny_into_an_ask if {
	d := decision_for(copy, {}) with data.gatekeeper.rule_actions as {"weights.copy": "ask"}
	d.decision == "ask"
}
