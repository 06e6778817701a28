"""Code a command runs besides its own argv: shells and interpreters, ``eval``, ``source``.

``bash -c CODE``, ``bash -lc CODE``, ``sh -s`` and a bare ``bash`` (commands on standard input),
``bash script.sh``; ``python3 -c CODE``, ``python3 -`` or no script (stdin), ``perl -e``, ``ruby -e``,
``node -e``, ``php -r``, ``lua -e``, an ``awk`` program; ``eval WORDS`` (joined by spaces), ``source
FILE``. :func:`embedded_code` says where the code comes from; the analysis then reads it from the
argument, the command's standard input (heredoc, here-string, pipe) or the script file. Which programs
are shells or interpreters, and which options carry code, is data in ``programs.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.analysis.programs import InterpreterSpec, Programs, ShellSpec, StdinShellSpec
from gatekeeper.analysis.words import Arg


@dataclass(slots=True)
class Embedded:
    """Where the code a command runs comes from.

    ``language`` is ``shell`` or an interpreter's language. ``source`` is ``argument`` (``code`` is
    the word holding the code), ``stdin`` (the code is read from standard input), ``file`` (``code``
    is the script path word). ``name`` is the via name: ``bash -c``, ``eval``, ``python3 -c``.
    """

    language: str
    source: str
    name: str
    program: str
    code: Arg | None = None


def embedded_code(name: str, args: list[Arg], programs: Programs) -> Embedded | None:
    """The code ``args`` (a command whose resolved program name is ``name``) runs, if any."""
    builtin = programs.shell_builtins.get(name)
    if builtin == "joined":
        return _eval(name, args)
    if builtin == "file":
        return Embedded("shell", "file", name, name, args[1]) if len(args) > 1 else None
    if programs.is_shell(name):
        return _shell(name, args, programs.shells)
    queued = programs.stdin_shells.get(name)
    if queued is not None:
        return _stdin_shell(name, args, queued)
    spec = programs.interpreter(name)
    if spec is not None:
        return _interpreter(name, args, spec)
    return None


def _eval(name: str, args: list[Arg]) -> Embedded | None:
    words = args[1:]
    if not words:
        return None
    code = Arg(
        " ".join(a.value for a in words),
        all(a.known for a in words),
        words[0].start,
        words[-1].end,
        origin=words[0].origin if len(words) == 1 else None,
        remote=any(a.remote for a in words),
    )
    return Embedded("shell", "argument", name, name, code)


def _shell(name: str, args: list[Arg], spec: ShellSpec) -> Embedded | None:
    code_flag = stdin_flag = False
    index = 1
    while index < len(args):
        arg = args[index]
        word = arg.value
        if not arg.known:
            break
        if word in ("--", "-"):
            index += 1
            break
        if word in spec.options_with_arg:
            index += 2
            continue
        if word.startswith("--"):
            index += 1
            continue
        if len(word) > 1 and word[0] in "-+":
            letters = word[1:]
            code_flag = code_flag or spec.code_flag in letters
            stdin_flag = stdin_flag or spec.stdin_flag in letters
            # "-o pipefail" style options take the next word
            index += 2 if letters[-1] in "oO" else 1
            continue
        break
    operands = args[index:]
    if code_flag:
        return Embedded("shell", "argument", f"{name} -c", name, operands[0]) if operands else None
    if stdin_flag or not operands:
        return Embedded("shell", "stdin", name, name)
    return Embedded("shell", "file", name, name, operands[0])


def _stdin_shell(name: str, args: list[Arg], spec: StdinShellSpec) -> Embedded:
    """``echo CMD | at now`` runs CMD later through a shell; ``at -f FILE`` reads it from FILE."""
    index = 1
    while index < len(args):
        word = args[index].value
        if word in spec.file_options and index + 1 < len(args):
            return Embedded("shell", "file", name, name, args[index + 1])
        index += 2 if word in spec.options_with_arg else 1
    return Embedded("shell", "stdin", name, name)


@dataclass(slots=True)
class _Step:
    """One option of an interpreter: how many words it took and what it carried."""

    taken: int
    stop: bool = False
    code: Arg | None = None
    program_file: Arg | None = None
    option: str = ""


def _interpreter(name: str, args: list[Arg], spec: InterpreterSpec) -> Embedded | None:
    codes: list[Arg] = []
    option_used = ""
    program_file: Arg | None = None
    index = 1
    while index < len(args):
        arg = args[index]
        word = arg.value
        if not arg.known or word == "-" or not word.startswith("-") or len(word) < 2:
            break
        if word == "--":
            index += 1
            break
        whole = word.startswith("--") or word in spec.code_options or word in spec.options_with_arg
        step = _whole_option(word, args, index, spec) if whole else _cluster(word, args, index, spec)
        if step.stop:
            return None
        if step.code is not None:
            codes.append(step.code)
            option_used = step.option
        if step.program_file is not None:
            program_file = step.program_file
        index += step.taken
        if codes and spec.code_ends_options:
            break
    if codes:
        joined = Arg(
            "\n".join(c.value for c in codes),
            all(c.known for c in codes),
            codes[0].start,
            codes[-1].end,
            origin=codes[0].origin if len(codes) == 1 else None,
            remote=any(c.remote for c in codes),
        )
        return Embedded(spec.language, "argument", f"{name} {option_used}", name, joined)
    if program_file is not None:
        return Embedded(spec.language, "file", name, name, program_file)
    operands = args[index:]
    if spec.program_operand:
        return Embedded(spec.language, "argument", name, name, operands[0]) if operands else None
    if not operands or (spec.stdin_marker is not None and operands[0].value == spec.stdin_marker):
        return Embedded(spec.language, "stdin", name, name)
    return Embedded(spec.language, "file", name, name, operands[0])


def _whole_option(word: str, args: list[Arg], index: int, spec: InterpreterSpec) -> _Step:
    """``--eval=CODE``, ``--eval CODE``, or a whole-word option such as ``node -e``, ``awk -F``."""
    option, eq, attached = word.partition("=") if word.startswith("--") else (word, "", "")
    if option in spec.stop_options:
        return _Step(1, stop=True)
    takes = option in spec.options_with_arg or option in spec.code_options
    value = Arg(attached, True, args[index].start, args[index].end) if eq else None
    taken = 1
    if takes and not eq:
        value = args[index + 1] if index + 1 < len(args) else None
        taken = 2
    step = _Step(taken)
    if value is not None and option in spec.code_options:
        step.code, step.option = value, option
    if value is not None and option in spec.program_file_options:
        step.program_file = value
    return step


def _cluster(word: str, args: list[Arg], index: int, spec: InterpreterSpec) -> _Step:
    """One cluster of short options (``-uc CODE``, ``-le CODE``, ``-F:``)."""
    position = 1
    while position < len(word):
        option = "-" + word[position]
        rest = word[position + 1 :]
        if option in spec.stop_options:
            return _Step(1, stop=True)
        if option in spec.digit_options:
            # perl -l[octal], -0[octal]: optional digits, then more options
            position += 1
            while position < len(word) and word[position].isdigit():
                position += 1
            continue
        if option in spec.attached_only:
            return _Step(1)
        if option in spec.code_options or option in spec.options_with_arg:
            if rest:
                value: Arg | None = Arg(rest, True, args[index].start, args[index].end)
                taken = 1
            else:
                value = args[index + 1] if index + 1 < len(args) else None
                taken = 2
            step = _Step(taken)
            if value is not None and option in spec.code_options:
                step.code, step.option = value, option
            if value is not None and option in spec.program_file_options:
                step.program_file = value
            return step
        position += 1
    return _Step(1)
