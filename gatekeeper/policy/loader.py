"""Find and read the policy pack: Rego modules and site data, with a content revision.

The revision is a hash over every module and the data, so any edit that changes what the policies
decide changes the revision recorded in every decision and audit record.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.errors import PolicyLoadError

DATA_FILE = "data.json"
ENTRYPOINT = "gatekeeper/decision"
QUERY_PATH = "data.gatekeeper.decision"


@dataclass(frozen=True, slots=True)
class PolicySource:
    """The policy pack as read from disk: modules by relative path, data, and their revision."""

    directory: Path
    modules: dict[str, str]
    data: dict[str, Any]
    revision: str


def default_policy_dir() -> Path:
    """The policies of a source checkout, else the copy shipped inside the installed package."""
    package_dir = Path(__file__).resolve().parent.parent
    checkout = package_dir.parent / "policies"
    if (checkout / DATA_FILE).is_file():
        return checkout
    return package_dir / "_policies"


def resolve_policy_dir(directory: str | os.PathLike[str] | None) -> Path:
    if directory is not None:
        return Path(directory)
    from_env = os.environ.get("GATEKEEPER_POLICIES")
    return Path(from_env) if from_env else default_policy_dir()


def load_policy_source(directory: str | os.PathLike[str] | None = None) -> PolicySource:
    """Read every non-test ``.rego`` module and ``data.json`` under ``directory``."""
    root = resolve_policy_dir(directory)
    if not root.is_dir():
        raise PolicyLoadError(f"policy directory {root} does not exist")
    modules: dict[str, str] = {}
    for path in sorted(root.rglob("*.rego")):
        if path.name.endswith("_test.rego"):
            continue
        relative = path.relative_to(root).as_posix()
        try:
            modules[relative] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyLoadError(f"cannot read policy module {path}: {error}") from error
    if not modules:
        raise PolicyLoadError(f"no .rego policy modules found under {root}")
    data = _read_data(root / DATA_FILE)
    return PolicySource(directory=root, modules=modules, data=data, revision=_revision(modules, data))


def _read_data(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PolicyLoadError(f"cannot read policy data {path}: {error}") from error
    if not isinstance(data, dict):
        raise PolicyLoadError(f"policy data {path} must be a JSON object, not {type(data).__name__}")
    return data


def _revision(modules: dict[str, str], data: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(modules[name].encode())
        digest.update(b"\0")
    digest.update(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
    return "sha256:" + digest.hexdigest()
