"""The neutral facts the analyser produces and the policies read (``input.facts``).

Facts describe *what would run*, faithfully, and nothing about whether it is dangerous. They are plain
dataclasses because they are built on the hot path; :func:`facts_to_dict` turns them into the JSON
document the policy engines receive. The field-by-field contract, with examples, is in
``docs/facts.md``; change both together.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class Via:
    """One layer a command was found through, outermost first in ``Command.via``.

    ``kind`` is one of: ``wrapper`` (sudo, env, nohup, timeout, ...), ``shell`` (``bash -c``,
    ``sh -s``, ``bash <<<``, heredoc fed to a shell, ``eval``, ``source``), ``substitution`` (``$(...)``,
    backticks), ``process_substitution`` (``<(...)``, ``>(...)``), ``subshell`` (``( ... )``),
    ``group`` (``{ ...; }``), ``function`` (body of a shell function that is called), ``xargs``,
    ``find_exec`` (``find -exec/-execdir/-ok``), ``trap`` (a signal handler), ``payload`` (decoded
    data piped into a shell: ``base64``, ``printf``, ``echo``, ``xxd``), ``interpreter`` (code run by
    ``python -c``, ``perl -e``, ``awk``, ...), ``remote`` (command given to ``ssh host CMD``),
    ``argument`` (a command line found inside an argument of a program that may execute it; only on
    candidate commands).
    ``name`` says which: ``sudo``, ``bash -c``, ``$()``, ``base64``, ``python:os.system``...
    ``command`` is the index of the command that opened the layer (the ``find`` of a ``find -exec``,
    the ``sudo`` of ``sudo``, the ``bash`` of ``bash -c`` or of a script it runs, the ``trap``), and
    ``None`` for a layer no one command opened (substitutions, subshells, groups, functions, decoded
    payloads, interpreter calls, candidates).
    """

    kind: str
    name: str
    command: int | None = None


@dataclass(slots=True)
class Redirect:
    """A redirection attached to a simple command.

    ``op`` is the operator as written (``>``, ``>>``, ``<``, ``&>``, ``&>>``, ``>&``, ``<&``, ``>|``,
    ``<>``, ``<<``, ``<<-``, ``<<<``). ``fd`` is the explicit descriptor if one was written.
    ``target`` is the word after quote removal (a file, an fd number, ``-``); ``None`` for heredocs.
    ``target_abs`` is the target as an absolute normalised path when it names a file.
    ``body`` is the heredoc body or here-string text.
    """

    op: str
    target: str | None = None
    target_abs: str | None = None
    fd: int | None = None
    body: str | None = None


@dataclass(slots=True)
class Pipeline:
    """Where a command sits in a pipeline: ``id`` is shared by the members of one pipeline."""

    id: int
    position: int
    length: int


@dataclass(slots=True)
class Command:
    """One simple command that would run.

    ``program`` is argv[0] as written after quote removal (``/usr/bin/pkill``); ``name`` is its
    resolved basename (``pkill``), with busybox applets and wrappers already unwrapped: the command a
    wrapper runs is its own ``Command`` whose ``via`` names the wrapper, and the wrapper itself is
    reported too (``sudo`` is a command as well as a layer).
    ``argv`` is the full argument vector after quote removal, argv[0] included. Words whose value
    cannot be known statically keep their source text (``$HOME``) and their indices are in ``dynamic``.
    ``paths`` holds every operand that could name a file, as an absolute normalised path: each
    non-option argument, and the value of ``--opt=value`` / ``key=value`` arguments; relative paths
    are joined to ``cwd`` when it is known, and ``~`` is expanded when the home directory is known.
    ``cwd`` is the working directory the command runs in, following ``cd`` / ``pushd`` with literal
    targets earlier in the same call (``None`` when it cannot be known).
    ``env`` holds assignments made for this command (``A=1 cmd``, ``env A=1 cmd``).
    ``language`` is where the command was found: ``shell`` or the interpreter whose code ran it.
    ``candidate`` is true for a command line found inside an argument string of a program that may or
    may not execute it (``vim -c ':!cmd'``): it is not known to run; policies decide how to treat it.
    """

    index: int
    program: str
    name: str
    argv: list[str]
    paths: list[str] = field(default_factory=list)
    dynamic: list[int] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)
    background: bool = False
    pipeline: Pipeline | None = None
    via: list[Via] = field(default_factory=list)
    depth: int = 0
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    language: str = "shell"
    candidate: bool = False
    text: str = ""


@dataclass(slots=True)
class ApiCall:
    """A call found in interpreter code (python via ``ast``; perl/awk/ruby/node for literal cases).

    ``function`` is the dotted name resolved through imports and aliases (``os.kill``,
    ``shutil.copytree``, ``subprocess.run``); a method on an unknown object is ``?.listen``.
    ``args`` are the literal positional values (``None`` where not literal), ``kwargs`` likewise.
    Calls that run commands (``os.system``, ``subprocess.*``) also produce ``Command`` facts.
    """

    language: str
    function: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    via: list[Via] = field(default_factory=list)
    text: str = ""


@dataclass(slots=True)
class Opaque:
    """Something that would run but cannot be resolved statically; never silently dropped.

    ``reason`` is one of: ``parse_error``, ``computed_program`` (``$X args`` with unknown X),
    ``dynamic_eval`` (``eval``/``bash -c``/``source`` of a computed string or unknown file),
    ``remote_code`` (``curl ... | sh``, ``bash <(curl ...)``), ``exec_written_file`` (running a file
    written earlier in the same call), ``undecodable_payload`` (data piped into a shell that cannot be
    decoded), ``dynamic_interpreter_code`` (``python -c "$X"``, ``exec(...)`` of a computed string,
    interpreter reading a script from stdin that cannot be known), ``too_deep`` (nesting beyond the
    analyser's limit), ``too_large`` (input beyond the size limit), ``invalid_encoding``.
    ``detail`` says what exactly, for a human; ``text`` is the source fragment.
    """

    reason: str
    detail: str
    text: str = ""
    via: list[Via] = field(default_factory=list)


@dataclass(slots=True)
class Facts:
    """Everything the analyser found in one tool call."""

    tool: str
    commands: list[Command] = field(default_factory=list)
    api_calls: list[ApiCall] = field(default_factory=list)
    opaque: list[Opaque] = field(default_factory=list)
    # For non-shell tools: the paths read/written and URLs contacted, as the tool's arguments say.
    writes: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    # Python code that fails to compile runs nothing at all: CPython compiles the whole source first.
    syntax_errors: list[str] = field(default_factory=list)


def facts_to_dict(facts: Facts) -> dict[str, Any]:
    """The JSON-ready form of ``facts`` that policies receive as ``input.facts``.

    What ``dataclasses.asdict`` gives, four times faster: it runs once per new call.
    """
    return _plain(facts)  # type: ignore[no-any-return]


_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind))
    for kind in (Via, Redirect, Pipeline, Command, ApiCall, Opaque, Facts)
}
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})


def _plain(value: Any) -> Any:
    """A deep copy of ``value`` with every fact dataclass turned into a dict of its fields."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is list:
        return [_plain(item) for item in value]
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    names = _FIELD_NAMES.get(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if kind is tuple:
        return tuple(_plain(item) for item in value)
    return copy.deepcopy(value)
