package gatekeeper.tools_test

import data.gatekeeper.testing as t
import data.gatekeeper.tools

violations_of(inp) := vs if {
	vs := tools.violations with input as inp
}

with_arguments(tool, arguments) := object.union(t.tool_call(tool), {"call": object.union(t.tool_call(tool).call, {"arguments": arguments})})

mcp(arguments) := with_arguments("mcp", {"server": "exec", "name": "run", "arguments": arguments})

# --- unknown tools --------------------------------------------------------------------------

test_unknown_tool_is_denied if {
	vs := violations_of(with_arguments("teleport", {"to": "10.0.0.9"}))
	t.fired(vs, {"tools.unknown_tool"})
	t.reported(vs, "tools.unknown_tool", "deny", "unknown tool \"teleport\": only shell, python, file_write, file_read, http, mcp")
}

test_unknown_tool_with_harmless_arguments_is_denied if {
	t.fired(violations_of(with_arguments("browser", {"url": "https://example.com"})), {"tools.unknown_tool"})
}

test_call_without_a_tool_name_is_denied if {
	inp := object.union(object.remove(t.shell([]), ["call"]), {"call": object.remove(t.shell([]).call, ["tool"])})
	t.reported(violations_of(inp), "tools.unknown_tool", "deny", "unknown tool (none)")
}

test_tool_name_that_is_not_a_string_is_denied if {
	inp := object.union(t.shell([]), {"call": object.union(t.shell([]).call, {"tool": ["shell"]})})
	t.fired(violations_of(inp), {"tools.unknown_tool"})
}

test_known_tools_are_allowed if {
	every tool in ["shell", "python", "file_write", "file_read", "http", "mcp"] {
		count(violations_of(t.tool_call(tool))) == 0
	}
}

test_file_read_of_weights_is_allowed if {
	count(violations_of(t.file_read("/models/llama/model.safetensors"))) == 0
}

# --- http uploads ---------------------------------------------------------------------------

test_http_post_of_a_weights_file_is_denied if {
	vs := violations_of(t.http({"method": "POST", "url": "https://x.example/up", "files": ["/models/phi/model.gguf"]}))
	t.fired(vs, {"tools.http_upload"})
	t.reported(vs, "tools.http_upload", "deny", "http POST uploads model weights /models/phi/model.gguf to https://x.example/up")
}

test_http_put_with_a_curl_style_body_file_is_denied if {
	vs := violations_of(t.http({"method": "put", "url": "https://x.example/m", "body": "@/opt/models/llama/model.safetensors"}))
	t.reported(vs, "tools.http_upload", "deny", "http PUT uploads model weights /opt/models/llama/model.safetensors")
}

test_http_upload_of_a_named_file_map_is_denied if {
	vs := violations_of(t.http({"method": "POST", "url": "https://x.example/u", "files": {"model": "/models/x.pt"}}))
	t.fired(vs, {"tools.http_upload"})
}

test_http_upload_of_an_agent_file_is_denied if {
	vs := violations_of(t.http({"method": "POST", "url": "https://x.example/u", "file": "/home/agent/WorkSpace/Agent/start.py"}))
	t.reported(vs, "tools.http_upload", "deny", "uploads the agent's file /home/agent/WorkSpace/Agent/start.py")
}

test_http_upload_of_a_directory_above_the_agent_is_denied if {
	vs := violations_of(t.http({"method": "POST", "url": "https://x.example/u", "upload": "/home/agent/WorkSpace"}))
	t.reported(vs, "tools.http_upload", "deny", "uploads model weights /home/agent/WorkSpace")
}

test_http_upload_of_a_relative_weights_path_uses_the_call_cwd if {
	inp := t.http({"method": "POST", "url": "https://x.example/u", "file": "models/m.gguf"})
	t.reported(violations_of(inp), "tools.http_upload", "deny", "/home/agent/models/m.gguf")
}

test_http_upload_of_an_ordinary_file_is_allowed if {
	count(violations_of(t.http({"method": "POST", "url": "https://x.example/u", "files": ["/home/agent/report.pdf"]}))) == 0
}

test_http_get_naming_a_weights_file_is_allowed if {
	count(violations_of(t.http({"method": "GET", "url": "https://x.example/u", "file": "/models/x.gguf"}))) == 0
}

test_http_post_of_an_ordinary_body_is_allowed if {
	inp := t.http({"method": "POST", "url": "http://localhost:8002/chat", "body": "{\"message\": \"hi\"}"})
	count(violations_of(inp)) == 0
}

test_http_body_of_a_lone_at_sign_is_allowed if {
	count(violations_of(t.http({"method": "POST", "url": "https://x.example/u", "body": "@"}))) == 0
}

test_http_file_argument_of_another_type_is_ignored if {
	count(violations_of(t.http({"method": "POST", "url": "https://x.example/u", "file": 3}))) == 0
}

# --- mcp ------------------------------------------------------------------------------------

test_mcp_command_given_as_a_list_is_asked if {
	vs := violations_of(mcp({"command": ["pkill", "-f", "agent"]}))
	t.fired(vs, {"tools.mcp_unanalysed"})
	t.reported(vs, "tools.mcp_unanalysed", "ask", "mcp exec/run: the command argument is not a command line")
}

test_mcp_argument_vector_is_asked if {
	vs := violations_of(mcp({"command": "pkill", "args": ["-f", "agent"]}))
	t.reported(vs, "tools.mcp_unanalysed", "ask", "the args argument vector is not analysed")
}

test_mcp_command_line_is_left_to_the_families if {
	count(violations_of(mcp({"command": "pkill -f agent"}))) == 0
}

test_mcp_call_without_command_arguments_is_allowed if {
	count(violations_of(mcp({"repo": "org/app", "title": "kill -9 does not stop the worker"}))) == 0
}
