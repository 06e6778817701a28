"""The executor: real bash processes, timeouts, caps, process groups, environment."""

from __future__ import annotations

import time

import pytest

from gatekeeper.config import ExecConfig
from gatekeeper.errors import ExecutionError
from gatekeeper.execute import filtered_environment, run_command


def is_running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait for PID 1 to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def limits(**changes) -> ExecConfig:
    return ExecConfig(**{"timeout_s": 10, "kill_grace_s": 0.5, **changes})


def test_runs_the_exact_string_and_returns_exit_code_and_output(tmp_path):
    result = run_command("echo out; echo err >&2; exit 3", limits(), cwd=str(tmp_path))
    assert result.exit_code == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert not result.truncated
    assert not result.timed_out


def test_working_directory_is_used(tmp_path):
    assert run_command("pwd", limits(), cwd=str(tmp_path)).stdout.strip() == str(tmp_path)


def test_output_beyond_the_cap_is_dropped_and_flagged():
    result = run_command("head -c 100000 /dev/zero | tr '\\0' x", limits(max_output_bytes=1000))
    assert result.truncated
    assert len(result.stdout) == 1000
    assert result.exit_code == 0


def test_streamed_chunks_match_the_captured_output():
    seen: list[bytes] = []
    result = run_command("for i in 1 2 3; do echo $i; done", limits(), on_stdout=seen.append)
    assert b"".join(seen).decode() == result.stdout == "1\n2\n3\n"


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    result = run_command(f"sleep 30 & echo $! > {marker}; sleep 30", limits(timeout_s=0.5))
    assert result.timed_out
    assert result.exit_code is None
    assert time.monotonic() - started < 10
    assert not is_running(int(marker.read_text()))


def test_background_children_do_not_outlive_the_command(tmp_path):
    marker = tmp_path / "child.pid"
    result = run_command(f"sleep 30 & echo $! > {marker}", limits())
    assert result.exit_code == 0
    assert not is_running(int(marker.read_text()))


def test_environment_is_reduced_to_the_allow_list(monkeypatch):
    monkeypatch.setenv("GK_SECRET_TOKEN", "s3cret")
    monkeypatch.setenv("GK_VISIBLE", "yes")
    result = run_command(
        'echo "${GK_SECRET_TOKEN:-absent} ${GK_VISIBLE:-absent}"', limits(env_allow=["PATH", "GK_VIS*"])
    )
    assert result.stdout.strip() == "absent yes"


def test_filtered_environment_matches_patterns():
    assert filtered_environment(["LC_*", "PATH"], {"LC_ALL": "C", "PATH": "/bin", "AWS_KEY": "k"}) == {
        "LC_ALL": "C",
        "PATH": "/bin",
    }


def test_missing_shell_is_an_execution_error():
    with pytest.raises(ExecutionError, match="cannot start"):
        run_command("true", limits(shell="/nonexistent/bash"))
