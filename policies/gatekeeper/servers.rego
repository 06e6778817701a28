# Launching services that listen: model servers, HTTP/app servers, raw listeners and tunnels,
# containers publishing ports, services started through a service manager, the `serve`
# subcommand of any tool (`jekyll serve`, `hg serve`), and, because the
# paper's model server was a custom script (`python3 deploy_api_server_qwen25_72b.py --port
# 8760`), any program that is not a known client given a listening flag (--port, --listen,
# --bind, --host 0.0.0.0). Clients with a port flag (psql, redis-cli, curl, ssh, ...), probes
# (ss, lsof, a python connect) and report-only invocations (`nginx -t`, `uvicorn --version`)
# are allowed.
package gatekeeper.servers

import data.gatekeeper.lib

hits contains lib.hit(c, "servers.model_server", message) if {
	some c in lib.commands
	model_server(c)
	not reports_only(c)
	message := lib.format("%s starts a model server: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "servers.http_server", message) if {
	some c in lib.commands
	http_server(c)
	not model_server(c)
	not reports_only(c)
	message := lib.format("%s starts an HTTP server: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "servers.listener", message) if {
	some c in lib.commands
	listener(c)
	not reports_only(c)
	message := lib.format("%s listens for network connections: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "servers.container_port", message) if {
	some c in lib.commands
	publishes_port(c)
	message := lib.format("%s runs a container that publishes ports: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "servers.service_start", message) if {
	some c in lib.commands
	subs := data.gatekeeper.servers.start_subcommands[c.name]
	lib.has_subcommand(c, subs)
	message := lib.format("%s starts a service: %s", [c.name, lib.short(c.text)])
}

# The generic sign of a server: a listening flag on a program that is not a known client.
hits contains lib.hit(c, "servers.listen_flag", message) if {
	some c in lib.commands
	some flag in listening_flags(c)
	may_listen(c) # costly (every known-server test), so only for a command with a flag
	message := lib.format("%s is given the listening flag %s: %s", [c.name, flag, lib.short(c.text)])
}

violations contains h.violation if {
	some h in hits
	not h.candidate
}

# Interpreter code that binds, listens or serves.
violations contains lib.violation("servers.python_listen", message) if {
	some a in lib.api_calls
	api_listens(a)
	message := lib.format("%s code listens for connections: %s", [a.language, lib.short(a.text)])
}

# --- known servers --------------------------------------------------------------------------

model_server(c) if c.name in data.gatekeeper.servers.model_servers.programs

model_server(c) if {
	subs := data.gatekeeper.servers.model_servers.subcommands[c.name]
	lib.has_subcommand(c, subs)
}

model_server(c) if {
	some m in lib.python_modules(c)
	lib.module_matches(m, data.gatekeeper.servers.model_servers.python_modules)
}

http_server(c) if c.name in data.gatekeeper.servers.http_servers.programs

http_server(c) if {
	subs := data.gatekeeper.servers.http_servers.subcommands[c.name]
	lib.has_subcommand(c, subs)
}

http_server(c) if {
	some m in lib.python_modules(c)
	lib.module_matches(m, data.gatekeeper.servers.http_servers.python_modules)
}

# `php -S host:port`, `pydoc -p 8080`, `python -m pydoc -b`.
http_server(c) if {
	flags := data.gatekeeper.servers.http_servers.flags[c.name]
	lib.has_option(c, flags)
}

http_server(c) if {
	some m in lib.python_modules(c)
	flags := data.gatekeeper.servers.http_servers.module_flags[m]
	lib.has_option(c, flags)
}

# `jekyll serve`, `mkdocs serve`, `hg serve -p 8000`, `php artisan serve`: whatever the tool, the
# subcommand `serve` starts a web server by convention. It counts as the first operand, or the
# second after an interpreter's script; never for programs whose operands are text or files
# (`grep serve`, `mkdir serve`).
http_server(c) if {
	some word in generic_subcommand_words(c)
	word in data.gatekeeper.servers.http_servers.generic_subcommands
	lib.may_take_subcommands(c)
}

generic_subcommand_words(c) := array.slice(c.positionals, 0, 1) if {
	not runs_a_script(c)
} else := array.slice(c.positionals, 1, 2)

runs_a_script(c) if lib.is_python(c)

runs_a_script(c) if c.name in data.gatekeeper.servers.http_servers.inline_code_programs

# `python manage.py runserver`.
http_server(c) if {
	lib.is_python(c)
	some a in c.positionals
	a in data.gatekeeper.servers.http_servers.script_subcommands
}

# One-liners: `ruby -run -e httpd`, `node -e "http.createServer(...).listen(8080)"`.
http_server(c) if {
	c.name in data.gatekeeper.servers.http_servers.inline_code_programs
	some code in lib.option_values(c, data.gatekeeper.servers.http_servers.inline_code_flags)
	some marker in data.gatekeeper.servers.http_servers.inline_code_markers
	contains(lower(code), marker)
}

listener(c) if c.name in data.gatekeeper.servers.listeners.programs

listener(c) if {
	spec := data.gatekeeper.servers.listeners.flags[c.name]
	lib.has_letter(c, spec.letters)
}

listener(c) if {
	spec := data.gatekeeper.servers.listeners.flags[c.name]
	lib.has_option(c, spec.flags)
}

listener(c) if {
	subs := data.gatekeeper.servers.listeners.subcommands[c.name]
	lib.has_subcommand(c, subs)
}

# socat with a listening address: `TCP-LISTEN:8080,fork`, `UDP-RECVFROM:53`.
listener(c) if {
	c.name == "socat"
	some a in c.positionals
	address_type := upper(split(split(a, ":")[0], ",")[0])
	some marker in data.gatekeeper.servers.listeners.socat_listen_markers
	contains(address_type, marker)
}

publishes_port(c) if {
	container_run(c)
	publishes(c)
}

container_run(c) if {
	c.name in data.gatekeeper.servers.containers.programs
	count(c.positionals) > 0
	c.positionals[0] in data.gatekeeper.servers.containers.run_subcommands
}

container_run(c) if {
	c.name in data.gatekeeper.servers.containers.programs
	count(c.positionals) > 1
	c.positionals[0] == "container"
	c.positionals[1] in data.gatekeeper.servers.containers.run_subcommands
}

publishes(c) if lib.has_option(c, data.gatekeeper.servers.containers.publish_flags)

publishes(c) if lib.has_letter(c, data.gatekeeper.servers.containers.publish_letters)

publishes(c) if lib.has_option(c, data.gatekeeper.servers.containers.host_network_flags)

publishes(c) if "host" in lib.option_values(c, data.gatekeeper.servers.containers.network_flags)

known_server(c) if model_server(c)

known_server(c) if http_server(c)

known_server(c) if listener(c)

known_server(c) if container_run(c)

# `nginx -t`, `uvicorn --version`: the program reports and exits.
reports_only(c) if lib.has_option(c, data.gatekeeper.servers.report_flags)

reports_only(c) if {
	args := data.gatekeeper.servers.report_args[c.name]
	some a in c.args
	a in args
}

# `mitmdump -nr dump`: -n starts no proxy server, it only reads or replays a file.
reports_only(c) if {
	letters := data.gatekeeper.servers.report_letters[c.name]
	lib.has_letter(c, letters)
}

# Subcommands of a server program that manage or query and exit: `cloudflared tunnel list`,
# `consul kv get`, `jupyter notebook list`, Laravel Envoy's task runner (`envoy run deploy`).
reports_only(c) if {
	some prefix in data.gatekeeper.servers.report_subcommands[c.name]
	count(prefix) > 0
	array.slice(c.positionals, 0, count(prefix)) == prefix
}

# --- the generic listening flag -------------------------------------------------------------

may_listen(c) if {
	not known_server(c)
	not reports_only(c)
	not c.name in data.gatekeeper.servers.clients
	not c.name in data.gatekeeper.lib.text_only
	not c.name in data.gatekeeper.lib.wrappers
}

listening_flags(c) := {f |
	some a in c.args
	some f in lib.option_names(a)
	f in data.gatekeeper.servers.listen_flags
} | {concat(" ", [f, v]) |
	some i
	a := c.args[i]
	some f in lib.option_names(a)
	f in data.gatekeeper.servers.host_flags
	v := lib.option_value(c.args, i, a, f)
	public_host(v)
}

public_host(v) if v in data.gatekeeper.servers.public_hosts

public_host(v) if {
	some h in data.gatekeeper.servers.public_hosts
	startswith(v, concat("", [h, ":"]))
}

# --- interpreter code -----------------------------------------------------------------------

api_listens(a) if a.function in data.gatekeeper.servers.python_listen_functions

# `s.bind(...)`, `s.listen(5)`, `httpd.serve_forever()` on a socket or server object.
api_listens(a) if {
	parts := split(a.function, ".")
	count(parts) > 1
	parts[0] in data.gatekeeper.servers.python_listen_receivers
	parts[count(parts) - 1] in data.gatekeeper.servers.python_listen_methods
}

# `app.run(host="0.0.0.0", port=5000)`, `demo.launch(server_port=7860)`.
api_listens(a) if {
	parts := split(a.function, ".")
	parts[count(parts) - 1] in data.gatekeeper.servers.python_serve_methods
	some k in data.gatekeeper.servers.python_serve_kwargs
	k in object.keys(a.kwargs)
}

api_listens(a) if {
	parts := split(a.function, ".")
	parts[count(parts) - 1] in data.gatekeeper.servers.python_serve_methods
	public_host(a.kwargs.host)
}
