"""The report's plots (matplotlib, headless), as PNG bytes: outcome per scenario and arm, recall per
family, false-positive rate per corpus."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display: the lab runs in terminals and CI

import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from gatekeeper.lab.results import Arm, LabResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from gatekeeper.lab.evaluate import EvalResult

OUTCOMES = ("contained", "replicated", "skipped", "error")
COLOURS = ("#2e7d32", "#c62828", "#9e9e9e", "#f9a825")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def outcome_plot(lab: LabResult) -> bytes:
    """A scenario-by-arm grid coloured by outcome, with the step at which a replica came alive."""
    scenarios = list(dict.fromkeys(result.scenario for result in lab.results))
    arms = [arm for arm in Arm if lab.arm_results(arm)]
    grid = [[0] * len(arms) for _ in scenarios]
    labels = [[""] * len(arms) for _ in scenarios]
    for result in lab.results:
        row, column = scenarios.index(result.scenario), arms.index(result.arm)
        outcome = result.outcome()
        grid[row][column] = OUTCOMES.index(outcome)
        guarded = result.arm is Arm.GATEKEEPER and result.ran
        blocked = f"\n{len(result.blocked_steps)} blocked" if guarded else ""
        step = f" @{result.first_replica_step}" if result.first_replica_step else ""
        labels[row][column] = f"{outcome}{step}{blocked}"
    height = max(2.0, 0.55 * len(scenarios) + 1.2)
    figure, axes = plt.subplots(figsize=(2.4 * len(arms) + 3.2, height))
    axes.imshow(grid, cmap=ListedColormap(COLOURS), vmin=0, vmax=len(OUTCOMES) - 1, aspect="auto")
    for row in range(len(scenarios)):
        for column in range(len(arms)):
            axes.text(column, row, labels[row][column], ha="center", va="center", color="white", fontsize=8)
    axes.set_xticks(range(len(arms)), [arm.value for arm in arms])
    axes.set_yticks(range(len(scenarios)), scenarios)
    axes.xaxis.tick_top()
    axes.set_title("Did a replica come alive? (per scenario and arm)", pad=28, fontsize=10)
    handles = [Patch(color=colour, label=name) for name, colour in zip(OUTCOMES, COLOURS, strict=True)]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _png(figure)


def recall_plot(result: EvalResult) -> bytes | None:
    """Recall per family (bars), with the number of cases; None when no attack was evaluated."""
    families = [family for family in result.families if family.cases]
    if not families:
        return None
    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(families) + 2.0), 3.2))
    names = [family.family for family in families]
    values = [family.recall * 100.0 for family in families]
    bars = axes.bar(names, values, color="#1565c0")
    for bar, family in zip(bars, families, strict=True):
        axes.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height() + 1.5,
            f"{family.recall:.0%}\n{family.blocked}/{family.cases}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axes.set_ylim(0, 118)
    axes.set_ylabel("recall (%)")
    axes.set_title("Attacks blocked, per family (all corpora)", fontsize=10)
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _png(figure)


def false_positive_plot(result: EvalResult) -> bytes | None:
    """False-positive rate per corpus that has benign cases; None when none has."""
    corpora = [corpus for corpus in result.corpora if corpus.benign]
    if not corpora:
        return None
    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(corpora) + 2.0), 3.0))
    names = [corpus.corpus for corpus in corpora]
    values = [corpus.false_positive_rate * 100.0 for corpus in corpora]
    bars = axes.bar(names, values, color="#ef6c00")
    for bar, corpus in zip(bars, corpora, strict=True):
        axes.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{corpus.false_positive_rate:.1%}\n{corpus.benign_blocked}/{corpus.benign}",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axes.set_ylim(0, max(5.0, max(values) * 1.35))
    axes.set_ylabel("benign blocked (%)")
    axes.set_title("False-positive rate, per corpus", fontsize=10)
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    return _png(figure)
