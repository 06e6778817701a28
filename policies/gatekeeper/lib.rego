# Shared helpers for the policy families: typed access to the input document, commands
# normalised into one well-typed shape, argv parsing, path arithmetic, the agent's and the
# user's home, and the violation constructor every rule uses.
#
# Families never read input.facts.commands directly: they iterate `commands` (every command,
# candidates included, each marked) so that evasion can apply the same rules to candidates.
#
# rego-cpp compatibility: no `some i, x in` inside comprehensions (use `some i; x := a[i]`),
# no (?i) regex flags (lower() the subject instead), no format("%v") of composites, and every
# builtin is given a value of the type it expects (rego-cpp errors where OPA is undefined).
# rego-cpp does not enumerate an unbound index in `a[k] in S`: write `x := a[k]; x in S`.
#
# Cost: rego-cpp evaluates each expression of a body once per combination of the body's loops, so
# a loop goes in a function of its own when the body has another loop or a costly test that does
# not depend on it. A table by command index is a complete rule (`{c.index: x | ...}`): OPA
# searches a partial rule's whole body for each key looked up, n lookups over n commands.
# tests/test_policy_scaling.py holds the pack's work linear in the size of a call.
package gatekeeper.lib

# --- typed access to the input ---------------------------------------------------------------

call := x if {
	x := input.call
	is_object(x)
} else := {}

facts := x if {
	x := input.facts
	is_object(x)
} else := {}

context := x if {
	x := input.context
	is_object(x)
} else := {}

# The embedded engine hands a session over as JSON text: rego-cpp reads a long input term by
# term in time that grows faster than its size, json.unmarshal reads it in linear time.
session := x if {
	x := input.session
	is_object(x)
} else := x if {
	is_string(input.session)
	x := json.unmarshal(input.session)
	is_object(x)
} else := {}

array_field(obj, key) := x if {
	x := obj[key]
	is_array(x)
} else := []

object_field(obj, key) := x if {
	x := obj[key]
	is_object(x)
} else := {}

string_field(obj, key, default_value) := x if {
	x := obj[key]
	is_string(x)
} else := default_value

# --- commands --------------------------------------------------------------------------------

raw_commands := array_field(facts, "commands")

well_formed_command(c) if {
	is_object(c)
	is_string(c.name)
	c.name != ""
	is_array(c.argv)
	count(c.argv) > 0
}

# Every well-formed command of this call, candidates included, normalised (see command/2).
commands := [command(i, c) |
	some i
	c := raw_commands[i]
	well_formed_command(c)
]

# The commands that would run: everything but candidates.
effective_commands := [c | some c in commands; not c.candidate]

# The commands of the session's earlier calls that may copy (`copies` looks at no other names),
# most recent last, in the same shape, each with what its own call's find or xargs handed it
# (`inherited`, which inherited_paths returns for it). Only those: normalising every command of a
# 64-call history took OPA about 5 ms, three times the rest of a decision.
history_copying_commands := [object.union(c, {"inherited": history_inherited_paths(c, cmds)}) |
	some h in array_field(session, "history")
	is_object(h)
	cmds := h.commands
	is_array(cmds)
	some i
	raw := cmds[i]
	raw.name in copying_names
	well_formed_command(raw)
	c := command(i, raw)
]

# inherited_paths for a command of an earlier call, whose find, xargs and pipeline are among that
# call's commands `cmds` (commands_by_index and pipeline_producers are this call's).
history_inherited_paths(c, cmds) := ({p |
	some v in c.via
	v.kind == "find_exec"
	f := history_command(cmds, v.command)
	f.name == "find"
	some p in find_roots(f)
} | {p |
	some v in c.via
	v.kind == "xargs"
	x := history_command(cmds, v.command)
	some f in history_producers(x, cmds)
	piped_onward(f)
	some p in handed_on(f)
}) | {p |
	c.name in data.gatekeeper.lib.file_list_readers
	some f in history_producers(c, cmds)
	some p in path_set(f)
}

history_command(cmds, i) := command(i, c) if {
	is_number(i)
	c := cmds[i]
	well_formed_command(c)
}

# The earlier stages of c's pipeline among an earlier call's commands `cmds`.
history_producers(c, cmds) := [command(i, f) |
	c.pipeline != null
	some i
	f := cmds[i]
	well_formed_command(f)
	p := pipeline(f)
	p != null
	p.id == c.pipeline.id
	p.position < c.pipeline.position
]

command(i, c) := {
	"index": i,
	"name": c.name,
	"program": string_field(c, "program", c.name),
	"argv": argv,
	"args": args,
	"positionals": positionals(args),
	"paths": [p | some p in array_field(c, "paths"); is_string(p)],
	"redirects": [redirect(r) | some r in array_field(c, "redirects"); is_object(r)],
	"pipeline": pipeline(c),
	"via": [via_layer(v) | some v in array_field(c, "via"); is_object(v)],
	"cwd": cwd(c),
	"candidate": candidate,
	"text": string_field(c, "text", concat(" ", argv)),
} if {
	argv := [string_or_empty(a) | some a in c.argv]
	args := array.slice(argv, 1, count(argv))
	candidate := is_true(object.get(c, "candidate", false))
}

is_true(x) if {
	x == true
} else := false

string_or_empty(x) := x if {
	is_string(x)
} else := ""

redirect(r) := {
	"op": string_field(r, "op", ""),
	"fd": fd,
	"target": string_field(r, "target", ""),
	"target_abs": string_field(r, "target_abs", ""),
	"body": string_field(r, "body", ""),
} if {
	fd := object.get(r, "fd", null)
}

pipeline(c) := {"id": object.get(p, "id", 0), "position": p.position, "length": p.length} if {
	p := c.pipeline
	is_object(p)
	is_number(p.position)
	is_number(p.length)
} else := null

via_layer(v) := {"kind": string_field(v, "kind", ""), "name": string_field(v, "name", ""), "command": command_index(v)}

# The index of the command that opened a layer (the find of `find -exec`), or null.
command_index(v) := x if {
	x := v.command
	is_number(x)
} else := null

cwd(c) := normalise(x) if {
	x := c.cwd
	is_string(x)
	startswith(x, "/")
} else := null

has_via(c, kind) if {
	some v in c.via
	v.kind == kind
}

# The names of the layers of kind `kind`, outermost first.
via_names(c, kind) := [v.name | some v in c.via; v.kind == kind]

# --- argv ------------------------------------------------------------------------------------

# Non-option arguments, in order; everything after the first `--` is an operand. A lone `-` is an
# operand. Two slices around the first `--` rather than a test per argument: rego-cpp pays for
# every call, and this runs for every command.
positionals(args) := array.concat(
	[a | some a in array.slice(args, 0, end); not option_like(a)],
	array.slice(args, end + 1, count(args)),
) if {
	end := end_of_options(args)
}

# args[i] is an operand (see positionals).
is_operand(args, i) if i > end_of_options(args)

is_operand(args, i) if {
	i < end_of_options(args)
	not option_like(args[i])
}

# The index of the first `--`, or count(args) when there is none.
end_of_options(args) := min(ends) if {
	ends := [j | some j; args[j] == "--"]
	count(ends) > 0
} else := count(args)

option_like(a) if {
	startswith(a, "-")
	a != "-"
}

# The first few operands: where subcommands sit (`docker compose down`, `service nginx stop`).
subcommands(c) := array.slice(c.positionals, 0, 3)

has_subcommand(c, names) if {
	some s in subcommands(c)
	s in names
}

# c may be a tool whose first operand is a subcommand (`jekyll serve`, `vagrant halt`): not a
# program whose operands are text or files (`grep serve`, `mkdir halt`), nor a wrapper, whose
# first operand is the program it runs.
may_take_subcommands(c) if {
	not c.name in data.gatekeeper.lib.text_only
	not c.name in data.gatekeeper.lib.operand_programs
	not c.name in data.gatekeeper.lib.wrappers
}

# The option is present as `-x`, `-xVALUE`, `--long` or `--long=VALUE`.
has_option(c, flags) if {
	some a in c.args
	some f in option_names(a)
	f in flags
}

# The flags argument a may give: itself, `--long` of `--long=V`, `-x` of `-xV`. Options are
# found by looking these up in a flag list rather than by a match per flag, and the common
# cases (an operand, a plain flag) are answered first: rego-cpp pays tens of microseconds per
# call, and commands × arguments × flags add up.
option_names(a) := {a} if {
	not startswith(a, "-")
} else := {a, substring(a, 0, 2)} if {
	not startswith(a, "--")
	count(a) > 2
} else := {a} if {
	not startswith(a, "--")
} else := {a} if {
	not contains(a, "=")
} else := {a} | {n |
	parts := split(a, "=")
	some k in numbers.range(1, count(parts) - 1)
	n := concat("=", array.slice(parts, 0, k))
}

short_option(f) if {
	count(f) == 2
	startswith(f, "-")
	f != "--"
}

# Character classes as string tests. The compiled Wasm policy compiles a regex again in every
# evaluation that uses it (its runtime empties the regex cache with the heap), which cost more
# than the rest of a rule; trim_left with a cutset does the same test without compiling anything.
ascii_letters := "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

ascii_digits := "0123456789"

ascii_alphanumerics := concat("", [ascii_letters, ascii_digits])

# s is one or more characters, each of them in `chars` (the regex ^[chars]+$).
only_chars(s, chars) if {
	s != ""
	trim_left(s, chars) == ""
}

# s holds one of `letters` (the regex [letters]).
has_any(s, letters) if {
	some l in letters
	contains(s, l)
}

# s begins with one of `prefixes` (the regex ^[prefixes] for one-character prefixes).
starts_with_any(s, prefixes) if {
	some prefix in prefixes
	startswith(s, prefix)
}

# A cluster of short options (`-lvnp`) contains one of `letters`.
has_letter(c, letters) if {
	some a in c.args
	startswith(a, "-")
	cluster := substring(a, 1, -1)
	only_chars(cluster, ascii_alphanumerics)
	has_any(cluster, letters)
}

# Values given to any of `flags`: `-f V`, `-fV`, `--flag V`, `--flag=V`.
option_values(c, flags) := {v |
	some i
	a := c.args[i]
	some f in option_names(a)
	f in flags
	v := option_value(c.args, i, a, f)
}

option_value(args, i, a, f) := args[i + 1] if a == f

option_value(_, _, a, f) := substring(a, count(f) + 1, -1) if {
	startswith(f, "--")
	startswith(a, concat("", [f, "="]))
}

option_value(_, _, a, f) := substring(a, 2, -1) if {
	short_option(f)
	startswith(a, f)
	not startswith(a, "--")
	count(a) > 2
}

# `python`, `python3`, `python3.11`, `pypy3`: a known prefix, then only digits and dots. String tests,
# not a regex: the compiled Wasm policy compiles a regex again in every evaluation that uses it, and
# every command of every call comes here.
is_python(c) if {
	some prefix in data.gatekeeper.lib.python_program_prefixes
	startswith(c.name, prefix)
	trim_left(substring(c.name, count(prefix), -1), python_version_chars) == ""
}

python_version_chars := concat("", [ascii_digits, "."])

# The modules of `python -m MODULE` / `python -mMODULE`.
python_modules(c) := {m | is_python(c); some m in option_values(c, ["-m"])}

module_matches(module, prefixes) if {
	some p in prefixes
	module == p
}

module_matches(module, prefixes) if {
	some p in prefixes
	startswith(module, concat("", [p, "."]))
}

# The command text for messages, cut to a readable length.
short(s) := concat("", [substring(s, 0, 160), "..."]) if {
	count(s) > 160
} else := s

# ": " and the shortened text, or nothing where there is no text to show (an input too large, say).
excerpt(s) := concat("", [": ", short(s)]) if {
	s != ""
} else := ""

# --- paths -----------------------------------------------------------------------------------

# Collapse `//`, `/./` and `dir/..`; no trailing slash (except the root). Most paths have none of
# these and few have a `..`: string tests find the first case and one more the second, so the
# seven regex replacements (tens of microseconds each on rego-cpp, a call to the host in Wasm)
# run only where needed.
normalise(p) := p if {
	p != ""
	not needs_normalising(p)
} else := without_trailing_slash(s2) if {
	s2 := regex.replace(regex.replace(concat("", [p, "/"]), `/+`, "/"), `/(\./)+`, "/")
	not contains(s2, "/../")
} else := out if {
	s1 := regex.replace(concat("", [p, "/"]), `/+`, "/")
	s2 := regex.replace(s1, `/(\./)+`, "/")
	s3 := regex.replace(s2, `/[^/]+/\.\./`, "/")
	s4 := regex.replace(s3, `/[^/]+/\.\./`, "/")
	s5 := regex.replace(s4, `/[^/]+/\.\./`, "/")
	s6 := regex.replace(s5, `/[^/]+/\.\./`, "/")
	s7 := regex.replace(s6, `^/(\.\./)+`, "/")
	out := without_trailing_slash(s7)
}

# `//`, a `.` or `..` segment, or a trailing slash. String tests only: every path of every command
# comes here, and the compiled Wasm policy would compile a regex again for every call.
needs_normalising(p) if contains(p, "//")

needs_normalising(p) if endswith(p, "/")

needs_normalising(p) if contains(p, "/./")

needs_normalising(p) if contains(p, "/../")

needs_normalising(p) if endswith(p, "/.")

needs_normalising(p) if endswith(p, "/..")

without_trailing_slash(s) := s if {
	s == "/"
} else := trim_suffix(s, "/")

basename(p) := parts[count(parts) - 1] if {
	parts := split(p, "/")
}

dirname(p) := d if {
	parts := split(p, "/")
	d0 := concat("/", array.slice(parts, 0, count(parts) - 1))
	d := root_if_empty(d0)
}

root_if_empty(d) := "/" if {
	d == ""
} else := d

# p and every directory above it: `/a/b`, `/a` and `/` for `/a/b`.
self_and_ancestors(p) := {root_if_empty(concat("/", array.slice(parts, 0, k))) |
	parts := split(p, "/")
	some k in numbers.range(1, count(parts))
}

# `dir` joined with a child name, without doubling the root's slash.
child(dir, name) := concat("", [dir, name]) if {
	endswith(dir, "/")
} else := concat("/", [dir, name])

is_tilde(s) if s == "~"

is_tilde(s) if startswith(s, "~/")

user_home := h if {
	h := context.home
	is_string(h)
	startswith(h, "/")
}

has_user_home if user_home

expand_tilde(s) := normalise(concat("", [user_home, substring(s, 1, -1)])) if {
	has_user_home
} else := s

# The absolute form of an operand of command c. `.` and a leading `./` are dropped before
# normalise sees them: it would take them to regex.replace, which the compiled Wasm policy asks
# its host for (tens of microseconds a call), and every `find .` and `./script` has one.
abs(c, s) := normalise(s) if {
	startswith(s, "/")
} else := expand_tilde(s) if {
	is_tilde(s)
} else := normalise(c.cwd) if {
	s == "."
	is_string(c.cwd)
} else := normalise(concat("/", [c.cwd, substring(s, 2, -1)])) if {
	startswith(s, "./")
	is_string(c.cwd)
} else := normalise(concat("/", [c.cwd, s])) if {
	is_string(c.cwd)
} else := s

# A site path pattern with `~` expanded: to context.home when known, else to the literal `~`
# and every data.gatekeeper.lib.home_dirs entry (/root, /home/*).
expand_home(p) := {p} if {
	not startswith(p, "~")
} else := {p} if {
	not is_tilde(p)
} else := {expand_tilde(p)} if {
	has_user_home
} else := {p} | {concat("", [h, substring(p, 1, -1)]) | some h in data.gatekeeper.lib.home_dirs}

expand_all(patterns) := {x | some p in patterns; some x in expand_home(p)}

# p is the pattern's location or below it (patterns may hold `*`). A path that does not begin
# with the pattern's literal start cannot match it, and that test is far cheaper than glob.match
# (a few microseconds each in the compiled Wasm policy, where it ran for every path a rule judged).
under(p, pattern) if {
	startswith(p, glob_literal_start(pattern))
	under_glob(p, pattern)
}

under_glob(p, pattern) if glob.match(pattern, ["/"], p)

under_glob(p, pattern) if glob.match(concat("", [pattern, "/**"]), ["/"], p)

# The pattern up to its first glob metacharacter (`*`, `?`, `[`, `{`, or an escaping `\`). An
# array and an else, not min() of a set union: rego-cpp gave min({7} | {10}) as 10.
glob_literal_start(pattern) := substring(pattern, 0, min(positions)) if {
	positions := [i |
		some metacharacter in ["*", "?", "[", "{", `\`]
		i := indexof(pattern, metacharacter)
		i >= 0
	]
	count(positions) > 0
} else := pattern

# p is strictly above the pattern's location: copying p copies what the pattern names.
above(p, pattern) if {
	p == "/"
	startswith(pattern, "/")
	pattern != "/"
}

above(p, pattern) if {
	p != "/"
	ps := split(p, "/")
	qs := split(pattern, "/")
	count(ps) < count(qs)
	glob.match(concat("/", array.slice(qs, 0, count(ps))), ["/"], p)
}

# Whether p can be above a pattern whose literal start is `start` (glob_literal_start): the
# pattern's first segments match p only if one of p and that start begins the other.
may_be_above(p, start) if startswith(start, p)

may_be_above(p, start) if startswith(p, start)

# Literal directory containment (no patterns).
inside(p, dir) if p == dir

inside(p, dir) if startswith(p, concat("", [trim_suffix(dir, "/"), "/"]))

# `host:path`, `user@host:path` or `scheme://...`: not a local file.
# The `contains` tests come first, here and in looks_like_url: every operand of every command
# passes through these rules, and in the compiled Wasm policy a regex.match costs about as much
# as fifty string tests, while few words hold a colon.
is_remote_spec(s) if has_url_scheme(s)

# The regex ^[^/:=]+: after a first character other than `/`, `.` or `~`.
is_remote_spec(s) if {
	contains(s, ":")
	not starts_with_any(s, ["/", ".", "~"])
	host := substring(s, 0, indexof(s, ":"))
	host != ""
	not has_any(host, ["/", "="])
}

# The path part of a remote spec: the whole URL for URLs, `path` for `host:path`.
remote_path(s) := s if {
	has_url_scheme(s)
} else := substring(s, indexof(s, ":") + 1, -1)

# Local operands of c made absolute.
operand_paths(c) := {abs(c, a) | some a in c.positionals; not is_remote_spec(a)}

remote_operands(c) := [a | some a in c.positionals; is_remote_spec(a)]

# Paths a command run by `find -exec` or `xargs` receives from its producers: the roots of its
# own find, what the earlier commands of its pipeline hand on. A command of an earlier call
# carries them (history_copying_commands).
inherited_paths(c) := c.inherited if {
	is_set(c.inherited)
} else := ({p |
	some v in c.via
	v.kind == "find_exec"
	some p in exec_find_roots(v)
} | {p |
	some v in c.via
	v.kind == "xargs"
	some f in xargs_producers(v)
	piped_onward(f)
	some p in handed_on(f)
}) | {p |
	c.name in data.gatekeeper.lib.file_list_readers
	some f in pipeline_producers(c)
	some p in path_set(f)
}

# The roots of the find whose -exec opened layer v; of every find of the call when the layer does
# not name its command (facts from another analyser).
exec_find_roots(v) := find_roots(f) if {
	f := commands_by_index[v.command]
	f.name == "find"
} else := every_find_root

commands_by_index := {c.index: c | some c in commands}

every_find_root := {p |
	some f in effective_commands
	f.name == "find"
	some p in find_roots(f)
}

# What feeds the xargs that opened layer v: the earlier commands of its pipeline. When the layer
# does not name its xargs (facts from another analyser), any command of the call may.
xargs_producers(v) := pipeline_producers(x) if {
	x := commands_by_index[v.command]
} else := effective_commands

# The earlier commands of c's pipeline.
pipeline_producers(c) := [f |
	c.pipeline != null
	some f in effective_commands
	f.pipeline != null
	f.pipeline.id == c.pipeline.id
	f.pipeline.position < c.pipeline.position
]

# What a producer piped into xargs may name: for find, files under its starting points.
handed_on(f) := find_roots(f) if {
	f.name == "find"
} else := path_set(f)

# The starting points of a find, made absolute: its words before the first expression (`-name`,
# `(`, `!`), leading -H/-L/-P aside; `.` when there are none. Words of the expression, such as
# the `..` of `-exec mv {} .. ;`, are not where find looks.
find_roots(f) := roots if {
	roots := {abs(f, a) | some a in array.slice(f.args, 0, find_expression_start(f.args)); not startswith(a, "-")}
	count(roots) > 0
} else := {abs(f, ".")}

find_expression_start(args) := min(starts) if {
	starts := {i |
		some i
		a := args[i] # bound outside the call: rego-cpp does not enumerate i inside one
		find_expression_word(a)
	}
	count(starts) > 0
} else := count(args)

find_expression_word(a) if a in {"(", "!", ","}

find_expression_word(a) if {
	startswith(a, "-")
	not a in {"-H", "-L", "-P", "-D"}
	not find_optimisation_level(a)
}

find_optimisation_level(a) if {
	startswith(a, "-O")
	trim_left(substring(a, 2, -1), ascii_digits) == ""
}

# Everything c may name as a file: the analyser's paths, its own operands, remote paths, and
# what find/xargs hand it.
path_set(c) := ({p | some p in c.paths} | operand_paths(c)) | {remote_path(a) | some a in remote_operands(c)}

all_paths(c) := path_set(c) | inherited_paths(c)

redirect_path(c, r) := r.target_abs if {
	r.target_abs != ""
} else := abs(c, r.target)

# --- copies and archives --------------------------------------------------------------------

# The names copies/1 may hold for, as a set: one lookup per name.
copying_names := (programs | links) | subcommands if {
	programs := {n | some n in data.gatekeeper.lib.copy_programs}
	links := {n | some n in data.gatekeeper.lib.link_programs}
	subcommands := {n | some n; data.gatekeeper.lib.copy_subcommands[n]}
}

# A copying program: cp-like, or a `cp` subcommand (`docker cp`, `kubectl cp`); not a dry run.
copies(c) if {
	c.name in data.gatekeeper.lib.copy_programs
	not dry_run(c)
}

copies(c) if {
	c.name in data.gatekeeper.lib.link_programs
	not symbolic_link(c)
}

copies(c) if {
	subs := data.gatekeeper.lib.copy_subcommands[c.name]
	count(c.positionals) > 0
	c.positionals[0] in subs
}

# A hard link is a second name for the same data; a symbolic link is not a copy.
symbolic_link(c) if has_option(c, ["-s", "--symbolic"])

symbolic_link(c) if has_letter(c, ["s"])

dry_run(c) if {
	spec := data.gatekeeper.lib.dry_run_options[c.name]
	has_option(c, spec.flags)
}

dry_run(c) if {
	spec := data.gatekeeper.lib.dry_run_options[c.name]
	has_letter(c, spec.letters)
}

# The file operands of a copy: after the subcommand for `docker cp`.
copy_operands(c) := array.slice(c.positionals, 1, count(c.positionals)) if {
	data.gatekeeper.lib.copy_subcommands[c.name]
} else := c.positionals

# Where a copy goes: `-t DIR` / `--target-directory=DIR`, else the last operand; a program
# reading its file list on standard input (cpio -p) copies to its operand.
copy_destinations(c) := {d | some d in copy_operands(c)} if {
	c.name in data.gatekeeper.lib.file_list_readers
} else := ds if {
	ds := option_values(c, ["-t", "--target-directory"])
	count(ds) > 0
} else := {d} if {
	ops := copy_operands(c)
	count(ops) > 1
	d := ops[count(ops) - 1]
} else := set()

copy_sources(c) := [s | some s in copy_operands(c); not s in copy_destinations(c)]

# A local operand made absolute, or the path part of a remote one.
operand_path(c, s) := remote_path(s) if {
	is_remote_spec(s)
} else := abs(c, s)

copy_source_paths(c) := {operand_path(c, s) | some s in copy_sources(c)} | inherited_paths(c)

copy_destination_paths(c) := {operand_path(c, d) | some d in copy_destinations(c)}

copy_destination_text(c) := concat(", ", sort([p | some p in copy_destination_paths(c)])) if {
	count(copy_destinations(c)) > 0
} else := "another place"

# `dd if=SRC of=DST`.
dd_inputs(c) := {abs(c, substring(a, 3, -1)) | some a in c.args; startswith(a, "if=")} | input_sources(c)

dd_outputs(c) := {abs(c, substring(a, 3, -1)) | some a in c.args; startswith(a, "of=")}

# tar in create/append/update mode (`-c`, `czf`, `--create`), not extract or list.
tar_creates(c) if has_option(c, ["--create", "--append", "--update", "--catenate", "--concatenate"])

tar_creates(c) if {
	some a in c.args
	startswith(a, "-")
	cluster := substring(a, 1, -1)
	only_chars(cluster, ascii_letters)
	has_any(cluster, ["c", "r", "u", "A"])
}

tar_creates(c) if {
	count(c.args) > 0
	only_chars(c.args[0], ascii_letters)
	has_any(c.args[0], ["c", "r", "u", "A"])
}

# An archiver creating an archive (tar -c, zip, 7z a, ...), not extracting or listing.
archives(c) if {
	c.name in data.gatekeeper.lib.tar_programs
	tar_creates(c)
}

archives(c) if {
	c.name in data.gatekeeper.lib.archive_programs
	not c.name in data.gatekeeper.lib.tar_programs
	not data.gatekeeper.lib.archive_create_subcommands[c.name]
}

archives(c) if {
	subs := data.gatekeeper.lib.archive_create_subcommands[c.name]
	count(c.positionals) > 0
	c.positionals[0] in subs
}

# What an archiver puts into the archive. tar operands are relative to the latest `-C DIR`
# before them; the values of -f/-C/-T/-X and the old-style mode word are not members.
archive_sources(c) := (({abs_from(c, tar_base(c, i), a) |
	c.name in data.gatekeeper.lib.tar_programs
	some i
	a := c.args[i]
	is_operand(c.args, i)
	not tar_option_value(c.args, i)
	not old_style_mode(c.args, i)
} | {abs(c, a) |
	not c.name in data.gatekeeper.lib.tar_programs
	some a in archive_members(c)
}) | inherited_paths(c)) | input_sources(c)

# zip/7z name the archive first (after 7z's subcommand); other archivers take members only.
archive_members(c) := array.slice(c.positionals, 2, count(c.positionals)) if {
	data.gatekeeper.lib.archive_create_subcommands[c.name]
} else := array.slice(c.positionals, 1, count(c.positionals)) if {
	c.name in data.gatekeeper.lib.archive_named_first
} else := c.positionals

tar_value_letters := {"f", "C", "T", "X", "b", "g", "H", "K", "L", "N", "V"}

# args[i] is the value of the preceding option (`-f x`, `-czf x`, `--file x`, `czf x`).
tar_option_value(args, i) if {
	i > 0
	prev := args[i - 1]
	startswith(prev, "-")
	only_chars(substring(prev, 1, -1), ascii_letters)
	some l in tar_value_letters
	endswith(prev, l)
}

tar_option_value(args, i) if {
	i > 0
	args[i - 1] in {"--file", "--directory", "--files-from", "--exclude-from", "--exclude", "--transform"}
}

tar_option_value(args, i) if {
	i == 1
	old_style_mode(args, 0)
	contains(args[0], "f")
}

old_style_mode(args, i) if {
	i == 0
	only_chars(args[0], ascii_letters)
	has_any(args[0], ["c", "r", "u", "x", "t", "A", "d"])
}

# The directory tar resolves operand i against: the value of the last -C before it, else cwd.
tar_base(c, i) := abs(c, c.args[j + 1]) if {
	js := [k | some k; a := c.args[k]; a in {"-C", "--directory"}; k < i]
	count(js) > 0
	j := max(js)
	count(c.args) > j + 1
} else := c.cwd

abs_from(c, base, s) := abs(c, s) if {
	base == null
} else := abs(object.union(c, {"cwd": base}), s)

# Where an archiver writes the archive: tar's -f value (`-` is standard output), zip's and 7z's
# archive operand; none for archivers writing to standard output.
archive_outputs(c) := ({abs_or_dash(c, value) |
	c.name in data.gatekeeper.lib.tar_programs
	some i
	value := c.args[i] # bound outside the call: rego-cpp does not enumerate i inside one
	tar_file_value(c.args, i)
} | {abs_or_dash(c, v) |
	c.name in data.gatekeeper.lib.tar_programs
	some v in option_values(c, ["--file"])
}) | {abs(c, a) |
	not c.name in data.gatekeeper.lib.tar_programs
	some a in archive_name(c)
}

tar_file_value(args, i) if {
	i > 0
	startswith(args[i - 1], "-")
	endswith(args[i - 1], "f")
	only_chars(substring(args[i - 1], 1, -1), ascii_letters)
}

tar_file_value(args, i) if {
	i == 1
	old_style_mode(args, 0)
	contains(args[0], "f")
}

archive_name(c) := [c.positionals[1]] if {
	data.gatekeeper.lib.archive_create_subcommands[c.name]
	count(c.positionals) > 1
} else := [c.positionals[0]] if {
	c.name in data.gatekeeper.lib.archive_named_first
	count(c.positionals) > 0
} else := []

abs_or_dash(c, s) := s if {
	s == "-"
} else := abs(c, s)

# Compressing (not -d/-t/-l) a file or standard input.
compresses(c) if {
	c.name in data.gatekeeper.lib.compress_programs
	not has_option(c, data.gatekeeper.lib.decompress_flags)
	not has_letter(c, data.gatekeeper.lib.decompress_letters)
}

# Files an HTTP client sends: `-T F`, `-F name=@F`, `--data-binary @F`, `--post-file=F`,
# httpie's `name@F` / `@F`; `-` (standard input) stands for the input redirect.
upload_files(c) := ({abs(c, f) |
	flags := data.gatekeeper.lib.upload_flags[c.name]
	some v in option_values(c, flags)
	f := upload_file_ref(v)
	f != "-"
} | {p |
	flags := data.gatekeeper.lib.upload_flags[c.name]
	some v in option_values(c, flags)
	upload_file_ref(v) == "-"
	some p in input_sources(c)
}) | {abs(c, f) |
	c.name in data.gatekeeper.lib.http_clients
	not data.gatekeeper.lib.upload_flags[c.name]
	some a in c.positionals
	contains(a, "@")
	not looks_like_url(a)
	f := substring(a, indexof(a, "@") + 1, -1)
	f != ""
}

# `@file;type=x` / `<file` / `name=@file` → file; a plain value is the value itself.
upload_file_ref(v) := split(substring(v, indexof(v, "@") + 1, -1), ";")[0] if {
	contains(v, "@")
} else := split(substring(v, indexof(v, "<") + 1, -1), ";")[0] if {
	contains(v, "<")
} else := v

# A cloud or peer-to-peer transfer CLI moving files (`aws s3 cp`, `rclone copy`, `hf upload`).
transfers(c) if {
	subs := data.gatekeeper.lib.transfer_subcommands[c.name]
	has_subcommand(c, subs)
}

# Files c writes its standard output to (not /dev/null, not fd duplications).
output_targets(c) := {t |
	some r in c.redirects
	r.op in data.gatekeeper.lib.output_redirect_ops
	writes_stdout(r)
	r.target != ""
	t := redirect_path(c, r)
	not t in data.gatekeeper.lib.dev_null_targets
}

writes_stdout(r) if r.fd == null

writes_stdout(r) if r.fd == 1

writes_stdout(r) if r.op in {"&>", "&>>"}

# Files c reads on standard input.
input_sources(c) := {redirect_path(c, r) |
	some r in c.redirects
	r.op in data.gatekeeper.lib.input_redirect_ops
	r.target != ""
}

piped_onward(c) if {
	p := c.pipeline
	p != null
	p.position < p.length - 1
}

# c's output goes somewhere other than the terminal: a file or the next program of a pipeline.
output_leaves(c) if count(output_targets(c)) > 0

output_leaves(c) if piped_onward(c)

# Heredoc and here-string bodies fed to c.
redirect_bodies(c) := [r.body | some r in c.redirects; r.body != ""]

# --- the agent ------------------------------------------------------------------------------

# The agent's own code directories: context.agent_home (string or list) overrides the site list.
agent_homes := {normalise_dir(h) | some h in agent_home_sources; is_string(h); h != ""}

agent_home_sources := [x] if {
	x := context.agent_home
	is_string(x)
	x != ""
} else := x if {
	x := context.agent_home
	is_array(x)
	count(x) > 0
} else := data.gatekeeper.agent.homes

normalise_dir(h) := expand_tilde(h) if {
	is_tilde(h)
} else := normalise(h)

inside_home(p) if {
	some h in agent_homes
	inside(p, h)
}

# p is a directory above an agent home: copying it copies the agent.
above_home(p) if {
	some h in agent_homes
	p != h
	inside(h, p)
}

# Roots of sibling copies of an agent home that p lies in: for home /w/Agent, /w/Agent_new,
# /w/Agent2, /w/Agent-backup, /w/AgentClone (same parent, the home's name followed by a new word:
# data.gatekeeper.agent.copy_suffix_pattern; /w/Agentic-notes is not a copy), never a home.
sibling_copy_roots(p) := {root |
	some h in agent_homes
	prefix := child(dirname(h), "")
	base := basename(h)
	startswith(p, concat("", [prefix, base]))
	name := split(substring(p, count(prefix), -1), "/")[0]
	name != base
	regex.match(data.gatekeeper.agent.copy_suffix_pattern, substring(name, count(base), -1))
	root := concat("", [prefix, name])
	not root in agent_homes
}

in_sibling_copy(p) if count(sibling_copy_roots(p)) > 0

is_entry_point(p) if basename(p) in data.gatekeeper.agent.entry_points

# --- URLs ------------------------------------------------------------------------------------

looks_like_url(s) if has_url_scheme(s)

# `scheme://...`.
has_url_scheme(s) if {
	contains(s, "://")
	regex.match(`^[A-Za-z][A-Za-z0-9+.-]*://`, s)
}

looks_like_url(s) if {
	contains(s, ":")
	regex.match(`^(localhost|[0-9]+\.[0-9.]+|\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+)(:[0-9]+)(/|\?|$)`, s)
}

looks_like_url(s) if is_local_url_shorthand(s)

looks_like_url(s) if {
	startswith(s, "localhost")
	regex.match(`^localhost(/|\?|$)`, s)
}

url_host(u) := host_of(hostport) if {
	rest := regex.replace(lower(u), `^[a-z][a-z0-9+.-]*://`, "")
	authority := split(split(split(rest, "/")[0], "?")[0], "#")[0]
	parts := split(authority, "@")
	hostport := parts[count(parts) - 1]
}

is_local_url_shorthand(s) if {
	startswith(s, ":")
	regex.match(`^:[0-9]+(/|\?|$)`, s)
}

host_of(hp) := substring(hp, 0, indexof(hp, "]") + 1) if {
	startswith(hp, "[")
} else := split(hp, ":")[0]

is_local_host(h) if h in data.gatekeeper.lib.local_hosts

is_local_host(h) if startswith(h, "127.")

# httpie's `:8002/chat` means localhost.
is_local_url(s) if is_local_url_shorthand(s)

is_local_url(s) if {
	looks_like_url(s)
	is_local_host(url_host(s))
}

# --- interpreter API calls ------------------------------------------------------------------

api_calls := [api_call(x) |
	some x in array_field(facts, "api_calls")
	is_object(x)
	is_string(x.function)
]

api_call(x) := {
	"language": string_field(x, "language", "python"),
	"function": x.function,
	"args": array_field(x, "args"),
	"kwargs": object_field(x, "kwargs"),
	"text": string_field(x, "text", x.function),
}

# The literal string arguments of an API call, positional and keyword.
api_strings(a) := {s | some s in a.args; is_string(s)} | {s | some s in a.kwargs; is_string(s)}

# Positional argument i, or keyword `key` when given by name.
api_arg(a, i, key) := a.args[i] if {
	count(a.args) > i
} else := a.kwargs[key]

# An open()-like call whose mode (argument 1 or `mode=`) writes, appends or creates: w, a, x or +.
opens_for_writing(a) if {
	mode := api_arg(a, 1, "mode")
	is_string(mode)
	has_any(mode, ["w", "a", "x", "+"])
}

# A relative path in interpreter code is taken from the call's working directory.
api_abs(s) := normalise(s) if {
	startswith(s, "/")
} else := expand_tilde(s) if {
	is_tilde(s)
} else := normalise(concat("/", [call.cwd, s])) if {
	is_string(call.cwd)
	startswith(call.cwd, "/")
} else := s

# --- violations -----------------------------------------------------------------------------

# sprintf for messages; use it instead of sprintf in every policy. rego-cpp keeps the result of
# concat() in a quoted form that its sprintf copies verbatim (`to "/tmp/x"`, which also breaks
# the JSON of the result); substring() gives a plain string and is the identity in OPA.
format(template, values) := sprintf(template, [plain(v) | some v in values])

plain(v) := substring(v, 0, -1) if {
	is_string(v)
} else := v

violation(rule, message) := {
	"rule": rule,
	"family": split(rule, ".")[0],
	"action": action(rule),
	"message": message,
}

# Rules deny unless data.gatekeeper.rule_actions says otherwise.
action(rule) := a if {
	a := data.gatekeeper.rule_actions[rule]
	is_string(a)
} else := "deny"

# A family rule's finding on one command; evasion turns findings on candidates into asks.
hit(c, rule, message) := {
	"candidate": c.candidate,
	"host": candidate_host(c),
	"text": short(c.text),
	"violation": violation(rule, message),
}

candidate_host(c) := names[count(names) - 1] if {
	names := via_names(c, "argument")
	count(names) > 0
} else := c.name
