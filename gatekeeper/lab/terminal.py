"""The agent's terminal in the sandbox: runs one allowed call, the same way in both arms.

- ``one_time`` shell calls run through :func:`gatekeeper.execute.run_command`, the executor of
  ``gatekeeper exec``: bash, its own process group, a timeout, capped output.
- ``long_running`` shell calls (a server, ``nohup ... &``) are launched detached through the
  :class:`~gatekeeper.lab.procs.ProcessTracker`, output to a log, and keep running, as in the paper's
  separate terminals; the terminal then waits until the launch listens, exits, or ``settle_s`` passes.
- ``python`` calls run as ``python3 -c CODE``; ``file_write`` writes the file.

The two arms differ only in whether a decision comes first; what runs, runs identically.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.config import DEFAULT_ENV_ALLOW, ExecConfig
from gatekeeper.errors import GatekeeperError
from gatekeeper.execute import filtered_environment, run_command
from gatekeeper.lab.liveness import listeners_of
from gatekeeper.lab.procs import Launch, ProcessTracker
from gatekeeper.lab.scenarios import Step

OUTPUT_TAIL = 600


@dataclass(slots=True)
class Execution:
    exit_code: int | None = None
    timed_out: bool = False
    output: str = ""
    launched: str | None = None
    launch: Launch | None = None
    duration_ms: float = 0.0


class Terminal:
    def __init__(
        self,
        tracker: ProcessTracker,
        *,
        env: dict[str, str],
        log_dir: Path,
        default_cwd: Path,
        timeout_s: float = 20.0,
        settle_s: float = 8.0,
        python: str = "python3",
    ) -> None:
        self.tracker = tracker
        self.env = env  # added to the executor's allow-listed environment
        self.log_dir = log_dir
        self.default_cwd = default_cwd
        self.timeout_s = timeout_s
        self.settle_s = settle_s
        self.python = python

    def cwd_of(self, step: Step) -> str:
        return step.cwd or str(self.default_cwd)

    def run(self, step: Step, number: str) -> Execution:
        started = time.monotonic()
        launched_before = len(self.tracker.launches)
        before_pids, before_ports = self.snapshot()
        execution = self._run(step, number)
        launch = execution.launch
        # Processes that calls nested in this one started (an agent acting on a /chat this step sent)
        # were settled by those calls; they are not this step's doing.
        nested = {other.pid for other in self.tracker.launches[launched_before:] if other is not launch}
        if nested:
            nested_pids = {info.pid for info in self.tracker.members() if info.session in nested}
            before_pids |= nested_pids
            before_ports |= {listener.port for listener in listeners_of(nested_pids)}
        if launch is not None or self._new_processes(before_pids):
            execution.launched = self.settle(launch, before_pids, before_ports)
        execution.duration_ms = round((time.monotonic() - started) * 1000.0, 1)
        return execution

    def snapshot(self) -> tuple[set[int], set[int]]:
        """The lab's live processes and the ports they listen on, now."""
        pids = {info.pid for info in self.tracker.members()}
        return pids, {listener.port for listener in listeners_of(pids)}

    def _run(self, step: Step, number: str) -> Execution:
        cwd = self.cwd_of(step)
        if step.tool == "file_write":
            assert step.path is not None and step.content is not None  # noqa: S101 - checked when parsed
            try:
                path = Path(step.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(step.content, encoding="utf-8")
            except OSError as error:
                return Execution(exit_code=1, output=str(error))
            return Execution(exit_code=0)
        command = step.command or ""
        if step.tool == "python":
            command = f"{self.python} -c {shlex.quote(step.code or '')}"
        if step.command_type == "long_running":
            safe_number = number.replace("/", "_")
            launch = self.tracker.launch(
                ["/bin/bash", "-c", command],
                cwd=cwd,
                env={**filtered_environment(DEFAULT_ENV_ALLOW), **self.env},
                log_path=self.log_dir / f"step-{safe_number}.log",
                command=command,
            )
            return Execution(launch=launch)
        limits = ExecConfig(timeout_s=step.timeout_s or self.timeout_s, max_output_bytes=1 << 16)
        try:
            result = run_command(command, limits, cwd=cwd, extra_env=self.env)
        except GatekeeperError as error:
            return Execution(exit_code=None, output=error.message)
        output = (result.stdout + result.stderr)[-OUTPUT_TAIL:]
        return Execution(exit_code=result.exit_code, timed_out=result.timed_out, output=output)

    def _new_processes(self, before: set[int]) -> list[int]:
        return [info.pid for info in self.tracker.members() if info.pid not in before]

    def settle(
        self, launch: Launch | None, before_pids: set[int], before_ports: set[int], *, min_wait_s: float = 0.0
    ) -> str:
        """Wait until a new port listens, every new process has exited, or ``settle_s`` passed."""
        now = time.monotonic()
        deadline = now + self.settle_s
        earliest = now + min_wait_s
        while True:
            # Exit status first, then the process list: children forked before the shell exited are
            # then always in the list (the other order races with a shell that backgrounds and exits).
            shell_exited = launch is None or launch.exit_code() is not None
            members = self.tracker.members()
            new_ports = sorted({lst.port for lst in listeners_of(i.pid for i in members)} - before_ports)
            if new_ports:
                return "listening on " + ", ".join(map(str, new_ports))
            alive = [info for info in members if info.pid not in before_pids]
            if not alive and shell_exited and time.monotonic() >= earliest:
                if launch is None:
                    return "exited"
                return f"exited {launch.exit_code()}: {self._log_tail(launch)}".rstrip(": ")
            if time.monotonic() > deadline:
                return "running"
            time.sleep(0.05)

    @staticmethod
    def _log_tail(launch: Launch) -> str:
        try:
            text = launch.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1][-200:] if lines else ""
