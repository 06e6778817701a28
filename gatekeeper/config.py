"""Configuration: one object passed in, read from a file (TOML, YAML or JSON), flags and environment.

Precedence, highest first: explicit values (CLI flags), the config file, ``GATEKEEPER_*`` environment
variables, defaults. Nothing is read at import time.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatekeeper.errors import InputError
from gatekeeper.models import Mode, describe_validation_error

DEFAULT_ENV_ALLOW = ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_*", "TZ", "TMPDIR"]

ENVIRONMENT_KEYS = {
    "GATEKEEPER_POLICIES": "policies_dir",
    "GATEKEEPER_ENGINE": "engine",
    "GATEKEEPER_OPA_URL": "opa_url",
    "GATEKEEPER_MODE": "mode",
    "GATEKEEPER_AGENT_HOME": "agent_home",
    "GATEKEEPER_AUDIT_LOG": "audit_log",
    "GATEKEEPER_DECISION_CACHE": "decision_cache_size",
}


class ExecConfig(BaseModel):
    """Limits for commands gatekeeper runs itself (``gatekeeper exec``, the service's /v1/execute)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(default=60.0, gt=0)
    max_output_bytes: int = Field(default=1 << 20, gt=0)
    env_allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV_ALLOW))
    shell: str = "/bin/bash"
    kill_grace_s: float = Field(default=2.0, ge=0)


class Config(BaseModel):
    model_config = ConfigDict(extra="allow")

    policies_dir: Path | None = None
    engine: Literal["embedded", "wasm", "opa"] = "embedded"
    opa_url: str = "http://127.0.0.1:8181"
    opa_timeout_s: float = Field(default=0.5, gt=0)
    # The in-process engines' deadline for one evaluation (embedded and wasm); past it the call is
    # denied (engine_timeout).
    embedded_timeout_s: float = Field(default=10.0, gt=0)
    mode: Mode | None = None
    agent_home: str | None = None
    home: str | None = None
    audit_log: Path | None = None
    headless: bool = True
    # Answers of an in-process engine kept for identical inputs (0 turns the cache off).
    decision_cache_size: int = Field(default=4096, ge=0)
    exec: ExecConfig = Field(default_factory=ExecConfig)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
        """Defaults ← environment ← file ← ``overrides`` (``None`` overrides are ignored)."""
        values: dict[str, Any] = {}
        for variable, key in ENVIRONMENT_KEYS.items():
            if os.environ.get(variable):
                values[key] = os.environ[variable]
        if path is not None:
            values.update(read_config_file(Path(path)))
        values.update({key: value for key, value in overrides.items() if value is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            message = describe_validation_error(error).replace("invalid tool call", "invalid config")
            raise InputError(message) from error

    def effective_home(self) -> str | None:
        return self.home or os.environ.get("HOME")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot read config file {path}: {error}") from error
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        kind = path.suffix.lstrip(".") or "JSON"
        raise InputError(f"config file {path} is not valid {kind}: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping at the top level")
    # A [gatekeeper] table (or top-level key) keeps the file shareable with other tools' settings.
    section = data.get("gatekeeper", data)
    return dict(section) if isinstance(section, dict) else {}
