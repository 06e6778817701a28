"""Wrappers: the command a wrapper program runs, found by skipping the wrapper's own options.

``sudo -u root env -i A=1 nohup timeout 5 nice -n 10 pkill x``: each wrapper is described in
``programs.json`` (its options that take a value, operands before the command, whether ``NAME=VALUE``
words are assignments, ...). :func:`unwrap` peels one layer and returns what it runs; the analysis calls
it again on the result, so chains of wrappers become chains of via layers. Special shapes: ``exec -a
NAME prog`` (argv[0] renamed; the program is the next word), ``busybox APPLET``, ``env -S 'cmd args'``,
``su -c CMD`` / ``watch CMD`` / ``ssh HOST CMD`` (a command line run by a shell), ``xargs CMD`` (input
items appended, unknown), ``find ... -exec CMD {} ;`` (one layer per action), ``command -v`` (runs
nothing). Pure functions over :class:`~gatekeeper.analysis.words.Arg` lists.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from gatekeeper.analysis.facts import Via
from gatekeeper.analysis.programs import WrapperSpec
from gatekeeper.analysis.words import Arg

ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
XARGS_INPUT = "<xargs input>"


@dataclass(slots=True)
class Layer:
    """What one wrapper runs: ``args`` (a command), or ``code`` (a command line for a shell), in
    ``cwd`` (a directory word, when the wrapper changes it) with ``env`` added."""

    via: Via
    args: list[Arg] = field(default_factory=list)
    code: Arg | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Arg | None = None


@dataclass(slots=True)
class _Options:
    env: dict[str, str] = field(default_factory=dict)
    cwd: Arg | None = None
    code: Arg | None = None
    split: list[Arg] = field(default_factory=list)
    rename: str | None = None
    unjoined: bool = False
    no_command: bool = False
    replace: str | None = None
    program: Arg | None = None
    user_given: bool = False


def unwrap(spec: WrapperSpec, args: list[Arg]) -> list[Layer]:
    """The commands the wrapper ``args[0]`` (described by ``spec``) runs; empty when it runs none."""
    if spec.exec_actions:
        return _find_actions(spec, args)
    if spec.subcommands:
        return _tmux(spec, args)
    if spec.command_only or spec.command_only_unless:
        return _command_only(spec, args)
    options = _Options()
    index = _parse_options(spec, args, 1, options)
    if options.no_command:
        return []
    positional = 0
    while positional < spec.positional and index < len(args):
        index += 1
        positional += 1
        if spec.kind == "remote" or spec.command_options:
            # ssh parses options again after the host name; flock FILE -c CMD takes -c after the file
            index = _parse_options(spec, args, index, options)
    rest = args[index:]
    if spec.program_options:
        return _program_option(spec, args, options)
    name = spec.name
    if options.rename is not None:
        name = f"{spec.name} -a"
    via = Via(spec.kind, name)
    if options.code is not None:
        return [Layer(via, code=options.code, env=options.env, cwd=options.cwd)]
    rest = options.split + rest
    for position, arg in enumerate(rest):
        if arg.known and arg.value in spec.input_separators:
            rest = rest[:position]
            break
    if spec.joined and not options.unjoined:
        if not rest:
            return []
        return [Layer(via, code=_joined(rest), env=options.env, cwd=options.cwd)]
    if spec.appends_input:
        return [_xargs(spec, via, rest, options)]
    if not rest:
        return []
    return [Layer(via, args=rest, env=options.env, cwd=options.cwd)]


def _parse_options(spec: WrapperSpec, args: list[Arg], index: int, options: _Options) -> int:
    """Skip the wrapper's options from ``index``; return the index of the first word after them."""
    while index < len(args):
        arg = args[index]
        word = arg.value
        if spec.assignments and ASSIGNMENT.match(word) and (arg.known or arg.item is not None):
            # find -exec env f={} cmd: the item is the value; find passes it as one word
            name, _, assigned = word.partition("=")
            options.env[name] = assigned
            index += 1
            continue
        if not arg.known and not _item_option(arg):
            return index
        if word == "--":
            return index + 1
        if word.startswith("--") and len(word) > 2:
            option, eq, attached = word.partition("=")
            if option in spec.options_with_arg and not eq:
                value = args[index + 1] if index + 1 < len(args) else None
                index += 2
            else:
                value = Arg(attached) if eq else None
                index += 1
            _apply(spec, option, value, options)
            if options.no_command:
                return index
            continue
        if word.startswith("-") and len(word) > 1:
            # digits are options too: xargs -0, nice -10 (a command never starts with "-")
            index = _short_cluster(spec, args, index, options)
            if options.no_command:
                return index
            continue
        return index
    return index


def _item_option(arg: Arg) -> bool:
    """``-I{}`` inside a script find runs: an option whose value is the placeholder."""
    word = arg.value
    return arg.item is not None and word[:1] == "-" and word[1:2].isalnum() and word.find(arg.item) >= 2


def _short_cluster(spec: WrapperSpec, args: list[Arg], index: int, options: _Options) -> int:
    word = args[index].value
    for position in range(1, len(word)):
        option = "-" + word[position]
        if option in spec.options_with_arg:
            rest = word[position + 1 :]
            if rest:
                _apply(spec, option, Arg(rest), options)
                return index + 1
            value = args[index + 1] if index + 1 < len(args) else None
            _apply(spec, option, value, options)
            return index + 2
        _apply(spec, option, None, options)
        if options.no_command:
            break
    return index + 1


def _apply(spec: WrapperSpec, option: str, value: Arg | None, options: _Options) -> None:
    if option in spec.no_command_options:
        options.no_command = True
    if option in spec.unjoined_options:
        options.unjoined = True
    if value is None:
        return
    if option in spec.chdir_options:
        options.cwd = value
    if option in spec.command_options:
        options.code = value
    if option in spec.user_options:
        options.user_given = True
    if option in spec.replace_options:
        options.replace = value.value
    if option in spec.program_options:
        options.program = value
    if option == spec.rename_option:
        options.rename = value.value
    if option in spec.split_options:
        try:
            words = shlex.split(value.value) if value.known else [value.value]
        except ValueError:
            words = [value.value]
        options.split = [Arg(w, value.known, value.start, value.end) for w in words]


def _joined(rest: list[Arg]) -> Arg:
    return Arg(
        " ".join(a.value for a in rest),
        all(a.known for a in rest),
        rest[0].start,
        rest[-1].end,
        remote=any(a.remote for a in rest),
    )


def _command_only(spec: WrapperSpec, args: list[Arg]) -> list[Layer]:
    """su/runuser/script: only ``-c CMD`` runs a command (options may follow the user name);
    ``runuser -u USER CMD ARGS`` runs a command given as words."""
    options = _Options()
    index = 1
    while index < len(args):
        after = _parse_options(spec, args, index, options)
        if options.user_given and spec.command_only_unless:
            command = args[after:]
            return [Layer(Via(spec.kind, spec.name), args=command, env=options.env)] if command else []
        if after > index and args[after - 1].value == "--":
            break
        # an operand (the user name, or arguments for the shell): options may follow it
        index = after + 1 if after == index else after
    if options.code is None:
        return []
    return [Layer(Via(spec.kind, spec.name), code=options.code, env=options.env)]


def _xargs(spec: WrapperSpec, via: Via, rest: list[Arg], options: _Options) -> Layer:
    if spec.input_separators and len(rest) == 1 and " " in rest[0].value:
        # parallel 'gzip {}' ::: a b: one word with blanks is a command line for a shell
        code = rest[0]
        filled = spec.default_replace is not None and spec.default_replace in code.value
        line = Arg(code.value, code.known and not filled, code.start, code.end)
        return Layer(via, code=line, env=options.env)
    command = rest or [Arg(word) for word in spec.default_command]
    replace = options.replace
    if replace is None and spec.default_replace and any(spec.default_replace in a.value for a in command):
        replace = spec.default_replace
    if replace is not None:
        marker = replace or "{}"
        command = [_placeholder(a, marker) for a in command]
        return Layer(via, args=command, env=options.env)
    return Layer(via, args=[*command, Arg(XARGS_INPUT, known=False)], env=options.env)


def _placeholder(arg: Arg, marker: str) -> Arg:
    """A word the wrapper puts a file name or input item into is unknown; ``item`` says it was
    literal apart from the ``marker``."""
    if marker not in arg.value:
        return arg
    return Arg(arg.value, False, arg.start, arg.end, item=marker if arg.known else None)


def _find_actions(spec: WrapperSpec, args: list[Arg]) -> list[Layer]:
    layers: list[Layer] = []
    index = 1
    while index < len(args):
        action = args[index].value
        if action not in spec.exec_actions:
            index += 1
            continue
        end = index + 1
        while end < len(args) and not (
            args[end].value == ";" or (args[end].value == "+" and args[end - 1].value == "{}")
        ):
            end += 1
        command = [_placeholder(a, "{}") for a in args[index + 1 : end]]
        if command:
            layers.append(Layer(Via(spec.kind, f"{spec.name} {action}"), args=command))
        index = end + 1
    return layers


def _program_option(spec: WrapperSpec, args: list[Arg], options: _Options) -> list[Layer]:
    """start-stop-daemon style: the program is an option's value; its arguments follow ``--``."""
    if options.program is None:
        return []
    extra: list[Arg] = []
    for position, arg in enumerate(args):
        if arg.value == "--":
            extra = args[position + 1 :]
            break
    return [
        Layer(Via(spec.kind, spec.name), args=[options.program, *extra], env=options.env, cwd=options.cwd)
    ]


# send-keys key names that end a typed line; other key names (C-c, Escape, Up, ...) type no text
_ENTER_KEYS = frozenset({"Enter", "C-m", "KPEnter", "C-j"})
_KEY_NAME = re.compile(r"^(?:[CMS]-.+|F[0-9]+|[A-Z][A-Za-z]+)$")


def _tmux(spec: WrapperSpec, args: list[Arg]) -> list[Layer]:
    """``tmux [-L s] new-session -d -s n 'cmd' \\; send-keys -t n 'cmd' Enter``: the command line each
    tmux command runs, or the text typed into a pane by send-keys (each line a command for its shell)."""
    options = _Options()
    index = _parse_options(spec, args, 1, options)
    layers: list[Layer] = []
    if options.code is not None:
        layers.append(Layer(Via(spec.kind, spec.name), code=options.code))
    commands: list[list[Arg]] = [[]]
    for arg in args[index:]:
        if arg.known and arg.value in (";", "\\;"):
            commands.append([])
        elif arg.known and arg.value.endswith("\\;"):
            commands[-1].append(Arg(arg.value[:-2], arg.known, arg.start, arg.end))
            commands.append([])
        else:
            commands[-1].append(arg)
    for words in commands:
        if not words or not words[0].known:
            continue
        name = words[0].value
        if name not in spec.subcommands and name not in spec.keys_subcommands:
            continue
        position = 1
        while position < len(words) and words[position].known and words[position].value.startswith("-"):
            word = words[position].value
            position += 1
            if word == "--":
                break
            if word[-1:] and f"-{word[-1]}" in spec.subcommand_options_with_arg and len(word) == 2:
                position += 1
        rest = words[position:]
        if not rest:
            continue
        via = Via(spec.kind, f"{spec.name} {name}")
        if name in spec.keys_subcommands:
            text = _typed(rest)
            if text is not None:
                layers.append(Layer(via, code=text))
        elif name in ("if-shell", "if"):
            layers.append(Layer(via, code=rest[0]))
        else:
            layers.append(Layer(via, code=_joined(rest)))
    return layers


def _typed(keys: list[Arg]) -> Arg | None:
    """The text send-keys types: literal strings, Enter as a newline, other key names dropped."""
    parts: list[str] = []
    known = True
    for key in keys:
        if key.known and key.value in _ENTER_KEYS:
            parts.append("\n")
        elif key.known and _KEY_NAME.match(key.value) and " " not in key.value:
            continue
        else:
            parts.append(key.value)
            known = known and key.known
    text = "".join(parts)
    if not text.strip():
        return None
    return Arg(text, known, keys[0].start, keys[-1].end)
