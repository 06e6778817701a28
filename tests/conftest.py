"""Fixtures shared by the whole suite: the opa binary, free loopback ports, the policy pack."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gatekeeper.policy.loader import default_policy_dir
from gatekeeper.policy.opa_binary import find_opa

IN_CI = os.environ.get("CI") == "true"
REPO = Path(__file__).resolve().parent.parent
SHARED_CORPORA = REPO.parent / "shared" / "corpora"


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    """The pinned opa; tests that need it skip without it, except under CI=true where they fail."""
    binary = find_opa()
    if binary is None:
        message = (
            "the opa binary is not installed: run scripts/install-opa.sh (needs Go: it runs "
            "`go install github.com/open-policy-agent/opa@$(cat OPA_VERSION)`) or set GATEKEEPER_OPA"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return binary


@pytest.fixture(scope="session")
def policy_dir() -> Path:
    return default_policy_dir()


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def loopback_port() -> int:
    return free_port()
