"""``gatekeeper analyse``: print the facts the policies would see, for policy authors."""

from __future__ import annotations

from typing import Annotated

import typer

from gatekeeper.analysis import AnalysisOptions, analyse_call, facts_to_dict
from gatekeeper.cli.options import print_json
from gatekeeper.models import ToolCall


def analyse(
    command: Annotated[str, typer.Argument(help="The shell command to analyse.")],
    cwd: Annotated[str | None, typer.Option("--cwd", help="Working directory of the call.")] = None,
    home: Annotated[str | None, typer.Option("--home", help="Home directory for ~ expansion.")] = None,
) -> None:
    """Print the neutral facts (commands, api calls, opaque parts) of COMMAND as JSON; decides nothing."""
    facts = analyse_call(ToolCall.shell(command, cwd=cwd), AnalysisOptions(home=home))
    print_json(facts_to_dict(facts), pretty=True)
