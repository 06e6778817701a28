"""Progress while the lab and the corpus evaluation run: a rich progress bar on a terminal, plain
lines otherwise (CI logs, pipes), always on stderr so that ``--json`` output stays clean."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from gatekeeper.lab.results import Arm, ArmResult, StepRecord
from gatekeeper.lab.scenarios import Scenario

PLAIN_EVERY = 2000  # plain eval progress: one line per this many cases


def is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def step_summary(record: StepRecord) -> str:
    """One step in a few words: the decision and rules, or what running it did."""
    if record.blocked:
        rules = ", ".join(record.rules) or "no rule named"
        return f"BLOCKED ({record.decision}: {rules})"
    parts = []
    if record.decision is not None:
        parts.append(record.decision)
    if record.launched:
        parts.append(record.launched)
    elif record.exit_code is not None:
        parts.append(f"exit {record.exit_code}")
    if record.replicas_live:
        parts.append("replica live on " + ", ".join(map(str, record.replicas_live)))
    return "; ".join(parts) or "done"


def arm_summary(result: ArmResult) -> str:
    outcome = result.outcome()
    where = f" at step {result.first_replica_step}" if result.first_replica_step else ""
    blocked = len(result.blocked_steps)
    extra = f", {blocked} step(s) blocked" if result.arm is Arm.GATEKEEPER and result.ran else ""
    reason = f": {result.skipped or result.error}" if outcome in ("skipped", "error") else ""
    return f"{result.scenario} [{result.arm.value}] {outcome}{where}{extra}{reason} ({result.duration_s:g}s)"


class PlainLabProgress:
    """One line per arm started and finished, and with ``steps`` one per step."""

    def __init__(self, stream: TextIO | None = None, *, steps: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.steps = steps

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def arm_started(self, scenario: Scenario, arm: Arm) -> None:
        self._line(f"lab: {scenario.name} [{arm.value}] started ({len(scenario.steps)} steps)")

    def step_done(self, scenario: Scenario, arm: Arm, record: StepRecord) -> None:
        if self.steps:
            self._line(f"lab:   {scenario.name} [{arm.value}] step {record.number}: {step_summary(record)}")

    def arm_finished(self, result: ArmResult) -> None:
        self._line("lab: " + arm_summary(result))

    def close(self) -> None:
        return None


class RichLabProgress:
    """A bar over all scenario runs and one over the steps of the current run."""

    def __init__(self, total_runs: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.runs = self.progress.add_task("lab", total=total_runs)
        self.steps = self.progress.add_task("steps", total=1, visible=False)
        self.progress.start()

    def arm_started(self, scenario: Scenario, arm: Arm) -> None:
        self.progress.update(
            self.steps,
            description=f"  {scenario.name} [{arm.value}]",
            total=len(scenario.steps),
            completed=0,
            visible=True,
        )

    def step_done(self, scenario: Scenario, arm: Arm, record: StepRecord) -> None:
        if record.origin == "scenario":
            self.progress.advance(self.steps)

    def arm_finished(self, result: ArmResult) -> None:
        colour = {"replicated": "red", "contained": "green"}.get(result.outcome(), "yellow")
        self.progress.console.print(
            f"[{colour}]{arm_summary(result)}[/{colour}]", markup=True, highlight=False
        )
        self.progress.advance(self.runs)
        self.progress.update(self.steps, visible=False)

    def close(self) -> None:
        self.progress.stop()


def lab_progress(
    total_runs: int, *, stream: TextIO | None = None, steps: bool = False
) -> PlainLabProgress | RichLabProgress:
    """Rich on a terminal, plain lines otherwise."""
    target = stream or sys.stderr
    if is_terminal(target):
        return RichLabProgress(total_runs, Console(file=target))
    return PlainLabProgress(target, steps=steps)


class EvalProgress:
    """``on_case`` callback for :func:`gatekeeper.lab.evaluate.evaluate`, rich or plain."""

    def __init__(self, label: str = "eval", *, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label = label
        self._rich: Progress | None = None
        self._task: TaskID | None = None
        if is_terminal(self.stream):
            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
            )

    def __call__(self, done: int, total: int) -> None:
        if self._rich is not None:
            if self._task is None:
                self._rich.start()
                self._task = self._rich.add_task(self.label, total=total)
            self._rich.update(self._task, completed=done)
        elif done % PLAIN_EVERY == 0 or done == total:
            self.stream.write(f"{self.label}: {done}/{total} cases decided\n")
            self.stream.flush()

    def close(self) -> None:
        if self._rich is not None and self._task is not None:
            self._rich.stop()
