"""``gatekeeper check``: decide one command, or a whole JSON-lines file of tool calls, in one process."""

from __future__ import annotations

import io
import itertools
import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Annotated, Any

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
    json_text,
    print_json,
)
from gatekeeper.core import Gatekeeper
from gatekeeper.errors import ErrorCode, GatekeeperError
from gatekeeper.models import Decision

EXIT_ALLOWED, EXIT_BLOCKED, EXIT_ERROR = 0, 1, 2


def check(
    command: Annotated[
        str | None, typer.Argument(help="The shell command to decide.", show_default=False)
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i", help="JSON-lines file of tool calls ('-' for stdin).", show_default=False
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write one Decision per line (default: stdout).",
            show_default=False,
        ),
    ] = None,
    tool: Annotated[str, typer.Option("--tool", help="Tool of the single call.")] = "shell",
    cwd: Annotated[str | None, typer.Option("--cwd", help="Working directory of the call.")] = None,
    session_id: Annotated[
        str | None, typer.Option("--session-id", help="Session the call belongs to.")
    ] = None,
    compact: Annotated[bool, typer.Option("--compact", help="Print the Decision on one line.")] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", help="With --input: calls decided at once (default: CPU count).", min=1),
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
    """Decide a command (exit 0 allowed, 1 blocked, 2 error) and print the Decision JSON.

    With --input, decide every tool call of a JSON-lines file (one object per line; a line
    {"command": "..."} is a shell call) and write one Decision per line, in input order.
    """
    if (command is None) == (input_file is None):
        raise fail("give either a COMMAND or --input FILE", code=EXIT_ERROR)
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
        gatekeeper = Gatekeeper.with_audit(config)
    except GatekeeperError as error:
        # No engine, no decision: the error goes to stderr, and callers parsing stdout still read a deny.
        print_json(_startup_denial(error), pretty=not compact)
        raise fail(error, code=EXIT_ERROR) from error
    with gatekeeper:
        if input_file is not None:
            raise typer.Exit(_check_batch(gatekeeper, input_file, output_file, jobs or os.cpu_count() or 1))
        call: dict[str, Any] = {"tool": tool, "arguments": _single_arguments(tool, command or "")}
        if cwd is not None:
            call["cwd"] = cwd
        if session_id is not None:
            call["session_id"] = session_id
        decision = gatekeeper.decide(call)
        if output_file is not None:
            output_file.write_text(json_text(decision.model_dump(mode="json")) + "\n", encoding="utf-8")
        else:
            print_json(decision.model_dump(mode="json"), pretty=not compact)
        raise typer.Exit(EXIT_BLOCKED if decision.blocked else EXIT_ALLOWED)


def _single_arguments(tool: str, text: str) -> dict[str, Any]:
    if tool == "python":
        return {"code": text}
    if tool in ("file_read", "file_write"):
        return {"path": text}
    if tool == "http":
        return {"method": "GET", "url": text}
    return {"command": text}


def _startup_denial(error: GatekeeperError) -> dict[str, Any]:
    from gatekeeper.policy.engine import fail_closed  # noqa: PLC0415 - only on this error path

    return fail_closed(error.code, error.message).model_dump(mode="json")


def normalise_batch_line(value: Any, line_number: int) -> Any:
    """Accept the ``{"command": ...}`` shorthand for shell calls and give id-less calls a line id."""
    if not isinstance(value, dict):
        return value
    call = dict(value)
    if "arguments" not in call and "command" in call and call.get("tool", "shell") == "shell":
        call["tool"] = "shell"
        call["arguments"] = {"command": call.pop("command")}
    if call.get("id") is None:
        call["id"] = f"line-{line_number}"
    return call


def decide_lines(
    gatekeeper: Gatekeeper, lines: Iterable[str], sink: IO[str], *, jobs: int = 1
) -> tuple[int, int, int]:
    """Decide every line of ``lines`` into ``sink``, in input order; returns (decided, blocked, invalid).

    ``jobs`` calls are decided at once (the engines evaluate outside the GIL); lines are read a
    chunk at a time, so a large file is never held in memory.
    """
    decided = blocked = invalid = 0
    numbered = ((number, raw) for number, raw in enumerate(lines, start=1) if raw.strip())
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while chunk := list(itertools.islice(numbered, 64 * jobs)):
            for decision in pool.map(lambda item: decide_line(gatekeeper, *item), chunk):
                decided += 1
                blocked += decision.blocked
                invalid += decision.error is not None and decision.error.code == ErrorCode.INVALID_INPUT
                sink.write(json_text(decision.model_dump(mode="json")) + "\n")
    return decided, blocked, invalid


def decide_line(gatekeeper: Gatekeeper, line_number: int, raw: str) -> Decision:
    """One batch line: a tool call (or the ``command`` shorthand), or a denial saying why it is not."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        return gatekeeper.reject(
            raw.rstrip("\n"),
            ErrorCode.INVALID_INPUT,
            f"line {line_number} is not valid JSON: {error}",
            call_id=f"line-{line_number}",
        )
    if not isinstance(value, dict):
        return gatekeeper.reject(
            value,
            ErrorCode.INVALID_INPUT,
            f"line {line_number} is a JSON {type(value).__name__}, not a tool call object",
            call_id=f"line-{line_number}",
        )
    return gatekeeper.decide(normalise_batch_line(value, line_number))


def _check_batch(gatekeeper: Gatekeeper, input_file: Path, output_file: Path | None, jobs: int) -> int:
    if str(input_file) == "-" and isinstance(sys.stdin, io.TextIOWrapper):
        # JSON lines are UTF-8 whatever the locale says; read stdin as a file is read.
        sys.stdin.reconfigure(encoding="utf-8", errors="surrogateescape")
    try:
        source: IO[str] = (
            sys.stdin
            if str(input_file) == "-"
            else open(input_file, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115 - closed below
        )
    except OSError as error:
        raise fail(f"cannot read {input_file}: {error}") from error
    try:
        sink: IO[str] = (
            sys.stdout
            if output_file is None
            else open(output_file, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        )
    except OSError as error:
        raise fail(f"cannot write {output_file}: {error}") from error
    try:
        decided, blocked, invalid = decide_lines(gatekeeper, source, sink, jobs=jobs)
    finally:
        if source is not sys.stdin:
            source.close()
        if sink is not sys.stdout:
            sink.close()
        else:
            sink.flush()
    typer.echo(
        f"gatekeeper: decided {decided} calls: {decided - blocked} allowed, {blocked} blocked"
        + (f" ({invalid} invalid lines denied)" if invalid else ""),
        err=True,
    )
    return EXIT_BLOCKED if blocked else EXIT_ALLOWED
