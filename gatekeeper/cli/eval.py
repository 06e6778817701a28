"""``gatekeeper eval``: run labelled corpora through the engine and report recall and false positives.

Exit codes: 0 evaluated (and the --min-recall / --max-fp-rate gates, if given, hold), 1 a gate failed,
2 usage or internal error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from gatekeeper.cli.options import OpaUrl, PoliciesDir, fail, print_json
from gatekeeper.errors import GatekeeperError
from gatekeeper.lab.corpora import expand_corpus_paths
from gatekeeper.lab.engines import ENGINE_KINDS, open_engine
from gatekeeper.lab.evaluate import EvalResult, load_cases
from gatekeeper.lab.evaluate import evaluate as evaluate_cases
from gatekeeper.lab.progress import EvalProgress
from gatekeeper.lab.report import MISCLASSIFIED_SHOWN, build_report, render_text, write_report

LabEngine = Annotated[
    str,
    typer.Option(
        "--engine",
        help=(
            "embedded (regopy), wasm (OPA's Wasm compilation, in process), opa (a server at "
            "--opa-url) or managed-opa (started for the run)."
        ),
    ),
]
LabelsOption = Annotated[
    list[Path] | None,
    typer.Option("--labels", help="Extra labels file (JSON lines), on top of the bundled ones; repeatable."),
]


def check_engine(engine: str) -> None:
    if engine not in ENGINE_KINDS:
        raise fail(f"--engine must be one of {', '.join(ENGINE_KINDS)}, not {engine!r}")


def run_evaluation(
    corpus: list[Path],
    labels: list[Path] | None,
    *,
    engine: str,
    policies: Path | None,
    opa_url: str | None,
    limit: int | None,
    progress: bool = True,
) -> EvalResult:
    """Load, decide and measure; GatekeeperError for unreadable corpora or an engine that cannot start."""
    reports = load_cases(expand_corpus_paths(corpus), labels or [], limit=limit)
    policy_engine = open_engine(engine, policies_dir=policies, opa_url=opa_url)
    bar = EvalProgress("eval") if progress else None
    try:
        return evaluate_cases(reports, policy_engine, on_case=bar)
    finally:
        if bar is not None:
            bar.close()
        policy_engine.close()


def evaluate(
    corpus: Annotated[
        list[Path],
        typer.Option("--corpus", help="Corpus file or directory of *.jsonl files; repeatable."),
    ],
    labels: LabelsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    show: Annotated[
        int, typer.Option("--show", min=0, help="How many misclassified cases of each kind to list.")
    ] = MISCLASSIFIED_SHOWN,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Read at most N rows of each corpus file.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write report.md/report.html/results.json here.")
    ] = None,
    min_recall: Annotated[
        float | None, typer.Option("--min-recall", min=0.0, max=1.0, help="Exit 1 if recall is lower.")
    ] = None,
    max_fp_rate: Annotated[
        float | None,
        typer.Option("--max-fp-rate", min=0.0, max=1.0, help="Exit 1 if the false-positive rate is higher."),
    ] = None,
    engine: LabEngine = "embedded",
    policies: PoliciesDir = None,
    opa_url: OpaUrl = None,
) -> None:
    """Decide every case of the corpora; print recall per family, false-positive rate and misclassified cases.

    Accepts the project corpus (tests/corpus/*.jsonl: each row carries its label), command lists
    (NL2Bash, tldr: benign unless a labels file puts a row in a risk family), GTFOBins rows (shell and
    command snippets become attacks with a forbidden payload substituted) and scenario traces.
    """
    check_engine(engine)
    try:
        result = run_evaluation(
            corpus, labels, engine=engine, policies=policies, opa_url=opa_url, limit=limit
        )
    except GatekeeperError as error:
        raise fail(error) from error
    if as_json:
        print_json(result.to_dict(), pretty=True)
    else:
        sys.stdout.write(render_text(build_report(None, result, shown=show)))
    if report is not None:
        written = write_report(report, None, result)
        typer.echo(
            f"gatekeeper: report written to {written['report.md']} and {written['report.html']}", err=True
        )
    gates_failed = (min_recall is not None and result.recall < min_recall) or (
        max_fp_rate is not None and result.false_positive_rate > max_fp_rate
    )
    if gates_failed:
        typer.echo(
            f"gatekeeper: gate failed: recall {result.recall:.3f}, false-positive rate "
            f"{result.false_positive_rate:.4f}",
            err=True,
        )
        raise typer.Exit(1)
