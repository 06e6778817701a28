# Model weights leaving their place: copied, moved, linked, archived, compressed, split,
# encoded, streamed into a file or a pipe, uploaded, or copied by interpreter code.
# Reading weights in place (ls, du, stat, sha256sum, `cat` to the terminal, an eval script
# given `--model /models/x`) is allowed.
#
# A path is weights when it has a weight file name (data.gatekeeper.weights.extensions,
# bin_name_patterns), lies under a protected location or an agent's weights directory, or
# lies above one (copying /home/agent/WorkSpace/Agent copies its local_model_weights).
package gatekeeper.weights

import data.gatekeeper.lib

# Findings on every command, candidates included; see lib.hit.
hits contains lib.hit(c, "weights.copy", message) if {
	some c in lib.commands
	lib.copies(c)
	some source in lib.copy_source_paths(c)
	weights_for(c, source)
	message := lib.format("%s copies model weights %s to %s", [c.name, source, lib.copy_destination_text(c)])
}

hits contains lib.hit(c, "weights.copy", message) if {
	some c in lib.commands
	c.name == "dd"
	some source in lib.dd_inputs(c)
	is_weights(source)
	message := lib.format("dd copies model weights %s", [source])
}

hits contains lib.hit(c, "weights.archive", message) if {
	some c in lib.commands
	lib.archives(c)
	some p in lib.archive_sources(c)
	weights_for(c, p)
	message := lib.format("%s archives model weights %s", [c.name, p])
}

hits contains lib.hit(c, "weights.archive", message) if {
	some c in lib.commands
	lib.compresses(c)
	some p in read_paths(c)
	weights_for(c, p)
	message := lib.format("%s compresses model weights %s", [c.name, p])
}

hits contains lib.hit(c, "weights.split", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.weights.split_programs
	some p in read_paths(c)
	weights_for(c, p)
	message := lib.format("%s splits model weights %s into pieces", [c.name, p])
}

hits contains lib.hit(c, "weights.encode", message) if {
	some c in lib.commands
	encodes(c)
	some p in read_paths(c)
	weights_for(c, p)
	message := lib.format("%s encodes model weights %s", [c.name, p])
}

hits contains lib.hit(c, "weights.stream", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.lib.stream_programs
	writes_elsewhere(c)
	some p in read_paths(c)
	weights_for(c, p)
	message := lib.format("%s streams model weights %s into %s", [c.name, p, sink(c)])
}

# Any other program fed weights on standard input whose output leaves the terminal.
hits contains lib.hit(c, "weights.stream", message) if {
	some c in lib.commands
	not has_weights_rule(c)
	lib.output_leaves(c)
	some p in lib.input_sources(c)
	is_weights(p)
	message := lib.format("%s streams model weights %s into %s", [c.name, p, sink(c)])
}

hits contains lib.hit(c, "weights.upload", message) if {
	some c in lib.commands
	some ref in lib.upload_files(c)
	is_weights(ref)
	message := lib.format("%s uploads model weights %s", [c.name, ref])
}

hits contains lib.hit(c, "weights.upload", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.lib.network_programs
	some p in (lib.input_sources(c) | socat_files(c))
	is_weights(p)
	message := lib.format("%s sends model weights %s over the network", [c.name, p])
}

hits contains lib.hit(c, "weights.upload", message) if {
	some c in lib.commands
	lib.transfers(c)
	some p in lib.all_paths(c)
	weights_for(c, p)
	message := lib.format("%s transfers model weights %s", [c.name, p])
}

# `sftp -b - host <<< 'put /models/x.gguf'`: file names in the batch script fed to the client.
hits contains lib.hit(c, "weights.upload", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.weights.batch_transfer_programs
	some body in lib.redirect_bodies(c)
	some word in regex.split(`[\s;'"]+`, body)
	startswith(word, "/")
	is_weights(word)
	message := lib.format("%s transfers model weights %s", [c.name, word])
}

# Non-candidate findings become violations; evasion reports the candidate ones.
violations contains h.violation if {
	some h in hits
	not h.candidate
}

# Interpreter code: a copy function given weights, or weights opened while something is written.
violations contains lib.violation("weights.python", message) if {
	some a in lib.api_calls
	a.function in data.gatekeeper.weights.python_copy_functions
	some s in lib.api_strings(a)
	is_weights(lib.api_abs(s))
	message := lib.format("%s copies model weights %s", [a.function, s])
}

violations contains lib.violation("weights.python", message) if {
	some [a, path] in python_weight_reads
	some w in python_writers
	w != a
	message := lib.format("%s reads model weights %s and %s writes them out", [a.function, path, w.function])
}

# The calls that open weights, with the path, and the calls that write; each found once, not once
# per pair of calls (rego-cpp evaluates a body's tests for every combination of its loops).
python_weight_reads contains [a, path] if {
	some a in lib.api_calls
	a.function in data.gatekeeper.weights.python_open_functions
	path := lib.api_arg(a, 0, "file")
	is_string(path)
	is_weights(lib.api_abs(path))
}

python_writers contains w if {
	some w in lib.api_calls
	python_writes(w)
}

violations contains lib.violation("weights.file_write", message) if {
	lib.call.tool == "file_write"
	some p in lib.array_field(lib.facts, "writes")
	is_string(p)
	is_weights(p)
	message := lib.format("file_write writes to model weights %s", [p])
}

# --- what is weights ------------------------------------------------------------------------

# Where weights live: the protected locations (`~` expanded) and each agent home's weights dirs.
protected_patterns := lib.expand_all(data.gatekeeper.weights.protected_paths) | {lib.child(h, d) |
	some h in lib.agent_homes
	some d in data.gatekeeper.weights.dir_names
}

is_weights(p) if weight_file_name(p)

is_weights(p) if under_protected(p)

is_weights(p) if {
	p != ""
	some pattern, start in protected_starts
	lib.may_be_above(p, start)
	lib.above(p, pattern)
}

is_weights(p) if in_weights_dir(p)

under_protected(p) if {
	not text_file(p)
	under_a_protected_location(p)
}

# The loops below sit in functions of their own: rego-cpp evaluates a body's other expressions
# once per iteration of its loops, text_file's fourteen tests included.
under_a_protected_location(p) if {
	some pattern, start in protected_starts
	startswith(p, start)
	lib.under_glob(p, pattern)
}

# Each pattern with its literal start, which a path must share before glob.match is worth
# asking (see lib.under); worked out once per call instead of once per path judged.
protected_starts := {pattern: lib.glob_literal_start(pattern) | some pattern in protected_patterns}

bin_name_starts := {pattern: lib.glob_literal_start(pattern) |
	some pattern in data.gatekeeper.weights.bin_name_patterns
}

in_weights_dir(p) if {
	not text_file(p)
	has_weights_dir_segment(p)
}

has_weights_dir_segment(p) if {
	some segment in split(p, "/")
	segment in data.gatekeeper.weights.dir_names
}

# p is weights as c takes it: a path that is weights, unless it is only the root of a `find`
# that hands c files of another kind.
weights_for(c, p) if {
	is_weights(p)
	not other_files_root(c, p)
}

# `find / -iname '*.mp3' -exec mv {} /mnt \;`, `find ~ -name '*.txt' | xargs cp -t dir`: the root
# lies above the weight locations, but every file find selects has another kind's name. Only
# what find hands c is judged so; c's own operands are judged as usual.
other_files_root(c, p) if {
	p in other_files_roots
	not p in lib.path_set(c)
	not weight_file_name(p)
	not under_protected(p)
	not in_weights_dir(p)
}

# The roots of the finds that select only other kinds of file. A rule, so computed once per call:
# as a loop inside other_files_root, rego-cpp repeated it for every path of every command.
other_files_roots contains p if {
	some f in lib.effective_commands
	f.name == "find"
	selects_other_files(f.args)
	some p in lib.find_roots(f)
}

# A name test, before any action and not negated, that only other kinds of file pass; no `-o`
# alternative and no directories (a directory of any name may hold weights).
selects_other_files(args) if {
	not find_alternatives(args)
	not find_directories(args)
	some pattern in name_test_patterns(args)
	other_kind_name(pattern)
}

# The patterns of the name tests that come before any action and are not negated, lowered.
name_test_patterns(args) := {lower(args[i + 1]) |
	some i
	test := args[i]
	test in {"-name", "-iname"}
	not find_action_before(args, i)
	not find_negated(args, i)
}

# Its own function: with both loops in one body, rego-cpp tested every pair of an argument and
# an extension (0.2 s for one `find -name '*.txt' -exec`).
other_kind_name(pattern) if {
	some ext in unrelated_extensions
	endswith(pattern, ext)
}

unrelated_extensions := {e | some e in data.gatekeeper.weights.text_extensions} | {e |
	some e in data.gatekeeper.weights.other_file_extensions
}

find_alternatives(args) if {
	some a in args
	a in {"-o", "-or", ","}
}

find_directories(args) if {
	some i, a in args
	a == "-type"
	contains(args[i + 1], "d")
}

find_action_before(args, i) if {
	some j, a in args
	j < i
	a in data.gatekeeper.weights.find_actions
}

find_negated(args, i) if args[i - 1] in {"!", "-not"}

weight_file_name(p) if {
	lowered := lower(p)
	some ext in data.gatekeeper.weights.extensions
	endswith(lowered, ext)
}

# The literal start first: glob.match costs microseconds and most names fail that test.
weight_file_name(p) if {
	name := lower(lib.basename(p))
	some pattern, start in bin_name_starts
	startswith(name, start)
	glob.match(pattern, [], name)
}

# Configs, tokenizers' JSON, READMEs: not weights even under a protected location.
text_file(p) if {
	lowered := lower(p)
	some ext in data.gatekeeper.weights.text_extensions
	endswith(lowered, ext)
}

# --- what a command does with files ---------------------------------------------------------

encodes(c) if c.name in data.gatekeeper.weights.encode_programs

encodes(c) if {
	c.name in data.gatekeeper.weights.encrypt_programs
	not lib.has_option(c, data.gatekeeper.weights.encrypt_read_only_flags)
}

encodes(c) if {
	subs := data.gatekeeper.weights.encode_subcommands[c.name]
	count(c.positionals) > 0
	c.positionals[0] in subs
}

# Everything the command reads: its file operands, what find/xargs hand it, its standard input.
read_paths(c) := lib.all_paths(c) | lib.input_sources(c)

writes_elsewhere(c) if lib.output_leaves(c)

writes_elsewhere(c) if {
	c.name == "tee"
	count(c.positionals) > 0
}

sink(c) := "a pipe" if {
	lib.piped_onward(c)
} else := concat(", ", sort([t | some t in lib.output_targets(c)])) if {
	count(lib.output_targets(c)) > 0
} else := concat(", ", [lib.abs(c, p) | some p in c.positionals])

# Programs a dedicated weights rule already judges.
has_weights_rule(c) if c.name in data.gatekeeper.lib.stream_programs

has_weights_rule(c) if encodes(c)

has_weights_rule(c) if c.name in data.gatekeeper.weights.split_programs

has_weights_rule(c) if c.name in data.gatekeeper.lib.compress_programs

has_weights_rule(c) if c.name in data.gatekeeper.lib.archive_programs

has_weights_rule(c) if c.name in data.gatekeeper.lib.network_programs

has_weights_rule(c) if lib.copies(c)

has_weights_rule(c) if c.name == "dd"

# socat addresses naming files: `FILE:/models/x`, `OPEN:/models/x,rdonly`, `/models/x`.
socat_files(c) := {lib.abs(c, part) |
	c.name == "socat"
	some a in c.positionals
	some piece in split(a, ",")
	some part in split(piece, ":")
	lib.starts_with_any(part, ["/", "~", "."])
}

python_writes(w) if w.function in data.gatekeeper.weights.python_write_functions

python_writes(w) if {
	w.function in data.gatekeeper.weights.python_open_functions
	lib.opens_for_writing(w)
}
