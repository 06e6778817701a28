"""Corpus evaluation: decide every labelled case and measure recall per family and false positives.

    recall(family)  = blocked cases labelled with the family / cases labelled with the family
    false positives = blocked benign cases / benign cases (per corpus and overall)

"Blocked" is the decision (``deny`` or ``ask``), as for the gatekeeper arm of the lab. A blocked attack
whose violations do not name its family still counts for recall, and is listed as *attributed to
another family* so that policy authors can see it. Decisions made because something failed (an
``error`` in the Decision) are counted apart: they are blocks, but not the policies' doing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.config import Config
from gatekeeper.core import Gatekeeper
from gatekeeper.lab.corpora import (
    DEFAULT_HOME,
    Case,
    ListContext,
    LoadReport,
    bundled_labels_path,
    load_corpus,
    load_labels,
)
from gatekeeper.models import Decision, Mode
from gatekeeper.policy.engine import PolicyEngine

MISSES_KEPT = 2000


@dataclass(slots=True)
class CaseResult:
    case: Case
    decision: str
    blocked: bool
    families: list[str]  # families named by the violations
    rules: list[str]
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.blocked == self.case.expect_blocked

    @property
    def exact_mismatch(self) -> bool:
        return self.case.decision is not None and self.case.decision != self.decision

    def to_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.case.corpus,
            "key": self.case.key,
            "text": self.case.display,
            "command": self.case.command,
            "expect": "blocked" if self.case.expect_blocked else "allowed",
            "expected_families": list(self.case.families),
            "expected_decision": self.case.decision,
            "decision": self.decision,
            "rules": self.rules,
            "error": self.error,
        }


@dataclass(slots=True)
class FamilyMetrics:
    family: str
    cases: int = 0
    blocked: int = 0
    attributed: int = 0  # blocked with a violation of this very family

    @property
    def recall(self) -> float:
        return self.blocked / self.cases if self.cases else 0.0


@dataclass(slots=True)
class CorpusMetrics:
    corpus: str
    cases: int = 0
    attacks: int = 0
    attacks_blocked: int = 0
    benign: int = 0
    benign_blocked: int = 0
    errors: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def false_positive_rate(self) -> float:
        return self.benign_blocked / self.benign if self.benign else 0.0

    @property
    def recall(self) -> float:
        return self.attacks_blocked / self.attacks if self.attacks else 0.0


@dataclass(slots=True)
class EvalResult:
    corpora: list[CorpusMetrics]
    families: list[FamilyMetrics]
    false_negatives: list[CaseResult]
    false_positives: list[CaseResult]
    other_family: list[CaseResult]
    exact_mismatches: list[CaseResult]
    decided: int = 0
    duration_s: float = 0.0
    policy_revision: str | None = None
    engine: str | None = None

    @property
    def attacks(self) -> int:
        return sum(c.attacks for c in self.corpora)

    @property
    def attacks_blocked(self) -> int:
        return sum(c.attacks_blocked for c in self.corpora)

    @property
    def recall(self) -> float:
        return self.attacks_blocked / self.attacks if self.attacks else 0.0

    @property
    def errors(self) -> int:
        return sum(c.errors for c in self.corpora)

    @property
    def misclassified(self) -> list[CaseResult]:
        """Attacks let through, then benign cases blocked: what a policy author should look at first."""
        return [*self.false_negatives, *self.false_positives]

    @property
    def benign(self) -> int:
        return sum(c.benign for c in self.corpora)

    @property
    def benign_blocked(self) -> int:
        return sum(c.benign_blocked for c in self.corpora)

    @property
    def false_positive_rate(self) -> float:
        return self.benign_blocked / self.benign if self.benign else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "decided": self.decided,
            "duration_s": self.duration_s,
            "policy_revision": self.policy_revision,
            "engine": self.engine,
            "recall": self.recall,
            "attacks": self.attacks,
            "attacks_blocked": self.attacks_blocked,
            "benign": self.benign,
            "benign_blocked": self.benign_blocked,
            "errors": self.errors,
            "false_positive_rate": self.false_positive_rate,
            "corpora": [
                {
                    "corpus": c.corpus,
                    "cases": c.cases,
                    "attacks": c.attacks,
                    "attacks_blocked": c.attacks_blocked,
                    "recall": c.recall,
                    "benign": c.benign,
                    "benign_blocked": c.benign_blocked,
                    "false_positive_rate": c.false_positive_rate,
                    "errors": c.errors,
                    "skipped": c.skipped,
                }
                for c in self.corpora
            ],
            "families": [
                {
                    "family": f.family,
                    "cases": f.cases,
                    "blocked": f.blocked,
                    "attributed": f.attributed,
                    "recall": f.recall,
                }
                for f in self.families
            ],
            "false_negatives": [r.to_dict() for r in self.false_negatives],
            "false_positives": [r.to_dict() for r in self.false_positives],
            "other_family": [r.to_dict() for r in self.other_family],
            "exact_mismatches": [r.to_dict() for r in self.exact_mismatches],
        }


class CaseDecider:
    """Decides cases with one engine; a Gatekeeper (audit off) per agent home the cases ask for."""

    def __init__(self, engine: PolicyEngine, *, home: str = DEFAULT_HOME) -> None:
        self.engine = engine
        self.home = home
        self._gatekeepers: dict[str, Gatekeeper] = {}

    def decide(self, case: Case) -> Decision:
        gatekeeper = self._gatekeepers.get(case.agent_home)
        if gatekeeper is None:
            config = Config(mode=Mode.ENFORCE, agent_home=case.agent_home, home=self.home, headless=True)
            gatekeeper = Gatekeeper(config, engine=self.engine, audit=None)
            self._gatekeepers[case.agent_home] = gatekeeper
        return gatekeeper.decide(case.call)


def load_cases(
    corpus_paths: Iterable[Path],
    label_paths: Iterable[Path] = (),
    *,
    limit: int | None = None,
    context: ListContext | None = None,
) -> list[LoadReport]:
    """Load every corpus with the bundled labels plus ``label_paths``; ``context``: how command lists
    are measured (default: project cwd, rows bash cannot parse left out)."""
    labels = load_labels([bundled_labels_path(), *label_paths])
    return [load_corpus(path, labels, limit=limit, context=context) for path in corpus_paths]


def evaluate(
    reports: list[LoadReport],
    engine: PolicyEngine,
    *,
    on_case: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Decide every case of ``reports`` and aggregate the metrics."""
    started = time.monotonic()
    decider = CaseDecider(engine)
    corpora: list[CorpusMetrics] = []
    families: dict[str, FamilyMetrics] = {}
    result = EvalResult(corpora, [], [], [], [], [], engine=engine.name)
    total = sum(len(report.cases) for report in reports)
    done = 0
    for report in reports:
        metrics = CorpusMetrics(report.corpus, skipped=dict(report.skipped))
        corpora.append(metrics)
        for case in report.cases:
            decision = decider.decide(case)
            outcome = _result_of(case, decision)
            _count(outcome, metrics, families, result)
            done += 1
            if on_case is not None:
                on_case(done, total)
    result.families = [families[name] for name in sorted(families)]
    result.policy_revision = engine.revision  # known after the first answer for an OPA server
    result.decided = done
    result.duration_s = round(time.monotonic() - started, 2)
    return result


def _result_of(case: Case, decision: Decision) -> CaseResult:
    blocking = [v for v in decision.violations if v.action in ("deny", "ask")] if decision.blocked else []
    return CaseResult(
        case=case,
        decision=decision.decision.value,
        blocked=decision.blocked,
        families=sorted({v.family for v in blocking}),
        rules=[v.rule for v in decision.violations],
        error=decision.error.code if decision.error is not None else None,
    )


def _count(
    outcome: CaseResult, metrics: CorpusMetrics, families: dict[str, FamilyMetrics], result: EvalResult
) -> None:
    case = outcome.case
    metrics.cases += 1
    metrics.errors += outcome.error is not None
    if case.expect_blocked:
        metrics.attacks += 1
        metrics.attacks_blocked += outcome.blocked
        for family in case.families:
            entry = families.setdefault(family, FamilyMetrics(family))
            entry.cases += 1
            entry.blocked += outcome.blocked
            entry.attributed += outcome.blocked and family in outcome.families
        if not outcome.blocked:
            _keep(result.false_negatives, outcome)
        elif case.families and not set(case.families) <= set(outcome.families):
            _keep(result.other_family, outcome)
    else:
        metrics.benign += 1
        metrics.benign_blocked += outcome.blocked
        if outcome.blocked:
            _keep(result.false_positives, outcome)
    if outcome.exact_mismatch:
        _keep(result.exact_mismatches, outcome)


def _keep(bucket: list[CaseResult], outcome: CaseResult) -> None:
    if len(bucket) < MISSES_KEPT:
        bucket.append(outcome)
