"""``gatekeeper eval``: run labelled corpora through the engine and report recall and false positives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    corpus: Annotated[list[Path], typer.Option("--corpus", help="Corpus file (JSON lines); repeatable.")],
    labels: Annotated[
        list[Path] | None, typer.Option("--labels", help="Labels file (JSON lines); repeatable.")
    ] = None,
) -> None:
    """Decide every case of the corpora and print recall per family, false-positive rate and misses."""
    typer.echo("gatekeeper: corpus evaluation is not implemented yet", err=True)
    raise typer.Exit(2)
