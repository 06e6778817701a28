# Builders for hand-written policy inputs, shared by every *_test package. Not a test package
# itself (no test_ rules); it lives in a _test.rego file so it never ships with the policies.
#
#   t.shell([t.cmd(["cp", "-r", "/models/llama", "/tmp/x"])])
#   t.shell([t.piped(t.cmd(["cat", "/models/x.gguf"]), 0, 2), t.piped(t.cmd(["nc", "h", "9"]), 1, 2)])
package gatekeeper.testing

home := "/home/agent"

agent := "/home/agent/WorkSpace/Agent"

# A simple command from its argv, run in the user's home.
cmd(argv) := cmd_in(argv, home)

# A simple command run in `cwd`; paths are its non-option operands made absolute, as the
# analyser reports them.
cmd_in(argv, cwd) := {
	"index": 0,
	"program": argv[0],
	"name": base(argv[0]),
	"argv": argv,
	"paths": [absolute(a, cwd) |
		some a in array.slice(argv, 1, count(argv))
		not startswith(a, "-")
	],
	"dynamic": [],
	"redirects": [],
	"background": false,
	"pipeline": null,
	"via": [],
	"depth": 0,
	"cwd": cwd,
	"env": {},
	"language": "shell",
	"candidate": false,
	"text": concat(" ", argv),
}

base(p) := parts[count(parts) - 1] if {
	parts := split(p, "/")
}

absolute(a, cwd) := a if {
	startswith(a, "/")
} else := cwd if {
	a == "."
} else := concat("/", [cwd, trim_prefix(a, "./")])

# The same command with an extra redirection (`>`, `>>`, `<`, ...) to an absolute target.
redirect(c, op, target) := object.union(c, {"redirects": array.concat(c.redirects, [{
	"op": op,
	"target": target,
	"target_abs": target,
	"fd": null,
	"body": null,
}])})

# A here-document or here-string feeding c.
heredoc(c, body) := object.union(c, {"redirects": array.concat(c.redirects, [{
	"op": "<<",
	"target": null,
	"target_abs": null,
	"fd": null,
	"body": body,
}])})

# c at `position` of a pipeline of `length` commands.
piped(c, position, length) := piped_in(c, 1, position, length)

# The same in pipeline `id` of the call.
piped_in(c, id, position, length) := object.union(c, {"pipeline": {"id": id, "position": position, "length": length}})

# c found through one more layer (`wrapper`/sudo, `payload`/base64, `trap`/trap, ...).
via(c, kind, name) := object.union(c, {
	"via": array.concat(c.via, [{"kind": kind, "name": name}]),
	"depth": c.depth + 1,
})

# c found through a layer opened by the call's command number `index` (the find of `find -exec`).
opened_by(c, kind, name, index) := object.union(c, {
	"via": array.concat(c.via, [{"kind": kind, "name": name, "command": index}]),
	"depth": c.depth + 1,
})

# c as a candidate: a command line inside an argument of `host`, not known to run.
candidate(c, host) := object.union(via(c, "argument", host), {"candidate": true})

background(c) := object.union(c, {"background": true})

# A whole shell call made of these commands, in order.
shell(cmds) := call_of("shell", cmds, [], [])

# The same, with a context merged over the default one.
shell_ctx(cmds, ctx) := object.union(shell(cmds), {"context": object.union(default_context, ctx)})

# The same call with this exact context (object.union would merge into the default one).
with_context(inp, ctx) := object.union(object.remove(inp, ["context"]), {"context": ctx})

# A shell call whose session already ran `earlier` (a list of calls, each a list of commands).
shell_after(cmds, earlier) := object.union(shell(cmds), {"session": {
	"id": "s1",
	"history": [{"id": sprintf("c%d", [i]), "decision": "allow", "commands": earlier[i]} | some i; earlier[i]],
}})

# A python tool call: its API calls and the commands they run.
python(api_calls, cmds) := call_of("python", cmds, api_calls, [])

# A shell call that also holds interpreter API calls (python -c, heredoc to python).
shell_with_api(cmds, api_calls) := call_of("shell", cmds, api_calls, [])

# A shell call with opaque facts.
shell_opaque(cmds, opaque) := call_of("shell", cmds, [], opaque)

api(function, args) := {"language": "python", "function": function, "args": args, "kwargs": {}, "via": [], "text": function}

api_kw(function, args, kwargs) := object.union(api(function, args), {"kwargs": kwargs})

api_text(function, args, text) := object.union(api(function, args), {"text": text})

opaque(reason, detail) := {"reason": reason, "detail": detail, "text": detail, "via": []}

file_write(path) := object.union(call_of("file_write", [], [], []), {
	"call": object.union(call_of("file_write", [], [], []).call, {"arguments": {"path": path, "content": "x"}}),
	"facts": object.union(empty_facts("file_write"), {"writes": [path]}),
})

file_read(path) := object.union(call_of("file_read", [], [], []), {
	"call": object.union(call_of("file_read", [], [], []).call, {"arguments": {"path": path}}),
	"facts": object.union(empty_facts("file_read"), {"reads": [path]}),
})

http(arguments) := object.union(call_of("http", [], [], []), {
	"call": object.union(call_of("http", [], [], []).call, {"arguments": arguments}),
	"facts": object.union(empty_facts("http"), {"urls": [object.get(arguments, "url", "")]}),
})

tool_call(tool) := call_of(tool, [], [], [])

default_context := {"mode": "enforce", "home": home}

call_of(tool, cmds, api_calls, opaque_facts) := {
	"call": {
		"id": "t1",
		"tool": tool,
		"arguments": {"command": concat(" ; ", [c.text | some c in cmds])},
		"session_id": "s1",
		"cwd": home,
	},
	"facts": object.union(empty_facts(tool), {
		"commands": [object.union(c, {"index": i}) | some i; c := cmds[i]],
		"api_calls": api_calls,
		"opaque": opaque_facts,
	}),
	"session": {},
	"context": default_context,
}

empty_facts(tool) := {
	"tool": tool,
	"commands": [],
	"api_calls": [],
	"opaque": [],
	"writes": [],
	"reads": [],
	"urls": [],
	"syntax_errors": [],
}

# --- assertions -----------------------------------------------------------------------------

rules(violations) := {v.rule | some v in violations}

# Exactly these rule ids fired.
fired(violations, expected) if rules(violations) == expected

# `rule` fired with `action` and a message mentioning `fragment`.
reported(violations, rule, action, fragment) if {
	some v in violations
	v.rule == rule
	v.action == action
	contains(v.message, fragment)
}
