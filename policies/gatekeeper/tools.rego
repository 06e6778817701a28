# Tool calls other than shell: what the analyser's facts cannot show by themselves.
#
# - tools.unknown_tool (deny): a tool gatekeeper does not know (data.gatekeeper.tools.known) runs
#   something nobody has described, so it is denied whatever its arguments.
# - tools.http_upload (deny): an http call sending a local file (`"files": ["/models/x.gguf"]`,
#   a body of `@/path`) that is model weights or a file of the agent's home.
# - tools.mcp_unanalysed (ask): an mcp call whose command argument is not a string, or that
#   carries an argument vector (`args`), which the analyser does not follow.
#
# The rest is the families' work on the facts: file_write paths (weights, persistence), python
# code (every family), mcp command/cmd/script/code arguments (analysed as shell or python), http
# messages telling a replica to replicate (replication). Reading a file in place is allowed.
package gatekeeper.tools

import data.gatekeeper.lib

tool := lib.string_field(lib.call, "tool", "")

violations contains lib.violation("tools.unknown_tool", message) if {
	not tool in data.gatekeeper.tools.known
	message := concat("", ["unknown tool ", shown_tool, ": only ", concat(", ", data.gatekeeper.tools.known), " calls are mediated"])
}

shown_tool := concat("", ["\"", tool, "\""]) if {
	tool != ""
} else := "(none)"

# --- http -----------------------------------------------------------------------------------

arguments := lib.object_field(lib.call, "arguments")

http_method := upper(lib.string_field(arguments, "method", "GET"))

violations contains lib.violation("tools.http_upload", message) if {
	tool == "http"
	http_method in data.gatekeeper.tools.http_body_methods
	some path in http_files
	what := sensitive(path)
	message := concat("", ["http ", http_method, " uploads ", what, " ", path, " to ", lib.string_field(arguments, "url", "(no url)")])
}

# Local files an http call sends: file arguments (a path, a list of paths or a name → path
# object) and a body naming a file curl-style (`@/path`).
http_files contains lib.api_abs(p) if {
	some key in data.gatekeeper.tools.http_file_arguments
	some p in file_values(object.get(arguments, key, null))
}

http_files contains lib.api_abs(substring(body, 1, -1)) if {
	body := lib.string_field(arguments, "body", "")
	startswith(body, "@")
	count(body) > 1
}

file_values(v) := {v} if {
	is_string(v)
	v != ""
} else := {p | some p in v; is_string(p); p != ""} if {
	is_array(v)
} else := {p | some p in v; is_string(p); p != ""} if {
	is_object(v)
} else := set()

sensitive(p) := "model weights" if {
	data.gatekeeper.weights.is_weights(p)
} else := "the agent's file" if {
	lib.inside_home(p)
}

# --- mcp ------------------------------------------------------------------------------------

mcp_arguments := lib.object_field(arguments, "arguments")

violations contains lib.violation("tools.mcp_unanalysed", message) if {
	tool == "mcp"
	some key in data.gatekeeper.tools.mcp_command_arguments
	v := mcp_arguments[key]
	not is_string(v)
	message := concat("", ["mcp ", mcp_name, ": the ", key, " argument is not a command line, so what it runs is not analysed"])
}

violations contains lib.violation("tools.mcp_unanalysed", message) if {
	tool == "mcp"
	some key in data.gatekeeper.tools.mcp_argv_arguments
	_ = mcp_arguments[key]
	message := concat("", ["mcp ", mcp_name, ": the ", key, " argument vector is not analysed with its command"])
}

mcp_name := concat("/", [lib.string_field(arguments, "server", "?"), lib.string_field(arguments, "name", "?")])
