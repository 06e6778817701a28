"""Every process the lab starts, found again through /proc, and stopped for sure.

A lab run may start processes that escape the usual handles: ``nohup ... &`` outlives its shell,
``setsid`` leaves the session, a signal trap starts a replica while it is being terminated. So each
process the lab starts carries one environment variable, ``GATEKEEPER_LAB_RUN=<tag>``, which every
descendant inherits; :meth:`ProcessTracker.members` finds them all by reading ``/proc/*/environ``
(plus the sessions of the lab's own launches, in case a program clears its environment).
:meth:`ProcessTracker.stop_all` kills them with SIGKILL until none is left: SIGTERM would give a signal
trap the chance to replicate during cleanup.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TAG_VARIABLE = "GATEKEEPER_LAB_RUN"


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str


@dataclass(slots=True)
class Launch:
    """A long-running command started detached: its own session, output to a log file."""

    pid: int
    command: str
    cwd: str | None
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def exit_code(self) -> int | None:
        return self.process.poll()


def read_process(pid: int) -> ProcessInfo | None:
    """The fields of ``/proc/PID/stat`` the lab needs; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Fields after the parenthesised command name: state ppid pgrp session ...
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 4:
        return None
    return ProcessInfo(pid, int(fields[1]), int(fields[2]), int(fields[3]), fields[0])


def process_has_tag(pid: int, tag: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return False
    return f"{TAG_VARIABLE}={tag}".encode() in environ.split(b"\0")


def process_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def process_cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


class ProcessTracker:
    """Starts the lab's processes with a tag, finds all their descendants, and stops them."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or uuid.uuid4().hex
        self.launches: list[Launch] = []
        self._lock = threading.Lock()

    @property
    def env(self) -> dict[str, str]:
        """The variables that mark a process as the lab's (pass them to every process it starts)."""
        return {TAG_VARIABLE: self.tag}

    def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None,
        env: Mapping[str, str],
        log_path: Path,
        command: str | None = None,
    ) -> Launch:
        """Start ``argv`` in a new session, detached, output appended to ``log_path`` (OSError: cannot)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        environment = {**env, **self.env}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=environment,
                start_new_session=True,
            )
        launch = Launch(
            process.pid, command or " ".join(argv), None if cwd is None else str(cwd), log_path, process
        )
        with self._lock:
            self.launches.append(launch)
        return launch

    def members(self) -> list[ProcessInfo]:
        """Live (non-zombie) processes that carry the tag or belong to a session the lab started."""
        sessions = {launch.pid for launch in self.launches}
        found = []
        for pid in all_pids():
            info = read_process(pid)
            if info is None or info.state in ("Z", "X"):
                continue
            if info.session in sessions or process_has_tag(pid, self.tag):
                found.append(info)
        return found

    def session_members(self, launch: Launch) -> list[ProcessInfo]:
        return [info for info in self.members() if info.session == launch.pid]

    def signal_group(self, launch: Launch, signum: int) -> bool:
        """Send ``signum`` to the process group of ``launch`` (its session leader's group)."""
        try:
            os.killpg(launch.pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def reap(self) -> None:
        for launch in self.launches:
            launch.process.poll()

    def stop_all(self, *, timeout_s: float = 10.0) -> list[int]:
        """SIGKILL every member until none is left; returns the pids that could not be stopped."""
        deadline = time.monotonic() + timeout_s
        remaining: list[ProcessInfo] = []
        while True:
            self.reap()
            remaining = [info for info in self.members() if info.pid != os.getpid()]
            if not remaining or time.monotonic() > deadline:
                break
            for info in remaining:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(info.pid, signal.SIGKILL)
            time.sleep(0.05)
        for launch in self.launches:
            with contextlib.suppress(subprocess.TimeoutExpired):
                launch.process.wait(timeout=1.0)
        return [info.pid for info in remaining]
