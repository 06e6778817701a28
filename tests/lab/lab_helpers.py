"""Helpers of the lab tests: what a run used (to prove it is gone), and a recording progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gatekeeper.lab.procs import all_pids, process_has_tag
from gatekeeper.lab.results import Arm, ArmResult, LabResult, StepRecord
from gatekeeper.lab.runner import ScenarioRun
from gatekeeper.lab.scenarios import Scenario


@dataclass
class Footprint:
    """What a run used: its process tag, the ports it allocated, its sandbox, its terminal port."""

    tag: str
    ports: list[int]
    root: Path
    endpoint_port: int


@dataclass
class RecordingProgress:
    events: list[str] = field(default_factory=list)

    def arm_started(self, scenario: Scenario, arm: Arm) -> None:
        self.events.append(f"start {scenario.name} {arm.value}")

    def step_done(self, scenario: Scenario, arm: Arm, record: StepRecord) -> None:
        self.events.append(f"step {arm.value} {record.number}")

    def arm_finished(self, result: ArmResult) -> None:
        self.events.append(f"done {result.scenario} {result.arm.value}")


@dataclass
class PaperLab:
    lab: LabResult
    scenario: Scenario
    footprints: dict[Arm, Footprint]
    progress: RecordingProgress
    wall_s: float

    def result(self, arm: Arm) -> ArmResult:
        return next(r for r in self.lab.results if r.arm is arm)


def footprint_of(run: ScenarioRun) -> Footprint:
    return Footprint(run.tracker.tag, list(run.testbed.ports.allocated), run.testbed.root, run.endpoint.port)


def tagged_processes(tag: str) -> list[int]:
    return [pid for pid in all_pids() if process_has_tag(pid, tag)]
