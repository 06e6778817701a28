"""Run an allowed command: the exact string that was analysed, under bash, in its own process group.

Guarantees: the environment is reduced to an allow-list; output is capped (the rest is drained and
dropped, ``truncated`` says so); on timeout, and when the shell exits, the whole process group is
terminated (SIGTERM, then SIGKILL after a grace period), so a mediated command leaves nothing running.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping

from gatekeeper.config import ExecConfig
from gatekeeper.errors import ExecutionError
from gatekeeper.models import ExecResult

OutputCallback = Callable[[bytes], None]
_READ_SIZE = 1 << 16
# After the shell exits, how long its pipes may stay open (a backgrounded child) before cleanup.
_DRAIN_AFTER_EXIT_S = 0.2


def filtered_environment(allow: list[str], source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``source`` (default: this process) whose names match an allow-list pattern."""
    environment = os.environ if source is None else source
    return {
        name: value for name, value in environment.items() if any(fnmatch.fnmatchcase(name, p) for p in allow)
    }


def run_command(
    command: str,
    config: ExecConfig,
    *,
    cwd: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    on_stdout: OutputCallback | None = None,
    on_stderr: OutputCallback | None = None,
) -> ExecResult:
    """Run ``command`` with ``config.shell -c`` and return its result; ExecutionError if it cannot start."""
    env = filtered_environment(config.env_allow)
    env.update(extra_env or {})
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [config.shell, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # own process group: the whole tree can be signalled at once
        )
    except (OSError, ValueError) as error:
        raise ExecutionError(f"cannot start {config.shell}: {error}") from error
    collector = _Collector(config.max_output_bytes, on_stdout, on_stderr)
    timed_out = False
    try:
        timed_out = _pump(process, collector, deadline=started + config.timeout_s)
    except KeyboardInterrupt:
        _terminate_group(process, config.kill_grace_s)
        raise
    finally:
        _terminate_group(process, config.kill_grace_s)
        _close_pipes(process)
    exit_code = process.returncode
    return ExecResult(
        exit_code=None if timed_out else exit_code,
        stdout=collector.text(1),
        stderr=collector.text(2),
        truncated=collector.truncated,
        timed_out=timed_out,
        duration_ms=round((time.monotonic() - started) * 1000.0, 3),
    )


class _Collector:
    """Keeps up to ``limit`` bytes of output in total, forwarding the same bytes to the callbacks."""

    def __init__(
        self, limit: int, on_stdout: OutputCallback | None, on_stderr: OutputCallback | None
    ) -> None:
        self.limit = limit
        self.kept = 0
        self.truncated = False
        self.chunks: dict[int, list[bytes]] = {1: [], 2: []}
        self.callbacks = {1: on_stdout, 2: on_stderr}

    def add(self, stream: int, data: bytes) -> None:
        room = self.limit - self.kept
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if not data:
            return
        self.kept += len(data)
        self.chunks[stream].append(data)
        callback = self.callbacks[stream]
        if callback is not None:
            callback(data)

    def text(self, stream: int) -> str:
        return b"".join(self.chunks[stream]).decode("utf-8", "replace")


def _pump(process: subprocess.Popen[bytes], collector: _Collector, *, deadline: float) -> bool:
    """Read both pipes until they close or time runs out; True when the deadline passed."""
    assert process.stdout is not None and process.stderr is not None  # noqa: S101 - PIPE requested above
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, 1)
    selector.register(process.stderr, selectors.EVENT_READ, 2)
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                return True
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_AFTER_EXIT_S:
                break  # the shell is gone; what still holds the pipes is cleaned up with the group
            limit = deadline - now if exited_at is None else _DRAIN_AFTER_EXIT_S
            for key, _events in selector.select(timeout=min(limit, 0.1)):
                data = os.read(key.fd, _READ_SIZE)
                if data:
                    collector.add(key.data, data)
                else:
                    selector.unregister(key.fileobj)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return process.poll() is None
        try:
            process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            return True
        return False
    finally:
        selector.close()


def _terminate_group(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the command's process group, SIGKILL what remains after ``grace_s``, reap the shell."""
    pgid = process.pid
    process.poll()
    if not _group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end and _group_alive(pgid):
        process.poll()
        time.sleep(0.02)
    if _group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=max(grace_s, 1.0))


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs; zombies (dead, not yet reaped) do not count.

    An orphaned child is reparented to PID 1, which in some containers never reaps it, so
    ``killpg(pgid, 0)`` alone would report a dead group as alive.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(state != "Z" for state in _group_member_states(pgid)) if os.path.isdir("/proc") else True


def _group_member_states(pgid: int) -> list[str]:
    states = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            states.append(fields[0])
    return states


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
