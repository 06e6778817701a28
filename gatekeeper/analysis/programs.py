"""The analyser's structural knowledge, read once from ``programs.json``.

Which programs wrap other commands, which run shell or interpreter code and through which option,
which decode data, which fetch from the network, where command lines hide in arguments: all of it is
data in ``programs.json`` (its ``_comment`` describes each section). Nothing here says what is dangerous;
that is the policies' business. :func:`load_programs` parses the file into frozen dataclasses once per
path and caches them, so the hot path only does dictionary look-ups.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("programs.json")


@dataclass(frozen=True, slots=True)
class WrapperSpec:
    """How a wrapper's own options and operands are laid out before the command it runs."""

    name: str
    kind: str = "wrapper"
    options_with_arg: frozenset[str] = frozenset()
    positional: int = 0
    assignments: bool = False
    chdir_options: frozenset[str] = frozenset()
    user_options: frozenset[str] = frozenset()
    command_options: frozenset[str] = frozenset()
    split_options: frozenset[str] = frozenset()
    no_command_options: frozenset[str] = frozenset()
    rename_option: str | None = None
    joined: bool = False
    unjoined_options: frozenset[str] = frozenset()
    applet: bool = False
    stop_at_option_end: bool = False
    command_only: bool = False
    command_only_unless: frozenset[str] = frozenset()
    replace_options: frozenset[str] = frozenset()
    appends_input: bool = False
    default_command: tuple[str, ...] = ()
    exec_actions: frozenset[str] = frozenset()
    program_options: frozenset[str] = frozenset()
    arguments_after_double_dash: bool = False
    input_separators: frozenset[str] = frozenset()
    default_replace: str | None = None
    # tmux: commands ("new-session", ...) whose operands are a command line, their options with a value
    subcommands: frozenset[str] = frozenset()
    subcommand_options_with_arg: frozenset[str] = frozenset()
    keys_subcommands: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StdinShellSpec:
    """A program that runs the shell commands it reads on stdin later (``at``), or from ``-f FILE``."""

    file_options: frozenset[str] = frozenset()
    options_with_arg: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ShellSpec:
    names: frozenset[str]
    code_flag: str
    stdin_flag: str
    options_with_arg: frozenset[str]


@dataclass(frozen=True, slots=True)
class InterpreterSpec:
    """An interpreter of another language: where its code comes from."""

    name: str
    language: str
    code_options: frozenset[str] = frozenset()
    stop_options: frozenset[str] = frozenset()
    options_with_arg: frozenset[str] = frozenset()
    attached_only: frozenset[str] = frozenset()
    digit_options: frozenset[str] = frozenset()
    code_ends_options: bool = False
    program_operand: bool = False
    program_file_options: frozenset[str] = frozenset()
    stdin_marker: str | None = None


@dataclass(frozen=True, slots=True)
class DecoderSpec:
    codec: str
    decode_options: frozenset[str]


@dataclass(frozen=True, slots=True)
class FileWriterSpec:
    operands: str | None = None
    options_with_arg: frozenset[str] = frozenset()
    output_options: frozenset[str] = frozenset()
    output_keys: frozenset[str] = frozenset()
    url_name_flags: frozenset[str] = frozenset()
    directory_options: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CandidateProgramSpec:
    escape_options: frozenset[str] = frozenset()
    command_options: frozenset[str] = frozenset()
    text_options: frozenset[str] = frozenset()
    key_prefixes: tuple[str, ...] = ()
    line_prefixes: tuple[str, ...] = ()
    plus_option: bool = False
    # key_prefixes in lower case, for one test of every word against all of them
    lowered_key_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lowered_key_prefixes", tuple(p.lower() for p in self.key_prefixes))


@dataclass(frozen=True, slots=True)
class CandidateSpec:
    escape_prefixes: tuple[str, ...] = ()
    key_prefixes: tuple[str, ...] = ()
    code_options: frozenset[str] = frozenset()
    call_patterns: tuple[str, ...] = ()
    key_patterns: tuple[str, ...] = ()
    # lisp functions that run a command: {"shell": i} (element i is a command line) or
    # {"program": i, "args_from": j} (element i the program, elements j.. its arguments)
    lisp_functions: dict[str, dict[str, int]] = field(default_factory=dict)
    programs: dict[str, CandidateProgramSpec] = field(default_factory=dict)
    env_variables: frozenset[str] = frozenset()
    env_value_prefixes: tuple[str, ...] = ()
    text_consumers: frozenset[str] = frozenset()
    # program names an argument word may be (``aoss pkill -9 x``: argv[1:] is a candidate command), and
    # programs whose operands name programs without running them (``man kill``, ``pip install vllm``)
    known_programs: frozenset[str] = frozenset()
    program_operands: frozenset[str] = frozenset()
    # subcommands of such programs that run their operands as a command (``npm exec cmd``)
    exec_subcommands: dict[str, frozenset[str]] = field(default_factory=dict)
    # programs whose text operands are patterns matched against running processes (``pkill -f``)
    pattern_operands: frozenset[str] = frozenset()
    # builtins that assign NAME=value (``export``): a value is looked at for command lines
    declarations: frozenset[str] = frozenset()
    # key_prefixes in lower case and key_patterns compiled: every argument word is tested with them
    lowered_key_prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    key_regexes: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lowered_key_prefixes", tuple(p.lower() for p in self.key_prefixes))
        object.__setattr__(self, "key_regexes", tuple(re.compile(p) for p in self.key_patterns))


@dataclass(frozen=True, slots=True)
class Programs:
    wrappers: dict[str, WrapperSpec]
    shells: ShellSpec
    shell_builtins: dict[str, str]
    stdin_shells: dict[str, StdinShellSpec]
    interpreters: dict[str, InterpreterSpec]
    command_functions: dict[str, dict[str, str]]
    decoders: dict[str, DecoderSpec]
    producers: dict[str, str]
    network_fetchers: frozenset[str]
    file_writers: dict[str, FileWriterSpec]
    candidates: CandidateSpec
    version_suffix: re.Pattern[str]

    def wrapper(self, name: str) -> WrapperSpec | None:
        return self.wrappers.get(name)

    def is_shell(self, name: str) -> bool:
        return name in self.shells.names or self._unversioned(name) in self.shells.names

    def interpreter(self, name: str) -> InterpreterSpec | None:
        spec = self.interpreters.get(name)
        if spec is None:
            spec = self.interpreters.get(self._unversioned(name))
        return spec

    def _unversioned(self, name: str) -> str:
        # python3.11 -> python, perl5.36 -> perl, lua5.4 -> lua
        match = self.version_suffix.search(name)
        return name[: match.start()] if match and match.start() > 0 else name


def program_name(program: str) -> str:
    """The basename a program word resolves to: ``/usr/bin/pkill`` → ``pkill``."""
    name = posixpath.basename(program.rstrip("/")) if "/" in program else program
    return name or program


def _set(data: dict[str, Any], key: str) -> frozenset[str]:
    return frozenset(data.get(key, ()))


def _wrapper(name: str, data: dict[str, Any]) -> WrapperSpec:
    return WrapperSpec(
        name=name,
        kind=data.get("kind", "wrapper"),
        # options whose value is a program, a command line, a directory or a user take a value too
        options_with_arg=_set(data, "options_with_arg")
        | _set(data, "program_options")
        | _set(data, "command_options")
        | _set(data, "split_options")
        | _set(data, "chdir_options")
        | _set(data, "user_options"),
        positional=int(data.get("positional", 0)),
        assignments=bool(data.get("assignments", False)),
        chdir_options=_set(data, "chdir_options"),
        user_options=_set(data, "user_options"),
        command_options=_set(data, "command_options"),
        split_options=_set(data, "split_options"),
        no_command_options=_set(data, "no_command_options"),
        rename_option=data.get("rename_option"),
        joined=bool(data.get("joined", False)),
        unjoined_options=_set(data, "unjoined_options"),
        applet=bool(data.get("applet", False)),
        stop_at_option_end=bool(data.get("stop_at_option_end", False)),
        command_only=bool(data.get("command_only", False)),
        command_only_unless=_set(data, "command_only_unless"),
        replace_options=_set(data, "replace_options"),
        appends_input=bool(data.get("appends_input", False)),
        default_command=tuple(data.get("default_command", ())),
        exec_actions=_set(data, "exec_actions"),
        program_options=_set(data, "program_options"),
        arguments_after_double_dash=bool(data.get("arguments_after_double_dash", False)),
        input_separators=_set(data, "input_separators"),
        subcommands=_set(data, "subcommands"),
        subcommand_options_with_arg=_set(data, "subcommand_options_with_arg"),
        keys_subcommands=_set(data, "keys_subcommands"),
        default_replace=data.get("default_replace"),
    )


def _interpreters(data: dict[str, Any]) -> dict[str, InterpreterSpec]:
    specs: dict[str, InterpreterSpec] = {}
    for name, entry in data.items():
        source = data[entry["same_as"]] if "same_as" in entry else entry
        specs[name] = InterpreterSpec(
            name=name,
            language=source["language"],
            code_options=_set(source, "code_options"),
            stop_options=_set(source, "stop_options"),
            options_with_arg=_set(source, "options_with_arg"),
            attached_only=_set(source, "attached_only"),
            digit_options=_set(source, "digit_options"),
            code_ends_options=bool(source.get("code_ends_options", False)),
            program_operand=bool(source.get("program_operand", False)),
            program_file_options=_set(source, "program_file_options"),
            stdin_marker=source.get("stdin_marker"),
        )
    return specs


def _candidates(data: dict[str, Any]) -> CandidateSpec:
    programs: dict[str, CandidateProgramSpec] = {}
    for entry in data.get("programs", {}).values():
        spec = CandidateProgramSpec(
            escape_options=_set(entry, "escape_options"),
            command_options=_set(entry, "command_options"),
            text_options=_set(entry, "text_options"),
            key_prefixes=tuple(entry.get("key_prefixes", ())),
            line_prefixes=tuple(entry.get("line_prefixes", ())),
            plus_option=bool(entry.get("plus_option", False)),
        )
        for name in entry["names"]:
            programs[name] = spec
    return CandidateSpec(
        escape_prefixes=tuple(data.get("escape_prefixes", ())),
        key_prefixes=tuple(data.get("key_prefixes", ())),
        code_options=_set(data, "code_options"),
        call_patterns=tuple(data.get("call_patterns", ())),
        key_patterns=tuple(data.get("key_patterns", ())),
        lisp_functions={name: dict(form) for name, form in data.get("lisp_functions", {}).items()},
        programs=programs,
        env_variables=_set(data, "env_variables"),
        env_value_prefixes=tuple(data.get("env_value_prefixes", ())),
        text_consumers=_set(data, "text_consumers"),
        known_programs=_set(data, "known_programs"),
        program_operands=_set(data, "program_operands"),
        exec_subcommands={name: frozenset(subs) for name, subs in data.get("exec_subcommands", {}).items()},
        pattern_operands=_set(data, "pattern_operands"),
        declarations=_set(data, "declarations"),
    )


def parse_programs(data: dict[str, Any]) -> Programs:
    """Build :class:`Programs` from the JSON document (exposed for tests that use a variant)."""
    shells = data["shells"]
    return Programs(
        wrappers={name: _wrapper(name, entry) for name, entry in data["wrappers"].items()},
        shells=ShellSpec(
            names=frozenset(shells["names"]),
            code_flag=shells["code_flag"],
            stdin_flag=shells["stdin_flag"],
            options_with_arg=_set(shells, "options_with_arg"),
        ),
        shell_builtins=dict(data["shell_builtins"]),
        stdin_shells={
            name: StdinShellSpec(_set(entry, "file_options"), _set(entry, "options_with_arg"))
            for name, entry in data.get("stdin_shells", {}).items()
        },
        interpreters=_interpreters(data["interpreters"]),
        command_functions={lang: dict(table) for lang, table in data["command_functions"].items()},
        decoders={
            name: DecoderSpec(entry["codec"], _set(entry, "decode_options"))
            for name, entry in data["decoders"].items()
        },
        producers=dict(data["producers"]),
        network_fetchers=frozenset(data["network_fetchers"]),
        file_writers={
            name: FileWriterSpec(
                operands=entry.get("operands"),
                options_with_arg=_set(entry, "options_with_arg"),
                output_options=_set(entry, "output_options"),
                output_keys=_set(entry, "output_keys"),
                url_name_flags=_set(entry, "url_name_flags"),
                directory_options=_set(entry, "directory_options"),
            )
            for name, entry in data["file_writers"].items()
        },
        candidates=_candidates(data["candidates"]),
        version_suffix=re.compile(data["interpreter_version_suffix"] + "$"),
    )


@cache
def load_programs(path: Path = DEFAULT_PATH) -> Programs:
    """The parsed data file; read once per path and cached for the life of the process."""
    with path.open(encoding="utf-8") as handle:
        return parse_programs(json.load(handle))
