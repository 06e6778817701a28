"""How command lists (NL2Bash, tldr) are measured: project cwd, rows bash cannot parse left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gatekeeper.lab.corpora import (
    DEFAULT_HOME,
    LIST_CWD,
    UNPARSEABLE,
    Label,
    ListContext,
    command_key,
    load_corpus,
)

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash -n decides what is runnable")

ROWS = ["ls -la", "<Ctrl a><k>", "if true; then ls", "cat file |", "echo 'unclosed"]


def _listing(tmp_path: Path) -> Path:
    path = tmp_path / "tldr-common.jsonl"
    path.write_text("".join(json.dumps({"page": "x", "command": row}) + "\n" for row in ROWS), "utf-8")
    return path


def test_default_context_runs_in_a_project_and_skips_unparseable_rows(tmp_path: Path) -> None:
    labelled = "cat file |"
    key = command_key(labelled)
    labels = {("tldr-common", key): Label("tldr-common", key, ("evasion",), True)}
    report = load_corpus(_listing(tmp_path), labels, [])
    commands = [case.command for case in report.cases]
    # A labelled row stays (it counts for recall) even when bash cannot parse it.
    assert commands == ["ls -la", labelled]
    assert report.skipped == {UNPARSEABLE: 3}
    assert {case.call["cwd"] for case in report.cases} == {LIST_CWD}


def test_the_old_context_keeps_every_row_in_the_home(tmp_path: Path) -> None:
    old = ListContext(cwd=DEFAULT_HOME, runnable_only=False)
    report = load_corpus(_listing(tmp_path), {}, [], context=old)
    assert [case.command for case in report.cases] == ROWS
    assert report.skipped == {}
    assert {case.call["cwd"] for case in report.cases} == {DEFAULT_HOME}


def test_limit_counts_source_rows(tmp_path: Path) -> None:
    report = load_corpus(_listing(tmp_path), {}, [], limit=2)
    assert [case.command for case in report.cases] == ["ls -la"]
    assert report.skipped == {UNPARSEABLE: 1}
