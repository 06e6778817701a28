"""``gatekeeper audit``: verify and read the audit log."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer

from gatekeeper.audit import default_audit_path, verify_log
from gatekeeper.cli.options import AuditLogPath, fail

app = typer.Typer(help="Verify and read the hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def verify(
    path: Annotated[Path | None, typer.Argument(help="Log file (default: the configured audit log).")] = None,
    audit_log: AuditLogPath = None,
) -> None:
    """Check every record's hash and link; report the first broken or missing record (exit 1)."""
    report = verify_log(path or audit_log or default_audit_path())
    typer.echo(report.describe(), err=not report.ok)
    raise typer.Exit(0 if report.ok else 1)


@app.command("tail")
def tail(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many records.", min=1)] = 10,
    path: Annotated[Path | None, typer.Argument(help="Log file (default: the configured audit log).")] = None,
    audit_log: AuditLogPath = None,
) -> None:
    """Print the last records, one line each: time, decision, rules, command."""
    log = path or audit_log or default_audit_path()
    try:
        with open(log, encoding="utf-8") as handle:
            last = deque(handle, maxlen=lines)
    except OSError as error:
        raise fail(f"cannot read {log}: {error}") from error
    for raw in last:
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            typer.echo(f"(unreadable record) {raw.strip()[:120]}")
            continue
        typer.echo(summarise(record))


def summarise(record: dict[str, Any]) -> str:
    """One line per record: sequence, time, outcome, rule ids, and the start of the command."""
    if record.get("msg") == "execution_finished":
        return (
            f"{record.get('seq')}  exec  decision={record.get('decision_id')} exit={record.get('exit_code')}"
        )
    violations = record.get("violations") or []
    rules = ",".join(str(v.get("rule")) for v in violations if isinstance(v, dict)) or "-"
    command = _dig(record, "input", "call", "arguments", "command")
    outcome = str(record.get("decision"))
    return f"{record.get('seq')}  {record.get('timestamp')}  {outcome:5}  {rules}  {str(command)[:80]}"


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
