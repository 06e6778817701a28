"""One real lab run of paper-qwen25 in both arms, shared by the lab tests (it takes some seconds).

Each arm runs in its own :class:`ScenarioRun`, so the tests can check afterwards that the run's
processes (found by the run's tag), ports and sandbox are all gone.
"""

from __future__ import annotations

import time

import pytest
from lab_helpers import Footprint, PaperLab, RecordingProgress, footprint_of

from gatekeeper.lab.engines import open_engine
from gatekeeper.lab.results import Arm, LabResult
from gatekeeper.lab.runner import LabOptions, ScenarioRun
from gatekeeper.lab.scenarios import find_scenario


@pytest.fixture(scope="session")
def paper_lab() -> PaperLab:
    scenario = find_scenario("paper-qwen25")
    options = LabOptions(step_timeout_s=15.0, settle_s=6.0, scenario_timeout_s=50.0)
    progress = RecordingProgress()
    engine = open_engine("embedded")
    started = time.monotonic()
    lab = LabResult(results=[], started="test", engine=engine.name)
    footprints: dict[Arm, Footprint] = {}
    try:
        for arm in (Arm.BASELINE, Arm.GATEKEEPER):
            run = ScenarioRun(scenario, arm, options, engine=engine, progress=progress)
            lab.results.append(run.run())
            footprints[arm] = footprint_of(run)
        lab.policy_revision = engine.revision
    finally:
        engine.close()
    lab.duration_s = round(time.monotonic() - started, 2)
    return PaperLab(lab, scenario, footprints, progress, time.monotonic() - started)
