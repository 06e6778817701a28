# The decision: every family's violations, each tagged with the mode it is enforced in, then
# aggregated (deny > ask > warn > allow). This is the entrypoint `gatekeeper/decision`.
#
# Modes: `enforce` blocks, `dry-run` and `observe` only record (the decision is allow and
# `policy_decision` keeps what would have happened). The mode comes from input.context.mode,
# else data.gatekeeper.mode; data.gatekeeper.rule_modes overrides it per rule, in either
# direction (`{"servers.generic_listener": "dry-run"}` while the rest enforces).
package gatekeeper

import data.gatekeeper.evasion
import data.gatekeeper.lib
import data.gatekeeper.processes
import data.gatekeeper.replication
import data.gatekeeper.servers
import data.gatekeeper.tools
import data.gatekeeper.weights

decision := {
	"decision": outcome(enforced),
	"policy_decision": outcome(violations),
	"mode": active_mode,
	"violations": violations,
}

# One rule per family: a family that is absent or undefined adds nothing instead of making the
# whole set undefined.
found contains v if some v in weights.violations

found contains v if some v in servers.violations

found contains v if some v in processes.violations

found contains v if some v in replication.violations

found contains v if some v in evasion.violations

found contains v if some v in tools.violations

violations contains object.union(v, {"mode": rule_mode(v.rule)}) if some v in found

enforced contains v if {
	some v in violations
	v.mode == "enforce"
}

outcome(vs) := "deny" if {
	some v in vs
	v.action == "deny"
} else := "ask" if {
	some v in vs
	v.action == "ask"
} else := "warn" if {
	some v in vs
	v.action == "warn"
} else := "allow"

active_mode := m if {
	m := lib.context.mode
	valid_mode(m)
} else := default_mode

default_mode := m if {
	m := data.gatekeeper.mode
	valid_mode(m)
} else := "enforce"

rule_mode(rule) := m if {
	m := data.gatekeeper.rule_modes[rule]
	valid_mode(m)
} else := active_mode

valid_mode(m) if {
	is_string(m)
	m in data.gatekeeper.modes
}
