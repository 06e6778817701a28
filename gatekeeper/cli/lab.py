"""``gatekeeper lab``: replay self-replication in a sandbox, with and without gatekeeper, and report."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Mitigation-effectiveness lab: replay replication scenarios for real in a sandbox.",
    no_args_is_help=True,
)


@app.command("list")
def list_scenarios() -> None:
    """List the bundled scenarios (the lab package is being written; nothing yet)."""
    typer.echo("gatekeeper: the lab has no scenarios yet", err=True)
    raise typer.Exit(2)
