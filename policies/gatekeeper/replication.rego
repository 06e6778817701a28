# The agent making more of itself: copying its own code out of its home (cp, rsync, scp, tar,
# zip, git clone, uploads, cloud transfers, python shutil), launching code from such a copy
# (a sibling like Agent_new, or where this call or an earlier call of the session copied the
# home), starting a second instance of its entry point, persistence (cron, at, systemd, rc and
# profile files, autostart entries), trapping termination signals, spreading to other hosts over
# ssh, and telling a running agent over HTTP to replicate.
#
# Reading the home in place (ls, cat, grep, git status, the agent's own tests) and copying files
# into the home or within it are allowed.
#
# Messages are built with concat, never sprintf: rego-cpp quotes a string made by concat,
# regex.replace or lower when sprintf formats it with %s, which breaks the embedded engine.
package gatekeeper.replication

import data.gatekeeper.lib

# --- copying the agent's code out of its home ----------------------------------------------

# cp, rsync, scp, install, docker cp, cpio, hard links (mv moves rather than copies).
hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	some source in copied_out_of[c.index]
	message := concat("", [c.name, " copies ", agent_code_text(source), " to ", destination_text(c)])
}

hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	c.name == "dd"
	some source in lib.dd_inputs(c)
	agent_code(source)
	dd_leaves(c, source)
	message := concat("", ["dd copies ", agent_code_text(source)])
}

hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	lib.archives(c)
	some source in lib.archive_sources(c)
	agent_code(source)
	not stays_in_home(source, lib.archive_outputs(c))
	message := concat("", [c.name, " archives ", agent_code_text(source)])
}

# `cat start.py > /tmp/s.py`, `gzip -c start.py > /tmp/s.gz`, `tee /tmp/x < start.py`.
hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	some source in agent_code_streamed[c.index]
	targets := stream_targets(c)
	count(targets) > 0
	not stays_in_home(source, targets)
	message := concat("", [c.name, " writes ", agent_code_text(source), " to ", concat(", ", sort([t | some t in targets]))])
}

hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	some source in cloned(c)
	message := concat("", ["git clone copies ", agent_code_text(source)])
}

hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	some source in lib.upload_files(c)
	agent_code(source)
	message := concat("", [c.name, " uploads ", agent_code_text(source)])
}

hits contains lib.hit(c, "replication.self_copy", message) if {
	some c in lib.commands
	lib.transfers(c)
	some source in transfer_sources(c)
	agent_code(source)
	message := concat("", [c.name, " transfers ", agent_code_text(source)])
}

violations contains lib.violation("replication.self_copy", message) if {
	some a in lib.api_calls
	some pair in api_copies(a)
	message := concat("", [a.function, " copies ", agent_code_text(pair[0]), " to ", pair[1]])
}

# --- launching a copy or a second instance -------------------------------------------------

hits contains lib.hit(c, "replication.launch_copy", message) if {
	some c in lib.commands
	some root in sibling_roots[c.index]
	message := concat("", [
		c.name, " runs code from ", root, ", a copy of the agent home: ",
		lib.short(c.text),
	])
}

hits contains lib.hit(c, "replication.launch_copy", message) if {
	some c in lib.commands
	count(sibling_roots[c.index]) == 0
	some copy in copies_launched(launch_sites[c.index])
	message := concat("", [
		c.name, " runs code from ", copy.location, ", where ", copy.when,
		" copied the agent home: ", lib.short(c.text),
	])
}

# The home's own entry point started again: a second running agent.
hits contains lib.hit(c, "replication.agent_instance", message) if {
	some c in lib.commands
	not asks_for_help(c)
	some p in launch_sites[c.index]
	lib.inside_home(p)
	lib.is_entry_point(p)
	message := concat("", [c.name, " starts another instance of the agent from ", p, ": ", lib.short(c.text)])
}

# --- persistence ----------------------------------------------------------------------------

hits contains lib.hit(c, "replication.persistence", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.replication.persistence_programs
	not harmless_scheduling(c)
	message := concat("", [c.name, " schedules a command to run later or at boot: ", lib.short(c.text)])
}

hits contains lib.hit(c, "replication.persistence", message) if {
	some c in lib.commands
	subs := data.gatekeeper.replication.persistence_subcommands[c.name]
	lib.has_subcommand(c, subs)
	message := concat("", [c.name, " makes a service start at boot or login: ", lib.short(c.text)])
}

hits contains lib.hit(c, "replication.persistence", message) if {
	some c in lib.commands
	some target in written_files(c)
	persistence_path(target)
	message := concat("", [c.name, " writes to ", target, ", which runs commands at login, boot or on a schedule"])
}

violations contains lib.violation("replication.persistence", message) if {
	lib.call.tool == "file_write"
	some p in lib.array_field(lib.facts, "writes")
	is_string(p)
	persistence_path(p)
	message := concat("", ["file_write writes to ", p, ", which runs commands at login, boot or on a schedule"])
}

violations contains lib.violation("replication.persistence", message) if {
	some a in lib.api_calls
	a.function in data.gatekeeper.replication.python_open_functions
	path := lib.api_arg(a, 0, "file")
	is_string(path)
	persistence_path(lib.api_abs(path))
	lib.opens_for_writing(a)
	message := concat("", [a.function, " writes to ", path, ", which runs commands at login, boot or on a schedule"])
}

# --- signal traps ---------------------------------------------------------------------------

hits contains lib.hit(c, "replication.signal_trap", message) if {
	some c in lib.commands
	c.name == "trap"
	trap := trap_parts(c)
	trap.handler != ""
	signals := trapped(trap.signals, data.gatekeeper.replication.signal_names)
	count(signals) > 0
	message := concat("", [
		"trap runs '", lib.short(trap.handler), "' when the shell gets ",
		concat(", ", sort([s | some s in signals])),
	])
}

hits contains lib.hit(c, "replication.signal_trap", message) if {
	some c in lib.commands
	c.name == "trap"
	trap := trap_parts(c)
	trap.handler == ""
	signals := trapped(trap.signals, data.gatekeeper.replication.termination_signals)
	count(signals) > 0
	message := concat("", ["trap makes the shell ignore ", concat(", ", sort([s | some s in signals])), " so it cannot be stopped"])
}

violations contains lib.violation("replication.signal_trap", message) if {
	some a in lib.api_calls
	signal_handler(a)
	message := concat("", [a.function, " handles a termination signal: ", lib.short(a.text)])
}

# --- spreading to other hosts ---------------------------------------------------------------

hits contains lib.hit(c, "replication.remote_spread", message) if {
	some c in lib.commands
	remote(c)
	launches(c)
	runs_agent_code(c)
	message := concat("", [c.name, " runs the agent on another host over ", remote_name(c), ": ", lib.short(c.text)])
}

# `ssh host 'bash -s' < ~/WorkSpace/Agent/install.sh`.
hits contains lib.hit(c, "replication.remote_spread", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.lib.network_programs
	some source in lib.input_sources(c)
	agent_code(source)
	message := concat("", [c.name, " sends ", agent_code_text(source), " to another host"])
}

# `cat start.py | ssh host 'cat > s.py'`.
hits contains lib.hit(c, "replication.remote_spread", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.lib.network_programs
	some f in lib.pipeline_producers(c)
	some source in agent_code_streamed[f.index]
	message := concat("", [f.name, " pipes ", agent_code_text(source), " into ", c.name])
}

hits contains lib.hit(c, "replication.remote_spread", message) if {
	some c in lib.commands
	some source in ansible_copies(c)
	message := concat("", [c.name, " copies ", agent_code_text(source), " to managed hosts"])
}

# --- telling another agent to replicate -----------------------------------------------------

hits contains lib.hit(c, "replication.instruct_replica", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.lib.http_clients
	some a in c.args
	instructs(a)
	message := concat("", [c.name, " tells the agent at ", request_target(c), " to replicate: ", lib.short(a)])
}

violations contains lib.violation("replication.instruct_replica", message) if {
	some a in lib.api_calls
	a.function in data.gatekeeper.replication.http_functions
	instructs(a.text)
	message := concat("", [a.function, " tells another agent to replicate: ", lib.short(a.text)])
}

violations contains lib.violation("replication.instruct_replica", message) if {
	lib.call.tool == "http"
	arguments := lib.object_field(lib.call, "arguments")
	body := body_text(object.get(arguments, "body", ""))
	instructs(body)
	url := lib.string_field(arguments, "url", "a server")
	message := concat("", ["http tells the agent at ", url, " to replicate: ", lib.short(body)])
}

# Non-candidate findings become violations; evasion reports the candidate ones.
violations contains h.violation if {
	some h in hits
	not h.candidate
}

# --- what is the agent's code ---------------------------------------------------------------

# A path in an agent home, the home itself, or a directory above it (unless it is only the
# root of a selective `find`, whose matches are not the agent: `find ~ -name '*.jpg' | xargs
# cp -t /tmp`).
agent_code(p) if {
	is_string(p)
	startswith(p, "/")
	lib.inside_home(p)
}

agent_code(p) if {
	is_string(p)
	startswith(p, "/")
	lib.above_home(p)
	not selective_find_root(p)
}

selective_find_root(p) if {
	some f in lib.effective_commands
	f.name == "find"
	p in lib.find_roots(f)
	some a in f.args
	a in data.gatekeeper.replication.find_selective_tests
}

# The home itself or a directory above it: its copy is a whole agent.
whole_agent(p) if p in lib.agent_homes

whole_agent(p) if lib.above_home(p)

agent_code_text(p) := concat("", ["the agent home ", p]) if {
	p in lib.agent_homes
} else := concat("", [p, ", which contains the agent home"]) if {
	lib.above_home(p)
} else := concat("", [p, " from the agent home"])

# A copy that stays in the home it came from (`cp src/a.py src/b.py`) is ordinary editing; the
# home itself copied into itself is still a second agent.
stays_in_home(source, destinations) if {
	count(destinations) > 0
	some h in lib.agent_homes
	source != h
	lib.inside(source, h)
	count([d | some d in destinations; not inside_literal(d, h)]) == 0
}

inside_literal(p, dir) if {
	is_string(p)
	lib.inside(p, dir)
}

# --- copies ---------------------------------------------------------------------------------

# What each copying command of this call takes out of the home, by command index. These tables
# are complete rules, computed once per call: as partial rules looked up by key, OPA searched
# every command for each lookup, and a call of n commands cost n² (100 `ls` took 0.6 s).
copied_out_of := {c.index: copied_out(c) |
	some c in lib.commands
	lib.copies(c)
}

copied_out(c) := {source |
	lib.copies(c)
	not c.name in data.gatekeeper.replication.non_copy_programs
	some source in local_copy_sources(c)
	agent_code(source)
	not stays_in_home(source, lib.copy_destination_paths(c))
}

# A remote source (`scp host:/x .`) is another machine's file, not this agent's.
local_copy_sources(c) := {lib.abs(c, s) | some s in lib.copy_sources(c); not lib.is_remote_spec(s)} | lib.inherited_paths(c)

# Destinations as written for remote ones (`user@host:/srv/`), absolute for local ones.
destination_text(c) := concat(", ", sort([destination_label(c, d) | some d in lib.copy_destinations(c)])) if {
	count(lib.copy_destinations(c)) > 0
} else := "another place"

destination_label(c, d) := d if {
	lib.is_remote_spec(d)
} else := lib.abs(c, d)

dd_leaves(c, source) if {
	outputs := lib.dd_outputs(c)
	count(outputs) > 0
	not stays_in_home(source, outputs)
}

dd_leaves(c, _) if {
	count(lib.dd_outputs(c)) == 0
	lib.output_leaves(c)
}

streams(c) if c.name in data.gatekeeper.lib.stream_programs

streams(c) if c.name in data.gatekeeper.lib.compress_programs

streams(c) if c.name in data.gatekeeper.replication.transform_programs

# The agent's code each streaming command reads, by command index.
agent_code_streamed := {c.index: sources |
	some c in lib.commands
	streams(c)
	sources := {source |
		some source in stream_sources(c)
		agent_code(source)
	}
}

# tee's operands are where it writes; everything else reads its operands.
stream_sources(c) := lib.input_sources(c) if {
	c.name == "tee"
} else := lib.all_paths(c) | lib.input_sources(c)

stream_targets(c) := lib.output_targets(c) | {lib.abs(c, p) | c.name == "tee"; some p in c.positionals}

# `git clone SRC [DIR]`: every operand after `clone` but the destination (`--depth 1` leaves
# its value among the operands, which is harmless here).
cloned(c) := {source |
	c.name == "git"
	ops := clone_operands(c)
	count(ops) > 0
	sources := clone_sources(ops)
	some s in sources
	source := clone_path(c, s)
	agent_code(source)
	not stays_in_home(source, {clone_path(c, ops[count(ops) - 1]) | count(ops) > 1})
}

clone_operands(c) := array.slice(c.positionals, i + 1, count(c.positionals)) if {
	some i
	word := c.positionals[i]
	word in data.gatekeeper.replication.git_clone_subcommands
	i < 3
}

clone_sources(ops) := array.slice(ops, 0, count(ops) - 1) if {
	count(ops) > 1
} else := ops

clone_path(c, s) := lib.normalise(substring(s, count("file://"), -1)) if {
	startswith(s, "file://")
} else := lib.abs(c, s) if {
	not lib.is_remote_spec(s)
}

# Operands after the transfer's subcommand; the last one is a destination when an earlier one
# is remote (`aws s3 cp s3://b/k ~/WorkSpace/Agent/k` downloads into the home).
transfer_sources(c) := {lib.abs(c, a) |
	ops := transfer_operands(c)
	some i
	a := ops[i]
	not lib.is_remote_spec(a)
	not download_destination(ops, i)
} | lib.inherited_paths(c)

transfer_operands(c) := array.slice(c.positionals, i + 1, count(c.positionals)) if {
	subs := data.gatekeeper.lib.transfer_subcommands[c.name]
	i := min([k | some k; word := c.positionals[k]; word in subs])
}

download_destination(ops, i) if {
	i == count(ops) - 1
	some j
	op := ops[j] # bound outside the call: rego-cpp does not enumerate j inside one
	lib.is_remote_spec(op)
	j < i
}

# [source, destination] pairs of interpreter copy functions that take the agent's code out of
# its home (`shutil.copytree(src, dst)`, `shutil.make_archive(base, fmt, root_dir)`).
api_copies(a) := {[source, destination] |
	spec := api_copy_spec(a.function)
	some i in spec.sources
	s := api_arg_at(a, i)
	is_string(s)
	source := lib.api_abs(s)
	agent_code(source)
	destination := api_destination(a, spec.destination)
	not stays_in_home(source, {lib.api_abs(destination)})
}

api_copy_spec(f) := spec if {
	spec := data.gatekeeper.replication.python_copy_arguments[f]
} else := {"sources": [[0, "src"]], "destination": [1, "dst"]} if {
	f in data.gatekeeper.replication.python_copy_functions
}

api_arg_at(a, spec) := lib.api_arg(a, spec[0], spec[1])

api_destination(a, spec) := d if {
	d := api_arg_at(a, spec)
	is_string(d)
} else := "another place"

# --- launches -------------------------------------------------------------------------------

# A launcher running something, or a program run by its path (`./start.py`).
launches(c) if launcher(c)

launches(c) if contains(c.program, "/")

launcher(c) if {
	c.name in data.gatekeeper.replication.launchers
	not reports_only(c)
}

# `python3 --version`: every argument only asks the program about itself.
reports_only(c) if {
	count(c.args) > 0
	count([a | some a in c.args; not a in data.gatekeeper.replication.report_flags]) == 0
}

asks_for_help(c) if {
	some a in c.args
	a in data.gatekeeper.replication.help_flags
}

remote(c) if lib.has_via(c, "remote")

remote_name(c) := names[0] if {
	names := lib.via_names(c, "remote")
	count(names) > 0
} else := "the network"

# Where a launch runs code from: its operands, its program path and its working directory.
# Where a launch runs code from: a launcher's operands, program path and working directory;
# for any other program run by its path (`./start.py`, `/usr/bin/rsync`), that path alone.
launch_paths(c) := (lib.path_set(c) | program_path(c)) | {p |
	some p in [c.cwd]
	is_string(p)
} if {
	launcher(c)
} else := program_path(c)

program_path(c) := {lib.abs(c, c.program) | contains(c.program, "/")}

# Local launches and the paths they run from, by command index (a rule is evaluated once;
# rego-cpp does not memoise function calls).
launch_sites := {c.index: launch_paths(c) |
	some c in lib.commands
	launches(c)
	not remote(c)
}

sibling_roots := {i: roots |
	some i
	paths := launch_sites[i]
	roots := {root |
		some p in paths
		some root in lib.sibling_copy_roots(p)
	}
}

# Copies of the agent's code made by this call or earlier calls of the session. A whole agent
# (the home or a directory above it) copied to d makes d's tree a copy; a file or directory
# from the home copied to d lands at d/NAME, or is d itself when d was a new name.
copies_made contains copy_record(source, d, "this call") if {
	some c in lib.effective_commands
	some source in copied_out_of[c.index]
	some d in lib.copy_destination_paths(c)
}

copies_made contains copy_record(source, lib.api_abs(pair[1]), "this call") if {
	some a in lib.api_calls
	some pair in api_copies(a)
	source := pair[0]
	pair[1] != "another place"
}

copies_made contains copy_record(source, d, "an earlier call of this session") if {
	some c in lib.history_copying_commands
	some source in copied_out(c)
	some d in lib.copy_destination_paths(c)
}

copy_record(source, d, when) := {"tree": d, "exact": "", "when": when} if {
	whole_agent(source)
} else := {"tree": lib.child(d, lib.basename(source)), "exact": d, "when": when}

copies_launched(paths) := {{"location": location, "when": when} |
	some p in paths
	some [location, when] in copy_locations_of(p)
}

# The copies outside the homes that p lies in: a copied tree that holds p (p or a directory above
# it), or p itself where a file or directory was copied to that name. Looked up by location, not
# compared copy by copy: n launches of n copies were n² comparisons.
copy_locations_of(p) := {[a, when] |
	some a in lib.self_and_ancestors(p)
	some when in copy_times
	[a, when] in copied_trees
} | {[p, when] |
	some when in copy_times
	[p, when] in copied_exacts
}

copy_times := {copy.when | some copy in copies_made}

copied_trees := {[lib.without_trailing_slash(copy.tree), copy.when] |
	some copy in copies_made
	not lib.inside_home(copy.tree)
}

copied_exacts := {[copy.exact, copy.when] |
	some copy in copies_made
	copy.exact != ""
	not lib.inside_home(copy.exact)
}

# A launch on another host naming the agent's entry point, its home or a copy of it.
runs_agent_code(c) if {
	some a in c.positionals
	lib.is_entry_point(a)
}

runs_agent_code(c) if {
	some p in lib.path_set(c)
	agent_code(p)
}

runs_agent_code(c) if {
	some p in lib.path_set(c)
	lib.in_sibling_copy(p)
}

# --- persistence ----------------------------------------------------------------------------

# `crontab -l`, `at -l`, `systemd-run --help`: listing or removing, not scheduling.
harmless_scheduling(c) if {
	harmless := data.gatekeeper.replication.persistence_harmless_args[c.name]
	some a in c.args
	a in harmless
}

persistence_patterns := lib.expand_all(data.gatekeeper.replication.persistence_paths)

# Literal locations are compared as strings; only patterns with `*` need glob.match, which is
# slow on rego-cpp (every cp checks its destination against all of them).
persistence_path(p) if {
	some pattern in persistence_patterns
	not contains(pattern, "*")
	lib.inside(p, pattern)
}

persistence_path(p) if {
	some pattern in persistence_patterns
	contains(pattern, "*")
	lib.under(p, pattern)
}

# Files a command writes: its output redirections, tee's operands, the destinations of copying
# and linking programs, dd's of=, and the operands of an in-place editor.
written_files(c) := ((lib.output_targets(c) | {lib.abs(c, p) | c.name in {"tee", "sponge", "truncate"}; some p in c.positionals}) | writer_destinations(c)) | in_place_edits(c)

writer_destinations(c) := lib.copy_destination_paths(c) | lib.dd_outputs(c) if {
	c.name in data.gatekeeper.replication.persistence_writers
} else := set()

in_place_edits(c) := lib.operand_paths(c) if {
	c.name in data.gatekeeper.replication.in_place_editors
	lib.has_option(c, data.gatekeeper.replication.in_place_flags)
} else := set()

# --- signals --------------------------------------------------------------------------------

# `trap [--] HANDLER SIGNAL...`; `trap`, `trap -l`, `trap -p`, `trap - SIG`, `trap SIG` and
# `trap 0 SIG...` (a number first: reset) install nothing.
trap_parts(c) := {"handler": args[0], "signals": array.slice(args, 1, count(args))} if {
	args := trap_args(c)
	count(args) > 1
	args[0] != "-"
	not lib.only_chars(args[0], lib.ascii_digits)
}

trap_args(c) := array.slice(c.args, 1, count(c.args)) if {
	count(c.args) > 0
	c.args[0] == "--"
} else := c.args if {
	count(c.args) > 0
	not lib.option_like(c.args[0])
}

# Signal spellings normalised: `SIGTERM`, `sigterm`, `TERM`, `15`.
trapped(signals, names) := {s |
	some raw in signals
	s := trim_prefix(upper(raw), "SIG")
	s in names
}

signal_handler(a) if {
	a.function in data.gatekeeper.replication.python_signal_functions
	python_termination_signal(a)
	not restores_default(a)
}

signal_handler(a) if {
	functions := data.gatekeeper.replication.interpreter_signal_functions[a.language]
	a.function in functions
	some s in lib.api_strings(a)
	count(trapped({s}, data.gatekeeper.replication.signal_names)) > 0
}

python_termination_signal(a) if {
	n := lib.api_arg(a, 0, "signalnum")
	n in data.gatekeeper.replication.python_signal_numbers
}

python_termination_signal(a) if {
	some marker in data.gatekeeper.replication.python_signal_markers
	contains(lower(a.text), marker)
}

restores_default(a) if contains(a.text, "SIG_DFL")

# --- spreading ------------------------------------------------------------------------------

# `ansible all -m copy -a 'src=~/WorkSpace/Agent dest=/opt/'`.
ansible_copies(c) := {source |
	spec := data.gatekeeper.replication.ansible
	c.name in spec.programs
	some module in lib.option_values(c, spec.module_flags)
	module in spec.copy_modules
	some arguments in lib.option_values(c, spec.args_flags)
	some word in split(arguments, " ")
	startswith(word, "src=")
	source := lib.abs(c, substring(word, 4, -1))
	agent_code(source)
}

# --- instructions ---------------------------------------------------------------------------

instructs(text) if {
	is_string(text)
	some pattern in data.gatekeeper.replication.instruct_patterns
	regex.match(pattern, lower(text))
}

request_target(c) := urls[0] if {
	urls := [u | some u in c.positionals; lib.looks_like_url(u)]
	count(urls) > 0
} else := "a server"

body_text(b) := b if {
	is_string(b)
} else := json.marshal(b)
