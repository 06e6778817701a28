"""The ``gatekeeper`` command line: thin commands over ``Gatekeeper.decide``.

Exit codes for deciding commands: 0 allowed, 1 blocked, 2 usage or internal error.
"""

from __future__ import annotations

import typer

from gatekeeper._version import __version__
from gatekeeper.cli import approvals, audit, lab, opa
from gatekeeper.cli.analyse import analyse
from gatekeeper.cli.check import check
from gatekeeper.cli.eval import evaluate
from gatekeeper.cli.run import exec_command
from gatekeeper.cli.serve import serve

app = typer.Typer(
    name="gatekeeper",
    help="Policy-gated command mediation for AI agents: analyse, decide (Rego/OPA), audit, execute.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("check")(check)
app.command("exec", context_settings={"allow_interspersed_args": False})(exec_command)
app.command("analyse")(analyse)
app.add_typer(audit.app, name="audit")
app.command("serve")(serve)
app.add_typer(approvals.app, name="approvals")
app.add_typer(lab.app, name="lab")
app.command("eval")(evaluate)
app.add_typer(opa.app, name="opa")
app.add_typer(opa.policies_app, name="policies")


@app.command("version")
def version() -> None:
    """Print gatekeeper's version."""
    typer.echo(__version__)


def main() -> None:
    app()
