"""The projection of facts that the golden corpus (``golden.jsonl``) compares, and the case runner.

A full ``Facts`` blob is long and mostly defaults; a case states only the salient facts, and a key left
out of a case means "empty / default". Per command the projection holds ``argv`` and, only when they
differ from the default: ``name`` (when it is not argv[0]), ``via`` (``"kind:name"`` strings), ``bg``,
``pipe`` (``[position, length]``), ``redirects`` (``"[fd]op target"``, heredoc and here-string bodies as
``"<<:body"``), ``dynamic``, ``env``, ``cwd``, ``lang``, ``candidate``; ``paths`` only when the case lists
``"paths"`` in ``fields``. Top level: ``commands``, ``opaque`` (reasons, in order), ``api_calls``
(``function``, ``args``, ``kwargs`` when not empty, ``lang`` when not python), ``syntax_errors`` (how
many), ``writes``, ``reads``, ``urls``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatekeeper.analysis import AnalysisOptions, Command, Facts, Redirect, analyse_call
from gatekeeper.models import ToolCall

GOLDEN = Path(__file__).resolve().parent / "golden.jsonl"


def load_cases(path: Path = GOLDEN) -> list[dict[str, Any]]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("//"):
            case = json.loads(line)
            case["line"] = number
            cases.append(case)
    return cases


def redirect_text(redirect: Redirect) -> str:
    fd = "" if redirect.fd is None else str(redirect.fd)
    if redirect.op in ("<<", "<<-", "<<<"):
        return f"{fd}{redirect.op}:{redirect.body}"
    return f"{fd}{redirect.op}{redirect.target or ''}"


def project_command(command: Command, fields: list[str]) -> dict[str, Any]:
    projected: dict[str, Any] = {"argv": command.argv}
    if command.name != command.argv[0]:
        projected["name"] = command.name
    if command.via:
        projected["via"] = [f"{v.kind}:{v.name}" for v in command.via]
    if command.background:
        projected["bg"] = True
    if command.pipeline is not None:
        projected["pipe"] = [command.pipeline.position, command.pipeline.length]
    if command.redirects:
        projected["redirects"] = [redirect_text(r) for r in command.redirects]
    if command.dynamic:
        projected["dynamic"] = command.dynamic
    if command.env:
        projected["env"] = command.env
    if command.cwd is not None:
        projected["cwd"] = command.cwd
    if command.language != "shell":
        projected["lang"] = command.language
    if command.candidate:
        projected["candidate"] = True
    if "paths" in fields:
        projected["paths"] = command.paths
    return projected


def project(facts: Facts, fields: list[str] | None = None) -> dict[str, Any]:
    fields = fields or []
    projected: dict[str, Any] = {}
    if facts.commands:
        projected["commands"] = [project_command(c, fields) for c in facts.commands]
    if facts.opaque:
        projected["opaque"] = [o.reason for o in facts.opaque]
    if facts.api_calls:
        calls = []
        for call in facts.api_calls:
            item: dict[str, Any] = {"function": call.function, "args": call.args}
            if call.kwargs:
                item["kwargs"] = call.kwargs
            if call.language != "python":
                item["lang"] = call.language
            calls.append(item)
        projected["api_calls"] = calls
    if facts.syntax_errors:
        projected["syntax_errors"] = len(facts.syntax_errors)
    for key in ("writes", "reads", "urls"):
        if getattr(facts, key):
            projected[key] = getattr(facts, key)
    return projected


def case_input(case: dict[str, Any]) -> str:
    """The analysed text: ``command`` (``code`` for python), or ``repeat`` pieces built from a recipe."""
    if "build" in case:
        build = case["build"]
        return str(build["prefix"] + build["repeat"] * build["times"] + build.get("suffix", ""))
    return str(case.get("command", case.get("code", "")))


def run_case(case: dict[str, Any]) -> Facts:
    tool = case.get("tool", "shell")
    if "call" in case:
        call = ToolCall.model_construct(tool=tool, arguments=case["call"], cwd=case.get("cwd"))
    else:
        key = "code" if tool == "python" else "command"
        call = ToolCall.model_construct(tool=tool, arguments={key: case_input(case)}, cwd=case.get("cwd"))
    return analyse_call(call, AnalysisOptions(home=case.get("home")))


def expected(case: dict[str, Any]) -> dict[str, Any]:
    keys = ("commands", "opaque", "api_calls", "syntax_errors", "writes", "reads", "urls")
    return {key: case[key] for key in keys if key in case}
