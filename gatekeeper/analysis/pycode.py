"""Python code → the calls it makes, via the standard ``ast`` module (the code is never run).

CPython compiles the whole source before running any of it, so code that does not compile runs
nothing: its error is reported and no calls are. Otherwise every call is reported with its function
resolved through imports and simple aliases (``import shutil as s; s.copytree`` → ``shutil.copytree``,
``__import__('os').system`` → ``os.system``), a method on an object of unknown type as ``?.method``, and
its literal arguments (names bound once to a literal are followed; ``None`` where not literal). Calls
that run commands or code (the ``command_functions.python`` table of ``programs.json``) also yield a
:class:`PyCommand`: an argv, a command line for a shell, python code for ``exec``, or why it is unknown.
"""

from __future__ import annotations

import ast
import base64
import binascii
import builtins
import codecs
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

MAX_EXPRESSION_DEPTH = 30
MAX_TEXT = 300
_BUILTINS = frozenset(dir(builtins))


class _NotLiteral:
    """Marks a value that cannot be known statically."""


NOT_LITERAL: Any = _NotLiteral()


@dataclass(slots=True)
class PyCall:
    function: str
    args: list[Any]
    kwargs: dict[str, Any]
    text: str


@dataclass(slots=True)
class PyCommand:
    """A command or code that a call runs. Exactly one of ``argv``, ``shell``, ``code``, ``problem``
    is set; ``argv`` words are ``(value, known)`` pairs."""

    function: str
    text: str
    argv: list[tuple[str, bool]] | None = None
    shell: str | None = None
    code: str | None = None
    problem: str | None = None


@dataclass(slots=True)
class PythonFacts:
    calls: list[PyCall] = field(default_factory=list)
    commands: list[PyCommand] = field(default_factory=list)
    syntax_error: str | None = None


def analyse_python(source: str, command_functions: dict[str, str]) -> PythonFacts:
    """The calls in ``source`` and the commands they run; a syntax error instead when it does not compile."""
    try:
        # CPython warns about odd literals ("invalid decimal literal") while it still compiles the code:
        # the warnings are about the agent's code, not ours, and must not reach our log or become errors
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(source, "<string>", "exec")
            compile(tree, "<string>", "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        return PythonFacts(syntax_error=f"{type(error).__name__}: {error.msg}{where}")
    except (ValueError, RecursionError, MemoryError, OverflowError) as error:
        return PythonFacts(syntax_error=f"{type(error).__name__}: {error}")
    return _Module(source, tree, command_functions).analyse()


class _Module:
    def __init__(self, source: str, tree: ast.Module, command_functions: dict[str, str]) -> None:
        self.source = source
        self.lines = source.encode("utf-8", errors="surrogateescape").split(b"\n")
        self.tree = tree
        self.command_functions = command_functions
        self.imports: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.bindings: dict[str, list[ast.expr | None]] = defaultdict(list)
        self.defined: set[str] = set()
        self._collect_bindings()

    # -- bindings -------------------------------------------------------------------------------------

    def _collect_bindings(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.imports[top] = top
            elif isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name == "*":
                        self.star_modules.append(module)
                    else:
                        self.imports[alias.asname or alias.name] = f"{module}.{alias.name}"
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind_target(target, node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor | ast.comprehension):
                self._bind_target(node.target, None)
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                self._bind_target(node.optional_vars, None)
            elif isinstance(node, ast.NamedExpr):
                self._bind_target(node.target, None)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.defined.add(node.name)
            elif isinstance(node, ast.arg):
                self.bindings[node.arg].append(None)
            elif isinstance(node, ast.ExceptHandler) and node.name:
                self.bindings[node.name].append(None)
            elif isinstance(node, ast.Global | ast.Nonlocal):
                for name in node.names:
                    self.bindings[name].append(None)

    def _bind_target(self, target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            self.bindings[target.id].append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind_target(element, None)
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value, None)

    def _single_binding(self, name: str) -> ast.expr | None:
        values = self.bindings.get(name)
        if values is not None and len(values) == 1 and name not in self.imports:
            return values[0]
        return None

    # -- resolution -----------------------------------------------------------------------------------

    def resolve(self, node: ast.expr, depth: int = 0) -> str | None:
        """The dotted name an expression refers to, or None for an object of unknown type."""
        if depth > MAX_EXPRESSION_DEPTH:
            return None
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.imports:
                return self.imports[name]
            if name in self.bindings:
                value = self._single_binding(name)
                if isinstance(value, ast.Name | ast.Attribute) or (
                    isinstance(value, ast.Call) and self._import_call(value, depth + 1) is not None
                ):
                    return self.resolve(value, depth + 1)
                return None
            return name
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value, depth + 1)
            return None if base is None else f"{base}.{node.attr}"
        if isinstance(node, ast.Call):
            return self._import_call(node, depth + 1)
        return None

    def _import_call(self, node: ast.Call, depth: int) -> str | None:
        """``__import__('os')``, ``importlib.import_module('os')``, ``getattr(os, 'system')``."""
        if depth > MAX_EXPRESSION_DEPTH or not node.args:
            return None
        function = self.resolve(node.func, depth + 1)
        if function in ("__import__", "importlib.import_module"):
            name = self.literal(node.args[0], depth + 1)
            return name if isinstance(name, str) else None
        if function == "getattr" and len(node.args) >= 2:
            base = self.resolve(node.args[0], depth + 1)
            attribute = self.literal(node.args[1], depth + 1)
            if base is not None and isinstance(attribute, str):
                return f"{base}.{attribute}"
        return None

    def function_name(self, call: ast.Call) -> str:
        resolved = self.resolve(call.func)
        if resolved is None:
            if isinstance(call.func, ast.Attribute):
                return f"?.{call.func.attr}"
            return "?"
        if isinstance(call.func, ast.Name) and call.func.id == resolved and self.star_modules:
            for module in self.star_modules:
                if f"{module}.{resolved}" in self.command_functions:
                    return f"{module}.{resolved}"
        return resolved

    # -- literals -------------------------------------------------------------------------------------

    def literal(self, node: ast.expr, depth: int = 0) -> Any:
        """The value of ``node`` when it is built from literals only, else NOT_LITERAL."""
        if depth > MAX_EXPRESSION_DEPTH:
            return NOT_LITERAL
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            values = [self.literal(e, depth + 1) for e in node.elts]
            return NOT_LITERAL if any(v is NOT_LITERAL for v in values) else values
        if isinstance(node, ast.Dict):
            keys = [self.literal(k, depth + 1) if k is not None else NOT_LITERAL for k in node.keys]
            values = [self.literal(v, depth + 1) for v in node.values]
            if any(v is NOT_LITERAL for v in [*keys, *values]):
                return NOT_LITERAL
            return {str(k): v for k, v in zip(keys, values, strict=True)}
        if isinstance(node, ast.Name):
            if node.id in self.bindings and node.id not in self.imports:
                value = self._single_binding(node.id)
                return NOT_LITERAL if value is None else self.literal(value, depth + 1)
            return NOT_LITERAL
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                part = self.literal(
                    value.value if isinstance(value, ast.FormattedValue) else value, depth + 1
                )
                if part is NOT_LITERAL or (isinstance(value, ast.FormattedValue) and value.format_spec):
                    return NOT_LITERAL
                parts.append(part if isinstance(part, str) else str(part))
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.literal(node.left, depth + 1), self.literal(node.right, depth + 1)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            if isinstance(left, bytes) and isinstance(right, bytes):
                return left + right
            if isinstance(left, list) and isinstance(right, list):
                return left + right
            return NOT_LITERAL
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            value = self.literal(node.value, depth + 1)
            step = self.literal(node.slice.step, depth + 1) if node.slice.step else None
            if (
                isinstance(value, str | bytes)
                and step == -1
                and not node.slice.lower
                and not node.slice.upper
            ):
                return value[::-1]
            return NOT_LITERAL
        if isinstance(node, ast.Call):
            return self._literal_call(node, depth + 1)
        return NOT_LITERAL

    def _literal_call(self, node: ast.Call, depth: int) -> Any:
        """Decoding calls on literals: ``base64.b64decode``, ``bytes.fromhex``, ``.decode()``,
        ``codecs.decode(x, 'rot13')``, ``' '.join([...])``, ``chr(n)``."""
        if node.keywords:
            return NOT_LITERAL
        args = [self.literal(a, depth + 1) for a in node.args]
        if any(a is NOT_LITERAL for a in args):
            return NOT_LITERAL
        try:
            if isinstance(node.func, ast.Attribute):
                method = node.func.attr
                owner = self.resolve(node.func.value, depth + 1)
                if owner == "base64" and method in (
                    "b64decode",
                    "b32decode",
                    "b16decode",
                    "urlsafe_b64decode",
                ):
                    return getattr(base64, method)(args[0])
                if owner in ("bytes", "bytearray") and method == "fromhex":
                    return bytes.fromhex(args[0])
                if owner == "codecs" and method == "decode" and len(args) == 2:
                    return codecs.decode(args[0], args[1])
                if owner == "binascii" and method in ("unhexlify", "a2b_hex", "a2b_base64"):
                    return getattr(binascii, method)(args[0])
                receiver = self.literal(node.func.value, depth + 1)
                if isinstance(receiver, bytes) and method == "decode":
                    return receiver.decode(*args)
                if isinstance(receiver, str) and method == "encode":
                    return receiver.encode(*args)
                if isinstance(receiver, str) and method == "join" and isinstance(args[0], list):
                    return receiver.join(str(a) for a in args[0])
                if isinstance(receiver, str | bytes) and method in ("strip", "replace", "lower", "upper"):
                    return getattr(receiver, method)(*args)
            elif isinstance(node.func, ast.Name):
                function = self.resolve(node.func, depth + 1)
                if function == "chr":
                    return chr(args[0])
                if function == "compile" and isinstance(args[0], str | bytes):
                    return args[0]  # exec(compile(SOURCE, ...)) runs SOURCE
        except (ValueError, TypeError, LookupError, IndexError, binascii.Error, OverflowError):
            return NOT_LITERAL
        return NOT_LITERAL

    # -- calls ----------------------------------------------------------------------------------------

    def analyse(self) -> PythonFacts:
        facts = PythonFacts()
        calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]
        calls.sort(key=lambda n: (n.lineno, n.col_offset))
        for call in calls:
            function = self.function_name(call)
            args = [_jsonable(self.literal(a)) if not isinstance(a, ast.Starred) else None for a in call.args]
            kwargs = {k.arg: _jsonable(self.literal(k.value)) for k in call.keywords if k.arg is not None}
            text = self.text(call)
            facts.calls.append(PyCall(function, args, kwargs, text))
            form = self.command_functions.get(function)
            if form is not None:
                command = self._command(function, form, call, text)
                if command is not None:
                    facts.commands.append(command)
        return facts

    def text(self, node: ast.expr) -> str:
        end_line = node.end_lineno or node.lineno
        end_col = node.end_col_offset if node.end_col_offset is not None else len(self.lines[end_line - 1])
        if node.lineno == end_line:
            raw = self.lines[node.lineno - 1][node.col_offset : end_col]
        else:
            parts = [self.lines[node.lineno - 1][node.col_offset :]]
            parts.extend(self.lines[node.lineno : end_line - 1])
            parts.append(self.lines[end_line - 1][:end_col])
            raw = b"\n".join(parts)
        text = raw.decode("utf-8", errors="replace")
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."

    def _word(self, node: ast.expr) -> tuple[str, bool]:
        value = self.literal(node)
        if isinstance(value, str):
            return value, True
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace"), True
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value), True
        return _unparse(node), False

    def _words(self, node: ast.expr) -> list[tuple[str, bool]] | None:
        if isinstance(node, ast.List | ast.Tuple):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return None
            return [self._word(e) for e in node.elts]
        value = self.literal(node)
        if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
            return [(str(v), True) for v in value]
        return None

    def _command(self, function: str, form: str, call: ast.Call, text: str) -> PyCommand | None:
        args = [a for a in call.args if not isinstance(a, ast.Starred)]
        keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
        first = args[0] if args else keywords.get("args") or keywords.get("cmd")
        if first is None:
            return None
        command = PyCommand(function, text)
        if form in ("shell", "code"):
            self._string_form(command, form, first)
        elif form in ("subprocess", "pty_spawn"):
            self._subprocess_form(command, first, keywords.get("shell") if form == "subprocess" else None)
        elif form in ("exec_list", "spawn_list", "exec_args"):
            self._list_form(command, form, args)
        elif form in ("exec_vector", "spawn_vector", "posix_spawn"):
            self._vector_form(command, form, args)
        if (
            command.argv is None
            and command.shell is None
            and command.code is None
            and command.problem is None
        ):
            return None
        if command.argv is not None and not command.argv:
            return None
        return command

    def _string_form(self, command: PyCommand, form: str, first: ast.expr) -> None:
        """``os.system(CMD)`` (a command line) or ``exec(CODE)`` (python code)."""
        value = self.literal(first)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            if form == "shell":
                command.shell = value
            else:
                command.code = value
        elif value is NOT_LITERAL:
            what = "command line" if form == "shell" else "code"
            command.problem = f"{command.function} of a computed {what}"

    def _subprocess_form(self, command: PyCommand, first: ast.expr, shell: ast.expr | None) -> None:
        """``subprocess.run([...])`` runs an argv; a string runs through a shell when ``shell=True``
        (or a computed shell flag), else names a program. ``pty.spawn`` takes a list or a program."""
        words = self._words(first)
        value = self.literal(first)
        shell_value = self.literal(shell) if shell is not None else False
        if words is not None:
            command.argv = words
        elif isinstance(value, str) and shell_value is not False and shell is not None:
            command.shell = value
        elif isinstance(value, str):
            command.argv = [(value, True)]
        else:
            command.problem = f"{command.function} of a computed command"

    def _list_form(self, command: PyCommand, form: str, args: list[ast.expr]) -> None:
        """``os.execl(path, arg0, *args)``, ``os.spawnl(mode, path, arg0, *args)``,
        ``asyncio.create_subprocess_exec(program, *args)``: the program is the path, argv[0] aside."""
        positional = args[1:] if form == "spawn_list" else args
        if command.function.endswith("e") and form != "exec_args":
            positional = positional[:-1]  # the last argument is the environment
        if not positional:
            return
        rest = positional[1:] if form == "exec_args" else positional[2:]
        command.argv = [self._word(positional[0]), *(self._word(a) for a in rest)]

    def _vector_form(self, command: PyCommand, form: str, args: list[ast.expr]) -> None:
        """``os.execv(path, argv)``, ``os.spawnv(mode, path, argv)``, ``os.posix_spawn(path, argv, env)``."""
        skip = 1 if form == "spawn_vector" else 0
        if len(args) < skip + 2:
            return
        program = self._word(args[skip])
        words = self._words(args[skip + 1])
        if words is None:
            command.argv = [program, ("<computed arguments>", False)]
        else:
            command.argv = [program, *words[1:]]


def _unparse(node: ast.expr) -> str:
    try:
        return ast.unparse(node)
    except (ValueError, RecursionError):
        return "?"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Literal values as JSON-ready data (bytes as text, tuples/sets as lists); None when not literal."""
    if value is NOT_LITERAL or depth > MAX_EXPRESSION_DEPTH:
        return None
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return repr(value)
