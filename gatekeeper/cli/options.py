"""Options shared by every command that decides, and the Config they build."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gatekeeper.config import Config
from gatekeeper.errors import GatekeeperError
from gatekeeper.jsonout import json_bytes
from gatekeeper.models import Mode

ConfigFile = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (TOML, YAML or JSON).", show_default=False)
]
PoliciesDir = Annotated[
    Path | None, typer.Option("--policies", help="Policy directory (default: the bundled policy pack).")
]
EngineName = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help=(
            "Policy engine: embedded (regopy), wasm (the policies compiled to WebAssembly by opa, "
            "run in process) or opa (a running OPA server)."
        ),
    ),
]
OpaUrl = Annotated[str | None, typer.Option("--opa-url", help="OPA server address for --engine opa.")]
OpaTimeout = Annotated[
    float | None, typer.Option("--opa-timeout", help="Seconds to wait for OPA before denying.", min=0.001)
]
EmbeddedTimeout = Annotated[
    float | None,
    typer.Option(
        "--embedded-timeout",
        help="Seconds an in-process engine (embedded, wasm) may take per call before denying.",
        min=0.001,
    ),
]
ModeOption = Annotated[Mode | None, typer.Option("--mode", help="enforce, dry-run or observe.")]
AgentHome = Annotated[str | None, typer.Option("--agent-home", help="The agent's own home directory.")]
AuditLogPath = Annotated[
    Path | None,
    typer.Option("--audit-log", help="Audit log file (default: $XDG_STATE_HOME/gatekeeper/audit.jsonl)."),
]


def build_config(
    config_file: Path | None,
    *,
    policies: Path | None = None,
    engine: str | None = None,
    opa_url: str | None = None,
    opa_timeout: float | None = None,
    embedded_timeout: float | None = None,
    mode: Mode | None = None,
    agent_home: str | None = None,
    audit_log: Path | None = None,
    **extra: Any,
) -> Config:
    return Config.load(
        config_file,
        policies_dir=policies,
        engine=engine,
        opa_url=opa_url,
        opa_timeout_s=opa_timeout,
        embedded_timeout_s=embedded_timeout,
        mode=mode,
        agent_home=agent_home,
        audit_log=audit_log,
        **extra,
    )


def fail(error: GatekeeperError | str, *, code: int = 2) -> typer.Exit:
    """Print a clear error on stderr and return the Exit to raise (2: usage or internal error)."""
    text = str(error)
    typer.echo(f"gatekeeper: {text}", err=True)
    return typer.Exit(code)


def print_json(value: Any, *, pretty: bool) -> None:
    sys.stdout.write(json_text(value, pretty=pretty) + "\n")
    sys.stdout.flush()


def json_text(value: Any, *, pretty: bool = False) -> str:
    """JSON for humans and machines; strings stdout cannot encode (lone surrogates) are escaped."""
    encoding = sys.stdout.encoding or "utf-8"
    return json_bytes(value, encoding=encoding, indent=2 if pretty else None).decode(encoding)
