# Terminating other processes, services, containers or the host: kill, pkill, killall, fuser -k,
# service managers and container runtimes told to stop, any tool whose first operand says halt,
# shutdown or kill (`vagrant halt`, `adb kill-server`), shutdown/reboot/init 0, writes to
# /proc/sysrq-trigger, and the same from interpreter code (os.kill, psutil, Popen.kill, perl
# kill). Signal 0 is an existence check and `kill -l` lists signals: both kill nothing.
package gatekeeper.processes

import data.gatekeeper.lib

hits contains lib.hit(c, "processes.kill", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.processes.kill_programs
	receives_targets(c)
	not harmless_kill(c)
	message := lib.format("%s sends a signal to processes: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "processes.kill", message) if {
	some c in lib.commands
	c.name == "fuser"
	fuser_kills(c)
	message := lib.format("fuser kills the processes using a file or port: %s", [lib.short(c.text)])
}

hits contains lib.hit(c, "processes.service_stop", message) if {
	some c in lib.commands
	subs := data.gatekeeper.processes.stop_subcommands[c.name]
	lib.has_subcommand(c, subs)
	message := lib.format("%s stops a service, session or container: %s", [c.name, lib.short(c.text)])
}

# `vagrant halt`, `bazel shutdown`, `adb kill-server`, `pueue kill`: whatever the tool, a first
# operand that says halt, shut down or kill stops what the tool manages. Programs with their own
# list above are judged by it alone; programs whose operands are text or files never match.
hits contains lib.hit(c, "processes.service_stop", message) if {
	some c in lib.commands
	count(c.positionals) > 0
	c.positionals[0] in data.gatekeeper.processes.generic_stop_subcommands
	not data.gatekeeper.processes.stop_subcommands[c.name]
	not c.name in data.gatekeeper.processes.kill_programs
	not c.name in data.gatekeeper.processes.power_programs
	lib.may_take_subcommands(c)
	message := lib.format("%s stops a service, session or container: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "processes.service_stop", message) if {
	some c in lib.commands
	subs := data.gatekeeper.processes.force_remove_subcommands[c.name]
	lib.has_subcommand(c, subs)
	lib.has_option(c, data.gatekeeper.processes.force_flags)
	message := lib.format("%s force-removes a running container: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "processes.host_power", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.processes.power_programs
	not powers_nothing(c)
	message := lib.format("%s shuts down or restarts the host: %s", [c.name, lib.short(c.text)])
}

hits contains lib.hit(c, "processes.host_power", message) if {
	some c in lib.commands
	c.name in data.gatekeeper.processes.runlevel_programs
	some level in c.positionals
	level in data.gatekeeper.processes.power_runlevels
	message := lib.format("%s switches the host to runlevel %s", [c.name, level])
}

hits contains lib.hit(c, "processes.host_power", message) if {
	some c in lib.commands
	subs := data.gatekeeper.processes.power_subcommands[c.name]
	lib.has_subcommand(c, subs)
	message := lib.format("%s shuts down or restarts the host: %s", [c.name, lib.short(c.text)])
}

# `echo b > /proc/sysrq-trigger`, `echo o | tee /proc/sysrq-trigger`.
hits contains lib.hit(c, "processes.host_power", message) if {
	some c in lib.commands
	some target in (lib.output_targets(c) | tee_targets(c))
	target in data.gatekeeper.processes.sysrq_paths
	message := lib.format("%s writes to %s, which can crash or reboot the host", [c.name, target])
}

violations contains h.violation if {
	some h in hits
	not h.candidate
}

violations contains lib.violation("processes.python_kill", message) if {
	some a in lib.api_calls
	a.language == "python"
	python_kills(a)
	not python_signal_zero(a)
	message := lib.format("%s sends a signal to a process: %s", [a.function, lib.short(a.text)])
}

violations contains lib.violation("processes.interpreter_kill", message) if {
	some a in lib.api_calls
	spec := data.gatekeeper.processes.interpreter_kill_functions[a.language]
	a.function in spec.functions
	not zero_signal(lib.api_arg(a, spec.signal_arg, "signal"))
	message := lib.format("%s %s sends a signal to a process: %s", [a.language, a.function, lib.short(a.text)])
}

# --- kill -----------------------------------------------------------------------------------

# kill with no arguments at all is a usage error; under xargs or find -exec the targets come
# from elsewhere.
receives_targets(c) if count(c.args) > 0

receives_targets(c) if lib.has_via(c, "xargs")

receives_targets(c) if lib.has_via(c, "find_exec")

# `kill -0 PID`, `kill -s 0 PID`, `kill -l`, `killall --help`.
harmless_kill(c) if {
	harmless := data.gatekeeper.processes.harmless_kill_args[c.name]
	some a in c.args
	a in harmless
}

harmless_kill(c) if {
	some v in lib.option_values(c, data.gatekeeper.processes.signal_flags)
	zero_signal(v)
}

zero_signal(v) if v == 0

zero_signal(v) if {
	is_string(v)
	upper(v) in data.gatekeeper.processes.zero_signal_values
}

fuser_kills(c) if lib.has_option(c, data.gatekeeper.processes.fuser_kill_flags)

fuser_kills(c) if lib.has_letter(c, ["k"])

# `shutdown -c` cancels a pending shutdown.
powers_nothing(c) if {
	some a in c.args
	a in data.gatekeeper.processes.power_harmless_args
}

tee_targets(c) := {lib.abs(c, p) | c.name == "tee"; some p in c.positionals}

# --- interpreter code -----------------------------------------------------------------------

# os.kill, os.killpg, signal.pthread_kill, psutil.Process(...).terminate(), Popen(...).kill().
python_kills(a) if {
	parts := split(a.function, ".")
	count(parts) > 1
	parts[0] in data.gatekeeper.processes.python_kill_modules
	parts[count(parts) - 1] in data.gatekeeper.processes.python_kill_methods
}

python_signal_zero(a) if {
	parts := split(a.function, ".")
	parts[count(parts) - 1] in {"kill", "killpg", "pthread_kill"}
	count(a.args) > 1
	zero_signal(a.args[1])
}

python_signal_zero(a) if {
	endswith(a.function, ".send_signal")
	count(a.args) > 0
	zero_signal(a.args[0])
}
