"""The service's garbage-collector settings: start-up frozen, young collections rarer."""

from __future__ import annotations

import json
import subprocess
import sys

from gatekeeper.server.collector import SERVICE_THRESHOLDS

# In a child process: the settings are process-wide, and the test run's own should stay as they are.
PROBE = """
import gc, json
from gatekeeper.server.collector import tune_for_service
before = gc.get_threshold()
tune_for_service()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_tuning_freezes_start_up_and_raises_the_thresholds():
    command = [sys.executable, "-c", PROBE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    assert tuple(seen["after"]) == SERVICE_THRESHOLDS
    assert tuple(seen["after"]) != tuple(seen["before"])
    assert seen["frozen"] > 1000  # the imported modules, at least
