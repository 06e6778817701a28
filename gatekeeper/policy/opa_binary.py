"""Where the pinned ``opa`` binary is, for the OPA engine's helpers and the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent.parent


def pinned_opa_version() -> str | None:
    """The version in the checkout's OPA_VERSION file (``v1.22.2``), if this is a checkout."""
    path = _REPO / "OPA_VERSION"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def find_opa() -> Path | None:
    """``$GATEKEEPER_OPA``, the checkout's ``.tools/bin/opa``, ``$(go env GOPATH)/bin/opa``, then PATH."""
    explicit = os.environ.get("GATEKEEPER_OPA")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(_REPO / ".tools" / "bin" / "opa")
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidates.append(Path(gopath) / "bin" / "opa")
    on_path = shutil.which("opa")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def opa_version(binary: Path) -> str | None:
    try:
        output = subprocess.run(
            [str(binary), "version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in output.stdout.splitlines():
        if line.startswith("Version:"):
            return "v" + line.split(":", 1)[1].strip()
    return None
