"""The local OPA server: start on a loopback port, health, clean stop, failures, `gatekeeper opa run`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gatekeeper.errors import EngineUnavailable
from gatekeeper.policy.opa_process import (
    OPA_GOGC,
    ManagedOpa,
    OpaProcess,
    OpaProcessError,
    opa_child_pids,
)
from gatekeeper.policy.opa_server import OpaServerEngine

pytestmark = [pytest.mark.opa, pytest.mark.usefixtures("no_opa_left")]

ALLOW = (
    "package gatekeeper\n\n"
    'decision := {"decision": "allow", "policy_decision": "allow", "mode": "enforce", "violations": []}\n'
)


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_managed_opa_serves_the_pack_with_its_revision(opa_binary, write_policies):
    policies = write_policies(ALLOW, data={"gatekeeper": {"k": 1}})
    with ManagedOpa(policies, binary=opa_binary) as opa:
        assert opa.url.startswith("http://127.0.0.1:")
        assert get_json(f"{opa.url}/health") == {}
        engine = OpaServerEngine(opa.url)
        assert engine.evaluate({})["decision"] == "allow"
        assert engine.revision == opa.revision
        assert opa.revision.startswith("sha256:")
        engine.close()
        pid = opa.pid
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists() or pid not in opa_child_pids()


def test_opa_listens_on_loopback_only(opa_binary, write_policies):
    with ManagedOpa(write_policies(ALLOW), binary=opa_binary) as opa:
        assert f"127.0.0.1:{opa.port}" in opa.process.command()


def child_environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().partition("=")[::2] for entry in entries if entry)


def test_opa_runs_with_a_larger_garbage_collector_target(opa_binary, write_policies, monkeypatch):
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.setenv("GATEKEEPER_PROBE", "passed-on")
    with ManagedOpa(write_policies(ALLOW), binary=opa_binary) as opa:
        assert opa.pid is not None
        environment = child_environment(opa.pid)
    assert environment["GOGC"] == OPA_GOGC == "400"
    assert environment["GATEKEEPER_PROBE"] == "passed-on"


def test_a_gogc_set_by_the_user_is_kept(opa_binary, write_policies, monkeypatch):
    monkeypatch.setenv("GOGC", "150")
    with ManagedOpa(write_policies(ALLOW), binary=opa_binary) as opa:
        assert opa.pid is not None
        assert child_environment(opa.pid)["GOGC"] == "150"


def test_stop_is_idempotent_and_reaps_the_process(opa_binary, write_policies):
    opa = ManagedOpa(write_policies(ALLOW), binary=opa_binary).start()
    pid = opa.pid
    assert pid in opa_child_pids()
    opa.stop()
    opa.stop()
    assert pid not in opa_child_pids()
    opa.close()


def test_stop_ends_a_paused_opa(opa_binary, write_policies):
    opa = ManagedOpa(write_policies(ALLOW), binary=opa_binary).start()
    os.kill(opa.pid, signal.SIGSTOP)
    started = time.monotonic()
    opa.close()
    assert time.monotonic() - started < 6
    assert not opa_child_pids()


def test_policy_that_does_not_load_fails_the_start_with_opas_message(opa_binary, write_policies):
    policies = write_policies("package gatekeeper\n\ndecision := {\n")
    with pytest.raises(OpaProcessError, match=r"rego_parse_error") as raised:
        ManagedOpa(policies, binary=opa_binary).start()
    assert "main.rego" in raised.value.message
    assert isinstance(raised.value, EngineUnavailable)


def test_port_in_use_is_reported(opa_binary, write_policies):
    with ManagedOpa(write_policies(ALLOW, name="a"), binary=opa_binary) as first:
        second = ManagedOpa(write_policies(ALLOW, name="b"), binary=opa_binary, port=first.port)
        with pytest.raises(OpaProcessError, match="address already in use"):
            second.start()


def test_missing_binary_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr("gatekeeper.policy.opa_process.find_opa", lambda: None)
    with pytest.raises(OpaProcessError, match=r"install-opa\.sh"):
        OpaProcess([tmp_path])


def test_gatekeeper_opa_run_serves_until_interrupted(opa_binary, write_policies):
    policies = write_policies(ALLOW)
    env = {**os.environ, "GATEKEEPER_OPA": str(opa_binary)}
    gatekeeper = str(Path(sys.executable).parent / "gatekeeper")
    command = [gatekeeper, "opa", "run", "--port", "0", "--policies", str(policies)]
    cli = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        banner = ""
        deadline = time.monotonic() + 20
        while "serving revision" not in banner and time.monotonic() < deadline:
            line = cli.stderr.readline()
            if not line:
                break
            banner += line
        match = re.search(r"at (http://127\.0\.0\.1:\d+) \(pid (\d+)\)", banner)
        assert match, banner
        url, opa_pid = match.group(1), int(match.group(2))
        assert opa_child_pids(cli.pid) == [opa_pid]
        engine = OpaServerEngine(url)
        assert engine.evaluate({})["decision"] == "allow"
        engine.close()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=10) == 0
        assert "opa stopped" in cli.stderr.read()
        assert not Path(f"/proc/{opa_pid}").exists()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stderr.close()


def read_until(stream, marker: str, timeout_s: float = 30.0) -> str:
    """Lines from ``stream`` up to and including the first that contains ``marker``."""
    text = ""
    deadline = time.monotonic() + timeout_s
    while marker not in text and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        text += line
    return text


def test_gatekeeper_opa_run_watch_reloads_and_rejects_a_broken_policy(opa_binary, write_policies):
    """The whole user flow of `gatekeeper opa run --watch`: edit, break, fix, each seen by OPA."""
    policies = write_policies(ALLOW)
    main = policies / "gatekeeper" / "main.rego"
    env = {**os.environ, "GATEKEEPER_OPA": str(opa_binary)}
    gatekeeper = str(Path(sys.executable).parent / "gatekeeper")
    command = [gatekeeper, "opa", "run", "--port", "0", "--watch", "--policies", str(policies)]
    cli = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        banner = read_until(cli.stderr, "serving revision")
        match = re.search(r"serving revision (\S+) at (http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        first, url = match.group(1), match.group(2)
        engine = OpaServerEngine(url, timeout_s=5)
        assert engine.evaluate({})["decision"] == "allow"
        assert engine.revision == first

        main.write_text(ALLOW + "\nbroken := {\n", encoding="utf-8")
        rejected = read_until(cli.stderr, "rego_parse_error")
        assert f"policy reload rejected, still serving {first}" in rejected
        assert "main.rego:" in rejected and "rego_parse_error" in rejected
        assert engine.evaluate({})["decision"] == "allow"
        assert engine.revision == first

        main.write_text(
            ALLOW.replace('"decision": "allow"', '"decision": "deny"').replace(
                '"policy_decision": "allow"', '"policy_decision": "deny"'
            ),
            encoding="utf-8",
        )
        reloaded = read_until(cli.stderr, "policies reloaded")
        match = re.search(r"now serving (\S+)", reloaded)
        assert match, reloaded
        assert match.group(1) != first
        assert engine.evaluate({})["decision"] == "deny"
        assert engine.revision == match.group(1)
        engine.close()
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=10) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        cli.stderr.close()
