"""scripts/install-opa.sh: how it recognises an opa binary of the pinned version already in place."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The script and OPA_VERSION in a scratch project, so a fake .tools/bin/opa cannot touch the real one."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "install-opa.sh", tmp_path / "scripts" / "install-opa.sh")
    shutil.copy(REPO / "OPA_VERSION", tmp_path / "OPA_VERSION")
    (tmp_path / ".tools" / "bin").mkdir(parents=True)
    # A PATH holding only what the script and the fakes use, and no Go: a binary that does not match must
    # end in the no-Go message, never in a real install.
    commands = tmp_path / "commands"
    commands.mkdir()
    for name in ("bash", "dirname", "tr", "grep", "mkdir", "cp", "seq", "sleep"):
        found = shutil.which(name)
        assert found, f"{name} is needed to run scripts/install-opa.sh"
        (commands / name).symlink_to(found)
    return tmp_path


def fake_opa(project: Path, script: str) -> None:
    binary = project / ".tools" / "bin" / "opa"
    binary.write_text("#!/usr/bin/env bash\n" + script)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)


def run_install(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / "commands" / "bash"), "scripts/install-opa.sh"],
        cwd=project,
        env={"PATH": str(project / "commands"), "CI": "true"},
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def pinned_version() -> str:
    return (REPO / "OPA_VERSION").read_text().strip().removeprefix("v")


def test_a_binary_that_keeps_printing_after_its_version_line_is_recognised(project_copy):
    # `opa version` writes several lines; a check that stops reading at the first match used to kill it with
    # SIGPIPE and, under pipefail, reject the right binary now and then. The pause makes that certain.
    fake_opa(
        project_copy,
        f'echo "Version: {pinned_version()}"\nsleep 0.3\nfor i in $(seq 200); do echo "Line: $i"; done\n',
    )
    result = run_install(project_copy)
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout


def test_a_binary_of_another_version_is_not_taken(project_copy):
    fake_opa(project_copy, 'echo "Version: 0.0.1"\n')
    result = run_install(project_copy)
    assert result.returncode == 1
    assert "already installed" not in result.stdout
    assert "Go is not installed" in result.stderr
