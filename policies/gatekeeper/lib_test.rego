package gatekeeper.lib_test

import data.gatekeeper.lib
import data.gatekeeper.testing as t

# --- normalised commands --------------------------------------------------------------------

test_commands_are_normalised_with_defaults if {
	inp := {"call": {"tool": "shell"}, "facts": {"commands": [{"name": "ls", "argv": ["ls", "-l", "x"]}]}}
	cmds := lib.commands with input as inp
	cmds == [{
		"index": 0,
		"name": "ls",
		"program": "ls",
		"argv": ["ls", "-l", "x"],
		"args": ["-l", "x"],
		"positionals": ["x"],
		"paths": [],
		"redirects": [],
		"pipeline": null,
		"via": [],
		"cwd": null,
		"candidate": false,
		"text": "ls -l x",
	}]
}

test_ill_typed_command_fields_are_dropped if {
	c := {
		"name": "cp",
		"argv": ["cp", 7, "/b"],
		"paths": [1, "/b"],
		"redirects": ["x", {"op": ">", "target": 3}],
		"pipeline": {"position": "0"},
		"via": [null],
		"cwd": "relative",
		"candidate": "yes",
	}
	cmds := lib.commands with input as {"facts": {"commands": [c, {"name": 3, "argv": []}, "junk"]}}
	count(cmds) == 1
	cmd := cmds[0]
	cmd.argv == ["cp", "", "/b"]
	cmd.paths == ["/b"]
	cmd.redirects == [{"op": ">", "fd": null, "target": "", "target_abs": "", "body": ""}]
	cmd.pipeline == null
	cmd.via == []
	cmd.cwd == null
	cmd.candidate == false
}

test_commands_of_non_object_input_are_empty if {
	cmds := lib.commands with input as "x"
	cmds == []
}

test_effective_commands_exclude_candidates if {
	inp := t.shell([t.cmd(["ls"]), t.candidate(t.cmd(["rm", "-rf", "/"]), "vim")])
	cmds := lib.effective_commands with input as inp
	[c.name | some c in cmds] == ["ls"]
}

test_the_copying_commands_of_the_history_are_read_from_the_session if {
	earlier := [
		[t.cmd(["ls"])],
		[t.cmd(["cp", "a", "b"]), t.cmd(["pwd"])],
		[t.cmd(["ln", "a", "b"]), t.cmd(["docker", "cp", "a", "c:/b"]), t.cmd(["rsync", "-a", "a", "b"])],
	]
	cmds := lib.history_copying_commands with input as t.shell_after([], earlier)
	[c.name | some c in cmds] == ["cp", "ln", "docker", "rsync"]
	cmds[0].positionals == ["a", "b"]
}

test_a_history_command_carries_what_its_own_call_handed_it if {
	find := t.cmd_in(["find", "src", "-exec", "cp", "{}", "/tmp/x", ";"], "/home/agent/proj")
	cp := t.opened_by(t.cmd(["cp", "{}", "/tmp/x"]), "find_exec", "find", 0)
	[c] := lib.history_copying_commands with input as t.shell_after([], [[find, cp]])
	c.inherited == {"/home/agent/proj/src"}
	lib.inherited_paths(c) == {"/home/agent/proj/src"}
	[plain] := lib.history_copying_commands with input as t.shell_after([], [[t.cmd(["cp", "a", "b"])]])
	plain.inherited == set()
}

test_a_session_given_as_json_text_is_read_as_the_object if {
	inp := t.shell_after([], [[t.cmd(["ls"])], [t.cmd(["cp", "a", "b"]), t.cmd(["pwd"])]])
	as_text := object.union(inp, {"session": json.marshal(inp.session)})
	cmds := lib.history_copying_commands with input as as_text
	[c.name | some c in cmds] == ["cp"]
}

test_a_session_that_is_neither_an_object_nor_json_text_is_empty if {
	lib.session == {} with input as object.union(t.shell([]), {"session": "not json"})
	lib.session == {} with input as object.union(t.shell([]), {"session": "[1, 2]"})
	lib.session == {} with input as object.union(t.shell([]), {"session": 7})
}

test_find_roots_are_the_words_before_the_expression if {
	f := lib.command(0, t.cmd_in(["find", "-L", "src", "/tmp", "-name", "*.py", "-exec", "mv", "{}", "..", ";"], "/home/agent/p"))
	lib.find_roots(f) == {"/home/agent/p/src", "/tmp"}
}

test_a_find_without_starting_points_looks_in_the_working_directory if {
	f := lib.command(0, t.cmd_in(["find", "(", "-name", "a", ")", "-print"], "/home/agent/p"))
	lib.find_roots(f) == {"/home/agent/p"}
}

# --- argv -----------------------------------------------------------------------------------

test_positionals_skip_options_and_keep_everything_after_double_dash if {
	lib.positionals(["-r", "a", "-", "--", "-b", "c"]) == ["a", "-", "-b", "c"]
}

test_positionals_without_double_dash_and_with_a_second_one if {
	lib.positionals(["-r", "a", "-x", "b"]) == ["a", "b"]
	lib.positionals(["--", "--", "-a"]) == ["--", "-a"]
	lib.positionals([]) == []
}

test_is_operand_agrees_with_positionals if {
	args := ["-r", "a", "-", "--", "-b", "--", "c"]
	operands := [i | some i, _ in args; lib.is_operand(args, i)]
	operands == [1, 2, 4, 5, 6]
	[args[i] | some i in operands] == lib.positionals(args)
}

test_subcommands_are_the_first_three_operands if {
	lib.subcommands({"positionals": ["compose", "down", "x", "y"]}) == ["compose", "down", "x"]
}

# The spellings option_names stands for, written out rule by rule.
spelled(a, f) if a == f

spelled(a, f) if {
	startswith(f, "--")
	startswith(a, concat("", [f, "="]))
}

spelled(a, f) if {
	count(f) == 2
	startswith(f, "-")
	f != "--"
	startswith(a, f)
	not startswith(a, "--")
	count(a) > 2
}

spelling(a, f) if {
	spelled(a, f)
} else := false

test_option_names_are_exactly_the_spellings if {
	args := ["-p", "-p8080", "-lvnp", "--port", "--port=80", "--port-range=1", "--=x", "--", "-", "x", "-pé", "--a=b=c"]
	flags := ["-p", "-l", "-v", "--port", "--port-range", "--", "-", "x", "--a", "--a=b"]
	every a in args {
		every f in flags {
			named := f in lib.option_names(a)
			spelling(a, f) == named
		}
	}
}

test_has_option_matches_the_usual_spellings if {
	lib.has_option({"args": ["-T", "f"]}, ["-T"])
	lib.has_option({"args": ["-Tf"]}, ["-T"])
	lib.has_option({"args": ["--upload-file=f"]}, ["--upload-file"])
	not lib.has_option({"args": ["--upload-filex"]}, ["--upload-file"])
	not lib.has_option({"args": ["--tx"]}, ["-t"])
}

test_has_letter_finds_a_letter_in_a_short_cluster if {
	lib.has_letter({"args": ["-lvnp", "4444"]}, ["l"])
	not lib.has_letter({"args": ["--listen"]}, ["l"])
	not lib.has_letter({"args": ["-vnp"]}, ["l"])
}

test_option_values_reads_separate_attached_and_equals_forms if {
	c := {"args": ["-d", "a", "-db", "--data=c", "--data", "d", "-x", "e"]}
	lib.option_values(c, ["-d", "--data"]) == {"a", "b", "c", "d"}
}

test_is_python_names_a_python_prefix_then_only_digits_and_dots if {
	every name in ["python", "python3", "python3.11", "python2.7.18", "pypy", "pypy3", "pypy3.10"] {
		lib.is_python({"name": name})
	}
	every name in ["ipython", "python3-config", "pythonw", "python3.11x", "py", "", "jython", "pypy-c"] {
		not lib.is_python({"name": name})
	}
	not lib.is_python({"name": 3})
	not lib.is_python({})
}

test_python_module_is_read_from_dash_m if {
	lib.python_modules({"name": "python3", "args": ["-m", "http.server", "8000"]}) == {"http.server"}
	lib.python_modules({"name": "python3.11", "args": ["-mvllm.entrypoints.api_server"]}) == {"vllm.entrypoints.api_server"}
	lib.python_modules({"name": "node", "args": ["-m", "x"]}) == set()
}

test_module_matches_whole_dotted_prefixes if {
	lib.module_matches("vllm.entrypoints.openai.api_server", ["vllm.entrypoints"])
	lib.module_matches("http.server", ["http.server"])
	not lib.module_matches("http.serverless", ["http.server"])
}

test_short_cuts_long_text if {
	count(lib.short(concat("", [x | some _ in numbers.range(1, 200); x := "a"]))) == 163
	lib.short("abc") == "abc"
}

test_excerpt_is_empty_without_text if {
	lib.excerpt("") == ""
	lib.excerpt("kill 1") == ": kill 1"
}

# --- paths ----------------------------------------------------------------------------------

test_normalise_collapses_dots_and_slashes if {
	lib.normalise("/a//b/./c/../d/") == "/a/b/d"
	lib.normalise("/a/b/../../c") == "/c"
	lib.normalise("/../x") == "/x"
	lib.normalise("/") == "/"
	lib.normalise("/a/.") == "/a"
	lib.normalise("") == "/"
}

test_normalise_leaves_clean_paths_alone if {
	lib.normalise("/a/b.c/.d") == "/a/b.c/.d"
	lib.normalise("/a/b/") == "/a/b"
	lib.normalise("rel/x") == "rel/x"
	lib.normalise("/a..b/c") == "/a..b/c"
	lib.normalise("/home/agent/.bashrc") == "/home/agent/.bashrc"
	lib.normalise("/a/..b/.c.") == "/a/..b/.c."
	lib.normalise("/a/b/.") == "/a/b"
	lib.normalise("/a/b/..") == "/a"
}

test_basename_and_dirname if {
	lib.basename("/a/b/c.py") == "c.py"
	lib.dirname("/a/b/c.py") == "/a/b"
	lib.dirname("/a") == "/"
}

test_self_and_ancestors if {
	lib.self_and_ancestors("/a/b/c.py") == {"/", "/a", "/a/b", "/a/b/c.py"}
	lib.self_and_ancestors("/") == {"/"}
}

test_abs_resolves_against_cwd_and_home if {
	c := {"cwd": "/w"}
	lib.abs(c, "x/../y") == "/w/y"
	lib.abs(c, ".") == "/w"
	lib.abs(c, "./x") == "/w/x"
	lib.abs(c, "./") == "/w"
	lib.abs(c, ".//x/./y") == "/w/x/y"
	lib.abs(c, "./../y") == "/y"
	lib.abs({"cwd": "/"}, ".") == "/"
	lib.abs({"cwd": "/"}, "./x") == "/x"
	lib.abs({"cwd": null}, ".") == "."
	lib.abs(c, "/etc//x") == "/etc/x"
	lib.abs({"cwd": null}, "rel") == "rel"
	lib.abs(c, "~/x") == "/home/agent/x" with input as t.shell([])
	lib.abs(c, "~/x") == "~/x" with input as t.with_context(t.shell([]), {})
}

test_expand_home_uses_context_home_when_known if {
	lib.expand_home("~/models") == {"/home/agent/models"} with input as t.shell([])
	lib.expand_home("/opt/models") == {"/opt/models"} with input as t.shell([])
	lib.expand_home("~bob/models") == {"~bob/models"} with input as t.shell([])
	lib.expand_home("~") == {"/home/agent"} with input as t.shell([])
}

test_expand_home_without_known_home_covers_root_and_every_user if {
	got := lib.expand_home("~/models") with input as t.with_context(t.shell([]), {})
	got == {"~/models", "/root/models", "/home/*/models"}
}

test_under_and_above_follow_path_segments if {
	lib.under("/models", "/models")
	lib.under("/models/a/b", "/models")
	lib.under("/home/x/models/a", "/home/*/models")
	not lib.under("/modelsx", "/models")
	lib.above("/", "/models")
	lib.above("/home", "/home/*/models")
	lib.above("/home/x", "/home/*/models")
	not lib.above("/home/x/models", "/home/*/models")
	not lib.above("/tmp", "/models")
}

test_under_checks_the_literal_start_then_the_whole_pattern if {
	lib.glob_literal_start("/home/*/models") == "/home/"
	lib.glob_literal_start("/srv/m?dels") == "/srv/m"
	lib.glob_literal_start("/data/[ab]x") == "/data/"
	lib.glob_literal_start("/opt/{a,b}") == "/opt/"
	lib.glob_literal_start(`/x\*y`) == "/x"
	lib.glob_literal_start("/models") == "/models"
	lib.glob_literal_start("*") == ""
	lib.under("/srv/mxdels/w.bin", "/srv/m?dels")
	lib.under("/opt/b", "/opt/{a,b}")
	lib.under("/anything", "*")
	not lib.under("/srv/other", "/srv/m?dels")
	not lib.under("/home/x/modelsx", "/home/*/models")
}

test_inside_is_literal_containment if {
	lib.inside("/a/b", "/a")
	lib.inside("/a", "/a")
	lib.inside("/a", "/")
	not lib.inside("/ab", "/a")
}

test_remote_specs_are_recognised if {
	lib.is_remote_spec("host:/srv")
	lib.is_remote_spec("user@host:x")
	lib.is_remote_spec("s3://bucket/k")
	not lib.is_remote_spec("/tmp/a:b")
	not lib.is_remote_spec("if=/x:y")
	not lib.is_remote_spec("./a:b")
	not lib.is_remote_spec("~/a:b")
	not lib.is_remote_spec(":x")
	not lib.is_remote_spec("a/b:c")
	not lib.is_remote_spec("k=v:w")
	not lib.is_remote_spec("plain")
	lib.remote_path("host:/srv/x") == "/srv/x"
	lib.remote_path("s3://b/k") == "s3://b/k"
}

test_output_targets_ignore_dev_null_and_stderr if {
	c := lib.commands[0] with input as t.shell([t.redirect(t.redirect(t.cmd(["cat", "x"]), ">", "/dev/null"), ">>", "/tmp/o")])
	lib.output_targets(c) == {"/tmp/o"}
	lib.output_leaves(c)
}

test_stderr_redirect_is_not_an_output_target if {
	r := {"op": ">", "fd": 2, "target": "/tmp/err", "target_abs": "/tmp/err", "body": ""}
	c := {"redirects": [r], "pipeline": null, "cwd": "/"}
	count(lib.output_targets(c)) == 0
	not lib.output_leaves(c)
}

test_copy_destinations_and_sources if {
	lib.copy_destinations({"args": ["-r", "a", "b", "c"], "positionals": ["a", "b", "c"]}) == {"c"}
	lib.copy_destinations({"args": ["-t", "d", "a"], "positionals": ["d", "a"]}) == {"d"}
	lib.copy_sources({"args": ["-t", "d", "a"], "positionals": ["d", "a"]}) == ["a"]
	lib.copy_destinations({"args": ["a"], "positionals": ["a"]}) == set()
}

test_tar_creates_recognises_create_modes if {
	lib.tar_creates({"args": ["czf", "x.tgz", "d"]})
	lib.tar_creates({"args": ["-cvf", "x.tar", "d"]})
	lib.tar_creates({"args": ["--create", "-f", "x.tar", "d"]})
	not lib.tar_creates({"args": ["-xzf", "x.tgz", "-C", "d"]})
	not lib.tar_creates({"args": ["tvf", "x.tar"]})
	lib.tar_creates({"args": ["-rf", "x.tar", "d"]})
	lib.tar_creates({"args": ["Af", "x.tar", "y.tar"]})
	not lib.tar_creates({"args": ["-c1", "x"]})
	not lib.tar_creates({"args": ["c.tar"]})
}

test_tar_option_and_file_values if {
	lib.tar_option_value(["-czf", "x.tgz"], 1)
	lib.tar_option_value(["czf", "x.tgz"], 1)
	not lib.tar_option_value(["-cz", "x.tgz"], 1)
	not lib.tar_option_value(["-c-f", "x.tgz"], 1)
	lib.tar_file_value(["-cf", "x.tar"], 1)
	lib.tar_file_value(["-f", "x.tar"], 1)
	not lib.tar_file_value(["-fc", "x.tar"], 1)
	not lib.tar_file_value(["-9f", "x.tar"], 1)
	not lib.old_style_mode(["c9f"], 0)
	not lib.old_style_mode(["bf"], 0)
}

test_only_chars_and_has_any_are_character_classes if {
	lib.only_chars("abcXYZ", lib.ascii_letters)
	lib.only_chars("0755", lib.ascii_digits)
	not lib.only_chars("", lib.ascii_letters)
	not lib.only_chars("ab1", lib.ascii_letters)
	not lib.only_chars("ab\n", lib.ascii_letters)
	not lib.only_chars("é", lib.ascii_letters)
	lib.has_any("rw+", ["w", "a"])
	not lib.has_any("r", ["w", "a"])
}

test_needs_normalising_finds_dot_segments_and_double_slashes if {
	every p in ["/a/./b", "/a/../b", "/a/.", "/a/..", "/a//b", "/a/"] {
		lib.needs_normalising(p)
	}
	every p in ["/a/.git", "/a/..b", "/a/b.", "/a/.../b", "/a/b"] {
		not lib.needs_normalising(p)
	}
}

test_find_optimisation_levels if {
	lib.find_optimisation_level("-O")
	lib.find_optimisation_level("-O3")
	not lib.find_optimisation_level("-Ofast")
	lib.find_expression_word("-name")
	not lib.find_expression_word("-O2")
}

# --- the agent ------------------------------------------------------------------------------

test_agent_homes_default_to_site_data if {
	homes := lib.agent_homes with input as t.shell([])
	homes == {"/home/agent/WorkSpace/Agent"}
}

test_context_agent_home_overrides_site_data if {
	homes := lib.agent_homes with input as t.shell_ctx([], {"agent_home": "/srv/bot/"})
	homes == {"/srv/bot"}
	homes2 := lib.agent_homes with input as t.shell_ctx([], {"agent_home": ["/a", "~/b"]})
	homes2 == {"/a", "/home/agent/b"}
}

test_sibling_copies_of_the_home_are_recognised if {
	lib.sibling_copy_roots("/home/agent/WorkSpace/Agent_new/x/y.py") == {"/home/agent/WorkSpace/Agent_new"} with input as t.shell([])
	lib.in_sibling_copy("/home/agent/WorkSpace/Agent2") with input as t.shell([])
	not lib.in_sibling_copy("/home/agent/WorkSpace/Agent/x") with input as t.shell([])
	not lib.in_sibling_copy("/home/agent/WorkSpace/Other") with input as t.shell([])
}

test_two_homes_are_not_copies_of_each_other if {
	inp := t.shell_ctx([], {"agent_home": ["/w/Agent", "/w/Agent2"]})
	not lib.in_sibling_copy("/w/Agent2/start.py") with input as inp
	lib.in_sibling_copy("/w/Agent3/start.py") with input as inp
}

test_home_relations if {
	lib.inside_home("/home/agent/WorkSpace/Agent/src") with input as t.shell([])
	lib.above_home("/home/agent") with input as t.shell([])
	not lib.above_home("/home/agent/WorkSpace/Agent") with input as t.shell([])
}

# --- URLs -----------------------------------------------------------------------------------

test_local_urls_are_recognised if {
	lib.is_local_url("http://localhost:8002/chat")
	lib.is_local_url("http://127.0.0.1:8002/chat")
	lib.is_local_url("https://user@[::1]:8002/x")
	lib.is_local_url("localhost:8002/chat")
	lib.is_local_url(":8002/chat")
	lib.is_local_url("http://0.0.0.0")
	not lib.is_local_url("https://api.example.com/chat")
	not lib.is_local_url("{\"message\": \"x\"}")
}

# --- API calls and violations ---------------------------------------------------------------

test_api_calls_are_normalised if {
	inp := t.python([t.api_kw("f", ["a", 1], {"k": "v"}), {"function": 3}, "x"], [])
	calls := lib.api_calls with input as inp
	count(calls) == 1
	lib.api_strings(calls[0]) == {"a", "v"}
	lib.api_arg(calls[0], 1, "n") == 1
	lib.api_arg(calls[0], 5, "k") == "v"
}

test_api_abs_uses_the_call_cwd if {
	lib.api_abs("x/y") == "/home/agent/x/y" with input as t.python([], [])
	lib.api_abs("/a/./b") == "/a/b" with input as t.python([], [])
}

test_violation_action_defaults_to_deny_and_follows_rule_actions if {
	lib.violation("weights.copy", "m") == {"rule": "weights.copy", "family": "weights", "action": "deny", "message": "m"}
	lib.action("evasion.opaque") == "ask"
	lib.action("weights.copy") == "warn" with data.gatekeeper.rule_actions as {"weights.copy": "warn"}
}

test_hit_names_the_candidate_host if {
	c := lib.commands[0] with input as t.shell([t.candidate(t.cmd(["rm", "x"]), "vim")])
	h := lib.hit(c, "x.y", "m")
	h.candidate
	h.host == "vim"
}

test_starts_with_any_is_a_first_character_class if {
	lib.starts_with_any("~/x", ["/", ".", "~"])
	lib.starts_with_any("./x", ["/", ".", "~"])
	not lib.starts_with_any("host:/x", ["/", ".", "~"])
	not lib.starts_with_any("", ["/", ".", "~"])
}

test_opens_for_writing_reads_the_mode_by_position_or_name if {
	lib.opens_for_writing({"args": ["f", "w"], "kwargs": {}})
	lib.opens_for_writing({"args": ["f"], "kwargs": {"mode": "r+"}})
	lib.opens_for_writing({"args": ["f", "ab"], "kwargs": {}})
	not lib.opens_for_writing({"args": ["f", "rb"], "kwargs": {}})
	not lib.opens_for_writing({"args": ["f"], "kwargs": {}})
	not lib.opens_for_writing({"args": ["f", 1], "kwargs": {}})
}
