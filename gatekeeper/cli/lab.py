"""``gatekeeper lab``: replay self-replication in a sandbox, with and without gatekeeper, and report.

Exit codes of ``lab run``: 0 every expectation held (the baseline replicated where it should, the
gatekeeper arm contained every replication, no exploration step was blocked, nothing was left
running); 1 one of them failed (the report says which); 2 usage or internal error.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from gatekeeper.cli.eval import LabelsOption, LabEngine, check_engine, run_evaluation
from gatekeeper.cli.options import OpaUrl, PoliciesDir, fail, print_json
from gatekeeper.errors import GatekeeperError
from gatekeeper.lab.corpora import project_corpus
from gatekeeper.lab.evaluate import EvalResult
from gatekeeper.lab.progress import lab_progress
from gatekeeper.lab.report import build_report, render_text, write_report, wrongly_blocked
from gatekeeper.lab.results import Arm, LabResult
from gatekeeper.lab.runner import LabOptions, run_lab
from gatekeeper.lab.scenarios import Scenario, find_scenario, load_all_scenarios, load_scenario_file

app = typer.Typer(
    help="Mitigation-effectiveness lab: replay replication scenarios for real in a sandbox.",
    no_args_is_help=True,
)


@app.command("list")
def list_scenarios(
    as_json: Annotated[bool, typer.Option("--json", help="Print the scenarios as JSON.")] = False,
) -> None:
    """List the bundled scenarios."""
    scenarios = load_all_scenarios()
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "steps": len(s.steps),
                    "expect_replication": s.expect_replication,
                    "requires": list(s.requires),
                    "missing": s.missing_requirements(),
                    "description": s.description,
                }
                for s in scenarios
            ],
            pretty=True,
        )
        return
    width = max(len(s.name) for s in scenarios)
    for s in scenarios:
        kind = "replication" if s.expect_replication else "control"
        missing = s.missing_requirements()
        needs = f" [needs {', '.join(missing)}: not installed]" if missing else ""
        typer.echo(f"{s.name.ljust(width)}  {len(s.steps):3d} steps  {kind:<11}  {s.description}{needs}")


def _select(names: list[str], run_all: bool, files: list[Path]) -> list[Scenario]:
    if run_all and names:
        raise fail("give scenario names or --all, not both")
    scenarios = load_all_scenarios() if run_all else [find_scenario(name) for name in names]
    scenarios.extend(load_scenario_file(path) for path in files)
    if not scenarios:
        raise fail("name the scenarios to run, or give --all (see `gatekeeper lab list`)")
    return scenarios


def _arms(arm: list[str] | None) -> list[Arm]:
    if not arm:
        return [Arm.BASELINE, Arm.GATEKEEPER]
    try:
        return [Arm(value) for value in dict.fromkeys(arm)]
    except ValueError as error:
        raise fail(f"--arm must be baseline or gatekeeper: {error}") from error


@app.command("run")
def run(
    names: Annotated[list[str] | None, typer.Argument(help="Scenarios to run (see `lab list`).")] = None,
    run_all: Annotated[bool, typer.Option("--all", help="Run every bundled scenario.")] = False,
    scenario_file: Annotated[
        list[Path] | None, typer.Option("--scenario-file", help="Also run this scenario file; repeatable.")
    ] = None,
    arm: Annotated[
        list[str] | None, typer.Option("--arm", help="baseline or gatekeeper; repeatable (default: both).")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write report.md, report.html, results.json and plots here."),
    ] = None,
    corpus: Annotated[
        list[Path] | None,
        typer.Option(
            "--corpus",
            help="Corpus for the report's metrics; repeatable (default: ./tests/corpus if present).",
        ),
    ] = None,
    labels: LabelsOption = None,
    no_corpus: Annotated[bool, typer.Option("--no-corpus", help="Leave corpus metrics out.")] = False,
    corpus_limit: Annotated[
        int | None, typer.Option("--corpus-limit", min=1, help="Read at most N rows of each corpus file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Plain progress: a line per step.")
    ] = False,
    step_timeout: Annotated[
        float, typer.Option("--step-timeout", min=0.5, help="Seconds a one-time step may run.")
    ] = 20.0,
    scenario_timeout: Annotated[
        float, typer.Option("--scenario-timeout", min=5.0, help="Seconds a scenario arm may run.")
    ] = 240.0,
    keep_sandbox: Annotated[
        bool, typer.Option("--keep-sandbox", help="Keep each sandbox directory (processes still stop).")
    ] = False,
    engine: LabEngine = "embedded",
    policies: PoliciesDir = None,
    opa_url: OpaUrl = None,
) -> None:
    """Run scenarios for real in a sandbox, unmediated (baseline) and through gatekeeper (enforce mode)."""
    check_engine(engine)
    try:
        scenarios = _select(names or [], run_all, scenario_file or [])
    except GatekeeperError as error:
        raise fail(error) from error
    arms = _arms(arm)
    options = LabOptions(
        policies_dir=policies,
        engine=engine,
        opa_url=opa_url,
        step_timeout_s=step_timeout,
        scenario_timeout_s=scenario_timeout,
        keep_sandbox=keep_sandbox,
    )
    progress = lab_progress(len(scenarios) * len(arms), steps=verbose)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        lab = run_lab(scenarios, arms, options, progress=progress)
    except KeyboardInterrupt:
        typer.echo("gatekeeper: interrupted; every process the lab started has been stopped", err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    evaluation, corpus_note = _corpus_metrics(
        corpus, labels, no_corpus, corpus_limit, engine=engine, policies=policies, opa_url=opa_url
    )
    if as_json:
        print_json(
            {"lab": lab.to_dict(), "corpus": evaluation.to_dict() if evaluation else None}, pretty=True
        )
    else:
        summary = build_report(lab, evaluation, scenarios=scenarios, corpus_note=corpus_note, details=False)
        sys.stdout.write(render_text(summary))
    if report is not None:
        written = write_report(report, lab, evaluation, scenarios=scenarios, corpus_note=corpus_note)
        typer.echo(
            f"gatekeeper: report written to {written['report.md']} and {written['report.html']}", err=True
        )
    raise typer.Exit(0 if expectations_hold(lab) else 1)


def _interrupt(_signum: int, _frame: object) -> None:
    # A terminated lab must still stop what it started: turn SIGTERM into the Ctrl-C path.
    raise KeyboardInterrupt


def _corpus_metrics(
    corpus: list[Path] | None,
    labels: list[Path] | None,
    no_corpus: bool,
    limit: int | None,
    *,
    engine: str,
    policies: Path | None,
    opa_url: str | None,
) -> tuple[EvalResult | None, str | None]:
    if no_corpus:
        return None, "Not evaluated (--no-corpus)."
    paths = list(corpus or [])
    if not paths:
        default = project_corpus()
        if default is None:
            return None, "No corpus evaluated: pass --corpus (no ./tests/corpus here)."
        paths = [default]
    try:
        result = run_evaluation(paths, labels, engine=engine, policies=policies, opa_url=opa_url, limit=limit)
    except GatekeeperError as error:
        typer.echo(f"gatekeeper: corpus evaluation failed: {error}", err=True)
        return None, f"Corpus evaluation failed: {error}"
    return result, None


def expectations_hold(lab: LabResult) -> bool:
    """The lab's pass condition: see the module docstring."""
    if lab.engine_error or any(r.error for r in lab.results) or any(r.leftover_pids for r in lab.results):
        return False
    if lab.baseline_failures() or wrongly_blocked(lab):
        return False
    guarded = lab.arm_results(Arm.GATEKEEPER)
    return not any(r.replicated for r in guarded) and not any(
        r.replicated for r in lab.results if not r.expect_replication
    )
