"""The service's settings: the ``server`` section of the gatekeeper config file, flags and environment.

One config file serves the CLI and the service: every key ``Config`` knows (policies, engine, mode,
audit log, exec limits) plus a ``server`` table read here::

    mode = "enforce"
    audit_log = "/var/lib/gatekeeper/audit.jsonl"
    [server]
    host = "127.0.0.1"
    port = 8700
    agent_tokens = ["..."]
    admin_tokens = ["..."]
    [server.approvals]
    enabled = true
    on_ask = "wait"

Tokens may also come from ``GATEKEEPER_AGENT_TOKENS`` / ``GATEKEEPER_ADMIN_TOKENS`` (comma-separated),
which keeps secrets out of the file.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatekeeper.config import Config
from gatekeeper.errors import InputError
from gatekeeper.models import describe_validation_error

AGENT_TOKENS_VARIABLE = "GATEKEEPER_AGENT_TOKENS"
ADMIN_TOKENS_VARIABLE = "GATEKEEPER_ADMIN_TOKENS"
DEFAULT_PORT = 8700


class SessionSettings(BaseModel):
    """Bounds on what the service remembers of each session (``input.session.history``)."""

    model_config = ConfigDict(extra="forbid")

    max_history: int = Field(default=64, ge=1, description="Calls kept per session, most recent last.")
    max_session_bytes: int = Field(default=256 * 1024, ge=1024, description="History bytes per session.")
    max_sessions: int = Field(default=10_000, ge=1)
    max_total_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="History bytes and session ids, all sessions."
    )
    idle_ttl_s: float = Field(default=3600.0, gt=0, description="A session idle this long is forgotten.")


class ApprovalSettings(BaseModel):
    """How ``ask`` decisions reach a human. Disabled (headless): ``ask`` is ``deny``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    on_ask: Literal["wait", "pending"] = Field(
        default="wait",
        description="wait: /v1/execute blocks up to wait_s for a verdict; pending: it returns 202 at once.",
    )
    wait_s: float = Field(default=60.0, gt=0, le=3600)
    ttl_s: float = Field(default=900.0, gt=0, description="A pending approval expires after this long.")
    max_pending: int = Field(default=256, ge=1)
    keep_resolved: int = Field(default=1024, ge=0, description="Resolved approvals kept for GET.")


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads deciding new calls, per worker (default: see deciding_threads).",
    )
    workers: int = Field(
        default=1, ge=1, le=64, description="Processes sharing the port; a session stays with one."
    )
    agent_tokens: list[str] = Field(default_factory=list)
    admin_tokens: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_concurrent_executions: int = Field(default=8, ge=1)
    execute_enabled: bool = True
    metrics_require_token: bool = False
    access_log: bool = True
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's OpenTelemetry instrumentation, through the providers the process sets "
        "up (off: gatekeeper's own /metrics and request log only).",
    )
    opa_cache_max_age_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="With the OPA engine: serve repeated calls from the decision cache while OPA has "
        "answered within this many seconds (0: off; every call asks OPA).",
    )
    sessions: SessionSettings = Field(default_factory=SessionSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)

    @property
    def approver_configured(self) -> bool:
        """A human can answer ``ask``: approvals are on and someone holds an admin token."""
        return self.approvals.enabled and bool(self.admin_tokens)


class ServiceConfig(BaseModel):
    """Everything ``gatekeeper serve`` needs: the core Config and the server section."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    core: Config
    server: ServerSettings

    def check(self) -> None:
        """Refuse settings that would expose the service: raises InputError with the reason."""
        server = self.server
        if not server.agent_tokens and not is_loopback(server.host):
            raise InputError(
                f"refusing to listen on {server.host}: no agent token is configured "
                f"(set server.agent_tokens or {AGENT_TOKENS_VARIABLE}), and without one only a "
                "loopback address (127.0.0.1, ::1, localhost) may be used"
            )
        if server.approvals.enabled and not server.admin_tokens:
            raise InputError(
                "server.approvals.enabled needs an admin token (server.admin_tokens or "
                f"{ADMIN_TOKENS_VARIABLE}): without one nobody could approve, so ask would hang"
            )
        overlap = set(server.agent_tokens) & set(server.admin_tokens)
        if overlap:
            raise InputError("an agent token must not also be an admin token")


def deciding_threads(threads: int | None, engine: str) -> int:
    """``threads`` when set; else the CPUs this process may use (at least 2) for an in-process engine
    (embedded, wasm), whose evaluations run in parallel outside the interpreter lock and only compete
    for cores beyond that, and 16 for OPA, where a deciding thread mostly waits for OPA's answer."""
    if threads is not None:
        return threads
    if engine == "opa":
        return 16
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    return max(2, cpus)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_service_config(
    path: str | os.PathLike[str] | None = None,
    *,
    core_overrides: dict[str, Any] | None = None,
    server_overrides: dict[str, Any] | None = None,
) -> ServiceConfig:
    """Defaults ← environment ← file ← overrides, for both the core Config and the server section."""
    core = Config.load(Path(path) if path is not None else None, **(core_overrides or {}))
    extra = dict(core.model_extra or {})
    section = extra.pop("server", None) or {}
    if not isinstance(section, dict):
        raise InputError("the config file's server section must be a table/mapping")
    values: dict[str, Any] = dict(section)
    for variable, key in ((AGENT_TOKENS_VARIABLE, "agent_tokens"), (ADMIN_TOKENS_VARIABLE, "admin_tokens")):
        from_env = [token.strip() for token in os.environ.get(variable, "").split(",") if token.strip()]
        if from_env:
            values[key] = [*values.get(key, []), *from_env]
    values.update({key: value for key, value in (server_overrides or {}).items() if value is not None})
    try:
        server = ServerSettings.model_validate(values)
    except ValidationError as error:
        message = describe_validation_error(error).replace("invalid tool call", "invalid server config")
        raise InputError(message) from error
    # Policies read context.headless: with nobody to approve, ask must become deny.
    core = core.model_copy(update={"headless": not server.approver_configured})
    if core.model_extra is not None:
        core.model_extra.pop("server", None)
    return ServiceConfig(core=core, server=server)
