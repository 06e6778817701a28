package gatekeeper.servers_test

import data.gatekeeper.servers
import data.gatekeeper.testing as t

violations_of(cmds) := vs if {
	vs := servers.violations with input as t.shell(cmds)
}

denied(cmds, rule) if t.reported(violations_of(cmds), rule, "deny", "")

allowed(cmds) if count(violations_of(cmds)) == 0

# --- model servers --------------------------------------------------------------------------

test_vllm_serve_is_denied if {
	vs := violations_of([t.cmd(["vllm", "serve", "/models/llama", "--port", "8000"])])
	t.reported(vs, "servers.model_server", "deny", "vllm starts a model server")
	t.fired(vs, {"servers.model_server"})
}

test_python_m_vllm_entrypoint_is_denied if {
	denied([t.cmd(["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/models/llama"])], "servers.model_server")
}

test_sglang_launch_server_is_denied if {
	denied([t.cmd(["python3", "-m", "sglang.launch_server", "--model-path", "/models/llama"])], "servers.model_server")
}

test_text_generation_launcher_is_denied if {
	denied([t.cmd(["text-generation-launcher", "--model-id", "/models/llama"])], "servers.model_server")
}

test_ollama_serve_is_denied if {
	denied([t.cmd(["ollama", "serve"])], "servers.model_server")
}

test_ollama_list_is_allowed if {
	allowed([t.cmd(["ollama", "list"])])
}

test_llama_server_is_denied if {
	denied([t.cmd(["llama-server", "-m", "/models/phi/model.gguf", "--host", "0.0.0.0"])], "servers.model_server")
}

test_llama_cpp_python_server_is_denied if {
	denied([t.cmd(["python3", "-m", "llama_cpp.server", "--model", "/models/phi/model.gguf"])], "servers.model_server")
}

test_lmdeploy_serve_is_denied if {
	denied([t.cmd(["lmdeploy", "serve", "api_server", "/models/internlm"])], "servers.model_server")
}

test_mlflow_models_serve_is_denied if {
	denied([t.cmd(["mlflow", "models", "serve", "-m", "runs:/abc/model", "-p", "5001"])], "servers.model_server")
}

test_vllm_version_is_allowed if {
	allowed([t.cmd(["vllm", "--version"])])
}

test_model_server_under_nohup_wrapper_is_denied if {
	nohup := t.background(t.cmd(["nohup", "vllm", "serve", "/models/llama", "--port", "8000"]))
	vllm := t.background(t.via(t.cmd(["vllm", "serve", "/models/llama", "--port", "8000"]), "wrapper", "nohup"))
	vs := violations_of([nohup, vllm])
	t.fired(vs, {"servers.model_server"})
}

# --- HTTP and app servers -------------------------------------------------------------------

test_python_http_server_is_denied if {
	vs := violations_of([t.cmd(["python3", "-m", "http.server", "8000"])])
	t.reported(vs, "servers.http_server", "deny", "python3 starts an HTTP server")
}

test_python_http_server_with_default_port_is_denied if {
	denied([t.cmd(["python3", "-m", "http.server"])], "servers.http_server")
}

test_python2_simple_http_server_is_denied if {
	denied([t.cmd(["python2", "-m", "SimpleHTTPServer", "8080"])], "servers.http_server")
}

test_pydoc_server_is_denied if {
	denied([t.cmd(["python3", "-m", "pydoc", "-p", "8080"])], "servers.http_server")
}

test_pydoc_of_a_module_is_allowed if {
	allowed([t.cmd(["python3", "-m", "pydoc", "json"])])
}

test_php_builtin_server_is_denied if {
	denied([t.cmd(["php", "-S", "0.0.0.0:8080", "-t", "public"])], "servers.http_server")
}

test_ruby_run_httpd_is_denied if {
	denied([t.cmd(["ruby", "-run", "-e", "httpd", ".", "-p", "8000"])], "servers.http_server")
}

test_node_inline_create_server_is_denied if {
	code := "require('http').createServer((q, r) => r.end('x')).listen(8080)"
	denied([t.cmd(["node", "-e", code])], "servers.http_server")
}

test_perl_inline_listening_socket_is_denied if {
	code := "$s = IO::Socket::INET->new(LocalPort => 4444, Listen => 1); $c = $s->accept;"
	denied([t.cmd(["perl", "-MIO::Socket::INET", "-e", code])], "servers.http_server")
}

test_node_inline_print_is_allowed if {
	allowed([t.cmd(["node", "-e", "console.log(process.version)"])])
}

test_busybox_httpd_is_denied if {
	denied([t.cmd(["httpd", "-f", "-p", "8080"])], "servers.http_server")
}

test_uvicorn_is_denied if {
	denied([t.cmd(["uvicorn", "main:app", "--reload"])], "servers.http_server")
}

test_gunicorn_is_denied if {
	denied([t.cmd(["gunicorn", "-w", "4", "-b", "0.0.0.0:8000", "app:app"])], "servers.http_server")
}

test_flask_run_is_denied if {
	denied([t.cmd(["flask", "--app", "hello", "run", "--host=0.0.0.0"])], "servers.http_server")
}

test_flask_routes_is_allowed if {
	allowed([t.cmd(["flask", "routes"])])
}

test_django_runserver_is_denied if {
	denied([t.cmd_in(["python3", "manage.py", "runserver", "0.0.0.0:8000"], "/home/agent/project")], "servers.http_server")
}

test_django_migrate_is_allowed if {
	allowed([t.cmd_in(["python3", "manage.py", "migrate"], "/home/agent/project")])
}

test_jupyter_lab_is_denied if {
	denied([t.cmd(["jupyter", "lab", "--port", "8889"])], "servers.http_server")
}

test_jupyter_nbconvert_is_allowed if {
	allowed([t.cmd(["jupyter", "nbconvert", "--to", "html", "notebook.ipynb"])])
}

test_streamlit_run_is_denied if {
	denied([t.cmd(["streamlit", "run", "app.py", "--server.port", "8501"])], "servers.http_server")
}

test_tensorboard_is_denied if {
	denied([t.cmd(["tensorboard", "--logdir", "runs", "--bind_all"])], "servers.http_server")
}

test_nginx_is_denied if {
	denied([t.cmd(["nginx", "-g", "daemon off;"])], "servers.http_server")
}

test_nginx_config_test_is_allowed if {
	allowed([t.cmd(["nginx", "-t"])])
}

test_uvicorn_version_is_allowed if {
	allowed([t.cmd(["uvicorn", "--version"])])
}

# --- raw listeners --------------------------------------------------------------------------

test_nc_listen_is_denied if {
	vs := violations_of([t.cmd(["nc", "-l", "4444"])])
	t.reported(vs, "servers.listener", "deny", "nc listens for network connections")
}

test_nc_listen_cluster_is_denied if {
	denied([t.cmd(["nc", "-lvnp", "9001"])], "servers.listener")
}

test_ncat_long_listen_is_denied if {
	denied([t.cmd(["ncat", "--listen", "-k", "-p", "8080"])], "servers.listener")
}

test_socat_tcp_listen_is_denied if {
	denied([t.cmd(["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo hello"])], "servers.listener")
}

test_sshd_is_denied if {
	denied([t.cmd(["/usr/sbin/sshd", "-p", "2222", "-D"])], "servers.listener")
}

test_sshd_config_test_is_allowed if {
	allowed([t.cmd(["sshd", "-t"])])
}

test_openssl_s_server_is_denied if {
	denied([t.cmd(["openssl", "s_server", "-accept", "4433"])], "servers.listener")
}

test_iperf3_server_is_denied if {
	denied([t.cmd(["iperf3", "-s", "-p", "5201"])], "servers.listener")
}

test_rsync_daemon_is_denied if {
	denied([t.cmd(["rsync", "--daemon", "--port", "8873"])], "servers.listener")
}

test_git_daemon_is_denied if {
	denied([t.cmd(["git", "daemon", "--base-path=/srv/git", "--export-all"])], "servers.listener")
}

test_redis_server_is_denied if {
	denied([t.cmd(["redis-server", "--port", "6380"])], "servers.listener")
}

test_ssh_remote_forward_is_denied if {
	denied([t.cmd(["ssh", "-R", "8080:localhost:80", "host"])], "servers.listener")
}

test_nc_port_scan_is_allowed if {
	allowed([t.cmd(["nc", "-zv", "localhost", "8000"])])
}

test_socat_client_is_allowed if {
	allowed([t.cmd(["socat", "-", "TCP:localhost:8000"])])
}

test_openssl_s_client_is_allowed if {
	allowed([t.cmd(["openssl", "s_client", "-connect", "example.com:443"])])
}

# --- containers and services ----------------------------------------------------------------

test_docker_run_publish_is_denied if {
	vs := violations_of([t.cmd(["docker", "run", "-d", "-p", "8000:8000", "vllm/vllm-openai"])])
	t.reported(vs, "servers.container_port", "deny", "docker runs a container that publishes ports")
}

test_docker_run_publish_attached_and_cluster_are_denied if {
	denied([t.cmd(["docker", "run", "-p8000:8000", "img"])], "servers.container_port")
	denied([t.cmd(["docker", "run", "-dp", "8000:8000", "img"])], "servers.container_port")
	denied([t.cmd(["podman", "container", "run", "--publish=8080:80", "img"])], "servers.container_port")
	denied([t.cmd(["docker", "run", "-P", "img"])], "servers.container_port")
}

test_docker_run_host_network_is_denied if {
	denied([t.cmd(["docker", "run", "--network", "host", "img"])], "servers.container_port")
}

test_docker_run_without_ports_is_allowed if {
	allowed([t.cmd(["docker", "run", "--rm", "alpine", "echo", "hi"])])
}

test_docker_ps_is_allowed if {
	allowed([t.cmd(["docker", "ps", "--format", "{{.Names}} {{.Ports}}"])])
}

test_systemctl_start_is_denied if {
	denied([t.cmd(["systemctl", "start", "nginx"])], "servers.service_start")
}

test_service_start_is_denied if {
	denied([t.cmd(["service", "apache2", "start"])], "servers.service_start")
}

test_systemctl_status_is_allowed if {
	allowed([t.cmd(["systemctl", "status", "nginx"])])
}

# --- the generic listening flag -------------------------------------------------------------

test_custom_model_server_script_with_port_is_denied if {
	c := t.cmd_in(["python3", "deploy_api_server_qwen25_72b.py", "--port", "8760"], "/home/agent/WorkSpace/Agent/deploy_api_server_scripts")
	vs := violations_of([c])
	t.reported(vs, "servers.listen_flag", "deny", "python3 is given the listening flag --port")
}

test_node_script_with_port_is_denied if {
	denied([t.cmd(["node", "server.js", "--port", "3000"])], "servers.listen_flag")
}

test_shell_script_with_port_equals_is_denied if {
	denied([t.cmd(["./run_server.sh", "--port=9000"])], "servers.listen_flag")
}

test_listen_flag_without_value_is_denied if {
	denied([t.cmd(["python3", "server.py", "--listen", "--api"])], "servers.listen_flag")
}

test_bind_flag_is_denied if {
	denied([t.cmd(["python3", "srv.py", "--bind", "127.0.0.1:5000"])], "servers.listen_flag")
}

test_host_all_interfaces_is_denied if {
	vs := violations_of([t.cmd(["python", "serve.py", "--host", "0.0.0.0"])])
	t.reported(vs, "servers.listen_flag", "deny", "--host 0.0.0.0")
}

test_host_equals_all_interfaces_with_port_is_denied if {
	denied([t.cmd(["python3", "app.py", "--host=0.0.0.0:7860"])], "servers.listen_flag")
}

test_host_localhost_without_port_is_allowed if {
	allowed([t.cmd(["python3", "client.py", "--host", "localhost"])])
}

test_a_serve_subcommand_of_any_tool_is_denied if {
	vs := violations_of([t.cmd(["jekyll", "serve", "--incremental"])])
	t.reported(vs, "servers.http_server", "deny", "jekyll starts an HTTP server: jekyll serve --incremental")
	denied([t.cmd(["hg", "serve", "-p", "8000"])], "servers.http_server")
	denied([t.cmd(["php", "yii", "serve"])], "servers.http_server")
	denied([t.cmd(["serve", "-s", "dist"])], "servers.http_server")
}

test_serve_as_a_file_or_text_operand_is_allowed if {
	allowed([t.cmd(["mkdir", "serve"])])
	allowed([t.cmd(["cd", "serve"])])
	allowed([t.cmd(["grep", "-rn", "serve", "src"])])
	allowed([t.cmd(["make", "build", "serve"])])
	allowed([t.cmd(["python3", "-m", "pytest", "tests/serve"])])
}

test_serve_after_a_python_module_is_denied if {
	denied([t.cmd(["python3", "-m", "mkdocs", "serve"])], "servers.http_server")
}

test_php_artisan_serve_with_port_is_denied if {
	denied([t.cmd(["php", "artisan", "serve", "--port=8000"])], "servers.http_server")
}

test_wrapper_with_port_flag_reports_only_the_inner_program if {
	timeout := t.cmd(["timeout", "3600", "python3", "x.py", "--port", "8760"])
	py := t.via(t.cmd(["python3", "x.py", "--port", "8760"]), "wrapper", "timeout")
	vs := violations_of([timeout, py])
	count(vs) == 1
	t.reported(vs, "servers.listen_flag", "deny", "python3 is given")
}

test_known_server_is_not_also_a_listen_flag if {
	vs := violations_of([t.cmd(["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"])])
	t.fired(vs, {"servers.http_server"})
}

test_psql_with_port_is_allowed if {
	allowed([t.cmd(["psql", "--port", "5432", "-h", "localhost", "-U", "app", "mydb"])])
}

test_mysql_with_port_is_allowed if {
	allowed([t.cmd(["mysql", "--host=db", "--port=3306", "-u", "root"])])
}

test_redis_cli_with_port_is_allowed if {
	allowed([t.cmd(["redis-cli", "-p", "6379", "ping"])])
}

test_curl_to_localhost_is_allowed if {
	allowed([t.cmd(["curl", "-s", "http://127.0.0.1:8760/v1/models"])])
}

test_echo_of_a_port_flag_is_allowed if {
	allowed([t.cmd(["echo", "--port", "8000"])])
}

test_mount_bind_is_allowed if {
	allowed([t.cmd(["mount", "--bind", "/a", "/b"])])
}

test_port_probes_are_allowed if {
	allowed([
		t.piped(t.cmd(["netstat", "-tuln"]), 0, 2),
		t.piped(t.cmd(["grep", "8001"]), 1, 2),
		t.cmd(["lsof", "-i", ":8001"]),
		t.cmd(["ss", "-tuln"]),
	])
}

test_python_script_without_listen_flags_is_allowed if {
	allowed([t.cmd(["python3", "train.py", "--epochs", "3", "--output-dir", "./checkpoints"])])
}

test_help_of_a_custom_server_is_allowed if {
	allowed([t.cmd(["python3", "server.py", "--port", "8000", "--help"])])
}

test_site_can_stop_treating_a_program_as_a_client if {
	vs := servers.violations with input as t.shell([t.cmd(["psql", "--port", "5432"])])
		with data.gatekeeper.servers.clients as []
	"servers.listen_flag" in t.rules(vs)
}

# --- candidates -----------------------------------------------------------------------------

test_candidate_server_is_left_to_evasion if {
	c := t.candidate(t.cmd(["vllm", "serve", "/models/llama"]), "tmux")
	count(violations_of([c])) == 0
}

# --- interpreter code -----------------------------------------------------------------------

python_violations(calls) := vs if {
	vs := servers.violations with input as t.python(calls, [])
}

test_python_socket_bind_and_listen_is_denied if {
	calls := [t.api("socket.socket", []), t.api("?.bind", [["0.0.0.0", 8765]]), t.api("?.listen", [5])]
	vs := python_violations(calls)
	t.reported(vs, "servers.python_listen", "deny", "python code listens")
}

test_python_socketserver_serve_forever_is_denied if {
	calls := [t.api("socketserver.TCPServer", [["", 8080], null]), t.api("?.serve_forever", [])]
	t.fired(python_violations(calls), {"servers.python_listen"})
}

test_python_flask_app_run_with_port_is_denied if {
	calls := [t.api("flask.Flask", ["x"]), t.api_kw("?.run", [], {"host": "0.0.0.0", "port": 5000})]
	t.fired(python_violations(calls), {"servers.python_listen"})
}

test_python_app_run_on_public_host_is_denied if {
	calls := [t.api_kw("?.run", [], {"host": "0.0.0.0"})]
	t.fired(python_violations(calls), {"servers.python_listen"})
}

test_python_uvicorn_run_is_denied if {
	t.fired(python_violations([t.api("uvicorn.run", ["app:app"])]), {"servers.python_listen"})
}

test_python_socket_connect_is_allowed if {
	calls := [t.api("socket.socket", []), t.api("?.settimeout", [1]), t.api("?.connect_ex", [["127.0.0.1", 8001]]), t.api("?.close", [])]
	count(python_violations(calls)) == 0
}

test_python_subprocess_run_is_allowed if {
	count(python_violations([t.api_kw("subprocess.run", [["ls"]], {"check": true})])) == 0
}

# --- report-only invocations and clients with a port flag (false positives on tldr pages) ----

test_help_and_status_invocations_of_servers_are_allowed if {
	every text in [
		"rails server -h", "ttyd -h", "mysqld --print-defaults", "postgres --single -D data db",
		"squid -k parse", "frpc -v", "caddy stop",
	] {
		allowed([t.cmd(split(text, " "))])
	}
}

test_management_subcommands_of_servers_are_allowed if {
	every text in [
		"cloudflared tunnel login", "cloudflared tunnel list", "consul kv get key",
		"jupyter notebook list", "envoy run deploy", "frps verify -c frps.toml", "mitmdump -nr in.mitm",
	] {
		allowed([t.cmd(split(text, " "))])
	}
}

test_running_those_servers_is_still_a_violation if {
	every text in [
		"rails server", "ttyd bash", "postgres -p 5433", "squid -N", "frpc -c frpc.toml",
		"cloudflared tunnel run name", "cloudflared tunnel --url http://localhost:8000",
		"consul agent -dev", "jupyter notebook", "mitmdump -w out", "caddy run",
	] {
		count(violations_of([t.cmd(split(text, " "))])) > 0
	}
}

test_device_and_cloud_clients_with_a_port_flag_are_allowed if {
	every text in [
		"esptool.py --port /dev/ttyUSB0 erase_flash", "kodi-send --host 192.168.0.1 --port 9777 -a Quit",
		"ncmpcpp --host 10.0.0.2 --port 6600", "linode-cli nodebalancers configs create 1 --port 80",
	] {
		allowed([t.cmd(split(text, " "))])
	}
}
