"""Command lines in perl, ruby, node, php, lua and awk code, found by a small scanner.

These languages have no parser in the standard library, so only the literal cases are resolved: a call
of a function that runs commands (``system("kill 1")``, ``exec "/bin/sh"``, ``os.execute(...)``,
``child_process.execSync(...)``, awk's ``system(...)``, ``"cmd" | getline`` and ``print | "cmd"``;
perl/ruby/php backticks, ``qx{...}``, ``%x(...)``) whose arguments are string literals (concatenated
literals too) or an array of them. The scanner skips comments and strings so that a function name inside
a string is not a call; the function table per language is ``command_functions`` in ``programs.json``.
A call whose arguments are not literal is reported with a ``problem``: what it runs cannot be known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatekeeper.analysis.words import decode_escapes

MAX_TEXT = 300
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT_START | frozenset("0123456789")
_CLOSERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_DEFINITION_WORDS = frozenset({"def", "sub", "function", "fn", "local function"})


class _Dynamic:
    """An argument whose value is not a literal."""


DYNAMIC = _Dynamic()


@dataclass(slots=True)
class _Partial(_Dynamic):
    """A computed string that starts with a literal (``"kill " pid``): the literal part is kept."""

    prefix: str


# Stands for the computed rest of a partial command line, so that the shell walker marks it unknown.
COMPUTED_REST = "${__computed__}"
Value = str | int | float | list[str] | _Dynamic
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


@dataclass(slots=True)
class ScriptCall:
    """One call that runs a command: ``shell`` (a command line), ``argv`` (``(word, known)`` pairs),
    or ``problem`` when its arguments are not literal."""

    function: str
    text: str
    shell: str | None = None
    argv: list[tuple[str, bool]] | None = None
    problem: str | None = None
    # with a problem: the command line as far as it is known, the rest as COMPUTED_REST
    partial: str | None = None
    # form "call" (kill, Process.kill, ...): runs no command, reported with its literal arguments
    # (strings and numbers as written, None where not literal)
    args: list[object] | None = None


def scan_calls(language: str, code: str, functions: dict[str, str]) -> list[ScriptCall]:
    """Every call in ``code`` of a function of ``functions`` (name → form) that runs a command."""
    return _Scanner(language, code, functions).scan()


class _Scanner:
    def __init__(self, language: str, code: str, functions: dict[str, str]) -> None:
        self.language = language
        self.code = code
        self.functions = functions
        self.calls: list[ScriptCall] = []
        self.node_child_process = language != "node" or "child_process" in code

    # -- lexing ---------------------------------------------------------------------------------------

    def _comment_end(self, i: int) -> int | None:
        code, lang = self.code, self.language
        if code[i] == "#" and lang in ("perl", "ruby", "awk", "php", "generic"):
            if lang == "perl" and i > 0 and code[i - 1] == "$":
                return None
            end = code.find("\n", i)
            return len(code) if end < 0 else end
        if code.startswith("//", i) and lang in ("node", "php"):
            end = code.find("\n", i)
            return len(code) if end < 0 else end
        if code.startswith("/*", i) and lang in ("node", "php"):
            end = code.find("*/", i + 2)
            return len(code) if end < 0 else end + 2
        if code.startswith("--", i) and lang == "lua":
            end = code.find("\n", i)
            return len(code) if end < 0 else end
        return None

    def _string(self, i: int) -> tuple[Value, int]:
        """Read the string literal starting at ``i``; its value (or DYNAMIC) and the index after it."""
        code = self.code
        quote = code[i]
        j = i + 1
        raw: list[str] = []
        dynamic = False
        while j < len(code):
            ch = code[j]
            if ch == "\\" and j + 1 < len(code):
                raw.append(code[j : j + 2])
                j += 2
                continue
            if ch == quote:
                break
            if quote != "'" and self._interpolates(quote, j):
                dynamic = True
            raw.append(ch)
            j += 1
        body = "".join(raw)
        end = min(j + 1, len(code))
        if dynamic:
            return DYNAMIC, end
        if quote == "'" and self.language != "lua":
            return body.replace("\\\\", "\\").replace("\\'", "'"), end
        return decode_escapes(body, "ansi_c")[0], end

    def _interpolates(self, quote: str, j: int) -> bool:
        code, lang = self.code, self.language
        following = code[j + 1] if j + 1 < len(code) else ""
        if lang in ("perl", "php") and code[j] in "$@" and (following in _IDENT_START or following in "{:"):
            return not (lang == "php" and code[j] == "@")
        if lang == "ruby" and code.startswith("#{", j):
            return True
        return quote == "`" and code.startswith("${", j)

    def _delimited(self, i: int) -> tuple[str, int]:
        """``qx{...}``, ``%x(...)``: the text between the delimiter at ``i`` and its closer."""
        opener = self.code[i]
        closer = _CLOSERS.get(opener, opener)
        depth = 1
        j = i + 1
        while j < len(self.code):
            ch = self.code[j]
            if ch == "\\":
                j += 2
                continue
            if ch == closer and opener != closer:
                depth -= 1
                if depth == 0:
                    break
            elif ch == closer:
                break
            elif ch == opener:
                depth += 1
            j += 1
        return self.code[i + 1 : j], min(j + 1, len(self.code))

    def _skip_space(self, i: int) -> int:
        while i < len(self.code) and self.code[i] in " \t\r":
            i += 1
        return i

    # -- scanning -------------------------------------------------------------------------------------

    def scan(self) -> list[ScriptCall]:
        code = self.code
        i = 0
        while i < len(code):
            ch = code[i]
            comment_end = self._comment_end(i)
            if comment_end is not None:
                i = comment_end
                continue
            if ch == "`" and self.language in ("perl", "ruby", "php"):
                body, end = self._delimited(i)
                self._shell_literal("`", body, i, end)
                i = end
                continue
            if (
                ch == "%"
                and self.language == "ruby"
                and code.startswith("x", i + 1)
                and i + 2 < len(code)
                and code[i + 2] in "([{<|!/"
            ):
                body, end = self._delimited(i + 2)
                self._shell_literal("%x", body, i, end)
                i = end
                continue
            if ch in "'\"`":
                value, end = self._string(i)
                if self.language == "awk":
                    self._awk_getline(value, i, end)
                i = end
                continue
            if (
                ch == "|"
                and self.language == "awk"
                and not code.startswith("||", i)
                and (i == 0 or code[i - 1] != "|")
            ):
                self._awk_print_pipe(i)
                i += 1
                continue
            if ch in _IDENT_START and (i == 0 or (code[i - 1] not in _IDENT and code[i - 1] not in "$@%")):
                i = self._identifier(i)
                continue
            i += 1
        return self.calls

    def _identifier(self, start: int) -> int:
        code = self.code
        end = start
        while end < len(code) and (
            code[end] in _IDENT
            or (code[end] in ".:" and end + 1 < len(code) and code[end + 1] in _IDENT_START | {":"})
        ):
            end += 1
        name = code[start:end].replace("::", ".")
        if (
            self.language == "perl"
            and name == "qx"
            and end < len(code)
            and not code[end].isspace()
            and code[end] not in _IDENT
        ):
            body, after = self._delimited(end)
            self._shell_literal("qx", body, start, after)
            return after
        function, form = self._match(name)
        if function is None or form is None or self._is_definition(start):
            return end
        after_name = self._skip_space(end)
        if after_name < len(code) and code[after_name] == "(":
            values, close = self._arguments(after_name + 1, ")")
        elif (
            self.language in ("perl", "ruby", "generic")
            and after_name < len(code)
            and after_name > end
            and (code[after_name] in "'\"[$@" or (form == "call" and _bare_argument(code, after_name)))
        ):
            values, close = self._arguments(after_name, ";\n}")
        else:
            return end
        self._record(function, form, values, start, close)
        return close

    def _match(self, name: str) -> tuple[str | None, str | None]:
        if name in self.functions:
            return name, self.functions[name]
        last = name.rsplit(".", 1)[-1]
        if "." in name and last in self.functions and "." not in last:
            if self.language == "node" and not self.node_child_process:
                return None, None
            return last, self.functions[last]
        if self.language == "node" and name in self.functions and not self.node_child_process:
            return None, None
        return None, None

    def _is_definition(self, start: int) -> bool:
        before = self.code[max(0, start - 16) : start].rstrip()
        words = before.split()
        return bool(words) and words[-1] in _DEFINITION_WORDS

    def _arguments(self, i: int, closers: str) -> tuple[list[Value], int]:
        """Comma-separated literal arguments from ``i`` up to one of ``closers``."""
        code = self.code
        values: list[Value] = []
        while i < len(code):
            i = self._skip_space(i)
            if i >= len(code) or code[i] in closers:
                return values, min(i + 1, len(code))
            before = i
            value, i = self._argument(i, closers)
            values.append(value)
            i = self._skip_space(i)
            if i == before:
                # an unbalanced closer of another kind ("}" in "f(a}"): the arguments end here
                return values, i
            if i < len(code) and code[i] == ",":
                i += 1
            elif i < len(code) and code[i] in closers:
                return values, i + 1
        return values, len(code)

    def _argument(self, i: int, closers: str) -> tuple[Value, int]:
        code = self.code
        parts: list[str] = []
        prefix: str | None = None  # the literal text before the first computed part
        dynamic = False
        while i < len(code):
            i = self._skip_space(i)
            if i >= len(code):
                break
            ch = code[i]
            if ch in "'\"" or (ch == "`" and self.language == "node"):
                value, i = self._string(i)
                if isinstance(value, str):
                    parts.append(value)
                else:
                    prefix = "".join(parts) if prefix is None and not dynamic else prefix
                    dynamic = True
            elif not parts and not dynamic and (number := _NUMBER.match(code, i)) is not None:
                i = self._skip_space(number.end())
                if i >= len(code) or code[i] == "," or code[i] in closers:
                    literal = number.group()
                    return (float(literal) if "." in literal else int(literal)), i
                dynamic = True
                prefix = ""
                i = self._skip_expression(i, closers)
                break
            elif ch == "[" and not parts:
                items, i = self._arguments(i + 1, "]")
                if all(isinstance(item, str) for item in items):
                    return [item for item in items if isinstance(item, str)], i
                return DYNAMIC, i
            else:
                prefix = "".join(parts) if prefix is None and not dynamic else prefix
                dynamic = True
                i = self._skip_expression(i, closers)
            i = self._skip_space(i)
            # literal concatenation: perl/php ".", node/ruby "+", lua "..", awk juxtaposition
            for operator in ("..", ".", "+"):
                if code.startswith(operator, i) and self.language != "awk":
                    i += len(operator)
                    break
            else:
                if not (self.language == "awk" and i < len(code) and code[i] == '"'):
                    break
        if i < len(code) and code[i] != "," and code[i] not in closers:
            # more follows the literal (awk "kill " pid, an operator on a variable): not a literal
            prefix = "".join(parts) if prefix is None and not dynamic else prefix
            dynamic = True
            i = self._skip_expression(i, closers)
        if dynamic and prefix:
            return _Partial(prefix), i
        if dynamic or not parts:
            return DYNAMIC, i
        return "".join(parts), i

    def _skip_expression(self, i: int, closers: str) -> int:
        """Skip a non-literal expression up to the next top-level comma or closer."""
        code = self.code
        depth = 0
        while i < len(code):
            ch = code[i]
            if ch in "'\"`":
                _, i = self._string(i)
                continue
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                if depth == 0:
                    return i
                depth -= 1
            elif depth == 0 and (ch == "," or ch in closers):
                return i
            i += 1
        return i

    # -- recording ------------------------------------------------------------------------------------

    def _text(self, start: int, end: int) -> str:
        text = self.code[start:end]
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."

    def _shell_literal(self, function: str, body: str, start: int, end: int) -> None:
        text = self._text(start, end)
        if self._body_interpolates(body):
            self.calls.append(ScriptCall(function, text, problem=f"{function} of a computed command"))
        else:
            self.calls.append(ScriptCall(function, text, shell=body))

    def _body_interpolates(self, body: str) -> bool:
        if self.language == "ruby":
            return "#{" in body
        return any(
            body[k] in "$@" and k + 1 < len(body) and (body[k + 1] in _IDENT_START or body[k + 1] == "{")
            for k in range(len(body))
            if k == 0 or body[k - 1] != "\\"
        )

    def _record(self, function: str, form: str, values: list[Value], start: int, end: int) -> None:
        text = self._text(start, end)
        call = ScriptCall(function, text)
        strings = [v for v in values if isinstance(v, str)]
        if form == "none" or not values:
            return
        if form == "call":
            call.args = [_literal(v) for v in values]
            self.calls.append(call)
            return
        if form == "perl_open":
            self._perl_open(call, values)
            return
        if form == "shell":
            if isinstance(values[0], str):
                call.shell = values[0]
            else:
                call.problem = f"{function} of a computed command"
                if isinstance(values[0], _Partial):
                    call.partial = values[0].prefix + COMPUTED_REST
        elif form == "shell_or_argv":
            if len(values) == 1 and isinstance(values[0], str):
                call.shell = values[0]
            elif len(values) == 1 and isinstance(values[0], list):
                call.argv = [(w, True) for w in values[0]]
            elif len(strings) == len(values):
                call.argv = [(w, True) for w in strings]
            else:
                call.problem = f"{function} of a computed command"
                if len(values) == 1 and isinstance(values[0], _Partial):
                    call.partial = values[0].prefix + COMPUTED_REST
        elif form == "program_argv":
            if not isinstance(values[0], str):
                call.problem = f"{function} of a computed program"
            else:
                argv = [(values[0], True)]
                if len(values) > 1 and isinstance(values[1], list):
                    argv.extend((w, True) for w in values[1])
                elif len(values) > 1 and isinstance(values[1], _Dynamic):
                    argv.append(("<computed arguments>", False))
                call.argv = argv
        else:
            return
        self.calls.append(call)

    def _perl_open(self, call: ScriptCall, values: list[Value]) -> None:
        if len(values) >= 3 and values[1] in ("-|", "|-"):
            rest = values[2:]
            if len(rest) == 1 and isinstance(rest[0], str):
                call.shell = rest[0]
            elif all(isinstance(v, str) for v in rest):
                call.argv = [(v, True) for v in rest if isinstance(v, str)]
            else:
                call.problem = "open of a computed command"
        elif (
            len(values) == 2
            and isinstance(values[1], str)
            and (values[1].strip().startswith("|") or values[1].strip().endswith("|"))
        ):
            call.shell = values[1].strip().strip("|")
        else:
            return
        self.calls.append(call)

    def _awk_getline(self, value: Value, start: int, end: int) -> None:
        code = self.code
        i = self._skip_space(end)
        if code.startswith("|", i) and not code.startswith("||", i):
            j = self._skip_space(i + 1)
            if code.startswith("getline", j) and "getline" in self.functions:
                text = self._text(start, j + 7)
                if isinstance(value, str):
                    self.calls.append(ScriptCall("getline", text, shell=value))
                else:
                    self.calls.append(ScriptCall("getline", text, problem="getline from a computed command"))

    def _awk_print_pipe(self, i: int) -> None:
        code = self.code
        j = self._skip_space(i + 1)
        if "print |" not in self.functions or code.startswith("getline", j):
            return
        line_start = code.rfind("\n", 0, i) + 1
        statement = code[line_start:i]
        if "print" not in statement:
            return
        if j < len(code) and code[j] == '"':
            value, end = self._argument(j, ";}\n")
            text = self._text(i, end)
            if isinstance(value, str):
                self.calls.append(ScriptCall("print |", text, shell=value))
            else:
                self.calls.append(ScriptCall("print |", text, problem="print to a computed command"))
        else:
            end = self._skip_expression(j, ";}\n")
            self.calls.append(
                ScriptCall("print |", self._text(i, end), problem="print to a computed command")
            )


def _bare_argument(code: str, i: int) -> bool:
    """``kill 9, $pid``, ``kill -9, $pid``, ``kill KILL => $pid``: a call without parentheses."""
    return code[i].isalnum() or (code[i] in "-_" and not code.startswith("-=", i))


def _literal(value: Value) -> object:
    if isinstance(value, _Dynamic):
        return None
    return value
