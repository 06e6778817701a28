"""Entry point of the analyser: one ToolCall in, one Facts out, never an exception for bad input.

``shell`` commands are parsed and followed through every layer (:mod:`engine`); ``python`` code is
analysed like ``python -c``; ``file_write``/``file_read`` report the path, ``http`` the URL; ``mcp``
string arguments named ``command``/``cmd``/``script`` are analysed as shell and ``code`` as python. An
unknown tool yields empty facts (the policies decide about unknown tools). Input that cannot be analysed
(not a string, too large, invalid encoding) and any unexpected failure become ``opaque`` facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatekeeper.analysis.engine import Analysis
from gatekeeper.analysis.facts import Facts, Opaque
from gatekeeper.analysis.paths import absolute
from gatekeeper.analysis.scope import Scope, normalise
from gatekeeper.analysis.shell import Context
from gatekeeper.models import ToolCall

MCP_SHELL_ARGUMENTS = ("command", "cmd", "script")
MCP_PYTHON_ARGUMENTS = ("code",)


@dataclass(frozen=True, slots=True)
class AnalysisOptions:
    """Limits and environment for one analysis.

    ``home`` expands ``~`` in paths; ``max_bytes`` bounds the command text analysed (larger input is
    an ``opaque`` ``too_large`` fact); ``max_depth`` bounds nesting of shells, substitutions and payloads.
    """

    home: str | None = None
    max_bytes: int = 256 * 1024
    max_depth: int = 12


def analyse_call(call: ToolCall, options: AnalysisOptions | None = None) -> Facts:
    """The facts of ``call``. Never raises: an unexpected failure is an opaque ``parse_error``."""
    options = options or AnalysisOptions()
    analysis = Analysis(str(call.tool), options.home, options.max_depth)
    try:
        _dispatch(analysis, call, options)
    except Exception as error:  # noqa: BLE001 - last resort: a crash must become a fact, never an exception
        analysis.facts.opaque.append(
            Opaque("parse_error", f"the analyser failed: {type(error).__name__}", _describe(call))
        )
    return analysis.facts


def _describe(call: ToolCall) -> str:
    for key in ("command", "code", "path", "url"):
        value = call.arguments.get(key)
        if isinstance(value, str):
            return value[:200]
    return call.tool


def _cwd(call: ToolCall) -> str | None:
    cwd = call.cwd
    if isinstance(cwd, str) and cwd.startswith("/"):
        return normalise(cwd)
    return None


def _dispatch(analysis: Analysis, call: ToolCall, options: AnalysisOptions) -> None:
    tool = call.tool
    arguments = call.arguments
    cwd = _cwd(call)
    if tool == "shell":
        _text(analysis, arguments.get("command"), "command", "shell", cwd, options)
    elif tool == "python":
        _text(analysis, arguments.get("code"), "code", "python", cwd, options)
    elif tool in ("file_write", "file_read"):
        path = arguments.get("path")
        if not isinstance(path, str) or not path:
            analysis.facts.opaque.append(Opaque("parse_error", f"{tool} call without a string path"))
            return
        resolved = absolute(path, cwd, options.home) or path
        (analysis.facts.writes if tool == "file_write" else analysis.facts.reads).append(resolved)
        content = arguments.get("content")
        if tool == "file_write" and isinstance(content, str) and len(content) <= options.max_bytes:
            directory = resolved.rsplit("/", 1)[0] or "/"
            analysis.script_candidates(resolved, content, Scope(cwd=directory, home=options.home))
    elif tool == "http":
        url = arguments.get("url")
        if isinstance(url, str):
            analysis.facts.urls.append(url)
        else:
            analysis.facts.opaque.append(Opaque("parse_error", "http call without a string url"))
    elif tool == "mcp":
        inner: Any = arguments.get("arguments")
        if isinstance(inner, dict):
            for key in MCP_SHELL_ARGUMENTS:
                if isinstance(inner.get(key), str):
                    _text(analysis, inner[key], key, "shell", cwd, options)
            for key in MCP_PYTHON_ARGUMENTS:
                if isinstance(inner.get(key), str):
                    _text(analysis, inner[key], key, "python", cwd, options)


def _text(
    analysis: Analysis, value: object, key: str, language: str, cwd: str | None, options: AnalysisOptions
) -> None:
    """Check that ``value`` is analysable text, then analyse it as shell or python."""
    facts = analysis.facts
    if not isinstance(value, str):
        kind = "missing" if value is None else f"a {type(value).__name__}, not a string"
        facts.opaque.append(Opaque("parse_error", f"the {key!r} argument is {kind}"))
        return
    if (
        len(value) > options.max_bytes
        or len(value.encode("utf-8", errors="surrogatepass")) > options.max_bytes
    ):
        facts.opaque.append(
            Opaque(
                "too_large", f"{len(value)} characters is more than the {options.max_bytes} bytes analysed"
            )
        )
        return
    text = _valid_text(analysis, value)
    if language == "shell":
        analysis.shell(text, Context(), Scope(cwd=cwd, home=options.home))
        analysis.written_scripts()
    else:
        analysis.python(text, Context(language="python"), cwd)


def _valid_text(analysis: Analysis, value: str) -> str:
    """``value`` made analysable: cut at a NUL (execve would), lone surrogates replaced; both reported."""
    problems = []
    if "\0" in value:
        problems.append("a NUL character (the text after it is not analysed)")
        value = value[: value.index("\0")]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.append("text that is not valid UTF-8")
        value = value.encode("utf-8", errors="replace").decode("utf-8")
    if problems:
        analysis.facts.opaque.append(
            Opaque("invalid_encoding", "the input contains " + " and ".join(problems))
        )
    return value
