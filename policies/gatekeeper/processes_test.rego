package gatekeeper.processes_test

import data.gatekeeper.processes
import data.gatekeeper.testing as t

violations_of(cmds) := vs if {
	vs := processes.violations with input as t.shell(cmds)
}

denied(cmds, rule) if t.reported(violations_of(cmds), rule, "deny", "")

allowed(cmds) if count(violations_of(cmds)) == 0

# --- kill and friends -----------------------------------------------------------------------

test_kill_of_a_pid_is_denied if {
	vs := violations_of([t.cmd(["kill", "1234"])])
	t.reported(vs, "processes.kill", "deny", "kill sends a signal to processes: kill 1234")
}

test_kill_signal_spellings_are_denied if {
	denied([t.cmd(["kill", "-9", "1234"])], "processes.kill")
	denied([t.cmd(["kill", "-s", "KILL", "4321"])], "processes.kill")
	denied([t.cmd(["kill", "-SIGTERM", "4321"])], "processes.kill")
	denied([t.cmd(["kill", "-TERM", "-1"])], "processes.kill")
	denied([t.cmd(["kill", "--", "-4321"])], "processes.kill")
	denied([t.cmd(["kill", "%1"])], "processes.kill")
}

test_kill_of_dynamic_pid_is_denied if {
	denied([t.cmd(["kill", "-9", "$$"])], "processes.kill")
}

test_absolute_kill_path_is_denied if {
	denied([t.cmd(["/bin/kill", "-9", "1234"])], "processes.kill")
}

test_pkill_is_denied if {
	vs := violations_of([t.cmd(["pkill", "-f", "agent"])])
	t.reported(vs, "processes.kill", "deny", "pkill sends a signal")
}

test_pkill_by_user_without_pattern_is_denied if {
	denied([t.cmd(["pkill", "-9", "-u", "agent"])], "processes.kill")
}

test_killall_and_killall5_are_denied if {
	denied([t.cmd(["killall", "python3"])], "processes.kill")
	denied([t.cmd(["killall5", "-9"])], "processes.kill")
	denied([t.cmd(["skill", "-KILL", "-u", "agent"])], "processes.kill")
}

test_kill_under_sudo_is_denied if {
	sudo := t.cmd(["sudo", "kill", "-9", "1"])
	kill := t.via(t.cmd(["kill", "-9", "1"]), "wrapper", "sudo")
	vs := violations_of([sudo, kill])
	t.fired(vs, {"processes.kill"})
	count(vs) == 1
}

test_xargs_kill_without_arguments_is_denied if {
	echo := t.piped(t.cmd(["echo", "1234"]), 0, 2)
	xargs := t.piped(t.cmd(["xargs", "kill"]), 1, 2)
	kill := t.via(t.cmd(["kill"]), "xargs", "xargs")
	denied([echo, xargs, kill], "processes.kill")
}

test_find_exec_kill_is_denied if {
	denied([t.via(t.cmd(["kill", "-9", "{}"]), "find_exec", "find")], "processes.kill")
}

test_decoded_pkill_is_denied if {
	denied([t.via(t.cmd(["pkill", "-9", "python"]), "payload", "base64")], "processes.kill")
}

test_fuser_kill_is_denied if {
	denied([t.cmd(["fuser", "-k", "8000/tcp"])], "processes.kill")
	denied([t.cmd(["fuser", "-km", "/mnt/data"])], "processes.kill")
}

test_kill_zero_is_allowed if {
	allowed([t.cmd(["kill", "-0", "4242"])])
}

test_kill_s_zero_is_allowed if {
	allowed([t.cmd(["kill", "-s", "0", "4242"])])
	allowed([t.cmd(["pkill", "--signal=0", "-f", "agent"])])
}

test_kill_list_signals_is_allowed if {
	allowed([t.cmd(["kill", "-l", "9"])])
	allowed([t.cmd(["kill", "-l"])])
}

test_pkill_list_name_still_kills if {
	denied([t.cmd(["pkill", "-l", "python"])], "processes.kill")
}

test_bare_killall_is_a_usage_error_and_allowed if {
	allowed([t.cmd(["killall"])])
}

test_fuser_without_kill_is_allowed if {
	allowed([t.cmd(["fuser", "8000/tcp"])])
	allowed([t.cmd(["fuser", "-v", "/mnt/data"])])
}

test_a_halt_or_kill_subcommand_of_any_tool_is_denied if {
	vs := violations_of([t.cmd(["vagrant", "halt", "-f"])])
	t.reported(vs, "processes.service_stop", "deny", "vagrant stops a service, session or container: vagrant halt -f")
	denied([t.cmd(["adb", "kill-server"])], "processes.service_stop")
	denied([t.cmd(["bazel", "shutdown"])], "processes.service_stop")
	denied([t.cmd(["pueue", "kill"])], "processes.service_stop")
}

test_halt_or_kill_as_a_file_or_text_operand_is_allowed if {
	allowed([t.cmd(["cd", "kill"])])
	allowed([t.cmd(["vim", "shutdown"])])
	allowed([t.cmd(["make", "test", "shutdown"])])
	allowed([t.cmd(["last", "shutdown"])])
}

# `reboot` is not in the generic list: `adb reboot`, `fastboot reboot` restart an attached device.
test_rebooting_an_attached_device_is_allowed if {
	allowed([t.cmd(["adb", "reboot", "bootloader"])])
}

test_a_wrapper_is_not_the_tool_that_halts if {
	sudo := t.cmd(["sudo", "halt"])
	halt := t.via(t.cmd(["halt"]), "wrapper", "sudo")
	t.fired(violations_of([sudo, halt]), {"processes.host_power"})
}

test_process_inspection_is_allowed if {
	allowed([
		t.cmd(["ps", "aux"]),
		t.cmd(["pgrep", "-af", "python"]),
		t.cmd(["pidof", "vllm"]),
		t.cmd(["man", "1", "pkill"]),
		t.cmd(["which", "pkill"]),
		t.cmd(["timeout", "60", "pytest", "-q"]),
		t.cmd(["last", "reboot"]),
	])
}

test_echo_mentioning_kill_into_notes_is_allowed if {
	allowed([t.redirect(t.cmd(["echo", "kill the bugs"]), ">", "/home/agent/notes.txt")])
}

# --- services, sessions, containers ---------------------------------------------------------

test_systemctl_stop_is_denied if {
	vs := violations_of([t.cmd(["systemctl", "--user", "stop", "agent.service"])])
	t.reported(vs, "processes.service_stop", "deny", "systemctl stops a service")
}

test_systemctl_kill_restart_disable_mask_are_denied if {
	denied([t.cmd(["systemctl", "kill", "--signal=SIGKILL", "vllm.service"])], "processes.service_stop")
	denied([t.cmd(["systemctl", "restart", "nginx"])], "processes.service_stop")
	denied([t.cmd(["systemctl", "disable", "gatekeeper"])], "processes.service_stop")
	denied([t.cmd(["systemctl", "mask", "gatekeeper"])], "processes.service_stop")
}

test_service_stop_is_denied if {
	denied([t.cmd(["service", "nginx", "stop"])], "processes.service_stop")
}

test_docker_kill_stop_and_force_remove_are_denied if {
	denied([t.cmd(["docker", "kill", "vllm"])], "processes.service_stop")
	denied([t.cmd(["docker", "stop", "$(docker ps -q)"])], "processes.service_stop")
	denied([t.cmd(["docker", "compose", "down"])], "processes.service_stop")
	denied([t.cmd(["docker", "rm", "-f", "vllm"])], "processes.service_stop")
}

test_docker_rm_of_a_stopped_container_is_allowed if {
	allowed([t.cmd(["docker", "rm", "old"])])
}

test_kubectl_delete_is_denied if {
	denied([t.cmd(["kubectl", "delete", "pod", "llm-0"])], "processes.service_stop")
}

test_session_managers_are_denied if {
	denied([t.cmd(["tmux", "kill-server"])], "processes.service_stop")
	denied([t.cmd(["tmux", "kill-session", "-t", "llm"])], "processes.service_stop")
	denied([t.cmd(["screen", "-S", "api", "-X", "quit"])], "processes.service_stop")
	denied([t.cmd(["supervisorctl", "stop", "all"])], "processes.service_stop")
	denied([t.cmd(["pm2", "kill"])], "processes.service_stop")
	denied([t.cmd(["pm2", "delete", "all"])], "processes.service_stop")
	denied([t.cmd(["loginctl", "terminate-user", "agent"])], "processes.service_stop")
}

test_service_inspection_is_allowed if {
	allowed([
		t.cmd(["systemctl", "status", "gatekeeper"]),
		t.cmd(["systemctl", "is-active", "nginx"]),
		t.cmd(["docker", "inspect", "vllm"]),
		t.cmd(["tmux", "list-sessions"]),
		t.cmd(["screen", "-ls"]),
		t.cmd(["supervisorctl", "status"]),
		t.cmd(["pm2", "list"]),
		t.cmd(["kubectl", "get", "pods"]),
	])
}

# --- the host -------------------------------------------------------------------------------

test_shutdown_and_reboot_are_denied if {
	vs := violations_of([t.cmd(["shutdown", "-h", "now"])])
	t.reported(vs, "processes.host_power", "deny", "shutdown shuts down or restarts the host")
	denied([t.cmd(["reboot"])], "processes.host_power")
	denied([t.cmd(["poweroff"])], "processes.host_power")
	denied([t.cmd(["halt", "-f"])], "processes.host_power")
}

test_shutdown_cancel_is_allowed if {
	allowed([t.cmd(["shutdown", "-c"])])
}

test_init_zero_and_telinit_six_are_denied if {
	vs := violations_of([t.cmd(["init", "0"])])
	t.reported(vs, "processes.host_power", "deny", "runlevel 0")
	denied([t.cmd(["telinit", "6"])], "processes.host_power")
}

test_init_without_runlevel_is_allowed if {
	allowed([t.cmd(["init", "--version"])])
}

test_systemctl_poweroff_is_denied if {
	denied([t.cmd(["systemctl", "reboot"])], "processes.host_power")
}

test_sysrq_trigger_write_is_denied if {
	denied([t.redirect(t.cmd(["echo", "b"]), ">", "/proc/sysrq-trigger")], "processes.host_power")
	echo := t.piped(t.cmd(["echo", "o"]), 0, 2)
	tee := t.piped(t.cmd(["tee", "/proc/sysrq-trigger"]), 1, 2)
	denied([echo, tee], "processes.host_power")
}

test_reading_sysrq_state_is_allowed if {
	allowed([t.cmd(["cat", "/proc/sys/kernel/sysrq"])])
}

# --- candidates -----------------------------------------------------------------------------

test_candidate_pkill_is_left_to_evasion if {
	allowed([t.candidate(t.cmd(["pkill", "-f", "agent"]), "vim")])
}

# --- interpreter code -----------------------------------------------------------------------

api_violations(calls) := vs if {
	vs := processes.violations with input as t.python(calls, [])
}

test_python_os_kill_is_denied if {
	vs := api_violations([t.api("os.kill", [1234, 9])])
	t.reported(vs, "processes.python_kill", "deny", "os.kill sends a signal")
}

test_python_os_killpg_with_symbolic_signal_is_denied if {
	t.fired(api_violations([t.api("os.killpg", [0, null])]), {"processes.python_kill"})
}

test_python_popen_kill_and_psutil_terminate_are_denied if {
	t.fired(api_violations([t.api("subprocess.Popen", [["sleep", "9"]]), t.api("?.kill", [])]), {"processes.python_kill"})
	t.fired(api_violations([t.api("psutil.Process", [42]), t.api("?.terminate", [])]), {"processes.python_kill"})
	t.fired(api_violations([t.api("signal.pthread_kill", [7, 15])]), {"processes.python_kill"})
}

test_python_os_kill_zero_is_allowed if {
	count(api_violations([t.api("os.kill", [1234, 0])])) == 0
	count(api_violations([t.api("?.send_signal", [0])])) == 0
}

test_python_getpid_is_allowed if {
	count(api_violations([t.api("os.getpid", [])])) == 0
}

test_perl_kill_is_denied if {
	a := object.union(t.api("kill", [9, 1234]), {"language": "perl"})
	vs := api_violations([a])
	t.reported(vs, "processes.interpreter_kill", "deny", "perl kill")
}

test_node_process_kill_zero_is_allowed if {
	a := object.union(t.api("process.kill", [1234, 0]), {"language": "node"})
	count(api_violations([a])) == 0
}
