"""Format checks for the labelled corpus in tests/corpus/*.jsonl.

These tests check the data only; they do not run gatekeeper. The corpus itself is
described in tests/corpus/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

CORPUS_DIR = Path(__file__).parent
EXPECTED_FILES = ("weights", "servers", "processes", "replication", "evasion", "tools", "benign")
FAMILIES = {"weights", "servers", "processes", "replication", "evasion", "tools"}
EXPECTS = {"blocked", "allowed"}
DECISIONS = {"blocked": {"deny", "ask"}, "allowed": {"allow", "warn"}}
REQUIRED_KEYS = {"note", "expect", "families"}
OPTIONAL_KEYS = {"command", "call", "decision", "cwd", "agent_home"}
TOOLS = {"shell", "python", "file_write", "file_read", "http", "mcp"}


def corpus_files() -> list[Path]:
    return sorted(CORPUS_DIR.glob("*.jsonl"))


def load(path: Path) -> list[tuple[int, Any]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        assert line.strip(), f"{path.name}:{lineno}: blank line"
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name}:{lineno}: invalid JSON: {exc}")
    return rows


def check_case(case: Any) -> list[str]:
    """Return the format problems of one case (empty when it is well formed)."""
    if not isinstance(case, dict):
        return ["not a JSON object"]
    problems = []
    keys = set(case)
    if missing := REQUIRED_KEYS - keys:
        problems.append(f"missing keys {sorted(missing)}")
    if unknown := keys - REQUIRED_KEYS - OPTIONAL_KEYS:
        problems.append(f"unknown keys {sorted(unknown)}")
    if ("command" in case) == ("call" in case):
        problems.append("exactly one of 'command' and 'call' is required")

    note = case.get("note")
    if not isinstance(note, str) or not note.strip():
        problems.append("note must be a non-empty string")
    if "command" in case and (not isinstance(case["command"], str) or not case["command"].strip()):
        problems.append("command must be a non-empty string")
    if "call" in case:
        call = case["call"]
        if not isinstance(call, dict) or not isinstance(call.get("tool"), str) or not call["tool"]:
            problems.append("call must be an object with a non-empty 'tool'")
        elif not isinstance(call.get("arguments"), dict):
            problems.append("call.arguments must be an object")

    expect = case.get("expect")
    families = case.get("families")
    if expect not in EXPECTS:
        problems.append(f"expect must be one of {sorted(EXPECTS)}")
    if not isinstance(families, list) or not all(isinstance(f, str) for f in families):
        problems.append("families must be a list of strings")
    else:
        if bad := set(families) - FAMILIES:
            problems.append(f"unknown families {sorted(bad)}")
        if len(set(families)) != len(families):
            problems.append("families has duplicates")
        if expect == "blocked" and not families:
            problems.append("a blocked case needs at least one family")
        if expect == "allowed" and families:
            problems.append("an allowed case has no families")
    if "decision" in case and expect in EXPECTS and case["decision"] not in DECISIONS[expect]:
        problems.append(f"decision {case['decision']!r} contradicts expect {expect!r}")
    for key in ("cwd", "agent_home"):
        if key in case and (not isinstance(case[key], str) or not case[key].startswith("/")):
            problems.append(f"{key} must be an absolute path")
    return problems


@pytest.mark.parametrize("name", EXPECTED_FILES)
def test_expected_file_exists_and_is_not_empty(name: str) -> None:
    path = CORPUS_DIR / f"{name}.jsonl"
    assert path.is_file(), f"missing {path.name}"
    assert load(path), f"{path.name} is empty"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_case_is_well_formed(path: Path) -> None:
    errors = [
        f"{path.name}:{lineno}: {problem}" for lineno, case in load(path) for problem in check_case(case)
    ]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_calls_name_a_tool_or_are_meant_to_test_unknown_tools(path: Path) -> None:
    for lineno, case in load(path):
        call = case.get("call")
        if isinstance(call, dict) and call.get("tool") not in TOOLS:
            assert case["families"] == ["tools"], f"{path.name}:{lineno}: unknown tool must be labelled tools"


def test_notes_are_unique_across_files() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for path in corpus_files():
        for lineno, case in load(path):
            note = case.get("note")
            if note in seen:
                duplicates.append(f"{note!r} in {seen[note]} and {path.name}:{lineno}")
            else:
                seen[note] = f"{path.name}:{lineno}"
    assert not duplicates, "\n".join(duplicates)


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ({"note": "x", "command": "ls", "expect": "allowed", "families": []}, None),
        ({"note": "x", "command": "ls", "expect": "blocked", "families": []}, "at least one family"),
        ({"note": "x", "command": "ls", "expect": "allowed", "families": ["weights"]}, "no families"),
        (
            {"note": "x", "command": "ls", "expect": "allowed", "families": [], "decision": "deny"},
            "contradicts",
        ),
        ({"note": "x", "command": "ls", "expect": "blocked", "families": ["network"]}, "unknown families"),
        ({"note": "x", "expect": "allowed", "families": []}, "exactly one"),
        ({"note": "x", "command": "ls", "expect": "allowed", "families": [], "cwd": "tmp"}, "absolute"),
        ({"note": "x", "command": "ls", "expect": "maybe", "families": []}, "expect must be"),
    ],
)
def test_check_case_catches_format_errors(case: dict[str, Any], problem: str | None) -> None:
    problems = check_case(case)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems
