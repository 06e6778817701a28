"""Command lines that a program *may* execute, found inside its arguments (``candidate`` commands).

Many programs run a command given in an argument or typed at their prompt: ``vim -c ':!cmd'``,
``tar --checkpoint-action=exec=cmd``, ``ssh -o LocalCommand=cmd``, ``git -c core.pager=cmd``,
``VISUAL=cmd less``, ``gdb -ex '!cmd'``, ``ftp`` reading ``!cmd`` on its input. Whether they really do
depends on the program, so these are reported as candidates and the policies decide. The extractor is
small, explainable and driven by the ``candidates`` section of ``programs.json``:

1. Programs whose arguments are text (``echo``, ``grep``, ``sed``, ...), shells and interpreters are
   skipped (their code is analysed properly elsewhere); a wrapper's words are only checked for known
   keys (the command it runs is scanned on its own). A text found twice in one call is kept once.
2. ``NAME=value`` assignments for the command (``env_variables``: ``VISUAL``, ``PAGER``,
   ``GIT_SSH_COMMAND``, ...) give their value (``|`` prefixes of ``LESSOPEN`` stripped).
3. Per-program options: ``command_options`` whose value is a command line (``tar -I CMD``, ``rsync -e
   CMD``), ``escape_options`` whose value is the program's own command language, from which only an
   escape (``!cmd``, ``:!cmd``) or a literal ``system("cmd")``-style call is taken (``vim -c``, ``gdb
   -ex``); ``text_options`` (``git -m``) are never looked at; ``key_prefixes`` and ``line_prefixes``.
4. For every other program: arguments starting with a known key (``--checkpoint-action=exec=``,
   ``LocalCommand=``, ``core.pager=``, ...), arguments or lines of multi-line arguments that start with
   an escape prefix (``!``, ``:!``), literal calls such as ``os.execute("cmd")`` in the value of a
   code-like option (``-e``, ``-c``, ``--eval``) of a program not known here (and literal lisp calls,
   ``(shell-command "cmd")``, in an escape option's value: ``emacs --eval``), ``key_patterns``
   (``alias.NAME=!cmd``), and lines of a heredoc or
   here-string fed to the program that start with an escape prefix.

The analysis then parses each text as shell and keeps it only when it parses cleanly and its first word
looks like a program (a plain word or path, not a number or punctuation): prose is dropped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from gatekeeper.analysis.programs import CandidateProgramSpec, CandidateSpec, Programs
from gatekeeper.analysis.scripts import scan_calls
from gatekeeper.analysis.words import Arg


@dataclass(slots=True)
class CandidateText:
    """A command line found in an argument; ``via_name`` says where (``vim -c``, ``VISUAL=``)."""

    via_name: str
    text: str


_NO_PROGRAM_SPEC = CandidateProgramSpec()


def find_candidates(
    name: str, args: list[Arg], env: dict[str, str], stdin_body: str | None, programs: Programs
) -> list[CandidateText]:
    spec = programs.candidates
    found: list[CandidateText] = []
    for variable, assigned in env.items():
        if variable in spec.env_variables:
            text = assigned
            for prefix in spec.env_value_prefixes:
                if text.startswith(prefix):
                    text = text[len(prefix) :]
                    break
            _add(found, f"{name} {variable}=", text)
    if (
        name in spec.text_consumers
        or programs.is_shell(name)
        or programs.interpreter(name) is not None
        or name in programs.shell_builtins
    ):
        return found
    program = spec.programs.get(name, _NO_PROGRAM_SPEC)
    known_program = name in spec.programs
    # a wrapper's words include the command it runs, which is scanned as a command of its own
    wrapper = programs.wrapper(name) is not None
    index = 1
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.known:
            continue
        word = arg.value
        option, eq, attached = word.partition("=")
        value: str | None = attached if eq else None
        if option in program.text_options:
            index += 0 if eq else 1
            continue
        if option in program.command_options or option in program.escape_options:
            if value is None and index < len(args):
                value = args[index].value if args[index].known else None
                index += 1
            if value is not None:
                if option in program.command_options:
                    _add(found, f"{name} {option}", _strip_escape(value, spec) or value)
                else:
                    _escaped(found, f"{name} {option}", value, spec, program.line_prefixes)
            continue
        if program.plus_option and word.startswith("+") and len(word) > 1:
            _escaped(found, f"{name} +", word[1:], spec)
            continue
        if wrapper:
            _keys(found, name, word, program, spec)
            continue
        if not known_program and option in spec.code_options and value is None and index < len(args):
            code_arg = args[index]
            if code_arg.known:
                _calls(found, f"{name} {option}", code_arg.value, spec)
            continue
        _generic(found, name, word, program, spec)
    if not wrapper and name not in spec.program_operands:
        _program_words(found, name, args, program, programs)
    if stdin_body:
        _stdin_lines(found, name, stdin_body, spec)
    return found


def _stdin_lines(found: list[CandidateText], name: str, body: str, spec: CandidateSpec) -> None:
    for line in body.splitlines():
        stripped = _strip_escape(line.strip(), spec)
        if stripped:
            _add(found, f"{name} <<", stripped)


def _known_program(word: str, programs: Programs) -> bool:
    return (
        word in programs.candidates.known_programs
        or programs.wrapper(word) is not None
        or programs.is_shell(word)
        or programs.interpreter(word) is not None
    )


def _program_words(
    found: list[CandidateText], name: str, args: list[Arg], program: CandidateProgramSpec, programs: Programs
) -> None:
    """Arguments that name a program: many programs run their arguments as a command (``aoss pkill
    -9 x``, ``bundle exec cmd``, ``docker run img cmd``), so argv[i:] from the first argument that is a
    known program name, and any argument that is a command line of a known program, are candidates."""
    index = 1
    first_taken = False
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.known:
            continue
        word = arg.value
        if word.partition("=")[0] in program.text_options:
            index += 0 if "=" in word else 1
            continue
        if any(blank in word for blank in " \t\n"):
            head = word.split(None, 1)[0] if word.strip() else ""
            if _known_program(head, programs):
                _add(found, f"{name} argument", word)
        elif not first_taken and _known_program(word, programs):
            first_taken = True
            rest = args[index - 1 :]
            _add(found, f"{name} {word}", " ".join(_quoted(a) for a in rest))


def _quoted(arg: Arg) -> str:
    """A word as shell source again: literal words quoted, unknown ones kept as their source text."""
    return shlex.quote(arg.value) if arg.known else arg.value


def _add(found: list[CandidateText], via_name: str, text: str) -> None:
    text = text.strip()
    if text and all(existing.text != text for existing in found):
        found.append(CandidateText(via_name, text))


def _strip_escape(value: str, spec: CandidateSpec) -> str | None:
    """The command after a shell escape prefix (``!cmd``, ``:!cmd``, ``:! cmd``), or None."""
    stripped = value.lstrip()
    for prefix in spec.escape_prefixes:
        if stripped.startswith(prefix):
            rest = stripped[len(prefix) :]
            # "!=" and "!!" are operators or history, not an escape
            if rest and rest[0] not in "=!":
                return rest
            return None
    return None


def _escaped(
    found: list[CandidateText],
    via_name: str,
    value: str,
    spec: CandidateSpec,
    line_prefixes: tuple[str, ...] = (),
) -> None:
    for line in value.splitlines() or [value]:
        command = _strip_escape(line, spec)
        stripped = line.strip()
        # the program's own shell command (gdb "shell CMD"), besides the generic "!CMD"
        for prefix in line_prefixes:
            if command is None and stripped.startswith(prefix):
                command = stripped[len(prefix) :]
        if command is not None:
            _add(found, via_name, command)
    _calls(found, via_name, value, spec)


def _calls(found: list[CandidateText], via_name: str, code: str, spec: CandidateSpec) -> None:
    functions = {pattern: "shell" for pattern in spec.call_patterns}
    for call in scan_calls("generic", code, functions):
        if call.shell is not None:
            _add(found, via_name, call.shell)
    if "(" in code:
        for command in _lisp_calls(code, spec.lisp_functions):
            _add(found, via_name, command)


_LISP_CALL = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9*-]*)(?=[\s)])")


def _lisp_calls(code: str, functions: dict[str, dict[str, int]]) -> list[str]:
    """Command lines of literal lisp calls: ``(shell-command "cmd")``, ``(call-process "p" nil t nil)``."""
    commands: list[str] = []
    for match in _LISP_CALL.finditer(code):
        form = functions.get(match.group(1))
        if form is None:
            continue
        elements = _lisp_elements(code, match.end())
        if "shell" in form:
            index = form["shell"]
            if index < len(elements) and elements[index] is not None:
                commands.append(str(elements[index]))
            continue
        program, first = form.get("program", 0), form.get("args_from", 1)
        words = [elements[program]] if program < len(elements) else []
        words += elements[first:]
        if words and all(w is not None for w in words):
            commands.append(shlex.join(str(w) for w in words))
    return commands


def _lisp_elements(code: str, i: int) -> list[str | None]:
    """The top-level elements of a lisp list from ``i`` to its ``)``: strings, None for anything else."""
    elements: list[str | None] = []
    while i < len(code):
        ch = code[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == ")":
            break
        elif ch == '"':
            j = i + 1
            chars: list[str] = []
            while j < len(code) and code[j] != '"':
                if code[j] == "\\" and j + 1 < len(code):
                    j += 1
                chars.append(code[j])
                j += 1
            elements.append("".join(chars))
            i = j + 1
        elif ch == "(":
            depth = 0
            while i < len(code):
                if code[i] == "(":
                    depth += 1
                elif code[i] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            elements.append(None)
            i += 1
        else:
            start = i
            while i < len(code) and code[i] not in ' \t\r\n()"':
                i += 1
            atom = code[start:i]
            # nil, t and keywords are not a command word; any other symbol is a computed value
            elements.append(None if atom not in ("nil", "t") else atom)
    return elements


def _keys(
    found: list[CandidateText], name: str, word: str, program: CandidateProgramSpec, spec: CandidateSpec
) -> bool:
    lowered = word.lower()
    if lowered.startswith(program.lowered_key_prefixes) or lowered.startswith(spec.lowered_key_prefixes):
        for prefix in (*program.key_prefixes, *spec.key_prefixes):
            if lowered.startswith(prefix.lower()):
                rest = word[len(prefix) :]
                _add(found, f"{name} {prefix.rstrip('=: ')}", _strip_escape(rest, spec) or rest)
                return True
    for pattern in spec.key_regexes:
        match = pattern.match(word)
        if match is not None:
            rest = word[match.end() :]
            _add(found, f"{name} {match.group(0).rstrip('=')}", _strip_escape(rest, spec) or rest)
            return True
    return False


def _generic(
    found: list[CandidateText], name: str, word: str, program: CandidateProgramSpec, spec: CandidateSpec
) -> None:
    if _keys(found, name, word, program, spec):
        return
    for line in word.splitlines() or [word]:
        stripped = line.strip()
        for prefix in program.line_prefixes:
            if stripped.startswith(prefix):
                _add(found, f"{name} {prefix.strip()}", stripped[len(prefix) :])
        command = _strip_escape(stripped, spec)
        if command is not None:
            _add(found, f"{name} !", command)
