"""``gatekeeper exec``: decide a command and, only if allowed, run exactly that string."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, BinaryIO

import typer

from gatekeeper.cli.options import (
    AgentHome,
    AuditLogPath,
    ConfigFile,
    EmbeddedTimeout,
    EngineName,
    ModeOption,
    OpaTimeout,
    OpaUrl,
    PoliciesDir,
    build_config,
    fail,
)
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import GatekeeperError
from gatekeeper.execute import run_command
from gatekeeper.models import Outcome

EXIT_BLOCKED, EXIT_ERROR, EXIT_TIMEOUT = 1, 2, 124


def exec_command(
    command: Annotated[
        list[str], typer.Argument(help="The command (one string, or words joined by spaces).")
    ],
    cwd: Annotated[
        str | None, typer.Option("--cwd", help="Working directory (default: the current one).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds before the command is killed.", min=0.001)
    ] = None,
    max_output: Annotated[
        int | None, typer.Option("--max-output", help="Bytes of output passed through.", min=1)
    ] = None,
    env_allow: Annotated[
        list[str] | None, typer.Option("--env-allow", help="Extra environment variable (pattern) to pass.")
    ] = None,
    session_id: Annotated[
        str | None, typer.Option("--session-id", help="Session the call belongs to.")
    ] = None,
    config_file: ConfigFile = None,
    policies: PoliciesDir = None,
    engine: EngineName = None,
    opa_url: OpaUrl = None,
    opa_timeout: OpaTimeout = None,
    embedded_timeout: EmbeddedTimeout = None,
    mode: ModeOption = None,
    agent_home: AgentHome = None,
    audit_log: AuditLogPath = None,
) -> None:
    """Decide COMMAND; if allowed run it with bash, stream its output and exit with its exit code.

    A blocked command is not run: the reason goes to stderr and the exit code is 1.
    A command killed by --timeout exits 124.
    """
    text = " ".join(command)
    try:
        config = build_config(
            config_file,
            policies=policies,
            engine=engine,
            opa_url=opa_url,
            opa_timeout=opa_timeout,
            embedded_timeout=embedded_timeout,
            mode=mode,
            agent_home=agent_home,
            audit_log=audit_log,
        )
        limits = config.exec.model_copy(
            update={
                key: value
                for key, value in {"timeout_s": timeout, "max_output_bytes": max_output}.items()
                if value is not None
            }
        )
        if env_allow:
            limits.env_allow = [*limits.env_allow, *env_allow]
        gatekeeper = Gatekeeper.with_audit(config)
    except GatekeeperError as error:
        raise fail(error, code=EXIT_ERROR) from error
    with gatekeeper:
        workdir = cwd or os.getcwd()
        call: dict[str, Any] = {"tool": "shell", "arguments": {"command": text}, "cwd": workdir}
        if session_id is not None:
            call["session_id"] = session_id
        decision = gatekeeper.decide(call)
        if decision.blocked:
            typer.echo(f"gatekeeper: {decision.explain()} [decision {decision.decision_id}]", err=True)
            raise typer.Exit(EXIT_BLOCKED)
        if decision.decision is Outcome.WARN or decision.violations:
            typer.echo(f"gatekeeper: warning: {decision.explain()}", err=True)
        try:
            result = run_command(
                text,
                limits,
                cwd=workdir,
                on_stdout=_forward(sys.stdout.buffer),
                on_stderr=_forward(sys.stderr.buffer),
            )
        except GatekeeperError as error:
            raise fail(error, code=EXIT_ERROR) from error
        if gatekeeper.audit is not None:
            gatekeeper.audit.append(
                {
                    "decision_id": decision.decision_id,
                    "exit_code": result.exit_code,
                    "timed_out": result.timed_out,
                    "truncated": result.truncated,
                    "duration_ms": result.duration_ms,
                },
                event="execution_finished",
            )
        if result.truncated:
            typer.echo(f"gatekeeper: output truncated at {limits.max_output_bytes} bytes", err=True)
        if result.timed_out:
            typer.echo(f"gatekeeper: command killed after {limits.timeout_s:g}s timeout", err=True)
            raise typer.Exit(EXIT_TIMEOUT)
        code = result.exit_code if result.exit_code is not None else EXIT_ERROR
        raise typer.Exit(code if code >= 0 else 128 - code)


def _forward(stream: BinaryIO) -> Callable[[bytes], None]:
    """Pass output through as it arrives (the command may be long-running)."""

    def write(data: bytes) -> None:
        stream.write(data)
        stream.flush()

    return write
