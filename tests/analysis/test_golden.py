"""The analyser's golden corpus: each line of golden.jsonl is a tool call and the facts bash semantics
say it has (see golden.py for the projection compared). Adding a case is adding a line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from golden import case_input, expected, load_cases, project, run_case

CASES = load_cases()


def test_golden_corpus_is_large_and_notes_are_unique() -> None:
    notes = [case["note"] for case in CASES]
    assert len(CASES) >= 150
    assert len(set(notes)) == len(notes), "duplicate notes make test ids ambiguous"


@pytest.mark.parametrize("case", CASES, ids=[case["note"] for case in CASES])
def test_golden(case: dict[str, Any]) -> None:
    facts = run_case(case)
    actual = project(facts, case.get("fields"))
    want = expected(case)
    if actual != want:
        shown = case_input(case)
        shown = shown if len(shown) < 300 else shown[:300] + "..."
        pytest.fail(
            f"golden.jsonl line {case['line']}: {shown!r}\n"
            f"expected: {json.dumps(want, ensure_ascii=False)}\n"
            f"actual:   {json.dumps(actual, ensure_ascii=False)}"
        )
