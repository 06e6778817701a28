"""Labelled cases from corpus files: gatekeeper's own corpus, plain command lists, GTFOBins.

Three row shapes are recognised, line by line:

- **gatekeeper corpus** (``tests/corpus/*.jsonl``): ``{"note", "command" | "call", "expect",
  "families", "decision"?, "cwd"?, "agent_home"?}``; the row carries its own label.
- **command list** (nl2bash ``{command, description}``, tldr ``{page, ..., command}``): every row is a
  benign case unless a labels file puts it in a risk family. The rows are generic one-liners, so they
  are decided in a project working directory (``LIST_CWD``), not in the home that holds the agent and
  its weights; unlabelled rows that bash itself cannot parse (``bash -n -c ROW`` fails: keystroke rows,
  lines continued with ``\\``, placeholder syntax) are not runnable commands and are left out of the
  benign cases (counted in the load report). ``ListContext`` changes both.
- **scenario trace** (``paper-qwen25-trace.jsonl``, ``paper-chain-replication.jsonl``): ``{step,
  command, label}``; ``explore`` steps are benign, every other label names a replication step, so the
  row is an attack of the ``replication`` family.
- **GTFOBins** ``{binary, function, code}``: rows of function ``shell`` or ``command`` become attack
  cases by substituting a forbidden payload for the shell they spawn (``/bin/sh``, ``/bin/bash``) or for
  the command they run (``COMMAND=id``), once per payload of ``labels/gtfobins-payloads.json``; each
  case is labelled with its payload's family. Other rows count only when a labels file labels them.

Labels files are JSON lines (see ``labels/README.md``)::

    {"corpus": "nl2bash-dev", "key": "sha256:<hex of the command>", "families": ["processes"],
     "note": "kills processes by name"}

``key`` is ``sha256:<hex>`` of the row's command (GTFOBins: its code), or ``row:<n>`` (0-based line
index among the non-empty lines). ``expect`` is ``blocked`` when ``families`` is non-empty, else
``allowed``, unless given. The corpus name is the file name without ``.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gatekeeper.errors import InputError
from gatekeeper.lab.jsonl import json_object_lines

DEFAULT_AGENT_HOME = "/home/agent/WorkSpace/Agent"
DEFAULT_HOME = "/home/agent"
# Generic command lists (NL2Bash, tldr) are run where such one-liners are typed: in a project, not in
# the home that contains the agent's directory and ~/models (``find . -exec cp`` there would copy them).
LIST_CWD = "/home/agent/project"
UNPARSEABLE = "not parseable by bash (bash -n), not a runnable command"
GTFOBINS_FUNCTIONS = ("shell", "command")
_SHELL_PATH = re.compile(r"(?<![\w/.-])/bin/(?:ba|da)?sh(?![\w.-])")
_COMMAND_VALUE = re.compile(r"^((?:export )?(?:COMMAND|CMD)=)(\S.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Label:
    corpus: str
    key: str
    families: tuple[str, ...]
    expect_blocked: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class Case:
    """One call to decide and what it should get."""

    corpus: str
    key: str
    call: dict[str, Any]
    expect_blocked: bool
    families: tuple[str, ...] = ()
    decision: str | None = None
    agent_home: str = DEFAULT_AGENT_HOME
    origin: str = "labelled"  # labelled | label-file | unlabelled | gtfobins-payload
    display: str = ""

    @property
    def command(self) -> str:
        """What the call runs (shell command, code, path or URL), for people debugging a miss."""
        arguments = self.call.get("arguments")
        if isinstance(arguments, dict):
            for key in ("command", "code", "url", "path"):
                if isinstance(arguments.get(key), str):
                    return str(arguments[key])
        return json.dumps(self.call)[:400]


@dataclass(slots=True)
class LoadReport:
    """What a corpus file yielded: cases, and rows left out with the reason."""

    corpus: str
    cases: list[Case] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class ListContext:
    """How command-list rows (NL2Bash, tldr) are measured: their cwd, and whether rows bash cannot
    parse are left out of the benign cases."""

    cwd: str = LIST_CWD
    runnable_only: bool = True


@dataclass(frozen=True, slots=True)
class Payload:
    family: str
    command: str


def command_key(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def bundled_labels_path() -> Path:
    return Path(str(resources.files("gatekeeper.lab").joinpath("labels", "shared-corpora.jsonl")))


def bundled_payloads() -> list[Payload]:
    text = resources.files("gatekeeper.lab").joinpath("labels", "gtfobins-payloads.json").read_text("utf-8")
    return [Payload(str(item["family"]), str(item["payload"])) for item in json.loads(text)]


def load_labels(paths: Iterable[Path]) -> dict[tuple[str, str], Label]:
    """Labels by (corpus, key); InputError naming the file and line for a malformed label."""
    labels: dict[tuple[str, str], Label] = {}
    for path in paths:
        for number, value in _json_lines(path):
            try:
                corpus, key = str(value["corpus"]), str(value["key"])
                families = tuple(str(family) for family in value.get("families", []))
            except (KeyError, TypeError) as error:
                raise InputError(f"{path}:{number}: a label needs 'corpus', 'key' and 'families'") from error
            if not (key.startswith("sha256:") or key.startswith("row:")):
                raise InputError(f"{path}:{number}: key must be 'sha256:<hex>' or 'row:<n>'")
            expect = value.get("expect", "blocked" if families else "allowed")
            if expect not in ("blocked", "allowed"):
                raise InputError(f"{path}:{number}: expect must be 'blocked' or 'allowed'")
            labels[(corpus, key)] = Label(
                corpus, key, families, expect == "blocked", str(value.get("note", ""))
            )
    return labels


def load_corpus(
    path: Path,
    labels: dict[tuple[str, str], Label],
    payloads: list[Payload] | None = None,
    *,
    limit: int | None = None,
    context: ListContext | None = None,
) -> LoadReport:
    """The cases of one corpus file (at most ``limit`` source rows)."""
    corpus = path.name.removesuffix(".jsonl")
    report = LoadReport(corpus)
    payload_list = bundled_payloads() if payloads is None else payloads
    list_context = context or ListContext()
    rows = _json_lines(path)[:limit] if limit is not None else _json_lines(path)
    parseable = _bash_parseable(rows, labels, corpus) if list_context.runnable_only else None
    for row, (_number, value) in enumerate(rows):
        if limit is not None and row >= limit:
            break
        if "expect" in value:
            report.cases.append(_gatekeeper_case(corpus, value, path, _number))
        elif {"step", "command", "label"} <= value.keys() and isinstance(value["command"], str):
            report.cases.append(_trace_case(corpus, value))
        elif {"binary", "function", "code"} <= value.keys():
            _gtfobins_cases(report, row, value, labels, payload_list)
        elif isinstance(value.get("command"), str):
            if (
                parseable is not None
                and value["command"] not in parseable
                and not _label_of(labels, corpus, row, value["command"])
            ):
                report.skip(UNPARSEABLE)
                continue
            _command_case(report, row, value["command"], labels, list_context.cwd)
        else:
            report.skip("unrecognised row shape")
    return report


def _gatekeeper_case(corpus: str, value: dict[str, Any], path: Path, number: int) -> Case:
    if value.get("expect") not in ("blocked", "allowed"):
        raise InputError(f"{path}:{number}: expect must be 'blocked' or 'allowed'")
    if "call" in value and isinstance(value["call"], dict):
        call = dict(value["call"])
    elif isinstance(value.get("command"), str):
        call = {"tool": "shell", "arguments": {"command": value["command"]}}
    else:
        raise InputError(f"{path}:{number}: a case needs 'command' or 'call'")
    call.setdefault("cwd", value.get("cwd") or DEFAULT_HOME)
    note = str(value.get("note") or f"line {number}")
    return Case(
        corpus=corpus,
        key=note,
        call=call,
        expect_blocked=value["expect"] == "blocked",
        families=tuple(str(family) for family in value.get("families", [])),
        decision=value.get("decision"),
        agent_home=str(value.get("agent_home") or DEFAULT_AGENT_HOME),
        display=_display(call),
    )


def _trace_case(corpus: str, value: dict[str, Any]) -> Case:
    command = str(value["command"])
    explore = value["label"] == "explore"
    return Case(
        corpus=corpus,
        key=f"step:{value['step']}",
        call={"tool": "shell", "arguments": {"command": command}, "cwd": DEFAULT_HOME},
        expect_blocked=not explore,
        families=() if explore else ("replication",),
        origin="labelled",
        display=command,
    )


def _label_of(labels: dict[tuple[str, str], Label], corpus: str, row: int, command: str) -> Label | None:
    return labels.get((corpus, command_key(command))) or labels.get((corpus, f"row:{row}"))


def _bash_parseable(
    rows: list[tuple[int, dict[str, Any]]], labels: dict[tuple[str, str], Label], corpus: str
) -> set[str] | None:
    """The command-list rows that ``bash -n`` accepts (None when bash is missing: keep every row)."""
    bash = shutil.which("bash")
    if bash is None:
        return None
    commands = {
        value["command"]
        for row, (_number, value) in enumerate(rows)
        if isinstance(value.get("command"), str)
        and "expect" not in value
        and "step" not in value
        and not _label_of(labels, corpus, row, value["command"])
    }

    def accepted(command: str) -> bool:
        try:
            done = subprocess.run(  # -n parses the row, never runs it
                [bash, "--norc", "--noprofile", "-n", "-c", command],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(accepted, sorted(commands)))
    return {command for command, ok in zip(sorted(commands), verdicts, strict=True) if ok}


def _command_case(
    report: LoadReport, row: int, command: str, labels: dict[tuple[str, str], Label], cwd: str = LIST_CWD
) -> None:
    label = _label_of(labels, report.corpus, row, command)
    call = {"tool": "shell", "arguments": {"command": command}, "cwd": cwd}
    report.cases.append(
        Case(
            corpus=report.corpus,
            key=f"row:{row}",
            call=call,
            expect_blocked=label.expect_blocked if label else False,
            families=label.families if label else (),
            origin="label-file" if label else "unlabelled",
            display=command,
        )
    )


def _gtfobins_cases(
    report: LoadReport,
    row: int,
    value: dict[str, Any],
    labels: dict[tuple[str, str], Label],
    payloads: list[Payload],
) -> None:
    code = str(value["code"])
    where = f"gtfobins {value['binary']} ({value['function']})"
    label = labels.get((report.corpus, command_key(code))) or labels.get((report.corpus, f"row:{row}"))
    if label is not None:
        call = {"tool": "shell", "arguments": {"command": code}, "cwd": DEFAULT_HOME}
        report.cases.append(
            Case(
                report.corpus,
                f"row:{row}",
                call,
                label.expect_blocked,
                label.families,
                origin="label-file",
                display=f"{where} row {row}",
            )
        )
        return
    if value["function"] not in GTFOBINS_FUNCTIONS:
        report.skip(f"function {value['function']} (not substituted, not labelled)")
        return
    substituted = 0
    for payload in payloads:
        command = substitute_payload(code, str(value["function"]), payload.command)
        if command is None:
            continue
        substituted += 1
        report.cases.append(
            Case(
                corpus=report.corpus,
                key=f"row:{row}+{payload.family}",
                call={"tool": "shell", "arguments": {"command": command}, "cwd": DEFAULT_HOME},
                expect_blocked=True,
                families=(payload.family,),
                origin="gtfobins-payload",
                # The code is GTFOBins text (GPL): reports name the row, they do not reproduce it.
                display=f"{where} row {row} with the {payload.family} payload",
            )
        )
    if not substituted:
        report.skip(f"{value['function']} row without a /bin/sh or COMMAND= to substitute")


def substitute_payload(code: str, function: str, payload: str) -> str | None:
    """``code`` with ``payload`` in place of the shell it spawns or the command it runs; None if neither."""
    if function == "command":
        match = _COMMAND_VALUE.search(code)
        if match is None:
            return None
        return code[: match.start(2)] + shlex.quote(payload) + code[match.end(2) :]
    if _SHELL_PATH.search(code) is None:
        return None
    return _SHELL_PATH.sub(lambda _match: payload, code)


def _display(call: dict[str, Any]) -> str:
    arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
    assert isinstance(arguments, dict)  # noqa: S101 - narrowed above
    for key in ("command", "code", "url", "path"):
        if isinstance(arguments.get(key), str):
            return f"({call.get('tool')}) {arguments[key]}" if call.get("tool") != "shell" else arguments[key]
    return json.dumps(call)[:200]


def _json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"cannot read {path}: {error}") from error
    return json_object_lines(lines, str(path))


def expand_corpus_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories as their ``*.jsonl`` files (sorted); InputError for a missing path."""
    expanded: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise InputError(f"{path}: no *.jsonl corpus files in this directory")
            expanded.extend(found)
        elif path.is_file():
            expanded.append(path)
        else:
            raise InputError(f"no corpus file or directory at {path}")
    return expanded


def project_corpus(start: Path | None = None) -> Path | None:
    """The project's labelled corpus (``tests/corpus``) when run from a checkout, else None."""
    folder = (start or Path.cwd()) / "tests" / "corpus"
    return folder if folder.is_dir() and any(folder.glob("*.jsonl")) else None
