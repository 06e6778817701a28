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


# -- real OPA processes (tests/test_opa_*.py, test_parity.py, test_reload.py, test_bundle.py) -------


@pytest.fixture
def no_opa_left():
    """Fails the test if it leaves an opa child process behind (running or unreaped)."""
    from gatekeeper.policy.opa_process import opa_child_pids  # noqa: PLC0415

    before = set(opa_child_pids())
    yield
    leftover = set(opa_child_pids()) - before
    assert not leftover, f"opa processes left behind: {sorted(leftover)}"


@pytest.fixture
def write_policies(tmp_path):
    """Write a small policy directory: ``write_policies(rego, data=None, name="policies") -> Path``."""

    def write(rego: str, data: dict | None = None, name: str = "policies") -> Path:
        import json  # noqa: PLC0415 - keeps this helper self-contained

        root = tmp_path / name
        (root / "gatekeeper").mkdir(parents=True, exist_ok=True)
        (root / "gatekeeper" / "main.rego").write_text(rego, encoding="utf-8")
        if data is not None:
            (root / "data.json").write_text(json.dumps(data), encoding="utf-8")
        return root

    return write


@pytest.fixture(scope="module")
def opa_server(opa_binary):
    """The real opa serving the project's policy pack (as a bundle) on a free loopback port."""
    from gatekeeper.policy.opa_process import ManagedOpa, opa_child_pids  # noqa: PLC0415

    before = set(opa_child_pids())
    with ManagedOpa(default_policy_dir(), binary=opa_binary) as server:
        yield server
    leftover = set(opa_child_pids()) - before
    assert not leftover, f"opa processes left behind: {sorted(leftover)}"
