"""The analysis of one tool call: ties the passes together and accumulates the facts.

:class:`Analysis` is the :class:`~gatekeeper.analysis.shell.Runner` the shell walker reports to. For
each simple command it emits a :class:`~gatekeeper.analysis.facts.Command`, then follows what that
command runs in turn: the command a wrapper runs (:mod:`unwrap`), shell or interpreter code
(:mod:`nesting`, :mod:`payloads`, :mod:`pycode`, :mod:`scripts`), a shell function's body, a trap
handler, a file written earlier in the call, and candidate command lines in its arguments
(:mod:`candidates`). Whatever would run but cannot be known becomes an ``opaque`` fact. Limits: nesting
depth (``max_depth`` via layers, and statement nesting), and a budget of commands per call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from tree_sitter import Node

from gatekeeper.analysis.candidates import find_candidates
from gatekeeper.analysis.facts import ApiCall, Command, Facts, Opaque, Via
from gatekeeper.analysis.nesting import Embedded, embedded_code
from gatekeeper.analysis.paths import absolute, operand_paths
from gatekeeper.analysis.payloads import command_output, encode, pipe_output, stdin_data
from gatekeeper.analysis.programs import (
    CandidateProgramSpec,
    FileWriterSpec,
    Programs,
    load_programs,
    program_name,
)
from gatekeeper.analysis.pycode import analyse_python
from gatekeeper.analysis.scope import FunctionDef, Scope, resolve_directory
from gatekeeper.analysis.scripts import scan_calls
from gatekeeper.analysis.shell import (
    MAX_NESTING,
    WRITE_OPS,
    Context,
    Produced,
    SimpleCommand,
    Stdin,
    Walker,
    items_in_arguments,
    parse_repaired,
)
from gatekeeper.analysis.textscan import command_lines, looks_like_command, plausible_program
from gatekeeper.analysis.unwrap import unwrap
from gatekeeper.analysis.words import Arg, Output

# Commands per call beyond which the analysis stops (a function called in a loop of itself, a huge script).
MAX_COMMANDS = 5000
# Command lines found as literal text (:mod:`textscan`) analysed per call; the rest are not.
MAX_TEXT_CANDIDATES = 64
# File names under which a program reads its own standard input.
STDIN_FILES = frozenset({"/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
# Written files that are read by people, not loaded by programs: command lines in them are not looked for.
DOCUMENT_SUFFIXES = (".md", ".markdown", ".txt", ".rst", ".adoc", ".log", ".csv", ".tsv", ".html", ".htm")
_PURE_REFERENCE = re.compile(r"^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$|^\"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?\"$")


class _Text(NamedTuple):
    """A text of a command that may hold command lines (see :meth:`Analysis.text_candidates`)."""

    via_name: str
    text: str
    skip_start: bool = False
    only_after: str = ""


@dataclass(slots=True)
class _Written:
    """A file written earlier in the call; ``content`` when it is known."""

    content: str | None


class Analysis:
    """Accumulates the facts of one call; one instance per call, not thread-safe."""

    def __init__(self, tool: str, home: str | None, max_depth: int, programs: Programs | None = None) -> None:
        self.facts = Facts(tool=tool)
        self.home = home
        self.max_depth = max_depth
        self.programs = programs or load_programs()
        self._pipeline_ids = 0
        self._nesting = 0
        self._nesting_reported = False
        self._budget_reported = False
        self._parse_errors: set[str] = set()
        self._candidate_texts: set[str] = set()
        self._text_candidates = 0
        self._scan_later: list[tuple[str, str, str | None]] = []
        self.written: dict[str, _Written] = {}
        self._executed: set[str] = set()

    # -- facts ----------------------------------------------------------------------------------------

    def opaque(self, reason: str, detail: str, text: str, ctx: Context) -> None:
        self.facts.opaque.append(Opaque(reason, detail, text, list(ctx.via)))

    def _deeper_than_allowed(self, ctx: Context, text: str) -> bool:
        if len(ctx.via) <= self.max_depth:
            return False
        outer = Context(ctx.via[: self.max_depth], ctx.language, ctx.candidate)
        self.opaque("too_deep", f"nesting deeper than {self.max_depth} layers is not analysed", text, outer)
        return True

    # -- texts ----------------------------------------------------------------------------------------

    def shell(self, text: str, ctx: Context, scope: Scope) -> None:
        """Analyse shell source found in ``ctx``."""
        if self._deeper_than_allowed(ctx, text):
            return
        tree = parse_repaired(encode(text))
        src = tree.root_node.text or b""
        Walker(self, src, ctx, self.home).walk(tree.root_node, scope)

    def python(self, code: str, ctx: Context, cwd: str | None) -> None:
        """Analyse python source run in ``ctx`` (the via layers lead to the interpreter)."""
        if self._deeper_than_allowed(ctx, code):
            return
        result = analyse_python(code, self.programs.command_functions.get("python", {}))
        if result.syntax_error is not None:
            self.facts.syntax_errors.append(result.syntax_error)
            return
        for call in result.calls:
            self.facts.api_calls.append(
                ApiCall("python", call.function, call.args, call.kwargs, list(ctx.via), call.text)
            )
        for command in result.commands:
            inner = ctx.enter("interpreter", f"python:{command.function}", "python")
            if command.problem is not None:
                self.opaque("dynamic_interpreter_code", command.problem, command.text, ctx)
            elif command.shell is not None:
                self.shell(command.shell, inner, Scope(cwd=cwd, home=self.home))
            elif command.code is not None:
                self.python(command.code, inner, cwd)
            elif command.argv:
                self.argv([Arg(value, known) for value, known in command.argv], inner, cwd, command.text)

    def script(self, language: str, code: str, ctx: Context, cwd: str | None) -> None:
        """Analyse perl/ruby/node/php/lua/awk code for the literal commands it runs."""
        if self._deeper_than_allowed(ctx, code):
            return
        table = self.programs.command_functions.get(language, {})
        for call in scan_calls(language, code, table):
            literal: list[object] = []
            if call.args is not None:
                # a call that runs no command (kill): a fact for the policies, nothing to follow
                self.facts.api_calls.append(
                    ApiCall(language, call.function, call.args, {}, list(ctx.via), call.text)
                )
                continue
            if call.shell is not None:
                literal = [call.shell]
            elif call.argv is not None:
                literal = [[word for word, _ in call.argv]]
            self.facts.api_calls.append(
                ApiCall(language, call.function, literal, {}, list(ctx.via), call.text)
            )
            inner = ctx.enter("interpreter", f"{language}:{call.function}", language)
            if call.problem is not None:
                self.opaque("dynamic_interpreter_code", call.problem, call.text, ctx)
                if call.partial is not None:
                    # best effort, as for a partly known bash -c string: the known words still count
                    self.shell(call.partial, inner, Scope(cwd=cwd, home=self.home))
            elif call.shell is not None:
                self.shell(call.shell, inner, Scope(cwd=cwd, home=self.home))
            elif call.argv:
                self.argv([Arg(value, known) for value, known in call.argv], inner, cwd, call.text)

    def argv(self, args: list[Arg], ctx: Context, cwd: str | None, text: str) -> None:
        """A command given as a word list by interpreter code (``subprocess.run([...])``)."""
        src = encode(text)
        command = SimpleCommand(args, [], [], None, False, None, src, 0, len(src), affects_scope=False)
        self.run_simple(command, Scope(cwd=cwd, home=self.home), ctx)

    # -- Runner protocol ------------------------------------------------------------------------------

    def next_pipeline_id(self) -> int:
        self._pipeline_ids += 1
        return self._pipeline_ids - 1

    def enter_nesting(self, text: str, ctx: Context) -> bool:
        if self._nesting >= MAX_NESTING:
            if not self._nesting_reported:
                self._nesting_reported = True
                self.opaque(
                    "too_deep", f"statements nested deeper than {MAX_NESTING} are not analysed", text, ctx
                )
            return False
        self._nesting += 1
        return True

    def leave_nesting(self) -> None:
        self._nesting -= 1

    def report_too_deep(self, detail: str, text: str, ctx: Context) -> None:
        self.opaque("too_deep", detail, text, ctx)

    def report_parse_error(self, detail: str, text: str, ctx: Context) -> None:
        if text not in self._parse_errors:
            self._parse_errors.add(text)
            self.opaque("parse_error", detail, text, ctx)

    def run_substitution(self, node: Node, src: bytes, scope: Scope, ctx: Context) -> Output:
        if node.type == "command_substitution":
            opener = src[node.start_byte : node.start_byte + 1]
            inner_ctx = ctx.enter("substitution", "``" if opener == b"`" else "$()")
        else:
            first = node.children[0].type if node.children else "<("
            inner_ctx = ctx.enter("process_substitution", f"{first.strip()})")
        text = src[node.start_byte : node.end_byte].decode("utf-8", errors="replace")
        if self._deeper_than_allowed(inner_ctx, text):
            return Output(problem="nested too deeply")
        walker = Walker(self, src, inner_ctx, self.home)
        chain = walker.walk_substitution(node, scope.copy())
        return pipe_output(chain, self.programs)

    def run_function(self, definition: FunctionDef, scope: Scope, ctx: Context) -> None:
        inner = ctx.enter("function", definition.name)
        if self._deeper_than_allowed(inner, definition.name):
            return
        Walker(self, definition.src, inner, self.home).walk_function_body(definition.body, scope)

    def run_simple(self, command: SimpleCommand, scope: Scope, ctx: Context) -> Command | None:
        env = {name: value.value for name, value in command.assignments}
        emitted = self.emit(command.args, command, ctx, scope.cwd, env)
        if emitted is None:
            return None
        self.follow(emitted, command.args, command, scope, ctx, env, command.stdin, command.affects_scope)
        self.record_writes(emitted, command.args, command.stdin)
        return emitted

    # -- commands -------------------------------------------------------------------------------------

    def emit(
        self, args: list[Arg], simple: SimpleCommand, ctx: Context, cwd: str | None, env: dict[str, str]
    ) -> Command | None:
        text = self._text(args, simple)
        if self._deeper_than_allowed(ctx, text):
            return None
        if len(self.facts.commands) >= MAX_COMMANDS:
            if not self._budget_reported:
                self._budget_reported = True
                self.opaque(
                    "too_large", f"more than {MAX_COMMANDS} commands; the rest is not analysed", text, ctx
                )
            return None
        first = args[0]
        program = first.value
        name = program_name(program) if first.known else program
        command = Command(
            index=len(self.facts.commands),
            program=program,
            name=name,
            argv=[a.value for a in args],
            paths=operand_paths(args, cwd, self.home),
            dynamic=[i for i, a in enumerate(args) if not a.known],
            redirects=list(simple.redirects),
            background=simple.background,
            pipeline=simple.pipeline,
            via=list(ctx.via),
            depth=len(ctx.via),
            cwd=cwd,
            env=dict(env),
            language=ctx.language,
            candidate=ctx.candidate,
            text=text,
        )
        self.facts.commands.append(command)
        self._check_program(first, text, ctx)
        return command

    def _check_program(self, first: Arg, text: str, ctx: Context) -> None:
        origin = first.origin
        if first.remote or (origin is not None and origin.remote is not None):
            fetcher = origin.remote if origin is not None and origin.remote else "a network fetcher"
            self.opaque("remote_code", f"the program name comes from the output of {fetcher}", text, ctx)
        elif origin is not None:
            resolved = f" (resolved to {first.value!r})" if first.known else ""
            self.opaque(
                "computed_program", f"the program name comes from a substitution{resolved}", text, ctx
            )
        elif not first.known:
            self.opaque("computed_program", f"the program name {first.value} is not known", text, ctx)
        elif first.glob:
            self.opaque("computed_program", f"the program name {first.value} is a glob pattern", text, ctx)

    @staticmethod
    def _text(args: list[Arg], simple: SimpleCommand) -> str:
        start = args[0].start
        if 0 <= start < simple.end and simple.end <= len(simple.src):
            return simple.src[start : simple.end].decode("utf-8", errors="replace")
        return " ".join(a.value for a in args)

    def follow(
        self,
        command: Command,
        args: list[Arg],
        simple: SimpleCommand,
        scope: Scope,
        ctx: Context,
        env: dict[str, str],
        stdin: Stdin | None,
        affects_scope: bool,
    ) -> None:
        """Everything ``command`` runs besides itself."""
        if not args[0].known:
            return
        name = command.name
        function = scope.functions.get(name) if "/" not in command.program else None
        if function is not None:
            if not any(v.kind == "function" and v.name == name for v in ctx.via):
                self.run_function(function, scope, ctx)
            return
        if affects_scope and name in ("cd", "pushd", "popd"):
            self._change_directory(name, args, scope)
        if name == "trap":
            self._trap(args, command, scope, ctx)
        spec = self.programs.wrapper(name)
        if spec is not None:
            self._unwrap(spec.name, args, command, simple, scope, ctx, env, stdin, affects_scope)
        embedded = embedded_code(name, args, self.programs)
        if embedded is not None:
            self._embedded(embedded, command, scope, ctx, env, stdin)
        elif "/" in command.program:
            self._exec_written(command.program, "shell", command, ctx, scope)
        if not ctx.candidate:
            self._candidates(command, args, env, stdin, ctx)

    def _unwrap(
        self,
        wrapper: str,
        args: list[Arg],
        command: Command,
        simple: SimpleCommand,
        scope: Scope,
        ctx: Context,
        env: dict[str, str],
        stdin: Stdin | None,
        affects_scope: bool,
    ) -> None:
        spec = self.programs.wrappers[wrapper]
        for layer in unwrap(spec, args):
            inner_ctx = ctx.enter(layer.via.kind, layer.via.name, command=command.index)
            remote = layer.via.kind == "remote"
            cwd = None if remote else command.cwd
            if layer.cwd is not None:
                cwd = resolve_directory(layer.cwd.value if layer.cwd.known else None, cwd)
            inner_env = {**env, **layer.env}
            if layer.code is not None:
                child = Scope(home=None) if remote else scope.child(inner_env)
                child.cwd = cwd
                self._shell_code(layer.code, inner_ctx, child, ctx, command.text)
            if layer.args:
                inner_simple = SimpleCommand(
                    layer.args,
                    [],
                    simple.redirects,
                    stdin,
                    simple.background,
                    simple.pipeline,
                    simple.src,
                    simple.start,
                    simple.end,
                    affects_scope,
                )
                inner = self.emit(layer.args, inner_simple, inner_ctx, cwd, inner_env)
                if inner is not None:
                    keeps_scope = affects_scope and wrapper in ("command", "builtin")
                    inner_scope = scope if keeps_scope else scope.child(inner_env)
                    inner_scope.cwd = cwd
                    self.follow(
                        inner, layer.args, inner_simple, inner_scope, inner_ctx, inner_env, stdin, keeps_scope
                    )

    # -- builtins that change the state ---------------------------------------------------------------

    def _change_directory(self, name: str, args: list[Arg], scope: Scope) -> None:
        operands = [a for a in args[1:] if not (a.known and a.value.startswith("-") and a.value != "-")]
        target = operands[0] if operands else None
        if name == "popd":
            scope.cwd = scope.dirstack.pop() if scope.dirstack else None
            return
        if name == "pushd":
            if target is None:
                if scope.dirstack:
                    scope.dirstack[-1], scope.cwd = scope.cwd, scope.dirstack[-1]
                else:
                    scope.cwd = None
                return
            scope.dirstack.append(scope.cwd)
        if target is None:
            scope.change_directory(self.home)
        elif target.known and target.value == "-":
            scope.cwd, scope.oldpwd = scope.oldpwd, scope.cwd
        elif target.known and not target.value.startswith("+"):
            scope.change_directory(target.value)
        else:
            scope.change_directory(None)

    def _trap(self, args: list[Arg], command: Command, scope: Scope, ctx: Context) -> None:
        if len(args) < 3 or (args[1].known and args[1].value in ("-l", "-p", "-", "--")):
            return
        handler = args[1]
        if handler.known and not handler.value.strip():
            return
        signals = " ".join(a.value for a in args[2:])
        inner = ctx.enter("trap", f"trap {signals}", command=command.index)
        self._shell_code(handler, inner, scope.copy(), ctx, command.text)

    # -- nested code ----------------------------------------------------------------------------------

    def _shell_code(self, code: Arg, inner: Context, scope: Scope, outer: Context, text: str) -> None:
        """Shell code given as a word: analysed when known; opaque (and best effort) when not."""
        if code.known:
            self.shell(code.value, inner, scope)
            return
        if code.item is not None and items_in_arguments(code.value, code.item):
            # find -exec sh -c 'gzip {}': the placeholder is only ever a file name argument
            self.shell(code.value, inner.with_item(code.item), scope)
            return
        reason = "remote_code" if code.remote else "dynamic_eval"
        name = inner.via[-1].name if inner.via else "a shell"
        self.opaque(reason, f"{name} runs a command line that is not known: {code.value}", text, outer)
        if code.origin is None and not _PURE_REFERENCE.match(code.value):
            self.shell(code.value, inner, scope)

    def _embedded(
        self,
        embedded: Embedded,
        command: Command,
        scope: Scope,
        ctx: Context,
        env: dict[str, str],
        stdin: Stdin | None,
    ) -> None:
        language = embedded.language
        is_shell = language == "shell"
        same_shell = embedded.program in self.programs.shell_builtins
        if embedded.source == "argument" and embedded.code is not None:
            if is_shell:
                inner = ctx.enter("shell", embedded.name, command=command.index)
                child = scope if same_shell else scope.child(env)
                self._shell_code(embedded.code, inner, child, ctx, command.text)
            else:
                self._interpreter_code(language, embedded.code, ctx, command)
        elif embedded.source == "stdin":
            self._stdin_code(embedded, command, scope, ctx, env, stdin)
        elif embedded.source == "file" and embedded.code is not None:
            if embedded.code.known and embedded.code.value in STDIN_FILES:
                # bash /dev/stdin, source /dev/stdin: the code is what comes in on standard input
                self._stdin_code(embedded, command, scope, ctx, env, stdin)
            else:
                self._file_code(embedded, command, scope, ctx, env)

    def _interpreter_code(self, language: str, code: Arg, ctx: Context, command: Command) -> None:
        if not code.known:
            reason = "remote_code" if code.remote else "dynamic_interpreter_code"
            self.opaque(reason, f"{command.name} runs {language} code that is not known", command.text, ctx)
            return
        self._run_code(language, code.value, ctx, command.cwd)

    def _run_code(self, language: str, code: str, ctx: Context, cwd: str | None) -> None:
        if language == "python":
            self.python(code, ctx, cwd)
        else:
            self.script(language, code, ctx, cwd)

    def _stdin_code(
        self,
        embedded: Embedded,
        command: Command,
        scope: Scope,
        ctx: Context,
        env: dict[str, str],
        stdin: Stdin | None,
    ) -> None:
        """A shell or interpreter reading its code from standard input."""
        if stdin is None:
            return
        is_shell = embedded.language == "shell"
        unknown_reason = "dynamic_eval" if is_shell else "dynamic_interpreter_code"
        if stdin.kind in ("heredoc", "herestring") and stdin.body is not None:
            operator = "<<" if stdin.kind == "heredoc" else "<<<"
            inner = (
                ctx.enter("shell", f"{embedded.program} {operator}", command=command.index)
                if is_shell
                else ctx
            )
            if is_shell:
                self._shell_code(stdin.body, inner, scope.child(env), ctx, command.text)
            else:
                self._interpreter_code(embedded.language, stdin.body, ctx, command)
            return
        if stdin.kind == "file" and stdin.path is not None and stdin.path.origin is None:
            path = absolute(stdin.path.value, command.cwd, self.home) if stdin.path.known else None
            if path is not None and path in self.written:
                self._exec_written(path, embedded.language, command, ctx, scope)
            return
        output = stdin_data(stdin, self.programs)
        if output is None:
            return
        self._payload(output, embedded, command, scope, ctx, env, unknown_reason)

    def _payload(
        self,
        output: Output,
        embedded: Embedded,
        command: Command,
        scope: Scope,
        ctx: Context,
        env: dict[str, str],
        unknown_reason: str,
    ) -> None:
        text = output.text
        if text is not None:
            steps = output.steps
            layers = [Via("payload", s) for s in steps[1:]] or [
                Via("payload", steps[0] if steps else "stdin")
            ]
            inner = Context((*ctx.via, *layers), ctx.language, ctx.candidate)
            if embedded.language == "shell":
                self.shell(text, Context(inner.via, "shell", ctx.candidate), scope.child(env))
            else:
                self._run_code(embedded.language, text, inner, command.cwd)
            return
        if output.remote is not None:
            self.opaque(
                "remote_code", f"{command.name} runs code fetched by {output.remote}", command.text, ctx
            )
        elif output.undecodable:
            self.opaque(
                "undecodable_payload", output.problem or "the payload cannot be decoded", command.text, ctx
            )
        else:
            detail = f"{command.name} runs code it reads from a pipe: {output.problem or 'unknown data'}"
            self.opaque(unknown_reason, detail, command.text, ctx)

    def _file_code(
        self, embedded: Embedded, command: Command, scope: Scope, ctx: Context, env: dict[str, str]
    ) -> None:
        """A script file operand (``bash x.sh``, ``source x``, ``python3 <(...)``)."""
        path_arg = embedded.code
        if path_arg is None:
            return
        is_source = embedded.program in self.programs.shell_builtins
        if path_arg.origin is not None:
            unknown = "dynamic_eval" if embedded.language == "shell" else "dynamic_interpreter_code"
            shell_scope = scope if is_source else scope.child(env)
            self._payload(path_arg.origin, embedded, command, shell_scope, ctx, env, unknown)
            return
        # source FILE is like bash FILE: the content of a file is looked at when a call writes it
        path = absolute(path_arg.value, command.cwd, self.home) if path_arg.known else None
        if path is not None and path in self.written:
            self._exec_written(path, embedded.language, command, ctx, scope)

    def _exec_written(
        self, program: str, language: str, command: Command, ctx: Context, scope: Scope
    ) -> None:
        path = absolute(program, command.cwd, self.home)
        written = self.written.get(path) if path is not None else None
        if path is None or written is None:
            return
        self.opaque("exec_written_file", f"runs {path}, written earlier in the same call", command.text, ctx)
        self._executed.add(path)
        content = written.content
        if content is None:
            return
        interpreter = _shebang_interpreter(content)
        if interpreter is not None:
            spec = self.programs.interpreter(interpreter)
            if spec is not None:
                language = spec.language
            elif self.programs.is_shell(interpreter):
                language = "shell"
        inner = ctx.enter(
            "shell" if language == "shell" else "interpreter",
            f"{command.name} {path}",
            language,
            command=command.index,
        )
        if language == "shell":
            self.shell(content, inner, scope.child(command.env))
        else:
            self._run_code(language, content, ctx, command.cwd)

    def written_scripts(self) -> None:
        """Files this call writes but does not run: the commands in them are candidates.

        A later call (``nohup bash guard.sh &``, ``bundle install`` reading a Gemfile) would run them
        where nothing can be seen any more, so what they would run is reported now, as candidates
        through ``written script PATH`` (a shell script) or ``written file PATH`` (any other file).
        """
        for path, written in list(self.written.items()):
            if path in self._executed or written.content is None:
                continue
            self.script_candidates(
                path, written.content, Scope(cwd=path.rsplit("/", 1)[0] or "/", home=self.home)
            )
        for target, text, cwd in self._scan_later:
            self.script_candidates(target, text, Scope(cwd=cwd, home=self.home))

    def script_candidates(self, path: str, content: str, scope: Scope) -> None:
        """A shell script written and not run is analysed whole; any other file (a Gemfile, a playbook,
        an rc file a program loads) for the command lines written in it."""
        if content in self._candidate_texts:
            return
        self._candidate_texts.add(content)
        if _is_shell_script(path, content, self.programs):
            self.shell(
                content, Context((Via("argument", f"written script {path}"),), "shell", candidate=True), scope
            )
        elif not path.lower().endswith(DOCUMENT_SUFFIXES):
            self.text_candidates(f"written file {path}", content, Context(), scope)

    # -- files written in the call --------------------------------------------------------------------

    def record_writes(self, command: Command, args: list[Arg], stdin: Stdin | None) -> None:
        """Remember files this command writes (redirections, tee, cp, curl -o...) and their content."""
        content: str | None = None
        produced = Produced(command.name if args[0].known else None, args, stdin)
        if command.name in self.programs.producers or command.name in self.programs.decoders:
            piped = (
                pipe_output(stdin.producers, self.programs)
                if stdin is not None and stdin.kind == "pipe"
                else None
            )
            content = command_output(produced, piped, self.programs).text
        # what echo/printf write, as written even where an expansion is unknown, to look for command lines
        scanned = content if content is not None else _written_words(produced, self.programs)
        for redirect in command.redirects:
            if redirect.op not in WRITE_OPS or redirect.fd not in (None, 1):
                continue
            if redirect.op == ">&" and redirect.target is not None and redirect.target.isdigit():
                continue
            if redirect.target_abs is None or content is None:
                # a file named at run time ($TF/Gemfile), or content with a part known only at run time
                if scanned is not None and redirect.target is not None:
                    self._scan_later.append((redirect.target_abs or redirect.target, scanned, command.cwd))
                if redirect.target_abs is None:
                    continue
            previous = self.written.get(redirect.target_abs)
            if redirect.op in (">>", "&>>") and previous is not None:
                joined = (
                    previous.content + content
                    if previous.content is not None and content is not None
                    else None
                )
                self.written[redirect.target_abs] = _Written(joined)
            else:
                self.written[redirect.target_abs] = _Written(content)
        writer = self.programs.file_writers.get(command.name)
        if writer is None:
            return
        words = command.argv[1:]
        targets: list[str] = []
        operands = [w for w in words if not w.startswith("-")]
        if writer.operands == "all":
            targets = operands
        elif writer.operands == "last" and len(operands) >= 2:
            targets = operands[-1:]
        for index, word in enumerate(words):
            option, eq, value = word.partition("=")
            if option in writer.output_options:
                targets.append(value if eq else (words[index + 1] if index + 1 < len(words) else ""))
            if eq and option in writer.output_keys:
                targets.append(value)
        if writer.url_name_flags and not targets:
            targets = _url_names(words, writer)
        piped_content: str | None = None
        if writer.operands == "all" and stdin is not None:
            source = stdin_data(stdin, self.programs)
            piped_content = source.text if source is not None else None
        for target in targets:
            path = absolute(target, command.cwd, self.home)
            if path is not None:
                self.written[path] = _Written(piped_content)

    # -- candidates -----------------------------------------------------------------------------------

    def _candidates(
        self, command: Command, args: list[Arg], env: dict[str, str], stdin: Stdin | None, ctx: Context
    ) -> None:
        body = stdin.body.value if stdin is not None and stdin.body is not None and stdin.body.known else None
        for found in find_candidates(command.name, args, env, body, self.programs):
            if found.text in self._candidate_texts or not looks_like_command(found.text):
                continue
            self._candidate_texts.add(found.text)
            inner = Context((*ctx.via, Via("argument", found.via_name)), "shell", candidate=True)
            self.shell(found.text, inner, Scope(cwd=command.cwd, home=self.home))
        scope = Scope(cwd=command.cwd, home=self.home)
        for text in self._literal_texts(command, args, env, stdin):
            self.text_candidates(text.via_name, text.text, ctx, scope, text.skip_start, text.only_after)

    def _analysed_already(self, line: str) -> bool:
        """Whether ``line`` is, or differs only by trailing words from, a command analysed already
        (``vim -c ':!kill 1' f`` gives ``kill 1`` from the option and ``kill 1 f`` from the text)."""
        analysed = (c.text for c in self.facts.commands if plausible_program(c.program))
        for seen in (*self._candidate_texts, *analysed):
            if line == seen or seen.startswith(line + " "):
                return True
            if line.startswith(seen + " ") and " " in seen:
                return True
        return False

    def _literal_texts(
        self, command: Command, args: list[Arg], env: dict[str, str], stdin: Stdin | None
    ) -> list[_Text]:
        """Texts of this command that may hold a command line written as literal text.

        Left out: the code of shells and interpreters (analysed as code), the command a wrapper runs
        (analysed as a command; only its option values are looked at), the arguments of programs
        whose arguments are text or patterns (``echo``, ``grep``, ``pkill -f``: what ``echo`` writes to
        a file is looked at as that file), text options (``git commit -m``), single words (``K=kill``:
        its use is analysed), and operands that name programs (``man kill``, ``pip install vllm``).
        """
        name = command.name
        programs = self.programs
        spec = programs.candidates
        texts = [_Text(f"{name} {variable}=", value) for variable, value in env.items() if _blank(value)]
        known = [a.value for a in args if a.known]
        # an argument with a part known only at run time ("ProxyCommand CMD <$(tty)") as written
        written = [a.value for a in args]
        if not plausible_program(command.program) or command.text.startswith(f"{command.program}("):
            # not a command bash can run: a line typed at the prompt of a program started before it
            texts.append(_Text(f"line {command.program[:20]}", command.text))
            texts.append(_Text(f"line {command.program[:20]}", " ".join(known)))
            return texts
        words = _without_text_options(written[1:], spec.programs.get(name))
        if programs.wrapper(name) is not None:
            texts += _continued(f"{name} option", words)
            return texts
        if name in spec.declarations:
            texts += [
                _Text(f"{name} {w.partition('=')[0]}=", w.partition("=")[2]) for w in words if _blank(w)
            ]
            return texts
        if name in spec.program_operands and name not in spec.pattern_operands:
            # a multi-word argument is not an operand naming a program, and npm exec CMD runs one
            texts += [_Text(f"{name} argument", word) for word in words if _blank(word)]
            operands = [word for word in words if not word.startswith("-")]
            if operands and operands[0] in spec.exec_subcommands.get(name, ()):
                rest = words[words.index(operands[0]) + 1 :]
                texts.append(_Text(f"{name} {operands[0]}", " ".join(rest)))
            return texts
        if (
            programs.is_shell(name)
            or programs.interpreter(name) is not None
            or name in programs.shell_builtins
            or name in spec.text_consumers
            or name in spec.pattern_operands
            or name in spec.program_operands
        ):
            return texts
        texts += [_Text(f"{name} argument", word) for word in words]
        texts += _continued(f"{name} argument", words)
        if stdin is not None and name not in programs.decoders:
            source = stdin_data(stdin, programs)
            if source is not None and source.text is not None:
                texts.append(_Text(f"{name} stdin", source.text))
            elif stdin.kind == "pipe" and stdin.producers:
                piped = _written_words(stdin.producers[-1], programs)
                if piped is not None:
                    texts.append(_Text(f"{name} stdin", piped))
        return texts

    def text_candidates(
        self,
        via_name: str,
        text: str,
        ctx: Context,
        scope: Scope,
        skip_start: bool = False,
        only_after: str = "",
    ) -> None:
        """Analyse the command lines written as literal text in ``text`` as candidates.

        Such a line is a guess at where a command starts and ends, so only the commands it would run
        are kept: what it leaves unknown (a remote command that does not parse, a computed word) says
        nothing about the call and is dropped.
        """
        for line in command_lines(text, self.programs, skip_start=skip_start, only_after=only_after):
            if self._text_candidates >= MAX_TEXT_CANDIDATES or self._analysed_already(line):
                continue
            self._candidate_texts.add(line)
            self._text_candidates += 1
            inner = Context((*ctx.via, Via("argument", via_name)), "shell", candidate=True)
            opaque, syntax_errors = len(self.facts.opaque), len(self.facts.syntax_errors)
            self.shell(line, inner, scope)
            del self.facts.opaque[opaque:], self.facts.syntax_errors[syntax_errors:]


def _blank(text: str) -> bool:
    return any(blank in text for blank in " \t\n")


def _continued(via_name: str, words: list[str]) -> list[_Text]:
    """A value that starts a command line and goes on in the next words (``socat - exec:cmd -x y``,
    ``ssh -o LocalCommand=cmd arg host``, ``split --filter=cmd -x y``). After an option's own value
    the line stops at the next long option, which is the program's (``--grep=kill --oneline``)."""
    texts: list[_Text] = []
    for index, word in enumerate(words):
        if index + 1 >= len(words) or not ("=" in word or ":" in word):
            continue
        rest = words[index + 1 :]
        if word.startswith("-"):
            ends = [i for i, later in enumerate(rest) if later.startswith("--")]
            rest = rest[: ends[0]] if ends else rest
        if rest:
            texts.append(_Text(via_name, " ".join([word, *rest]), only_after="=:"))
    return texts


def _without_text_options(words: list[str], spec: CandidateProgramSpec | None) -> list[str]:
    """``words`` without the values of the program's text options (``git commit -m MESSAGE``)."""
    if spec is None or not spec.text_options:
        return words
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        option, eq, _ = word.partition("=")
        if option in spec.text_options:
            skip = not eq
            continue
        kept.append(word)
    return kept


def _written_words(produced: Produced | None, programs: Programs) -> str | None:
    """The words ``echo``/``printf`` write, with any unknown expansion left as its source text."""
    if produced is None or produced.name not in programs.producers:
        return None
    return " ".join(arg.value for arg in produced.args[1:]) or None


def _shebang_interpreter(content: str) -> str | None:
    """The program a ``#!`` line names (``#!/usr/bin/env python3`` → ``python3``; bare ``#!`` → ``sh``)."""
    if not content.startswith("#!"):
        return None
    words = content[2 : content.find("\n") if "\n" in content else len(content)].split()
    if not words:
        return "sh"
    return program_name(words[-1] if program_name(words[0]) == "env" else words[0])


def _is_shell_script(path: str, content: str, programs: Programs) -> bool:
    """A ``.sh``/``.bash`` file, or one whose ``#!`` line names a shell."""
    interpreter = _shebang_interpreter(content)
    if interpreter is not None:
        return programs.is_shell(interpreter)
    return path.endswith((".sh", ".bash"))


def _url_names(words: list[str], writer: FileWriterSpec) -> list[str]:
    """Files a fetcher saves under the URL's basename (``wget URL``, ``curl -O URL``)."""
    flags = writer.url_name_flags
    named = "always" in flags
    directory = ""
    urls: list[str] = []
    for index, word in enumerate(words):
        option, eq, value = word.partition("=")
        if option in writer.directory_options:
            directory = value if eq else (words[index + 1] if index + 1 < len(words) else "")
        elif word in flags or (
            word.startswith("-")
            and not word.startswith("--")
            and any(f in word[1:] for f in flags if len(f) == 1)
        ):
            named = True
        elif "://" in word and not word.startswith("-"):
            urls.append(word)
    if not named:
        return []
    names = []
    for url in urls:
        path = url.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
        base = path.rsplit("/", 1)[-1] if "/" in path else ""
        if base and base not in (".", ".."):
            names.append(f"{directory.rstrip('/')}/{base}" if directory else base)
    return names
