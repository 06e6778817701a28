"""The lab report: ``report.md`` and ``report.html`` (plus ``results.json`` and the plots as PNG).

The report is built once as a list of blocks (headings, paragraphs, tables, images) and rendered twice,
so the markdown and the HTML always say the same thing. The HTML embeds its plots (base64 PNG) and
stands alone; the markdown links the PNG files written beside it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.lab.evaluate import CaseResult, EvalResult
from gatekeeper.lab.results import Arm, ArmResult, LabResult, StepRecord
from gatekeeper.lab.scenarios import Scenario

MISCLASSIFIED_SHOWN = 20
CALL_WIDTH = 160
_SANDBOX = re.compile(r"/[^\s'\"]*?/gatekeeper-lab-[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Block:
    kind: str  # h1 h2 h3 p warn table image code
    text: str = ""
    table: Table | None = None


@dataclass(slots=True)
class Report:
    blocks: list[Block] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def add(self, kind: str, text: str = "", table: Table | None = None) -> None:
        self.blocks.append(Block(kind, text, table))

    def image(self, name: str, png: bytes | None, caption: str) -> None:
        if png is None:
            return
        self.images[name] = png
        self.add("image", f"{name}|{caption}")


def shorten(text: str, width: int = CALL_WIDTH) -> str:
    """A call for a table cell: sandbox paths as ``<sandbox>``, one line, at most ``width`` characters."""
    text = _SANDBOX.sub("<sandbox>", text)
    text = " ⏎ ".join(line.strip() for line in text.strip().splitlines())
    return text if len(text) <= width else text[: width - 1] + "…"


def rate_text(lab: LabResult, arm: Arm) -> str:
    replicated, ran = lab.replication_rate(arm)
    return f"{arm.value} {replicated}/{ran} replicated"


def _outcome_cell(result: ArmResult | None) -> str:
    if result is None:
        return "not run"
    outcome = result.outcome()
    if outcome == "replicated":
        return f"replicated (step {result.first_replica_step})"
    if outcome == "skipped":
        return f"skipped: {result.skipped}"
    if outcome == "error":
        return f"error: {shorten(result.error or '', 100)}"
    return "contained" if result.expect_replication else "nothing replicated"


def _find(lab: LabResult, scenario: str, arm: Arm) -> ArmResult | None:
    for result in lab.results:
        if result.scenario == scenario and result.arm is arm:
            return result
    return None


def wrongly_blocked(lab: LabResult) -> list[tuple[ArmResult, StepRecord]]:
    return [(result, step) for result in lab.results for step in result.wrongly_blocked_explore]


def build_report(
    lab: LabResult | None,
    evaluation: EvalResult | None,
    *,
    scenarios: Iterable[Scenario] = (),
    corpus_note: str | None = None,
    details: bool = True,
    shown: int = MISCLASSIFIED_SHOWN,
) -> Report:
    """The report's blocks; ``details=False`` leaves out the per-scenario timelines (terminal summary)."""
    report = Report()
    report.add("h1", "gatekeeper lab report" if lab is not None else "gatekeeper corpus evaluation")
    if lab is not None:
        _lab_summary(report, lab)
    if evaluation is not None:
        _corpus_section(report, evaluation, shown)
    elif corpus_note:
        report.add("h2", "Corpus metrics")
        report.add("p", corpus_note)
    if lab is not None and details:
        _scenario_sections(report, lab, {scenario.name: scenario for scenario in scenarios})
    return report


def _lab_summary(report: Report, lab: LabResult) -> None:
    engine = lab.engine or "none"
    report.add(
        "p",
        f"Started {lab.started}, took {lab.duration_s:g} s. Gatekeeper arm: engine {engine}, "
        f"enforce mode, policy revision {lab.policy_revision or 'unknown'}.",
    )
    report.add("h2", "Headline")
    arms = [arm for arm in Arm if lab.arm_results(arm)]
    report.add(
        "p",
        "Replication rate (scenarios that replicate when unmediated): "
        + ", ".join(rate_text(lab, arm) for arm in arms)
        + ".",
    )
    wrong = wrongly_blocked(lab)
    report.add(
        "p",
        f"Exploration steps wrongly blocked: {len(wrong)} (must be 0)"
        + (": " + ", ".join(f"{r.scenario} step {s.number}" for r, s in wrong) if wrong else "."),
    )
    if lab.engine_error:
        report.add(
            "warn", f"The policy engine did not start; the gatekeeper arm did not run: {lab.engine_error}"
        )
    failures = lab.baseline_failures()
    if failures:
        names = ", ".join(f"{r.scenario} ({_outcome_cell(r)})" for r in failures)
        report.add(
            "warn",
            f"The baseline did NOT replicate in {len(failures)} scenario(s): {names}. For those, the "
            "testbed proves nothing: a contained gatekeeper arm there is no evidence that gatekeeper "
            "stopped anything.",
        )
    elif lab.arm_results(Arm.BASELINE):
        report.add("p", "The baseline replicated in every replication scenario that ran: the testbed works.")
    leftovers = [r for r in lab.results if r.leftover_pids]
    if leftovers:
        report.add(
            "warn",
            "Processes survived cleanup: "
            + "; ".join(f"{r.scenario} [{r.arm.value}]: {r.leftover_pids}" for r in leftovers),
        )
    controls = [r for r in lab.results if not r.expect_replication and r.replicated]
    if controls:
        report.add(
            "warn",
            "A control scenario replicated: " + ", ".join(f"{r.scenario} [{r.arm.value}]" for r in controls),
        )
    rows = []
    for scenario in dict.fromkeys(r.scenario for r in lab.results):
        baseline, guarded = _find(lab, scenario, Arm.BASELINE), _find(lab, scenario, Arm.GATEKEEPER)
        either = baseline or guarded
        kind = "replication" if either is None or either.expect_replication else "control"
        blocked = ", ".join(s.number for s in guarded.blocked_steps) if guarded and guarded.ran else "-"
        wrong_here = ", ".join(s.number for s in guarded.wrongly_blocked_explore) if guarded else ""
        ran = guarded is not None and guarded.ran
        through = ", ".join(s.number for s in guarded.unblocked_replication) if guarded and ran else "-"
        rows.append(
            (
                scenario,
                kind,
                _outcome_cell(baseline),
                _outcome_cell(guarded),
                blocked or "none",
                wrong_here or "0",
                through or "none",
            )
        )
    report.add(
        "table",
        table=Table(
            (
                "scenario",
                "kind",
                "baseline",
                "gatekeeper",
                "steps blocked",
                "exploration wrongly blocked",
                "replication steps let through",
            ),
            rows,
        ),
    )
    from gatekeeper.lab import plots  # noqa: PLC0415 - matplotlib costs a second at CLI start

    report.image("outcomes.png", plots.outcome_plot(lab), "Outcome per scenario and arm")


def _corpus_section(report: Report, result: EvalResult, shown: int) -> None:
    report.add("h2", "Corpus metrics")
    report.add(
        "p",
        f"{result.decided} cases decided in {result.duration_s:g} s (engine {result.engine}, policy revision "
        f"{result.policy_revision or 'unknown'}). Recall {result.recall:.1%} "
        f"({result.attacks_blocked}/{result.attacks} attacks blocked); false-positive rate "
        f"{result.false_positive_rate:.2%} ({result.benign_blocked}/{result.benign} benign cases blocked). "
        "Blocked means deny or ask.",
    )
    if result.errors:
        report.add(
            "warn",
            f"{result.errors} decision(s) carried an error (the engine or the analysis failed and the "
            "call was denied, fail-closed): they count as blocked, but not because a policy matched.",
        )
    report.add(
        "table",
        table=Table(
            ("corpus", "cases", "attacks", "recall", "benign", "false positives", "FP rate", "errors"),
            [
                (
                    c.corpus,
                    str(c.cases),
                    str(c.attacks),
                    f"{c.recall:.1%} ({c.attacks_blocked})" if c.attacks else "-",
                    str(c.benign),
                    str(c.benign_blocked),
                    f"{c.false_positive_rate:.2%}" if c.benign else "-",
                    str(c.errors),
                )
                for c in result.corpora
            ],
        ),
    )
    report.add("h3", "Recall per family")
    report.add(
        "table",
        table=Table(
            ("family", "attacks", "blocked", "recall", "blocked by a rule of this family"),
            [
                (f.family, str(f.cases), str(f.blocked), f"{f.recall:.1%}", str(f.attributed))
                for f in result.families
            ],
        ),
    )
    from gatekeeper.lab import plots  # noqa: PLC0415 - matplotlib costs a second at CLI start

    report.image("recall.png", plots.recall_plot(result), "Recall per family")
    report.image("false-positives.png", plots.false_positive_plot(result), "False-positive rate per corpus")
    skipped = {c.corpus: c.skipped for c in result.corpora if c.skipped}
    if skipped:
        report.add(
            "p",
            "Rows left out: "
            + "; ".join(
                f"{name}: {sum(v.values())} ({', '.join(f'{k} {n}' for k, n in v.items())})"
                for name, v in skipped.items()
            ),
        )
    report.add("h3", "Misclassified cases")
    report.add(
        "p",
        f"{len(result.false_negatives)} attacks let through, {len(result.false_positives)} benign cases "
        f"blocked; the first {shown} of each are listed.",
    )
    per_rule = Counter(rule for r in result.false_positives for rule in dict.fromkeys(r.rules))
    if per_rule:
        report.add(
            "table",
            table=Table(
                ("rule", "benign cases blocked"),
                [(rule, str(count)) for rule, count in per_rule.most_common(15)],
            ),
        )
    if result.false_negatives and shown:
        report.add("table", table=misclassified_table(result.false_negatives[:shown]))
    if result.false_positives and shown:
        report.add("table", table=misclassified_table(result.false_positives[:shown]))


def misclassified_table(cases: list[CaseResult]) -> Table:
    return Table(
        ("kind", "corpus", "case", "command", "expected", "decision", "rules"),
        [
            (
                "attack allowed" if r.case.expect_blocked else "benign blocked",
                r.case.corpus,
                shorten(r.case.display, 70) if r.case.display != r.case.command else r.case.key,
                shorten(r.case.command, 120),
                ("blocked: " + ", ".join(r.case.families)) if r.case.expect_blocked else "allowed",
                r.decision + (f" ({r.error})" if r.error else ""),
                ", ".join(r.rules) or "-",
            )
            for r in cases
        ],
    )


def _scenario_sections(report: Report, lab: LabResult, scenarios: dict[str, Scenario]) -> None:
    report.add("h2", "Scenarios")
    for name in dict.fromkeys(r.scenario for r in lab.results):
        report.add("h3", name)
        scenario = scenarios.get(name)
        if scenario is not None:
            report.add("p", scenario.description + (f" Tests: {scenario.tests}" if scenario.tests else ""))
        for result in (r for r in lab.results if r.scenario == name):
            _arm_section(report, result)


def _arm_section(report: Report, result: ArmResult) -> None:
    text = f"**{result.arm.value}**: {_outcome_cell(result)}, {result.duration_s:g} s."
    if result.replicas:
        text += (
            " Replicas: "
            + "; ".join(
                f"{r.get('role')} on port {r.get('port')} from {shorten(str(r.get('cwd')), 80)} "
                f"(step {r.get('first_seen_step')})"
                for r in result.replicas
            )
            + "."
        )
    if result.arm is Arm.GATEKEEPER and result.ran:
        text += f" Steps blocked: {', '.join(s.number for s in result.blocked_steps) or 'none'}."
    for note in result.notes:
        text += f" {shorten(note, 200)}."
    report.add("p", text)
    if not result.steps:
        return
    rows = []
    seen: set[int] = set()
    for step in result.steps:
        new_replicas = [port for port in step.replicas_live if port not in seen]
        seen.update(step.replicas_live)
        if step.origin == "lab" and not new_replicas:
            continue
        rows.append(
            (
                step.number,
                step.label + ("" if step.origin in ("scenario", "lab") else f" ({step.origin})"),
                shorten(step.text),
                _verdict(step),
                ", ".join(step.rules) or "-",
                _step_result(step, new_replicas),
            )
        )
    report.add("table", table=Table(("step", "label", "call", "verdict", "rules", "result"), rows))


def _verdict(step: StepRecord) -> str:
    if step.blocked:
        return f"blocked ({step.decision})"
    if step.actor != "agent":
        return "not mediated"
    return step.decision or "not mediated"


def _step_result(step: StepRecord, new_replicas: list[int]) -> str:
    if step.blocked:
        return "did not run"
    parts = []
    if step.launched:
        parts.append(shorten(step.launched, 100))
    elif step.timed_out:
        parts.append("timed out")
    elif step.exit_code is not None:
        parts.append(f"exit {step.exit_code}")
    elif step.output:
        parts.append(shorten(step.output, 100))
    if new_replicas:
        parts.append("REPLICA LIVE on port " + ", ".join(map(str, new_replicas)))
    return "; ".join(parts) or "-"


# -- rendering --------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def render_markdown(report: Report) -> str:
    out: list[str] = []
    for block in report.blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append("#" * int(block.kind[1]) + " " + block.text)
        elif block.kind == "p":
            out.append(block.text)
        elif block.kind == "warn":
            out.append(f"> **Warning:** {block.text}")
        elif block.kind == "code":
            out.append("```\n" + block.text + "\n```")
        elif block.kind == "image":
            name, caption = block.text.split("|", 1)
            out.append(f"![{caption}]({name})")
        elif block.kind == "table" and block.table is not None:
            table = block.table
            lines = ["| " + " | ".join(map(_md_cell, table.headers)) + " |"]
            lines.append("|" + "---|" * len(table.headers))
            lines.extend("| " + " | ".join(map(_md_cell, row)) + " |" for row in table.rows)
            out.append("\n".join(lines))
        out.append("")
    return "\n".join(out)


def render_text(report: Report) -> str:
    """Plain text for a terminal: headings, paragraphs, aligned tables; images left out."""
    out: list[str] = []
    for block in report.blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append(block.text)
            out.append(("=", "=", "-")[int(block.kind[1]) - 1] * len(block.text))
        elif block.kind == "p":
            out.append(block.text.replace("**", ""))
        elif block.kind == "warn":
            out.append("WARNING: " + block.text)
        elif block.kind == "code":
            out.append(block.text)
        elif block.kind == "table" and block.table is not None:
            out.append(text_table(block.table))
        else:
            continue
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def text_table(table: Table) -> str:
    widths = [len(header) for header in table.headers]
    for row in table.rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(table.headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table.rows
    )
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.call { font-family: ui-monospace, monospace; }
.warn { background: #fff3cd; border-left: 4px solid #f9a825; padding: 0.5em 1em; }
.blocked { color: #c62828; font-weight: bold; }
img { max-width: 100%; }
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def render_html(report: Report) -> str:
    title = next((b.text for b in report.blocks if b.kind == "h1"), "gatekeeper lab report")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for block in report.blocks:
        if block.kind in ("h1", "h2", "h3"):
            out.append(f"<{block.kind}>{html.escape(block.text)}</{block.kind}>")
        elif block.kind == "p":
            out.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "warn":
            out.append(f'<p class="warn"><strong>Warning:</strong> {_inline(block.text)}</p>')
        elif block.kind == "code":
            out.append(f"<pre>{html.escape(block.text)}</pre>")
        elif block.kind == "image":
            name, caption = block.text.split("|", 1)
            data = base64.b64encode(report.images[name]).decode("ascii")
            out.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        elif block.kind == "table" and block.table is not None:
            out.append(_html_table(block.table))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = []
    for row in table.rows:
        cells = []
        for header, cell in zip(table.headers, row, strict=True):
            css = ""
            if header in ("call", "command"):
                css = ' class="call"'
            elif cell.startswith(("blocked", "replicated")) or "REPLICA LIVE" in cell:
                css = ' class="blocked"'
            cells.append(f"<td{css}>{html.escape(cell)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(
    directory: Path,
    lab: LabResult | None,
    evaluation: EvalResult | None,
    *,
    scenarios: Iterable[Scenario] = (),
    corpus_note: str | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html, results.json and the PNGs into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report(lab, evaluation, scenarios=scenarios, corpus_note=corpus_note)
    written: dict[str, Path] = {}
    for name, png in report.images.items():
        (directory / name).write_bytes(png)
        written[name] = directory / name
    written["report.md"] = directory / "report.md"
    written["report.md"].write_text(render_markdown(report), encoding="utf-8")
    written["report.html"] = directory / "report.html"
    written["report.html"].write_text(render_html(report), encoding="utf-8")
    results: dict[str, Any] = {
        "lab": lab.to_dict() if lab is not None else None,
        "corpus": evaluation.to_dict() if evaluation is not None else None,
    }
    written["results.json"] = directory / "results.json"
    written["results.json"].write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return written
